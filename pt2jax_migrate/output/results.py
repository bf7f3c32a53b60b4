"""Plain data the lint report and the rewrite outputs render: what one run did, in the
counts of counts.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..model import Finding
from .counts import Counts, count_findings
from .statistics import Statistics


@dataclass
class LintSummary:
    """What `lint --report` renders: the statistics and the findings they count."""

    stats: Statistics
    findings: Sequence[Finding]
    suppressed: int = 0
    baseline: tuple[str, int] | None = None  # (file, findings it covered)
    errors: Sequence[str] = ()
    target: str = "nnx"  # the rules section shows each rule's doc in this target's form


@dataclass
class RewriteResults:
    """What one `pt2jax rewrite` run did. `findings` are rewrite's: fixable ones are changes,
    the others are left for a person with one `# TODO(pt2jax)` line each; `todo_markers` is
    the number of such lines counted in the converted text (None: not counted)."""

    files: int  # files converted (or checked)
    lines: int
    changed: Sequence[str]  # paths whose text changes
    findings: Sequence[Finding]
    torch_free_files: int = 0
    torch_free_lines: int = 0
    mode: str = "rewritten in place"  # | "that would be rewritten" | "written to DIR"
    action: str = "write"  # write | check (--check/--diff) | out (--out)
    out: str | None = None
    written: int = 0  # files written under --out
    todo_markers: int | None = None
    errors: Sequence[str] = field(default_factory=list)
    target: str = "nnx"  # the rules section shows each rule's doc in this target's form

    @property
    def counts(self) -> Counts:
        return count_findings(self.findings)

    @property
    def markers_disagree(self) -> bool:
        return self.todo_markers is not None and self.todo_markers != self.counts.manual
