"""Statements the pass cannot change, found on the ast, so the libcst visit does not descend
into them (most lines of real model code: `x = self.proj(x)`, `return out + identity`).

A simple statement line is left unvisited only when nothing in it is something a hook acts on:
no name of the file's torch aliases, classes, builders, init functions or optimizer, loss and
scheduler variables; no attribute a table, core.constructs or a hook knows by name; no import,
`global` or `nonlocal`; no line any ast fact (structure, inits, data, parallel, train steps,
schedules, the target's sites) points at; and it does not stand in a class body or in a
function that takes the target's randomness (builders, __init__ of converted classes). When
in doubt it is visited: an unvisited statement is kept as the very node that was parsed."""

from __future__ import annotations

import ast
import dataclasses

import libcst as cst

from ..astwalk import walk
from ..core.constructs import ATTRIBUTE_NAMES, may_be_torch_only_method
from ..core.decide import DEVICE_METHODS, MODE_METHODS, STEP_METHODS

_NAMES = frozenset({"super", "partial", "functools", "isinstance"})
_ATTRIBUTES = frozenset({"training", "module", "param_groups", "weight", "bias", "data", "grad", "apply",
                         "manual_seed", "init_weights", "reset_parameters", "parameters", "modules"})
_NEVER = (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal)
# compound statements left unvisited as a whole when nothing in them is acted on: cst type -> ast's
_COMPOUND = {cst.If: ast.If, cst.For: (ast.For, ast.AsyncFor), cst.While: ast.While,
             cst.With: (ast.With, ast.AsyncWith), cst.Try: ast.Try, cst.TryStar: ast.TryStar,
             cst.FunctionDef: (ast.FunctionDef, ast.AsyncFunctionDef)}


def _lines_in(value, out: set[int], depth: int = 0) -> None:
    """Every int that stands as a line in a fact: a key, an element, or a tuple's first item;
    any int found counts (more lines visited, never fewer)."""
    if depth > 6 or value is None:
        return
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        out.add(value)
    elif isinstance(value, tuple):
        for item in value:
            _lines_in(item, out, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _lines_in(key, out, depth + 1)
            _lines_in(item, out, depth + 1)
    elif isinstance(value, (set, frozenset, list)):
        for item in value:
            _lines_in(item, out, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _lines_in(getattr(value, f.name), out, depth + 1)


class SkipIndex:
    """The ast side: statements by start, and the names, attributes and lines that matter."""

    def __init__(self, pass_, tree: ast.Module):
        self.by_start: dict[tuple[int, int], tuple[list, int]] = {}
        classes: set[str] = set()
        for node in walk(tree):
            for field in ("body", "orelse", "finalbody"):
                body = getattr(node, field, None)
                if isinstance(body, list):
                    for index, stmt in enumerate(body):
                        if isinstance(stmt, ast.stmt):
                            self.by_start.setdefault((stmt.lineno, stmt.col_offset), (body, index))
            if isinstance(node, ast.ClassDef):
                classes.add(node.name)
        structure = pass_.structure
        builders = {name for facts in structure.classes.values() for name in facts.builders}
        factories = {name for facts in structure.classes.values() for names in facts.factories.values()
                     for name in names}
        functions = set(pass_.init_facts.functions)
        self.names = (set(pass_.aliases) | classes | set(pass_.imported_classes) | set(pass_.rngs_classes)
                      | set(pass_.converted_classes) | factories | functions | _NAMES)
        self.attributes = (set(pass_.recorded_methods) | ATTRIBUTE_NAMES | DEVICE_METHODS | MODE_METHODS
                           | set(STEP_METHODS) | _ATTRIBUTES | builders | functions)
        lines: set[int] = set()
        for fact in (structure, pass_.init_facts, pass_.mapping_sequentials, pass_.param_reads,
                     pass_.data_generators, pass_.parallel, pass_.array_loaders, pass_.target_sites,
                     pass_.step_lines, pass_.schedules, pass_.clips, pass_.kept_optimizers):
            _lines_in(fact, lines)
        self.lines = lines

    def statements(self, pass_, node: cst.BaseStatement) -> list[ast.stmt] | None:
        start = pass_.positions.get(id(node))
        found = self.by_start.get(start) if start is not None else None
        if found is None:
            return None
        body, index = found
        if type(node) is not cst.SimpleStatementLine:  # a compound statement: the one of its kind there
            stmt = body[index]
            return [stmt] if isinstance(stmt, _COMPOUND[type(node)]) else None
        stmts = body[index:index + len(node.body)]
        return stmts if len(stmts) == len(node.body) else None

    def touched(self, pass_, stmts: list[ast.stmt]) -> bool:
        dynamic = pass_.optimizer_vars | pass_.loss_vars | pass_.scheduler_vars | set(pass_.optimizers) \
            | set(pass_.optimizers.values())
        for stmt in stmts:
            first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])
            if any(line in self.lines for line in range(first, (stmt.end_lineno or stmt.lineno) + 1)):
                return True
            for item in walk(stmt):
                kind = type(item)
                if kind is ast.Name:
                    if item.id in self.names or item.id in dynamic:
                        return True
                elif kind is ast.Attribute:
                    attr = item.attr
                    if attr in self.attributes or may_be_torch_only_method(attr):
                        return True
                elif isinstance(item, _NEVER):
                    return True
        return False


class SkipMixin:
    """The decision the dispatch asks for every simple statement line (dispatch.py)."""

    def _untouched(self, node: cst.BaseStatement) -> bool:
        index = self.skip_index
        if index is None or self.scopes[-1].kind == "class":
            return False
        if type(node) is cst.FunctionDef and (node.name.value in index.names or node.name.value in index.attributes
                                              or (self.class_stack and self.class_stack[-1])):
            return False  # a def the pass may convert or give rngs by its name
        stmts = index.statements(self, node)
        return stmts is not None and not index.touched(self, stmts)
