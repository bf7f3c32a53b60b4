"""The residue property over real code nobody here wrote (issue 7's property test).

For every file of torchvision 0.28.0's `models/` (read as text: lint and rewrite never import
it), every fixture and every source under tests/data:

* lint's fixable marks are exactly rewrite's changes, lint's marks for a person exactly
  rewrite's TODOs (same line, same code), so the to-do list is the same whichever command
  printed it;
* the residue check finds no PyTorch left in the output without a TODO(pt2jax) marker, and
  the rewrite never needed its PTJ920 safety net;
* every TODO finding is written as exactly one marker comment line;
* the output parses.

Marked `corpus` (slow-ish: about 60 files of real model code); CI runs it with the rest.
"""

from __future__ import annotations

import ast
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from pt2jax_migrate.core.residue import RESIDUE_CODE, find_residue
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.output.counts import count_todo_markers
from pt2jax_migrate.rewrite import rewrite_source

ROOT = Path(__file__).resolve().parent.parent
# rewrite's own bookkeeping on lines lint reports under the class (see test_lint_rewrite_agree)
BOOKKEEPING = {"PTJ101"}
NOTES = {"PTJ001", "PTJ303"}  # lint's notes: a kept import, train()/eval() kept as is


def _torchvision_models() -> list[Path]:
    spec = importlib.util.find_spec("torchvision")  # finds the package without importing it
    if spec is None or spec.origin is None:
        return []
    return sorted((Path(spec.origin).parent / "models").rglob("*.py"))


TORCHVISION = _torchvision_models()
OWN = sorted((ROOT / "fixtures").glob("*.py")) + sorted((ROOT / "tests" / "data").rglob("*.py"))


def _id(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[parts.index("torchvision"):]) if "torchvision" in parts else str(path.relative_to(ROOT))


def test_torchvision_corpus_is_installed():
    """CI installs torchvision==0.28.0 (the test extra): the corpus must not silently vanish."""
    assert len(TORCHVISION) > 50, "pip install torchvision==0.28.0 (pairs with torch 2.13.0)"


def keyed(findings, fixable: bool) -> Counter:
    return Counter((f.line, f.code) for f in findings if f.fixable == fixable)


@pytest.mark.corpus
@pytest.mark.parametrize("path", TORCHVISION + OWN, ids=_id)
def test_lint_and_rewrite_agree_and_nothing_torch_is_left_unmarked(path):
    source = path.read_text(encoding="utf-8")
    try:
        ast.parse(source)
    except SyntaxError:
        pytest.skip("not valid Python (a test input for error handling)")
    lint = lint_source(source, str(path))
    result = rewrite_source(source, str(path))
    new = result.new_source
    assert new is not None
    ast.parse(new)

    lint_fixable = Counter({k: 1 for k in keyed(lint, True) if k[1] not in BOOKKEEPING | {"PTJ001"}})
    rewrite_changes = Counter({k: 1 for k in keyed(result.findings, True) if k[1] not in BOOKKEEPING})
    assert lint_fixable == rewrite_changes, (
        f"lint-only: {sorted(lint_fixable - rewrite_changes)}\nrewrite-only: {sorted(rewrite_changes - lint_fixable)}")
    # as sets: the rewrite writes one TODO line per distinct text on a statement, lint reports
    # each use (`def f(a: nn.Module, b: nn.Module)` is two findings for lint, one TODO)
    lint_manual = set(keyed([f for f in lint if f.code not in NOTES], False))
    rewrite_todos = set(keyed(result.findings, False))
    assert lint_manual == rewrite_todos, (
        f"lint-only: {sorted(lint_manual - rewrite_todos)}\nrewrite-only: {sorted(rewrite_todos - lint_manual)}")

    if new == source:
        return  # torch-free, or nothing the engine touches: left byte for byte (no residue check)
    unmarked = [r for r in find_residue(new) if not r.marked]
    assert not unmarked, unmarked
    assert not [f for f in result.findings if f.code == RESIDUE_CODE], "the engine left residue for the safety net"
    # every TODO counted is written: its marker line is in the output (one line may stand for
    # the same text on several lines of one statement, never the other way round)
    todos = [f for f in result.findings if not f.fixable and f.severity != "info"]
    for finding in todos:
        assert f"# TODO(pt2jax): {finding.code} {finding.message}" in new, finding
    for finding in result.findings:  # kept by policy (core.data): a NOTE line, not a TODO
        if not finding.fixable and finding.severity == "info":
            assert f"# NOTE(pt2jax): {finding.code} {finding.message}" in new, finding
    added = count_todo_markers(new) - count_todo_markers(source)
    new_texts = {(f.code, f.message) for f in todos if f"# TODO(pt2jax): {f.code} {f.message}" not in source}
    assert len(new_texts) <= added <= len(todos)


@pytest.mark.corpus
def test_corpus_check_script_on_a_slice_of_torchvision_and_timm():
    """benchmarks/corpus_check.py (rewrite --out and lint, every file checked: no internal error,
    output parses, second rewrite changes nothing, torch-free files identical, BOM/encoding/CRLF/
    mode kept, no unmarked residue) on an even slice of 60 files of torchvision and timm."""
    import subprocess
    import sys

    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "corpus_check.py"), "--corpus", "torchvision",
                           "--corpus", "timm", "--limit", "60", "--jobs", "2", "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("target: nnx\nfiles: 60 ") and "failed files: 0" in done.stdout, done.stdout
    changed = int(done.stdout.split("changed by rewrite: ")[1].split()[0])
    assert changed >= 30, done.stdout  # real model code: most of it is converted
