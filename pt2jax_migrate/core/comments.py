"""Where a file's comments are, read off its ast instead of Python's `tokenize`.

The residue check asks two things of the converted text: which lines hold a comment with a
given tag (`TODO(pt2jax)`), and which lines hold nothing but a comment. `tokenize` answers
exactly but is pure Python over every character of the file (7% of a rewrite). A `#` is a
comment's start unless it stands inside a string literal, and the ast knows where every
literal is (Constant and JoinedStr nodes, with their start and end), so only the lines that
hold a `#` are looked at:

* a literal on one line covers its columns; a single triple-quoted literal over several lines
  covers the rest of its first line, its inner lines and the start of its last;
* a node over several lines that is not one literal (implicitly concatenated pieces, a
  comment may stand between them) is tokenized alone, in parentheses, for its pieces' spans.

The answers equal `tokenize`'s (`tokenized_comment_lines`, kept as the reference: the tests
compare both on the corpus); a text whose line breaks ast and tokenize count differently
(a lone carriage return) is tokenized.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable

from ..astwalk import char_column, walk

_INF = 1 << 62
_TRIPLE_START = re.compile(r"[rRbBuUfF]{0,2}(\"\"\"|''')")


def comment_lines(source: str, tree: ast.AST, tags: Iterable[str]) -> tuple[dict[str, set[int]], set[int]]:
    """({tag: the lines whose comment holds it}, the lines that hold only a comment)."""
    tags = tuple(tags)
    if "#" not in source:
        return {tag: set() for tag in tags}, set()
    if "\r" in source.replace("\r\n", ""):
        return tokenized_comment_lines(source, tags)
    lines = source.split("\n")
    spans: dict[int, list[tuple[int, int]]] = {}  # line -> [(start, end) columns of literals]
    inside: set[int] = set()  # lines wholly inside a literal
    in_fstrings: set[int] = set()  # an f-string's parts: inside its span (their own positions are unreliable)
    for node in walk(tree):
        kind = type(node)
        if id(node) in in_fstrings:
            continue
        if kind is ast.JoinedStr:
            in_fstrings.update(id(n) for n in walk(node)[1:])
        if kind is ast.JoinedStr or (kind is ast.Constant and isinstance(node.value, (str, bytes))):
            if not _add_literal(node, lines, spans, inside):
                return tokenized_comment_lines(source, tags)
    tagged: dict[str, set[int]] = {tag: set() for tag in tags}
    comment_only: set[int] = set()
    for number, text in enumerate(lines, 1):
        if "#" not in text or number in inside:
            continue
        start = _comment_start(text, spans.get(number, ()))
        if start < 0:
            continue
        comment = text[start:]
        for tag in tags:
            if tag in comment:
                tagged[tag].add(number)
        if not text[:start].strip(" \t\f"):
            comment_only.add(number)
    return tagged, comment_only


def _add_literal(node, lines: list[str], spans: dict, inside: set[int]) -> bool:
    first, last = node.lineno, node.end_lineno
    if first > len(lines) or last is None or last > len(lines):
        return False
    start = char_column(lines[first - 1], node.col_offset)
    end = char_column(lines[last - 1], node.end_col_offset)
    if first == last:  # no comment can stand inside it: a comment runs to the line's end
        spans.setdefault(first, []).append((start, end))
        return True
    segment = "\n".join([lines[first - 1][start:], *lines[first:last - 1], lines[last - 1][:end]])
    if _one_triple_quoted(segment):
        spans.setdefault(first, []).append((start, _INF))
        inside.update(range(first + 1, last))
        spans.setdefault(last, []).append((0, end))
        return True
    try:  # pieces over several lines: their own spans (in parentheses: no indentation rules)
        tokens = list(tokenize.generate_tokens(io.StringIO("(" + segment + ")").readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    for tok in tokens:
        if tok.type != tokenize.STRING:
            continue
        (row, col), (end_row, end_col) = tok.start, tok.end
        line, end_line = first + row - 1, first + end_row - 1
        col = col - 1 + start if row == 1 else col  # the "(" put before the segment
        end_col = end_col - 1 + start if end_row == 1 else end_col
        if line == end_line:
            spans.setdefault(line, []).append((col, end_col))
        else:
            spans.setdefault(line, []).append((col, _INF))
            inside.update(range(line + 1, end_line))
            spans.setdefault(end_line, []).append((0, end_col))
    return True


def _one_triple_quoted(segment: str) -> bool:
    """Whether `segment` is one triple-quoted literal: its first closing quotes (not after a
    backslash) are its last characters."""
    opening = _TRIPLE_START.match(segment)
    if opening is None:
        return False
    quotes = opening.group(1)
    at = segment.find(quotes, opening.end())
    while at >= 0:
        backslashes = len(segment[:at]) - len(segment[:at].rstrip("\\"))
        if backslashes % 2 == 0:
            return at + 3 == len(segment)
        at = segment.find(quotes, at + 1)
    return False


def _comment_start(text: str, spans) -> int:
    """Index of the `#` that starts the line's comment (-1: none outside its literals)."""
    at = text.find("#")
    while at >= 0:
        if not any(start <= at < end for start, end in spans):
            return at
        at = text.find("#", at + 1)
    return -1


def tokenized_comment_lines(source: str, tags: Iterable[str]) -> tuple[dict[str, set[int]], set[int]]:
    """comment_lines by Python's tokenizer: the reference (and the path for odd line breaks)."""
    tags = tuple(tags)
    tagged: dict[str, set[int]] = {tag: set() for tag in tags}
    comment_only: set[int] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - the caller parsed it already
        return tagged, comment_only
    code_lines: set[int] = set()
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            for tag in tags:
                if tag in tok.string:
                    tagged[tag].add(tok.start[0])
            comment_only.add(tok.start[0])
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER, tokenize.ENCODING):
            for line in range(tok.start[0], tok.end[0] + 1):
                code_lines.add(line)
    return tagged, comment_only - code_lines
