"""`lint --statistics`: where the migration stands, in numbers (the data; text.py and json.py
render it, and markdown.py's lint report is built on it).

Per code: findings, how many `rewrite` fixes (safe / unsafe), the rule's name. Per file:
findings and fixable ones. Overall: the counts of counts.py (findings, safe fixes, unsafe
fixes, for a person), and the share of the codebase, in files and in lines, that is already
torch-free (the linter found nothing there at all, suppressions or not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..model import Finding
from .counts import MANUAL, SAFE, UNSAFE, Counts, count_findings, fix_safety


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
    manual: int = 0
    notes: int = 0  # not fixable, nothing to do of their own (counts.NOTE)
    suppressed: int = 0
    codes: list[CodeStats] = field(default_factory=list)
    per_file: list[FileStats] = field(default_factory=list)

    @property
    def counts(self) -> Counts:
        return Counts(self.findings, self.safe, self.unsafe, self.manual, len(self.per_file), self.notes)

    @property
    def fixable_share(self) -> float:
        return self.counts.fixable_share

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
    from ..rules import load_rules

    names = {code: rule.name for code, rule in load_rules().lint_rules.items()}
    findings = list(report.findings if findings is None else findings)
    totals = count_findings(findings)
    stats = Statistics(files=len(report.files), suppressed=report.suppressed, findings=totals.findings,
                       fixable=totals.fixable, safe=totals.safe, unsafe=totals.unsafe, manual=totals.manual, notes=totals.notes)
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
        safety = fix_safety(finding)
        if safety in (SAFE, UNSAFE):
            code.fixable += 1
            per.fixable += 1
        if safety == SAFE:
            code.safe += 1
        elif safety == UNSAFE:
            code.unsafe += 1
        elif safety == MANUAL:
            code.manual += 1
    stats.codes = sorted(codes.values(), key=lambda c: (-c.count, c.code))
    stats.per_file = sorted(files.values(), key=lambda f: (-f.count, f.path))
    return stats


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"
