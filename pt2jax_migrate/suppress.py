"""Suppression comments: `# noqa`, `# pt2jax: noqa`, unused ones (PTJ910), and `--add-noqa`.

    x = torch.zeros(3)  # noqa: PTJ104        this finding, on this line
    x = torch.zeros(3)  # noqa                every finding on this line
    # pt2jax: noqa                            every finding in the file (a comment on its own line,
    # pt2jax: noqa: PTJ1,PTJ302               anywhere in the file); or only these code prefixes

A finding is suppressed by a `# noqa` on the line it is reported on (for a statement that
spans several lines, the line of the construct itself, which is the line `lint` prints).
Codes may be prefixes (`PTJ1`) and are separated by commas or spaces; `noqa` is matched
case-insensitively, as flake8 and ruff do. A `# noqa: E501` that names only other tools' codes
suppresses no pt2jax finding.

Finding the comments costs no second parse: files without the text `noqa` are not looked at
again, and in the others only the lines that carry findings are read (plus one regex pass for
the PTJ codes that might be unused). A candidate unused comment is confirmed with `tokenize`
(so `"# noqa: PTJ104"` inside a string is not one); that only runs for files that have one.
"""

from __future__ import annotations

import bisect
import io
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import Finding

UNUSED_CODE = "PTJ910"

_CODE = r"[A-Z]+[0-9]+"
_CODES = rf"(?P<codes>{_CODE}(?:[ \t]*,[ \t]*{_CODE}|[ \t]+{_CODE})*)"
LINE_NOQA = re.compile(rf"#[ \t]*(?i:noqa)(?![\w-])(?:[ \t]*:[ \t]*{_CODES})?")
FILE_NOQA = re.compile(rf"#[ \t]*(?i:pt2jax)[ \t]*:[ \t]*(?i:noqa)(?![\w-])(?:[ \t]*:[ \t]*{_CODES})?")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_ANY_NOQA = re.compile("noqa", re.IGNORECASE)  # the cheap test: most files have none


def split_lines(source: str) -> list[str]:
    """Physical lines as Python (and `ast` line numbers) count them: \\n, \\r\\n and \\r only."""
    return _NEWLINES.split(source)


def line_starts(source: str) -> list[int]:
    return [0] + [m.end() for m in _NEWLINES.finditer(source)]


def parse_codes(text: str | None) -> tuple[str, ...] | None:
    """None for a bare directive, else its codes (in order)."""
    if not text:
        return None
    return tuple(c for c in re.split(r"[ \t,]+", text) if c)


def covers(codes: tuple[str, ...] | None, code: str) -> bool:
    return codes is None or any(code.startswith(c) for c in codes)


@dataclass
class Directive:
    line: int
    col: int  # 1-based column of the `#`
    codes: tuple[str, ...] | None  # None: bare (everything)
    file_level: bool
    used: set[str] = field(default_factory=set)  # the codes (or "" for bare) that suppressed something

    def matching(self, code: str) -> str | None:
        """The entry of this directive that covers `code` ("" for bare), else None."""
        if self.codes is None:
            return ""
        for entry in self.codes:
            if code.startswith(entry):
                return entry
        return None


class _Comments:
    """Where comments start, from `tokenize`, computed at most once per file and only when a
    directive's text needs confirming (files with directives are few)."""

    def __init__(self, source: str):
        self.source = source
        self._starts: dict[int, int] | None = None
        self._done = False

    def is_comment(self, line: int, col: int) -> bool:
        """Is the text at (line, 1-based col) inside a comment? True when the file does not tokenize."""
        if not self._done:
            self._done = True
            try:
                tokens = tokenize.generate_tokens(io.StringIO(self.source).readline)
                self._starts = {tok.start[0]: tok.start[1] for tok in tokens if tok.type == tokenize.COMMENT}
            except (tokenize.TokenError, SyntaxError, IndentationError):
                self._starts = None
        if self._starts is None:
            return True
        start = self._starts.get(line)
        return start is not None and start <= col - 1


def file_directives(source: str, comments: _Comments | None = None) -> list[Directive]:
    if not FILE_NOQA.search(source):
        return []
    found = []
    starts = None
    comments = comments or _Comments(source)
    for match in FILE_NOQA.finditer(source):
        if starts is None:
            starts = line_starts(source)
        line = bisect.bisect_right(starts, match.start())
        col = match.start() - starts[line - 1] + 1
        if comments.is_comment(line, col):
            found.append(Directive(line, col, parse_codes(match.group("codes")), True))
    return found


def line_directive(text: str, line: int) -> Directive | None:
    match = LINE_NOQA.search(text)
    if match is None:
        return None
    return Directive(line, match.start() + 1, parse_codes(match.group("codes")), False)


@dataclass
class Outcome:
    findings: list[Finding]  # what is left, plus PTJ910 findings, sorted
    suppressed: int = 0


def apply(path: str, source: str, findings: list[Finding], enabled: Iterable[str] | None = None) -> Outcome:
    """Drop the findings whose code is not `enabled` or that a noqa directive covers, and add
    a PTJ910 finding for each enabled PTJ code a directive names that covered nothing."""
    enabled = None if enabled is None else frozenset(enabled)
    source = source.removeprefix("\ufeff")  # as lint_source: columns count from after a BOM
    kept = findings if enabled is None else [f for f in findings if f.code in enabled]
    if not _ANY_NOQA.search(source):
        return Outcome(kept)
    comments = _Comments(source)
    files = file_directives(source, comments)
    lines: list[str] | None = None
    by_line: dict[int, Directive | None] = {}
    out: list[Finding] = []
    suppressed = 0
    for finding in kept:
        hit = False
        for directive in files:
            entry = directive.matching(finding.code)
            if entry is not None:
                directive.used.add(entry)
                hit = True
                break
        if not hit:
            if finding.line not in by_line:
                if lines is None:
                    lines = split_lines(source)
                text = lines[finding.line - 1] if 0 < finding.line <= len(lines) else ""
                by_line[finding.line] = line_directive(text, finding.line)
            directive = by_line[finding.line]
            if directive is not None:
                entry = directive.matching(finding.code)
                if entry is not None:
                    directive.used.add(entry)
                    hit = True
        if hit:
            suppressed += 1
        else:
            out.append(finding)
    if enabled is None or UNUSED_CODE in enabled:
        out.extend(_unused(path, source, files, by_line, enabled, comments))
    out.sort(key=lambda f: (f.line, f.col, f.code))
    return Outcome(out, suppressed)


def _judged(entry: str, enabled: frozenset[str] | None) -> bool:
    """Is a directive entry about a pt2jax code that is being reported?"""
    if not entry.startswith("PTJ"):
        return False
    if enabled is None:
        return True
    return any(code.startswith(entry) for code in enabled)


def _names_unused_code(directive: Directive) -> bool:
    return directive.codes is not None and any(UNUSED_CODE.startswith(c) for c in directive.codes)


def _unused(path: str, source: str, files: list[Directive], by_line: dict[int, Directive | None],
            enabled: frozenset[str] | None, comments: _Comments) -> list[Finding]:
    candidates: list[tuple[Directive, list[str]]] = []
    if "PTJ" in source:
        starts = None
        for match in LINE_NOQA.finditer(source):
            codes = parse_codes(match.group("codes"))
            if codes is None or not any(c.startswith("PTJ") for c in codes):
                continue
            if starts is None:
                starts = line_starts(source)
            line = bisect.bisect_right(starts, match.start())
            col = match.start() - starts[line - 1] + 1
            if any(d.line == line for d in files):
                continue  # the file-level form
            directive = by_line.get(line)
            if directive is None or directive.col != col:
                directive = Directive(line, col, codes, False)
            unused = [c for c in codes if c not in directive.used and _judged(c, enabled)]
            if unused:
                candidates.append((directive, unused))
    if not candidates and not files:
        return []
    out = []

    def report(directive: Directive, message: str) -> None:
        if not comments.is_comment(directive.line, directive.col):
            return  # the text is inside a string, not a comment
        # an unused-noqa report is itself suppressed by a directive naming PTJ910 (or PTJ9, ...),
        # on the line or for the file, or by a bare file-level directive
        for other in files:
            if other is not directive and (other.codes is None or _names_unused_code(other)):
                other.used.add(other.matching(UNUSED_CODE) or "")
                return
        if not directive.file_level and _names_unused_code(directive):
            return
        out.append(Finding(path, directive.line, directive.col, UNUSED_CODE, message, False, "warning", "manual"))

    for directive, unused in candidates:  # line directives first: their reports may use file ones
        plural = "s" if len(unused) > 1 else ""
        report(directive, f"unused `# noqa` code{plural} {', '.join(unused)}: nothing to suppress on this line")
    for directive in files:
        if directive.codes is None:
            continue
        unused = [c for c in directive.codes if c not in directive.used and _judged(c, enabled)]
        if unused:
            plural = "s" if len(unused) > 1 else ""
            report(directive, f"unused `# pt2jax: noqa` code{plural} {', '.join(unused)}: nothing to suppress "
                              "in this file")
    for directive in files:  # bare ones last: every report above may have used them
        if directive.codes is None and not directive.used:
            report(directive, "unused `# pt2jax: noqa`: nothing to suppress in this file")
    return out


# ------------------------------------------------------------------------------ --add-noqa


@dataclass
class AddNoqa:
    source: str
    added: int = 0  # lines that got (or extended) a directive
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


def _safe_lines(source: str) -> set[int] | None:
    """Lines that end outside any string and without a backslash continuation: those where a
    NEWLINE or NL token starts. None when the file does not tokenize."""
    try:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        return {tok.start[0] for tok in tokens if tok.type in (tokenize.NEWLINE, tokenize.NL)}
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None


def add_noqa(source: str, codes_by_line: dict[int, Iterable[str]]) -> AddNoqa:
    """Append `  # noqa: CODES` to each line (merging into a `# noqa: ...` already there).
    A line that ends inside a multi-line string or with a backslash continuation cannot take
    a comment: it is skipped and reported."""
    result = AddNoqa(source)
    if not codes_by_line:
        return result
    safe = _safe_lines(source)
    pieces = _NEWLINES.split(source)
    endings = _NEWLINES.findall(source)
    for line, codes in sorted(codes_by_line.items()):
        wanted = sorted(set(codes))
        if not wanted or not 0 < line <= len(pieces):
            continue
        if safe is None:
            result.skipped.append((line, "the file does not tokenize"))
            continue
        if line not in safe:
            text = pieces[line - 1].rstrip()
            why = "the line continues with a backslash" if text.endswith("\\") else \
                "the line ends inside a multi-line string"
            result.skipped.append((line, why))
            continue
        text = pieces[line - 1]
        existing = line_directive(text, line)
        if existing is not None:
            if existing.codes is None:
                continue  # a bare noqa already covers everything
            missing = [c for c in wanted if not covers(existing.codes, c)]
            if not missing:
                continue
            match = LINE_NOQA.search(text)
            assert match is not None
            end = match.end("codes")
            text = text[:end] + ", " + ", ".join(missing) + text[end:]
        else:
            text = text.rstrip(" \t") + "  # noqa: " + ", ".join(wanted)
        pieces[line - 1] = text
        result.added += 1
    if result.added:
        out = []
        for i, piece in enumerate(pieces):
            out.append(piece)
            if i < len(endings):
                out.append(endings[i])
        result.source = "".join(out)
    return result
