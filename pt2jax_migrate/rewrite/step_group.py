"""A recognised training step, ready to replace its statements (rewrite/trainsteps.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst


@dataclass
class _Group:
    """A recognised zero_grad / forward / loss / backward / step group in one block."""

    text_def: str
    call: cst.SimpleStatementLine
    remove: set[int]
    call_index: int
    lines: list[tuple[cst.CSTNode, str, str]]  # (original statement, code, message)
    at_module_level: bool = False
    after: list = field(default_factory=list)  # statements moved after the call (they read its outputs)
    outputs: frozenset[str] = frozenset()  # the names the call assigns (loss and aux)
    replace: dict = field(default_factory=dict)  # id of a statement kept in place -> its new form
    extra_defs: list[str] = field(default_factory=list)  # more functions placed like text_def
    init: str | None = None  # a statement placed before the top-level statement holding the call
