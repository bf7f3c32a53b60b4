"""The rewrite engine's entry points: parse, rewrite one file's text, and the residue check
over the output."""

from __future__ import annotations

import ast
import gc
import re
from contextlib import contextmanager
from dataclasses import replace

import libcst as cst

from .. import trainstep
from ..core.residue import RESIDUE_CODE, mark_residue, unmarked_residue
from ..model import FileResult, Finding, SourceError
from ..targets import Target, get_target
from .imports import import_aliases
from .positions import node_positions
from .transformer import TorchToNNX

def parse(source: str, path: str) -> cst.Module:
    return parse_both(source, path)[0]


def parse_both(source: str, path: str) -> tuple[cst.Module, ast.Module]:
    """(libcst module, ast module) of `source`; SourceError naming the line when it is not Python."""
    try:  # ast first: its messages and line numbers are the ones Python users know
        tree = ast.parse(source)
    except SyntaxError as error:
        raise SourceError(path, f"syntax error: {error.msg}", error.lineno) from None
    try:
        return cst.parse_module(source), tree
    except cst.ParserSyntaxError as error:
        raise SourceError(path, f"syntax error: {error.message}", error.raw_line) from None


_LONE_LF = re.compile(r"(?<!\r)\n")


@contextmanager
def fewer_collections(young: int = 100_000):
    """The cyclic garbage collector run less often: a rewrite allocates millions of tree nodes
    that all live until it ends, and each full collection walks every one of them (a quarter to
    a third of a big file's time, for little garbage). Cycles are still collected."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], young), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def rewrite_source(source: str, path: str = "<string>", *, target: str | Target = "nnx",
                   unsafe_fixes: bool = True, helpers_module: str | None = None,
                   imported_classes: dict[str, bool] | None = None) -> FileResult:
    """_rewrite_text with the file's form kept: a BOM is set aside for the parse and put
    back, and in a file whose every line ends in CRLF the lines the rewrite adds (imports,
    helpers with their docstrings, TODO comments) end in CRLF too."""
    bom = "\ufeff" if source.startswith("\ufeff") else ""
    with fewer_collections():
        result = _rewrite_text(source[len(bom):], path, target=target, unsafe_fixes=unsafe_fixes,
                               helpers_module=helpers_module, imported_classes=imported_classes)
    new_source = result.new_source
    if new_source is not None and new_source != result.source:
        if "\r\n" in source and not _LONE_LF.search(source):
            new_source = _LONE_LF.sub("\r\n", new_source)
        result.new_source = bom + new_source
    elif new_source is not None:
        result.new_source = source
    result.source = source
    return result


def _rewrite_text(source: str, path: str = "<string>", *, target: str | Target = "nnx",
                  unsafe_fixes: bool = True, helpers_module: str | None = None,
                  imported_classes: dict[str, bool] | None = None) -> FileResult:
    """Rewrite one file's text for `target` (a registered target's name, or a Target). Unchanged
    text comes back as is (byte for byte). An unknown target raises targets.UnknownTarget (a
    ValueError naming the available ones).

    `unsafe_fixes=False` (what `lint --fix` uses) leaves alone the conversions that change
    numbers: random sampling and seeding (JAX's streams differ from torch's) and 64-bit
    integers becoming 32-bit ones.

    `helpers_module` (the module as the file's import names it: `._pt2jax_helpers`,
    `_pt2jax_helpers`): the helpers the file needs are imported from it (a folder rewrite writes
    it once per package, `api.rewrite_paths`) instead of defined in the file.

    `imported_classes`: names the file imports that are converted module classes of other files
    of the same run -> whether their constructors take rngs (project_classes; a folder rewrite
    passes them).
    """
    target = get_target(target)  # asked first: an unknown name fails even for torch-free text
    if "torch" not in source:
        return FileResult(path, source, source)
    module, tree = parse_both(source, path)
    aliases = import_aliases(module)
    # a converted class of the run imported by the package's own absolute name (a folder run over
    # torchvision itself: `from torchvision.ops import StochasticDepth`) is the run's, not torch's
    own = frozenset(imported_classes or ())
    aliases = {name: q for name, q in aliases.items() if name not in own}
    if not aliases:
        return FileResult(path, source, source)
    transformer = TorchToNNX(path, aliases, module, unsafe_fixes, target, helpers_module, imported_classes,
                             source=source, tree=tree)
    # the one metadata the pass reads (where nodes start: findings' line and column), in one lean
    # codegen (positions.py) rather than PositionProvider through a MetadataWrapper
    transformer.positions, transformer.ends = node_positions(module)
    new_module = module.visit(transformer)
    new_source = new_module.code
    try:
        tree = ast.parse(new_source)
    except SyntaxError as error:  # an engine bug: never hand back text that does not parse
        if "too many nested parentheses" in str(error.msg):  # a method chain of 200+ links -> nested calls
            raise SourceError(path, "cannot convert: the JAX form of an expression here nests calls deeper than "
                                    "Python's parser allows (too many nested parentheses); split it", error.lineno) from None
        raise SourceError(path, f"internal error: the rewrite produced invalid code ({error.msg})", error.lineno) from None
    findings = transformer.findings
    # with unsafe fixes off (`lint --fix`), conversions that change numbers are left for a later
    # `--unsafe-fixes` run, not for a person: no marker that would go stale then
    if new_source != source and unsafe_fixes:
        new_source, residue_findings = _mark_residue(source, new_source, path, tree, own, transformer.target.reword)
        findings = findings + residue_findings
    findings = sorted(findings, key=lambda f: (f.line, f.col, f.code))
    return FileResult(path, source, new_source, findings)


def _mark_residue(source: str, new_source: str, path: str, tree: ast.Module, own: frozenset[str] = frozenset(),
                  reword=str) -> tuple[str, list[Finding]]:
    """The residue check (core.residue) over the output: torch left without a TODO(pt2jax)
    gets one (PTJ920) and a finding, so the summary never claims more than was done. The
    engine should have marked everything itself; a PTJ920 is an engine gap, reported as such."""
    unmarked = unmarked_residue(new_source, tree, own)
    if not unmarked:
        return new_source, []
    unmarked = [replace(r, reason=reword(r.reason)) for r in unmarked]  # in the target's words
    to_input = _line_map(source, new_source)
    findings = [
        Finding(path, to_input(r.line), r.col, RESIDUE_CODE, f"left unconverted without a marker (residue "
                f"check): {r.message}", False, "warning", "manual")
        for r in unmarked
    ]
    marked = mark_residue(new_source, unmarked)
    try:  # comment lines only: cannot fail, checked all the same (never hand back invalid code)
        ast.parse(marked)
    except SyntaxError as error:
        raise SourceError(path, f"internal error: marking residue produced invalid code ({error.msg})",
                          error.lineno) from None
    return marked, findings


def _line_map(source: str, new_source: str):
    """Output line -> the input line it came from (the start of a changed block)."""
    import difflib

    old, new = source.splitlines(), new_source.splitlines()
    blocks = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()

    def to_input(line: int) -> int:
        for tag, i1, i2, j1, j2 in blocks:
            if j1 <= line - 1 < j2:
                return i1 + (line - 1 - j1) + 1 if tag == "equal" else min(i1 + 1, len(old))
        return line

    return to_input


def fixable_train_step_lines(source: str) -> set[int]:
    """Lines of zero_grad()/backward()/step() calls that `rewrite_source` converts."""
    from ..lint import unconverted_lines

    return trainstep.train_step_analysis(source, unconverted_lines(source))[0]
