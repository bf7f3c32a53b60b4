"""Every output pt2jax writes, one module per format, behind one registry.

A format serves some *kinds* of data, and renders each with `render(data, stream, ctx)`:

=============  ==============================================  =================================
kind           data                                            where
=============  ==============================================  =================================
findings       a list of lint Findings                         `lint --format/--output`
statistics     statistics.Statistics                           `lint --statistics [--format]`
lint report    results.LintSummary                             `lint --report FILE.md`
rewrite        results.RewriteResults                          `rewrite` summary, `--report`
verify         verify.VerifyReport                             `verify --format`
verify train   verify.train_report.TrainReport                 `verify --train --format`
=============  ==============================================  =================================

The CLI takes its choices from here (`formats_for(kind)`), so a command offers exactly the
formats that can render its data, and a new format is one module plus one line in REGISTRY.
Counting (findings, safe and unsafe fixes, for a person) lives in counts.py and nothing
else counts. Unified diffs (diff.py) are not a format: they are printed per file as it is
converted.

Nothing here imports torch, jax or libcst; rich is imported only when colour or a table is drawn.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from ..fsio import write_text_atomic
from ..model import Finding, SourceError
from . import github, json, junit, markdown, sarif, text, verify_train

FINDINGS = "findings"
STATISTICS = "statistics"
LINT_REPORT = "lint report"
REWRITE = "rewrite"
VERIFY = "verify"
VERIFY_TRAIN = "verify train"
KINDS = (FINDINGS, STATISTICS, LINT_REPORT, REWRITE, VERIFY, VERIFY_TRAIN)


@dataclass
class OutputContext:
    """What a renderer may use besides its data. `root`, `sources`, `errors` and `files` are
    read by the CI formats (SARIF paths and fingerprints, JUnit's passing files)."""

    color: bool = False
    root: str | os.PathLike | None = None
    sources: Mapping[str, str] | None = None
    errors: Sequence[SourceError | str] = ()
    files: Sequence[str] = ()
    show_summary: bool = True


Renderer = Callable[[object, TextIO, OutputContext], None]


@dataclass(frozen=True)
class OutputFormat:
    name: str
    description: str
    renderers: Mapping[str, Renderer] = field(default_factory=dict)

    def serves(self, kind: str) -> bool:
        return kind in self.renderers


REGISTRY: dict[str, OutputFormat] = {f.name: f for f in (
    OutputFormat("text", "lines and a summary for a person (a table for verify)", {
        FINDINGS: text.render_findings, STATISTICS: text.render_statistics,
        REWRITE: text.render_rewrite, VERIFY: text.render_verify, VERIFY_TRAIN: verify_train.render_text}),
    OutputFormat("json", "machine-readable JSON", {
        FINDINGS: json.render_findings, STATISTICS: json.render_statistics, VERIFY: json.render_verify,
        VERIFY_TRAIN: json.render_verify}),
    OutputFormat("sarif", "SARIF 2.1.0 (GitHub code scanning)", {FINDINGS: sarif.render_findings}),
    OutputFormat("github", "GitHub Actions workflow annotations", {
        FINDINGS: github.render_findings, VERIFY: github.render_verify}),
    OutputFormat("junit", "JUnit XML", {FINDINGS: junit.render_findings, VERIFY: junit.render_verify}),
    OutputFormat("markdown", "a Markdown report for the pull request (--report FILE.md)", {
        LINT_REPORT: markdown.render_lint_report, REWRITE: markdown.render_rewrite}),
)}


def formats_for(kind: str) -> tuple[str, ...]:
    """The names of the formats that render `kind`, in registry order."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}; kinds: {', '.join(KINDS)}")
    return tuple(name for name, fmt in REGISTRY.items() if fmt.serves(kind))


FORMATS = formats_for(FINDINGS)  # lint's --format / --output choices


def render(fmt: str, kind: str, data, stream: TextIO, ctx: OutputContext | None = None) -> None:
    """Render `data` of `kind` in format `fmt` to `stream`. ValueError naming the formats that
    do serve `kind` when `fmt` does not."""
    entry = REGISTRY.get(fmt)
    if entry is None or not entry.serves(kind):
        raise ValueError(f"unknown format {fmt!r} for {kind}; choose from {', '.join(formats_for(kind))}")
    entry.renderers[kind](data, stream, ctx or OutputContext())


# ------------------------------------------------------------------------ several outputs


def parse_output_spec(spec: str) -> tuple[str, str | None]:
    """`FORMAT` or `FORMAT:PATH` -> (format, path); the path is None for stdout (no path,
    or `-`). ValueError for an unknown format or an empty path."""
    fmt, sep, path = spec.partition(":")
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r} in {spec!r}; choose from {', '.join(FORMATS)} "
                         "(optionally FORMAT:PATH, e.g. sarif:results.sarif)")
    if not sep:
        return fmt, None
    if not path:
        raise ValueError(f"output {spec!r} names no file; write {fmt}:PATH, or {fmt}:- for stdout")
    return fmt, None if path == "-" else path


def parse_output_specs(specs: Iterable[str | tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """Parse and check a list of specs: at most one goes to stdout, no file is named twice."""
    parsed = [parse_output_spec(s) if isinstance(s, str) else (s[0], s[1]) for s in specs]
    for fmt, _ in parsed:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    to_stdout = [fmt for fmt, path in parsed if path is None]
    if len(to_stdout) > 1:
        raise ValueError(f"only one output can go to stdout, got {len(to_stdout)} ({', '.join(to_stdout)}); "
                         "give the others a file, e.g. sarif:results.sarif")
    seen: dict[str, str] = {}
    for fmt, path in parsed:
        if path is None:
            continue
        key = os.path.normcase(os.path.abspath(path))
        if key in seen:
            raise ValueError(f"{path} is named by two outputs ({seen[key]} and {fmt})")
        seen[key] = fmt
    return parsed


def render_findings(findings: Sequence[Finding], fmt: str, stream: TextIO, color: bool | None = None, *,
                    show_summary: bool = True, root: str | os.PathLike | None = None,
                    sources: Mapping[str, str] | None = None, errors: Iterable[SourceError | str] = (),
                    files: Iterable[str] = ()) -> None:
    """Lint findings in any of FORMATS to `stream` (`color` None: when it is a terminal;
    only `text` is coloured)."""
    if color is None:
        from .common import is_tty

        color = is_tty(stream)
    ctx = OutputContext(color=color, root=root, sources=sources, errors=list(errors), files=list(files),
                        show_summary=show_summary)
    render(fmt, FINDINGS, findings, stream, ctx)


def write_outputs(findings: Sequence[Finding], specs: Iterable[str | tuple[str, str | None]], *,
                  stdout: TextIO | None = None, color: bool | None = None,
                  root: str | os.PathLike | None = None, sources: Mapping[str, str] | None = None,
                  errors: Iterable[SourceError | str] = (), files: Iterable[str] = (),
                  show_summary: bool = True) -> list[tuple[str, str | None]]:
    """Render each output spec (`text`, `sarif:results.sarif`, `json:-`, or a parsed
    (format, path|None) pair): files are written atomically, and at most one spec goes to
    `stdout` (default sys.stdout; `color` None: colour text there when it is a terminal;
    files are never coloured). All specs are checked before anything is written (ValueError
    for a bad spec or two on stdout). Returns the parsed specs. A file that cannot be written
    raises SourceError after the outputs before it were written.

    `sources` ({path: text}) feeds SARIF fingerprints and, with `files` (every file linted),
    lists clean files as passing JUnit testcases."""
    parsed = parse_output_specs(specs)
    options = {"root": root, "sources": sources, "errors": list(errors), "files": list(files),
               "show_summary": show_summary}
    stream = stdout if stdout is not None else sys.stdout
    for fmt, path in parsed:
        if path is None:
            continue
        buffer = io.StringIO()
        render(fmt, FINDINGS, findings, buffer, OutputContext(color=False, **options))
        write_text_atomic(path, buffer.getvalue())
    for fmt, path in parsed:
        if path is None:
            if color is None:
                from .common import is_tty

                color = is_tty(stream) and not os.environ.get("NO_COLOR")
            render(fmt, FINDINGS, findings, stream, OutputContext(color=color, **options))
    return parsed
