"""The one definition of the numbers pt2jax prints: findings, safe fixes, unsafe fixes, and
what is left for a person.

Every count in lint's text summary, `--statistics` (text and JSON), `--report`, and
rewrite's summary line and `--report` comes from `count_findings`, so the same findings give
the same numbers everywhere.

* a **safe fix**: a fixable finding whose fix is numerically identical (`lint --fix` applies it);
* an **unsafe fix**: a fixable finding whose fix changes numbers or semantics (`fix == "unsafe"`;
  `lint --fix` applies it only with `--unsafe-fixes`, `rewrite` unless `--safe-only`);
* **for a person** (`manual`): a finding that is not fixable. In `rewrite`'s output each such
  finding is one `# TODO(pt2jax): CODE why` comment line, so "N TODOs" is both the number of
  manual findings and the number of marker lines the rewrite wrote (`count_todo_markers`
  checks the second against the first; the summary says so when they differ).

Also the honest fix marks of text output: lint ends a fixable finding's message with
` [fixable]`; text output keeps `[fixable]` for a safe fix and shows `[unsafe fix]` for an
unsafe one (ruff's wording: its unsafe fixes are "hidden" behind `--unsafe-fixes`).
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass

from ..model import Finding

LINT_FIX_MARK = " [fixable]"  # what lint appends to a fixable finding's message (lint.FIXABLE)
SAFE_MARK = "[fixable]"
UNSAFE_MARK = "[unsafe fix]"
TODO_MARKER = "# TODO(pt2jax):"  # how rewrite starts each line left for a person

SAFE, UNSAFE, MANUAL, NOTE = "safe", "unsafe", "manual", "note"


def fix_safety(finding: Finding) -> str:
    """`safe`, `unsafe`, `manual` (not fixable: a TODO) or `note` (not fixable and nothing to do
    of its own: an import kept while its uses are TODOs, `.train()` kept as is): the one
    classification every count uses. A fixable finding without a recorded safety is a safe fix
    (that is what lint's catalogue defaults to)."""
    if not finding.fixable:
        return NOTE if finding.severity == "info" else MANUAL
    return UNSAFE if finding.fix == UNSAFE else SAFE


@dataclass(frozen=True)
class Counts:
    findings: int = 0
    safe: int = 0
    unsafe: int = 0
    manual: int = 0  # for a person; rewrite writes one TODO(pt2jax) line for each
    files: int = 0  # distinct files with at least one finding
    notes: int = 0  # nothing to do of their own (severity info, not fixable)

    @property
    def fixable(self) -> int:
        return self.safe + self.unsafe

    @property
    def fixable_share(self) -> float:
        return self.fixable / self.findings if self.findings else 1.0

    def fixes_phrase(self) -> str:
        """`4 safe fixes, 1 unsafe fix, 2 for a person`: the same three numbers everywhere."""
        phrase = f"{plural(self.safe, 'safe fix')}, {plural(self.unsafe, 'unsafe fix')}, {self.manual} for a person"
        return f"{phrase}, {plural(self.notes, 'note')}" if self.notes else phrase


def count_findings(findings: Iterable[Finding]) -> Counts:
    per = {SAFE: 0, UNSAFE: 0, MANUAL: 0, NOTE: 0}
    paths = set()
    total = 0
    for finding in findings:
        per[fix_safety(finding)] += 1
        paths.add(finding.path)
        total += 1
    return Counts(total, per[SAFE], per[UNSAFE], per[MANUAL], len(paths), per[NOTE])


def plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}es" if word.endswith(("x", "s", "ch", "sh")) else f"{n} {word}s"


# ------------------------------------------------------------------------------- fix marks


def bare_message(finding: Finding) -> str:
    """The message without lint's ` [fixable]` suffix."""
    return finding.message.removesuffix(LINT_FIX_MARK)


def fix_mark(finding: Finding) -> str:
    """`[fixable]` (safe fix), `[unsafe fix]`, or "" for a message that carries no fix mark
    (lint's manual findings, and rewrite's lines, which report what was done)."""
    if not finding.message.endswith(LINT_FIX_MARK):
        return ""
    return UNSAFE_MARK if fix_safety(finding) == UNSAFE else SAFE_MARK


def display_message(finding: Finding) -> str:
    """The message as every output shows it: lint's mark stated by the fix's safety."""
    mark = fix_mark(finding)
    return f"{bare_message(finding)} {mark}" if mark else finding.message


# ------------------------------------------------------------------------------ TODO markers

_MARKER = re.compile(r"#\s*TODO\(pt2jax\):")


def count_todo_markers(source: str) -> int:
    """The `# TODO(pt2jax): ...` comment lines in `source` (comments only: the words in a
    string or docstring are not a marker). Falls back to a line scan if the text does not
    tokenize (rewrite never writes such a file, but a caller might pass one). A text without
    the tag is not tokenized: the summary counts every file of the run, most have none."""
    if "TODO(pt2jax)" not in source:
        return 0
    try:
        return sum(1 for token in tokenize.generate_tokens(io.StringIO(source).readline)
                   if token.type == tokenize.COMMENT and _MARKER.match(token.string))
    except (tokenize.TokenError, SyntaxError):
        return sum(1 for line in source.splitlines() if _MARKER.match(line.strip()))
