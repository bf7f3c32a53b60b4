"""`junit`: JUnit XML. For lint findings: one testsuite, one testcase per file, one <failure>
per finding; a file without findings (listed in `files` or `sources`) is a passing testcase.
For a verify report: one testcase per comparison (output or gradient), failing when it is out
of tolerance."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import TextIO

from ..model import Finding, SourceError
from .common import display_path, error_parts
from .counts import display_message

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def _document(testsuites: ET.Element) -> str:
    ET.indent(testsuites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(testsuites, encoding="unicode") + "\n"


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
        path, line, message = error_parts(error)
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
            message = display_message(finding)
            element = ET.SubElement(case, "failure", message=_xml_text(f"{finding.code} {message}"),
                                    type=finding.code)
            element.text = _xml_text(f"{where} {finding.code} {message}")
    return _document(testsuites)


def render_findings(findings: Sequence[Finding], stream: TextIO, ctx) -> None:
    stream.write(to_junit(findings, files=[*ctx.files, *(ctx.sources or {})], root=ctx.root, errors=ctx.errors))


def verify_junit(report) -> str:
    """A verify report as JUnit XML: testsuite `pt2jax verify MODEL`, one testcase per
    comparison (classname `pt2jax.verify.output` or `.gradient`), a <failure> when the
    comparison is out of tolerance."""
    failures = str(len(report.failures))
    tests = str(len(report.all_comparisons))
    testsuites = ET.Element("testsuites", name="pt2jax", tests=tests, failures=failures, errors="0", time="0")
    testsuite = ET.SubElement(testsuites, "testsuite", name=_xml_text(f"pt2jax verify {report.model}"),
                              tests=tests, failures=failures, errors="0", skipped="0", time="0")
    for c in report.all_comparisons:
        name = c.name if c.mode == "eager" else f"{c.name} ({c.mode})"
        case = ET.SubElement(testsuite, "testcase", classname=f"pt2jax.verify.{c.kind}", name=_xml_text(name),
                             time="0")
        if not c.passed:
            text = (f"{c.name} {tuple(c.shape)}: max abs err {c.max_abs_err:.3e}, max rel err {c.max_rel_err:.3e} "
                    f"({report.dtype})")
            element = ET.SubElement(case, "failure", message=_xml_text(text), type="ToleranceExceeded")
            element.text = _xml_text(text)
    return _document(testsuites)


def render_verify(report, stream: TextIO, ctx) -> None:
    stream.write(verify_junit(report))
