"""Reporting: one Finding per change or TODO, and the TODO(pt2jax) lines placed above the
statement (or compound statement header) a TODO belongs to."""

from __future__ import annotations

import dataclasses
from collections import Counter

import libcst as cst

from ..model import Finding
from .positions import _NEWLINE

TODO_PREFIX = "# TODO(pt2jax): "
NOTE_PREFIX = "# NOTE(pt2jax): "  # kept by policy (core.data): a note, not a to-do


class Note(str):
    """A marker text written with NOTE_PREFIX."""

    prefix = NOTE_PREFIX


class Remark(str):
    """A comment on a conversion (`# pt2jax: ...`): no marker, nothing left to do."""

    prefix = "# pt2jax: "


def _subject(marker: str) -> tuple[str, str] | None:
    """(prefix, code) of a marker line `# TODO(pt2jax): CODE why...`."""
    for prefix in (TODO_PREFIX, NOTE_PREFIX):
        if marker.startswith(prefix):
            return prefix, marker[len(prefix):].partition(" ")[0]
    return None


def _with_todos(stmt, todos: list[str]):
    """`stmt` with a marker line per distinct text in `todos` above it, except those already
    there. A statement a marker of an earlier run already flags with a code is not marked again
    with that code for another reason: on the converted file the reason can read differently
    (the layer classes are JAX's by then, a buffer no longer looks like one), and a second
    `rewrite` must change nothing."""
    if not todos:
        return stmt
    existing = {line.comment.value for line in stmt.leading_lines if line.comment is not None}
    subjects = {found for line in existing if (found := _subject(line)) is not None}
    marked = [getattr(text, "prefix", TODO_PREFIX) + text for text in dict.fromkeys(todos)]
    added = [cst.EmptyLine(comment=cst.Comment(line)) for line in dict.fromkeys(marked)
             if line not in existing and _subject(line) not in subjects]
    if not added:
        return stmt
    return stmt.with_changes(leading_lines=[*stmt.leading_lines, *added])


def _has_todo(stmt) -> bool:
    return any(line.comment is not None and line.comment.value.startswith(TODO_PREFIX) for line in stmt.leading_lines)


class TodosMixin:
    """Findings, and the per-statement TODO frames (`todo_stack`) that `_with_todos` places."""

    def _pos(self, node: cst.CSTNode) -> tuple[int, int]:
        kept = self.statement_pos.get(node)
        if kept is not None:
            return kept
        pos = self.positions.get(id(node))  # (line, 0-based column); a node of ours has none
        return (pos[0], pos[1] + 1) if pos is not None else (0, 0)

    def _keep_pos(self, node, pos: tuple[int, int]) -> None:
        """`node` (a statement made from a visited one) stands at `pos`: the block-level passes see
        only updated nodes (node_ids.NodeMap: no later node can take its id)."""
        if isinstance(node, cst.CSTNode):
            self.statement_pos[node] = pos

    def _may_hold_comments(self, node: cst.SimpleStatementLine) -> bool:
        """Whether a `#` stands on one of the lines of `node` (its leading lines to where its code
        ends): a statement without one holds no comment, and no walk looks for them."""
        start, end = self.positions.get(id(node)), self.ends.get(id(node))
        if start is None or end is None:
            return True
        if self.hash_lines is None:  # line numbers as libcst counts them
            self.hash_lines = {n for n, text in enumerate(_NEWLINE.split(self.code), 1) if "#" in text}
        return any(line in self.hash_lines for line in range(start[0] - len(node.leading_lines), end[0] + 1))

    def changed(self, node: cst.CSTNode, code: str, message: str, safety: str = "safe") -> None:
        line, col = self._pos(node)
        message = self.target.reword(message)
        self.findings.append(Finding(self.path, line, col, code, message, True, "info", safety))

    def skip_unsafe(self, rule) -> bool:
        """With unsafe fixes off, a conversion that changes numbers is left as it is."""
        return not self.unsafe_fixes and rule is not None and rule.get("safety") == "unsafe"

    def todo(self, node: cst.CSTNode, code: str, message: str) -> None:
        """A finding per line and text (as lint reports them), and a TODO(pt2jax) line above the
        statement per distinct text: `def f(a: nn.Module, b: nn.Module)` is one TODO; the same
        annotation on three lines of a signature is three findings under one marker line."""
        message = self.target.reword(message)
        text = f"{code} {message}"
        line, col = self._pos(node)
        if (line, text) in self.todo_seen:
            return
        self.todo_seen.add((line, text))
        self.findings.append(Finding(self.path, line, col, code, message, False, "warning", "manual"))
        if self.todo_stack:
            self.todo_stack[-1].append(text)

    def _target_sites(self, node: cst.CSTNode) -> None:
        """What the target does not convert on the statement starting at `node`'s line
        (Target.module_sites; lint reports the same lines): TODOs in the current frame."""
        line, col = self._pos(node)
        for message in self.target_sites.get(line, ()):
            code, message = message if isinstance(message, tuple) else ("PTJ101", message)
            text = f"{code} {message}"
            if (line, text) in self.todo_seen:
                continue
            self.todo_seen.add((line, text))
            self.findings.append(Finding(self.path, line, col, code, message, False, "warning", "manual"))
            self.todo_stack[-1].append(text)

    def note(self, node: cst.CSTNode, code: str, message: str) -> None:
        """A construct kept by policy (the data pipeline): a note finding (as lint reports it)
        and a NOTE(pt2jax) line above the statement, which the residue check accepts."""
        text = f"{code} {message}"
        line, col = self._pos(node)
        if (line, text) in self.todo_seen:
            return
        self.todo_seen.add((line, text))
        self.findings.append(Finding(self.path, line, col, code, message, False, "info", "manual"))
        if self.todo_stack:
            self.todo_stack[-1].append(Note(text))

    def report(self, node: cst.CSTNode, decision) -> None:
        """A decision that is not fixable: a note (kept by policy) or a TODO."""
        (self.note if decision.action == "note" else self.todo)(node, decision.code, decision.message)

    def _compound_visit(self, node) -> None:
        self.todo_stack.append([])

    def _compound_leave(self, updated):
        return _with_todos(updated, self.todo_stack.pop())

    visit_While = visit_If = visit_Try = _compound_visit

    def leave_For(self, original, updated):
        frozen = self._freeze_loop(original, updated)  # the whole loop is one statement (structure.py)
        return self._compound_leave(updated if frozen is None else frozen)

    def leave_If(self, original, updated):
        # a replacement test needs no parentheses of ours (`if (not self.deterministic):`)
        return self._compound_leave(updated.with_changes(test=self._unwrap_ours(updated.test)))

    leave_While = leave_If

    def leave_Try(self, original, updated):
        return self._compound_leave(updated)


_FIELDS: dict[type, tuple[str, ...]] = {}  # node type -> its field names, in order


def comments_in(node: cst.CSTNode) -> list[str]:
    """Every comment below `node` (leading lines, trailing whitespace, inside brackets), in
    field order (source order but for a few node kinds)."""
    out: list[str] = []
    stack: list = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, cst.Comment):
            out.append(item.value)
        elif isinstance(item, cst.CSTNode):
            names = _FIELDS.get(type(item))
            if names is None:  # dataclasses.fields per node cost more than the walk itself
                names = _FIELDS[type(item)] = tuple(f.name for f in dataclasses.fields(item))
            stack.extend(reversed([getattr(item, name) for name in names]))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
    return out


def keep_comments(original: cst.SimpleStatementLine, updated):
    """`updated` with the comments of `original` its conversion lost (a method chain that became
    nested calls keeps no line breaks) put back as comment lines right above it: the rewrite
    never drops a user's comment."""
    if updated is original or not isinstance(updated, cst.SimpleStatementLine):
        return updated
    before = comments_in(original)
    if not before:  # most statements: nothing to lose, no walk of the new one
        return updated
    lost = Counter(before)
    lost.subtract(comments_in(updated))
    lines = [cst.EmptyLine(comment=cst.Comment(text)) for text in before if lost[text] > 0
             and not lost.subtract({text: 1})]
    return updated.with_changes(leading_lines=[*updated.leading_lines, *lines]) if lines else updated
