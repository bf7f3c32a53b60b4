"""Start positions of a module's nodes: libcst's PositionProvider, done in one lean codegen.

The pass reads only where a node starts (findings' line and column, the ast facts keyed by
them). libcst's provider records a CodeRange per node through a generator context manager
per node, which costs more than printing the module; this state records the same start
positions (syntactic ones where a node defines them, else where its code begins) as plain
tuples keyed by the node's id."""

from __future__ import annotations

import re

import libcst as cst
from libcst._nodes.internal import CodegenState

_NEWLINE = re.compile(r"\r\n?|\n")


class _Syntactic:
    """`with state.record_syntactic_position(node, start_node=...)`: PositionProvider's rule
    (a start hoisted from `start_node` when given, else where the block began; it overrides
    what the generic before/after pair records)."""

    __slots__ = ("state", "node", "start_node", "start")

    def __init__(self, state: "_StartState", node, start_node):
        self.state, self.node, self.start_node = state, node, start_node

    def __enter__(self) -> None:
        self.start = (self.state.line, self.state.column)

    def __exit__(self, *exc) -> None:
        starts = self.state.starts
        starts[id(self.node)] = starts[id(self.start_node)] if self.start_node is not None else self.start


class _StartState(CodegenState):
    def __init__(self, module: cst.Module):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line = 1  # one-indexed
        self.column = 0  # zero-indexed
        self.stack: list[tuple[int, int]] = []
        self.starts: dict[int, tuple[int, int]] = {}
        self.ends: dict[int, tuple[int, int]] = {}  # where its code ends (methods: a receiver's length)

    def add_indent_tokens(self) -> None:
        self.tokens.extend(self.indent_tokens)
        for token in self.indent_tokens:
            self._advance(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self._advance(value)

    def _advance(self, value: str) -> None:
        if "\n" not in value and "\r" not in value:
            self.column += len(value)
            return
        segments = _NEWLINE.split(value)
        self.line += len(segments) - 1
        self.column = len(segments[-1])

    def before_codegen(self, node) -> None:
        self.stack.append((self.line, self.column))

    def after_codegen(self, node) -> None:
        start = self.stack.pop()
        self.starts.setdefault(id(node), start)  # a syntactic position recorded already stays
        self.ends[id(node)] = (self.line, self.column)

    def record_syntactic_position(self, node, *, start_node=None, end_node=None) -> _Syntactic:
        return _Syntactic(self, node, start_node)


def node_positions(module: cst.Module) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
    """(starts, ends): id of each node of `module` -> (line, zero-based column) where
    PositionProvider starts it, and where its code ends."""
    state = _StartState(module)
    module._codegen(state)
    return state.starts, state.ends
