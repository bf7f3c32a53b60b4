"""Renderers: findings as text lines, JSON, SARIF, GitHub annotations or JUnit XML; errors,
diffs. Pure output; no analysis.

Text lines are `path:line:col CODE message`, the format editors and CI annotators parse.
Colour (rich styles) only when asked for, i.e. when the stream is a terminal. The CI formats
and writing several outputs in one run (`write_outputs`) live in formats.py.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TextIO

from .formats import FORMATS, parse_output_spec, parse_output_specs, render_output, write_outputs
from .model import Finding, SourceError

__all__ = [
    "FORMATS", "finding_line", "is_tty", "parse_output_spec", "parse_output_specs", "plural", "render_diff",
    "render_errors", "render_findings", "render_lines", "render_output", "summary", "unified_diff",
    "write_outputs",
]

_CODE_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}


def is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _console(stream: TextIO, color: bool):
    from rich.console import Console

    return Console(file=stream, force_terminal=color, no_color=not color, highlight=False,
                   soft_wrap=True, emoji=False, markup=False)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(findings: Sequence[Finding], errors: Sequence[SourceError | str] = (), linted: int | None = None) -> str:
    """The one-line account. Files that could not be read or parsed (`errors`) are counted,
    and never summed up as "No PyTorch constructs found"."""
    failed = f"{plural(len(errors), 'file')} could not be linted (see the errors)"
    if not findings:
        if not errors:
            return "No PyTorch constructs found."
        rest = f"; no findings in the other {plural(linted, 'file')}" if linted else ""
        return f"{failed[0].upper()}{failed[1:]}{rest}."
    fixable = sum(1 for f in findings if f.fixable)
    files = len({f.path for f in findings})
    line = f"Found {plural(len(findings), 'finding')} ({fixable} fixable) in {plural(files, 'file')}"
    return f"{line}; {failed}." if errors else f"{line}."


def finding_line(finding: Finding) -> str:
    return f"{finding.path}:{finding.line}:{finding.col} {finding.code} {finding.message}"


def _styled(finding: Finding):
    from rich.text import Text

    text = Text()
    text.append(f"{finding.path}:{finding.line}:{finding.col}", style="bold")
    text.append(" ")
    text.append(finding.code, style=_CODE_STYLE.get(finding.severity, "bold"))
    text.append(" ")
    message = finding.message
    if message.endswith(" [fixable]"):
        text.append(message[: -len(" [fixable]")])
        text.append(" [fixable]", style="green")
    else:
        text.append(message)
    return text


def render_lines(findings: Iterable[Finding], stream: TextIO, color: bool) -> None:
    """One `path:line:col CODE message` line per finding, no summary."""
    if not color:
        stream.write("".join(finding_line(f) + "\n" for f in findings))
        return
    console = _console(stream, True)
    for finding in findings:
        console.print(_styled(finding))


def render_findings(findings: Sequence[Finding], fmt: str, stream: TextIO, color: bool | None = None,
                    *, show_summary: bool = True, root: str | os.PathLike | None = None,
                    sources: Mapping[str, str] | None = None, errors: Iterable[SourceError | str] = (),
                    files: Iterable[str] = ()) -> None:
    """Write findings as `text` (lines + a one-line summary), `json` (a list of dicts), or one
    of the CI formats `sarif`, `github`, `junit` (see formats.py; `root` and `sources` are
    used by those only; the text summary counts `errors` and the `files` linted)."""
    if fmt not in ("text", "json"):
        render_output(findings, fmt, stream, root=root, sources=sources, errors=errors, files=files)
        return
    if color is None:
        color = is_tty(stream)
    findings = sorted(findings)
    if fmt == "json":
        json.dump([f.to_dict() for f in findings], stream, indent=2)
        stream.write("\n")
        return
    render_lines(findings, stream, color)
    if show_summary:
        files = list(files)
        line = summary(findings, list(errors), len(files) if files else None)
        if color:
            style = "bold green" if not findings and not errors else "bold"
            _console(stream, True).print(line, style=style)
        else:
            stream.write(line + "\n")


def render_errors(errors: Iterable[SourceError | str], stream: TextIO, color: bool | None = None) -> None:
    """Each error as `path:line: message` (SourceError's own text)."""
    if color is None:
        color = is_tty(stream)
    lines = [str(e) for e in errors]
    if not lines:
        return
    if not color:
        stream.write("".join(f"{line}\n" for line in lines))
        return
    console = _console(stream, True)
    for line in lines:
        console.print(line, style="bold red")


def unified_diff(old: str, new: str, path: str) -> str:
    """A unified diff of one file, ending with a newline: `a/path` -> `b/path` for a relative
    path (as git writes them), the path itself on both sides for an absolute one."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    before, after = (path, path) if os.path.isabs(path) else (f"a/{path}", f"b/{path}")
    out = []
    for line in difflib.unified_diff(old_lines, new_lines, before, after):
        out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def render_diff(diff: str, stream: TextIO, color: bool) -> None:
    if not color:
        stream.write(diff)
        return
    from rich.text import Text

    console = _console(stream, True)
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        console.print(Text(line, style=style))
