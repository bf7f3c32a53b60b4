"""Machine-readable lint outputs for CI: SARIF 2.1.0, GitHub Actions annotations, JUnit XML,
and writing several outputs in one run (`--output sarif:results.sarif`).

Pure output, like render.py: no analysis, and nothing here imports torch, jax or libcst.

* `sarif`  - one run of SARIF 2.1.0 that GitHub code scanning accepts: the rule catalogue as
  `tool.driver.rules`, one result per finding with a path relative to the source root
  (`uriBaseId` %SRCROOT%) and `partialFingerprints` that survive line shifts.
* `github` - GitHub Actions workflow commands, `::warning file=F,line=L,col=C,title=CODE::message`,
  one per finding (error for severity error, notice for info), so findings show on the diff.
* `junit`  - JUnit XML: one testsuite, one testcase per file, one <failure> per finding; a
  file without findings (listed in `files` or `sources`) is a passing testcase.

Several outputs at once: `parse_output_spec("sarif:results.sarif") == ("sarif", "results.sarif")`,
then `write_outputs(findings, ["text", "sarif:results.sarif", "junit:lint.xml"], ...)` renders
each one (files are replaced atomically; at most one goes to stdout).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import TextIO
from urllib.parse import quote

from .fsio import write_text_atomic  # noqa: F401  (re-exported)
from .model import Finding, SourceError

FORMATS = ("text", "json", "sarif", "github", "junit")

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"
INFORMATION_URI = "https://pypi.org/project/pt2jax/"
FINGERPRINT_KEY = "pt2jaxFinding/v1"

_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}
_FIX_MEANING = {
    "safe": "numerically identical",
    "unsafe": "changes numbers or semantics",
    "manual": "left in place with a TODO(pt2jax)",
}
_NEWLINES = re.compile(r"\r\n|\r|\n")  # how Python (and lint's columns) count lines


# ------------------------------------------------------------------------------ shared helpers


def effective_fix(finding: Finding, rule_fix: str = "") -> str:
    """The finding's own fix safety; otherwise `manual` when it is not fixable (the rewrite
    leaves a TODO), and the rule's catalogue safety when it is."""
    if finding.fix:
        return finding.fix
    if not finding.fixable:
        return "manual"
    return rule_fix


def relative_path(path: str, root: str | os.PathLike | None = None) -> str | None:
    """`path` relative to `root` (default: the working folder) with forward slashes, or None
    when it lies outside the root (or on another drive)."""
    base = os.path.abspath(os.fspath(root) if root is not None else os.getcwd())
    try:
        rel = os.path.relpath(os.path.abspath(path), base)
    except ValueError:  # another drive on Windows
        return None
    rel = PurePath(rel).as_posix()
    if rel == ".." or rel.startswith("../"):
        return None
    return rel


def display_path(path: str, root: str | os.PathLike | None = None) -> str:
    """Relative to the root with forward slashes when inside it, else the absolute path."""
    rel = relative_path(path, root)
    return rel if rel is not None else PurePath(os.path.abspath(path)).as_posix()


def _error_parts(error: SourceError | str) -> tuple[str | None, int | None, str]:
    """(path, line, message without the `path:line: ` prefix) of an error."""
    if isinstance(error, SourceError):
        message = getattr(error, "message", None)
        if isinstance(message, str):
            return error.path, error.line, message
        text = str(error)
        prefix = f"{error.path}:{error.line}: " if error.line else f"{error.path}: "
        return error.path, error.line, text[len(prefix):] if text.startswith(prefix) else text
    return None, None, str(error)


class _Lines:
    """Source lines by path, split once per file."""

    def __init__(self, sources: Mapping[str, str] | None):
        self.sources = sources or {}
        self.cache: dict[str, list[str] | None] = {}

    def get(self, path: str, line: int) -> str | None:
        if path not in self.cache:
            text = self.sources.get(path)
            if text is None:
                text = self.sources.get(os.path.normpath(path))
            self.cache[path] = None if text is None else _NEWLINES.split(text.removeprefix("\ufeff"))
        lines = self.cache[path]
        if lines is None or not 1 <= line <= len(lines):
            return None
        return lines[line - 1]


def read_sources(paths: Iterable[str]) -> dict[str, str]:
    """{path: text} for each path that can be read as UTF-8 (the others are left out), for the
    `sources` argument: e.g. `read_sources({f.path for f in findings})`."""
    from .fsio import read_source

    out: dict[str, str] = {}
    for path in paths:
        if path in out:
            continue
        try:
            out[path] = read_source(path)
        except SourceError:
            continue
    return out


def fingerprints(findings: Sequence[Finding], *, root: str | os.PathLike | None = None,
                 sources: Mapping[str, str] | None = None) -> list[str]:
    """A stable hash per finding: rule code + relative path + the stripped text of the source
    line (the message when the line is unknown) + which occurrence of that triple it is in
    the file. Moving code up or down keeps every fingerprint; editing the line changes it."""
    lines = _Lines(sources)
    seen: dict[tuple[str, str, str], int] = {}
    out: list[str] = []
    for finding in findings:
        text = lines.get(finding.path, finding.line)
        text = " ".join(text.split()) if text is not None else f"message:{finding.message}"
        key = (finding.code, display_path(finding.path, root), text)
        occurrence = seen.get(key, 0) + 1
        seen[key] = occurrence
        digest = hashlib.sha256("\0".join(key).encode("utf-8")).hexdigest()[:32]
        out.append(f"{digest}:{occurrence}")
    return out


# ----------------------------------------------------------------------------------- SARIF


def _catalogue() -> dict:
    from .rules import load_rules

    return load_rules().lint_rules


def _rule_help(rule) -> tuple[str, str]:
    fix = rule.fix + (f" ({_FIX_MEANING[rule.fix]})" if rule.fix in _FIX_MEANING else "")
    text = (f"{rule.what}\n\nWhy it matters in JAX: {rule.why}\n\nExample:\n{rule.example}\n\n"
            f"Use instead:\n{rule.instead}\n\nFix safety: {fix}")
    markdown = (f"**What it detects**: {rule.what}\n\n**Why it matters in JAX**: {rule.why}\n\n"
                f"**Example**\n\n```python\n{rule.example}\n```\n\n"
                f"**Use instead**\n\n```python\n{rule.instead}\n```\n\n**Fix safety**: {fix}")
    return text, markdown


def _rule_descriptor(rule) -> dict:
    text, markdown = _rule_help(rule)
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.what},
        "help": {"text": text, "markdown": markdown},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"fix": rule.fix, "tags": ["pytorch", "jax", "migration"]},
    }


def _artifact_location(path: str, root: str | os.PathLike | None) -> dict:
    rel = relative_path(path, root)
    if rel is None:
        return {"uri": Path(os.path.abspath(path)).as_uri()}
    return {"uri": quote(rel, safe="/"), "uriBaseId": SRCROOT}


def to_sarif(findings: Sequence[Finding], *, root: str | os.PathLike | None = None,
             sources: Mapping[str, str] | None = None, errors: Iterable[SourceError | str] = (),
             information_uri: str = INFORMATION_URI) -> dict:
    """One SARIF 2.1.0 log (a dict ready for json.dump) for GitHub code scanning and other
    SARIF viewers. Paths are made relative to `root` (default: the working folder); files
    outside it get absolute file:// URIs. `sources` ({path: text}) gives the line text the
    fingerprints hash. `errors` (unreadable or unparsable files) become tool notifications
    and mark the run as not fully successful."""
    from . import __version__

    findings = sorted(findings)
    catalogue = _catalogue()
    rules: list[dict] = []
    index: dict[str, int] = {}
    fixes: dict[str, str] = {}
    for code in sorted(catalogue):
        index[code] = len(rules)
        fixes[code] = catalogue[code].fix
        rules.append(_rule_descriptor(catalogue[code]))
    for finding in findings:  # a code missing from the catalogue still gets a descriptor
        if finding.code not in index:
            index[finding.code] = len(rules)
            rules.append({"id": finding.code, "shortDescription": {"text": finding.code}})

    results = []
    for finding, fingerprint in zip(findings, fingerprints(findings, root=root, sources=sources)):
        fix = effective_fix(finding, fixes.get(finding.code, ""))
        results.append({
            "ruleId": finding.code,
            "ruleIndex": index[finding.code],
            "level": _SARIF_LEVEL.get(finding.severity, "warning"),
            "message": {"text": finding.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": _artifact_location(finding.path, root),
                    "region": {"startLine": max(1, finding.line), "startColumn": max(1, finding.col)},
                },
            }],
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
            "properties": {"fixable": finding.fixable, "fix": fix},
        })

    notifications = []
    for error in errors:
        path, line, message = _error_parts(error)
        notification: dict = {"level": "error", "message": {"text": message}}
        if path is not None:
            physical: dict = {"artifactLocation": _artifact_location(path, root)}
            if line:
                physical["region"] = {"startLine": max(1, line)}
            notification["locations"] = [{"physicalLocation": physical}]
        notifications.append(notification)
    invocation: dict = {"executionSuccessful": not notifications}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications

    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "pt2jax",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": information_uri,
                "rules": rules,
            }},
            "invocations": [invocation],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


# ------------------------------------------------------------------------- GitHub Actions


def escape_data(text: str) -> str:
    """A workflow command's message (@actions/core escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (@actions/core escapeProperty)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(kind: str, properties: dict[str, object], message: str) -> str:
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
        lines.append(_command(kind, properties, finding.message))
    for error in errors:
        path, line, message = _error_parts(error)
        properties = {}
        if path is not None:
            properties["file"] = display_path(path, root)
            if line:
                properties["line"] = line
        properties["title"] = "pt2jax"
        lines.append(_command("error", properties, message))
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------- JUnit

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def to_junit(findings: Sequence[Finding], *, files: Iterable[str] = (), root: str | os.PathLike | None = None,
             errors: Iterable[SourceError | str] = (), suite: str = "pt2jax lint") -> str:
    """JUnit XML (a <testsuites> holding one <testsuite>): one testcase per file, named by its
    path relative to `root`, with one <failure> per finding (type = rule code); files in
    `files` without findings are passing testcases; a file that could not be read or parsed
    is a testcase with an <error>. `failures` counts failing files, `tests` all files."""
    # keyed by the name shown, so `a.py` and `./a.py` are one testcase
    by_file: dict[str, list[Finding]] = {}
    for path in files:
        by_file.setdefault(display_path(path, root), [])
    for finding in sorted(findings):
        by_file.setdefault(display_path(finding.path, root), []).append(finding)
    file_errors: dict[str, list[str]] = {}
    for error in errors:
        path, line, message = _error_parts(error)
        name = display_path(path, root) if path is not None else "pt2jax"
        file_errors.setdefault(name, []).append(f"{name}:{line}: {message}" if line else message)
        by_file.setdefault(name, [])

    ordered = sorted(by_file)
    failing = sum(1 for name in ordered if by_file[name] and name not in file_errors)
    erroring = sum(1 for name in ordered if name in file_errors)

    testsuites = ET.Element("testsuites", name="pt2jax", tests=str(len(ordered)), failures=str(failing),
                            errors=str(erroring), time="0")
    testsuite = ET.SubElement(testsuites, "testsuite", name=suite, tests=str(len(ordered)),
                              failures=str(failing), errors=str(erroring), skipped="0", time="0")
    for name in ordered:
        case = ET.SubElement(testsuite, "testcase", classname="pt2jax.lint", name=_xml_text(name),
                             file=_xml_text(name), time="0")
        for message in file_errors.get(name, ()):
            element = ET.SubElement(case, "error", message=_xml_text(message), type="SourceError")
            element.text = _xml_text(message)
        for finding in by_file[name]:
            where = _xml_text(f"{name}:{finding.line}:{finding.col}")
            element = ET.SubElement(case, "failure", message=_xml_text(f"{finding.code} {finding.message}"),
                                    type=finding.code)
            element.text = _xml_text(f"{where} {finding.code} {finding.message}")
    ET.indent(testsuites)
    body = ET.tostring(testsuites, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


# ------------------------------------------------------------------------ several outputs


def parse_output_spec(text: str) -> tuple[str, str | None]:
    """`FORMAT` or `FORMAT:PATH` -> (format, path); the path is None for stdout (no path,
    or `-`). ValueError for an unknown format or an empty path."""
    fmt, sep, path = text.partition(":")
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r} in {text!r}; choose from {', '.join(FORMATS)} "
                         "(optionally FORMAT:PATH, e.g. sarif:results.sarif)")
    if not sep:
        return fmt, None
    if not path:
        raise ValueError(f"output {text!r} names no file; write {fmt}:PATH, or {fmt}:- for stdout")
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


def render_output(findings: Sequence[Finding], fmt: str, stream: TextIO, *, color: bool = False,
                  root: str | os.PathLike | None = None, sources: Mapping[str, str] | None = None,
                  errors: Iterable[SourceError | str] = (), files: Iterable[str] = (),
                  show_summary: bool = True) -> None:
    """Write findings in any of FORMATS to `stream`. `text` and `json` ignore root, sources,
    errors and files (the CLI prints errors to stderr); `color` only affects `text`."""
    import json

    if fmt in ("text", "json"):
        from .render import render_findings

        render_findings(findings, fmt, stream, color, show_summary=show_summary, errors=errors, files=files)
    elif fmt == "sarif":
        json.dump(to_sarif(findings, root=root, sources=sources, errors=errors), stream, indent=2)
        stream.write("\n")
    elif fmt == "github":
        stream.write(github_annotations(findings, root=root, errors=errors))
    elif fmt == "junit":
        stream.write(to_junit(findings, files=[*files, *(sources or {})], root=root, errors=errors))
    else:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def write_outputs(findings: Sequence[Finding], specs: Iterable[str | tuple[str, str | None]], *,
                  stdout: TextIO | None = None, color: bool | None = None,
                  root: str | os.PathLike | None = None, sources: Mapping[str, str] | None = None,
                  errors: Iterable[SourceError | str] = (), files: Iterable[str] = ()) -> list[tuple[str, str | None]]:
    """Render each output spec (`text`, `sarif:results.sarif`, `json:-`, or a parsed
    (format, path|None) pair): files are written atomically, and at most one spec goes to
    `stdout` (default sys.stdout; `color` None: colour text there when it is a terminal;
    files are never coloured). All specs are checked before anything is written (ValueError
    for a bad spec or two on stdout). Returns the parsed specs. A file that cannot be written
    raises SourceError after the outputs before it were written.

    `sources` ({path: text}) feeds SARIF fingerprints and, with `files` (every file linted),
    lists clean files as passing JUnit testcases."""
    parsed = parse_output_specs(specs)
    errors = list(errors)
    files = list(files)
    stream = stdout if stdout is not None else sys.stdout
    options = {"root": root, "sources": sources, "errors": errors, "files": files}
    for fmt, path in parsed:
        if path is None:
            continue
        buffer = io.StringIO()
        render_output(findings, fmt, buffer, color=False, **options)
        write_text_atomic(path, buffer.getvalue())
    for fmt, path in parsed:
        if path is None:
            if color is None:
                from .render import is_tty

                color = is_tty(stream) and not os.environ.get("NO_COLOR")
            render_output(findings, fmt, stream, color=color, **options)
    return parsed
