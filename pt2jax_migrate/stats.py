"""`pt2jax lint --statistics`: where the migration stands, in numbers.

Per code: findings, how many `rewrite` fixes (safe / unsafe), the rule's name. Per file:
findings and fixable ones. Overall: the auto-fixable share of the findings, and the share of
the codebase, in files and in lines, that is already torch-free (the linter found nothing
there at all, suppressions or not).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TextIO

from .model import Finding


@dataclass
class CodeStats:
    code: str
    name: str
    count: int = 0
    fixable: int = 0
    safe: int = 0
    unsafe: int = 0
    manual: int = 0


@dataclass
class FileStats:
    path: str
    count: int = 0
    fixable: int = 0


@dataclass
class Statistics:
    files: int = 0
    lines: int = 0
    torch_free_files: int = 0
    torch_free_lines: int = 0
    findings: int = 0
    fixable: int = 0
    safe: int = 0
    unsafe: int = 0
    suppressed: int = 0
    codes: list[CodeStats] = field(default_factory=list)
    per_file: list[FileStats] = field(default_factory=list)

    @property
    def fixable_share(self) -> float:
        return self.fixable / self.findings if self.findings else 1.0

    @property
    def torch_free_file_share(self) -> float:
        return self.torch_free_files / self.files if self.files else 1.0

    @property
    def torch_free_line_share(self) -> float:
        return self.torch_free_lines / self.lines if self.lines else 1.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fixable_share"] = round(self.fixable_share, 4)
        data["torch_free_file_share"] = round(self.torch_free_file_share, 4)
        data["torch_free_line_share"] = round(self.torch_free_line_share, 4)
        return data


def compute(report, findings: Sequence[Finding] | None = None) -> Statistics:
    """Statistics of a project.LintReport; `findings` (default: the report's) are those to count,
    e.g. what is left after a baseline."""
    from .rules import load_rules

    names = {code: rule.name for code, rule in load_rules().lint_rules.items()}
    findings = report.findings if findings is None else list(findings)
    stats = Statistics(files=len(report.files), suppressed=report.suppressed)
    for file in report.files:
        stats.lines += file.lines
        if file.torch_free:
            stats.torch_free_files += 1
            stats.torch_free_lines += file.lines
    codes: dict[str, CodeStats] = {}
    files: dict[str, FileStats] = {}
    for finding in findings:
        code = codes.setdefault(finding.code, CodeStats(finding.code, names.get(finding.code, "")))
        per = files.setdefault(finding.path, FileStats(finding.path))
        code.count += 1
        per.count += 1
        stats.findings += 1
        fix = finding.fix or ("safe" if finding.fixable else "manual")
        if finding.fixable:
            code.fixable += 1
            per.fixable += 1
            stats.fixable += 1
        if fix == "safe" and finding.fixable:
            code.safe += 1
            stats.safe += 1
        elif fix == "unsafe" and finding.fixable:
            code.unsafe += 1
            stats.unsafe += 1
        else:
            code.manual += 1
    stats.codes = sorted(codes.values(), key=lambda c: (-c.count, c.code))
    stats.per_file = sorted(files.values(), key=lambda f: (-f.count, f.path))
    return stats


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def render_text(stats: Statistics, stream: TextIO) -> None:
    w = stream.write
    if stats.codes:
        width = max(len(str(c.count)) for c in stats.codes)
        fwidth = max(len(str(c.fixable)) for c in stats.codes)
        w(f"{'count':>{max(width, 5)}}  {'fixable':>{max(fwidth, 7)}}  code    name\n")
        for c in stats.codes:
            w(f"{c.count:>{max(width, 5)}}  {c.fixable:>{max(fwidth, 7)}}  {c.code:<6}  {c.name}\n")
        w("\nper file:\n")
        pwidth = max(len(str(f.count)) for f in stats.per_file)
        for f in stats.per_file:
            w(f"{f.count:>{max(pwidth, 5)}}  {f.fixable:>{max(fwidth, 7)}}  {f.path}\n")
        w("\n")
    w(f"Findings: {stats.findings}, {stats.fixable} auto-fixable ({percent(stats.fixable_share)}: "
      f"{stats.safe} safe, {stats.unsafe} unsafe), {stats.findings - stats.fixable} for a person"
      + (f"; {stats.suppressed} suppressed" if stats.suppressed else "") + ".\n")
    w(f"Torch-free: {stats.torch_free_files} of {stats.files} files ({percent(stats.torch_free_file_share)}), "
      f"{stats.torch_free_lines} of {stats.lines} lines ({percent(stats.torch_free_line_share)}).\n")


def render_json(stats: Statistics, stream: TextIO) -> None:
    json.dump(stats.to_dict(), stream, indent=2)
    stream.write("\n")
