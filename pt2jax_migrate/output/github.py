"""`github`: GitHub Actions workflow commands, `::warning file=F,line=L,col=C,title=CODE::message`,
one per finding (error for severity error, notice for info), so findings show on the diff;
for a verify report, one `::error` per comparison out of tolerance and a `::notice` summary."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TextIO

from ..model import Finding, SourceError
from .common import display_path, error_parts
from .counts import display_message

_GITHUB_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    """A workflow command's message (@actions/core escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (@actions/core escapeProperty)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, properties: dict[str, object], message: str) -> str:
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items())
    return f"::{kind} {props}::{escape_data(message)}" if props else f"::{kind}::{escape_data(message)}"


def github_annotations(findings: Sequence[Finding], *, root: str | os.PathLike | None = None,
                       errors: Iterable[SourceError | str] = ()) -> str:
    """One workflow command per finding (`::warning file=...,line=...,col=...,title=CODE::message`,
    `::error` for severity error, `::notice` for info) and one `::error` per file error;
    each line ends with a newline."""
    lines = []
    for finding in sorted(findings):
        kind = _GITHUB_COMMAND.get(finding.severity, "warning")
        properties = {"file": display_path(finding.path, root), "line": max(1, finding.line),
                      "col": max(1, finding.col), "title": finding.code}
        lines.append(command(kind, properties, display_message(finding)))
    for error in errors:
        path, line, message = error_parts(error)
        properties = {}
        if path is not None:
            properties["file"] = display_path(path, root)
            if line:
                properties["line"] = line
        properties["title"] = "pt2jax"
        lines.append(command("error", properties, message))
    return "".join(line + "\n" for line in lines)


def render_findings(findings: Sequence[Finding], stream: TextIO, ctx) -> None:
    stream.write(github_annotations(findings, root=ctx.root, errors=ctx.errors))


def render_verify(report, stream: TextIO, ctx) -> None:
    """A verify report as annotations on the converted file: one `::error` per failing
    comparison, then a `::notice` (pass) or `::error` (fail) with the totals."""
    where = {"file": display_path(report.converted, ctx.root)} if report.converted else {}
    for c in report.failures:
        stream.write(command("error", {**where, "title": f"pt2jax verify {report.model}"},
                             f"{c.name} ({c.mode}): max abs err {c.max_abs_err:.2e}, max rel err {c.max_rel_err:.2e} "
                             "out of tolerance") + "\n")
    if report.jit_error is not None:
        jit = report.jit_error
        place = {"file": display_path(jit.path, ctx.root), **({"line": str(jit.line)} if jit.line else {})}
        stream.write(command("error", {**place, "title": f"pt2jax verify {report.model}: fails under jit"},
                             f"{jit.statement}: {jit.error}: {jit.message}") + "\n")
    total = len(report.all_comparisons)
    if report.passed:
        stream.write(command("notice", {**where, "title": f"pt2jax verify {report.model}"},
                             f"PASS: {total} comparisons within tolerance") + "\n")
    else:
        stream.write(command("error", {**where, "title": f"pt2jax verify {report.model}"},
                             f"FAIL: {len(report.failures)} of {total} comparisons out of tolerance") + "\n")
