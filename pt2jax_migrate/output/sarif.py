"""`sarif`: one run of SARIF 2.1.0 that GitHub code scanning accepts: the rule catalogue as
`tool.driver.rules`, one result per finding with a path relative to the source root
(`uriBaseId` %SRCROOT%) and `partialFingerprints` that survive line shifts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from ..model import Finding, SourceError
from .common import error_parts, fingerprints, relative_path
from .counts import display_message, fix_safety

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"
INFORMATION_URI = "https://pypi.org/project/pt2jax/"
FINGERPRINT_KEY = "pt2jaxFinding/v1"

_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
FIX_MEANING = {
    "safe": "numerically identical",
    "unsafe": "changes numbers or semantics",
    "manual": "left in place with a TODO(pt2jax)",
}


def effective_fix(finding: Finding, rule_fix: str = "") -> str:
    """The finding's own fix safety; otherwise `manual` when it is not fixable (the rewrite
    leaves a TODO), and the rule's catalogue safety when it is."""
    if finding.fix:
        return finding.fix
    if not finding.fixable:
        return "manual"
    return rule_fix or fix_safety(finding)


def _catalogue() -> dict:
    from ..rules import load_rules

    return load_rules().lint_rules


def _rule_help(rule) -> tuple[str, str]:
    fix = rule.fix + (f" ({FIX_MEANING[rule.fix]})" if rule.fix in FIX_MEANING else "")
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
    from .. import __version__

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
        results.append({
            "ruleId": finding.code,
            "ruleIndex": index[finding.code],
            "level": _SARIF_LEVEL.get(finding.severity, "warning"),
            "message": {"text": display_message(finding)},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": _artifact_location(finding.path, root),
                    "region": {"startLine": max(1, finding.line), "startColumn": max(1, finding.col)},
                },
            }],
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
            "properties": {"fixable": finding.fixable, "fix": effective_fix(finding, fixes.get(finding.code, ""))},
        })

    notifications = []
    for error in errors:
        path, line, message = error_parts(error)
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


def render_findings(findings: Sequence[Finding], stream: TextIO, ctx) -> None:
    json.dump(to_sarif(findings, root=ctx.root, sources=ctx.sources, errors=ctx.errors), stream, indent=2)
    stream.write("\n")
