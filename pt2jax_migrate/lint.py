"""The linter: find PyTorch constructs with one `ast` walk per file.

Speed is the point (design.md, "Speed"): no libcst, no metadata providers. The walk records
references through names that torch imports bind, plus the bindings that could shadow them,
and resolves everything once the walk is over (pt2jax_migrate.names). Whether a finding is
fixable comes from the same tables and the same `mapping.check_call` the rewrite uses; only
train-step calls (zero_grad/backward/step) ask the rewrite itself, and only in files that
call `.backward(`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from itertools import accumulate
import os
import pickle
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Sequence

from .astwalk import char_column
from .fsio import collect_python_files, read_source
from .model import Finding, SourceError
from .mapping import CONVERTED_IMPORTS, check_rule
from .names import (
    CLASS,
    COMPREHENSION,
    FUNCTION,
    MODULE,
    Binding,
    Scope,
    dotted,
    import_bindings,
    is_torch_import,
    is_torch_name,
    lookup,
)
from .rules import load_rules
from .core.decide import (CLIPS, DEVICE_METHODS, MODE_METHODS, STEP_METHODS, CallSite, MethodSite, ReferenceSite,
                          decide_call, decide_method, decide_reference)
from .core.statements import ASSIGN, DECORATOR, EXPR, VALUE, WITH, WITH_AS
from .core.decide import decide_init, decide_layer_attribute, decide_layer_read, isinstance_target
from .core.data import DATA_LOADER
from .core.inits import INIT_FUNCTIONS, INPLACE_METHODS
from .core import parallel
from .data_facts import array_loaders
from .parallel_facts import ParallelFacts, parallel_facts
from .isinstance_facts import IsinstanceFacts, isinstance_facts
from .inits import InitFacts, converted_init_calls, facts_for_target, init_hint, layer_read, site_at
from .data_generators import data_generator_calls
from .core.constructs import isinstance_type_nodes, keeps_layers_message, kept_layer
from .core.constructs import (ATTRIBUTE_NAMES, DEVICE_MOVES, MODULE_BASES, construct_code,
                              may_be_torch_only_method, torch_only_attribute)
from .core.residue import literal_kind, receiver_text
from .core.structure import decide_structure
from .structure_facts import StructureFacts, may_have_structure, site_names
from .structure_facts import analyse as analyse_structure

FIXABLE = " [fixable]"



# flags set by a statement on the call it directly contains
_EXPR, _WITH_ITEM, _WITH_AS, _DECORATOR, _ASSIGN = 1, 2, 3, 4, 5
_STATEMENT = {_EXPR: EXPR, _WITH_ITEM: WITH, _WITH_AS: WITH_AS, _DECORATOR: DECORATOR, _ASSIGN: ASSIGN}
# record kinds
_CALL, _METHOD, _REF, _ATTR = 0, 1, 2, 3


class _Record:
    """A construct seen in the walk, classified once all bindings are known."""

    __slots__ = ("kind", "node", "root", "parts", "scope", "parent", "flag", "targets", "method",
                 "base_of", "qual", "import_index", "finding", "fixable", "receiver", "bare", "kept_layer")

    def __init__(self, kind, node, root, parts, scope, parent, flag=0, method=None):
        self.kind = kind
        self.node = node  # the Call (calls, methods) or the Attribute/Name (references)
        self.root = root  # the Name a dotted chain starts at (None for methods)
        self.parts = parts  # the chain after the root: nn.functional.relu -> [functional, relu]
        self.scope = scope
        self.parent = parent  # innermost enclosing recorded call
        self.flag = flag
        self.method = method  # the attribute called: x.view(...) -> 'view'
        self.targets: list[str] | None = None  # `opt = torch.optim.SGD(...)` -> ['opt']
        self.base_of: ast.ClassDef | None = None  # the class this reference is a base of
        self.qual: str | None = None  # resolved torch name (None: not torch)
        self.import_index = -1
        self.finding: Finding | None = None
        self.fixable = False
        self.receiver: str | None = None  # x.step() -> 'x'
        self.bare: str | None = None  # a method's receiver when it is a plain name: x.view() -> 'x'
        self.kept_layer = False  # a torch layer constructed here stays PyTorch (a manual finding)


def _chain_text(node: ast.AST) -> str | None:
    found = dotted(node)
    if found is None:
        return None
    root, parts = found
    return ".".join([root.id, *parts])


class _Segments:
    """ast.get_source_segment without re-splitting the source for every node."""

    _NEWLINES = re.compile(r"\r\n|\r|\n")

    def __init__(self, source: str):
        self.source = source
        self.ascii = source.isascii()
        self.lines: dict[int, str] = {}  # offset's: line number -> its text, "" for an ASCII line
        if "\r" in source:
            self.starts = [0] + [m.end() for m in self._NEWLINES.finditer(source)]
        else:  # each line's start: the lengths before it, each with its newline (no match object per line)
            self.starts = list(accumulate(map((1).__add__, map(len, source.split("\n")[:-1])), initial=0))

    def offset(self, line: int, col: int) -> int:
        start = self.starts[line - 1]
        if col == 0 or self.ascii:  # (utf-8 columns are characters in an ASCII text)
            return start + col
        text = self.lines.get(line)
        if text is None:  # the line's text, or "" when it is ASCII (found once per line)
            end = self.starts[line] if line < len(self.starts) else len(self.source)
            text = self.source[start:end]
            text = self.lines[line] = "" if text.isascii() else text
        if not text:
            return start + col
        return start + char_column(text, col)

    def text(self, node: ast.AST) -> str:
        try:
            start = self.offset(node.lineno, node.col_offset)
            end = self.offset(node.end_lineno, node.end_col_offset)
        except (AttributeError, IndexError, TypeError):
            return ast.unparse(node)
        return self.source[start:end] or ast.unparse(node)

    def column(self, node: ast.AST) -> int:
        """1-based character column of a node."""
        return self.offset(node.lineno, node.col_offset) - self.starts[node.lineno - 1] + 1


def _watched_names(body: list[ast.stmt]) -> set[str]:
    """Names bound by torch imports in module-level code (not inside defs or classes)."""
    names: set[str] = set()
    stack = list(body)
    while stack:
        stmt = stack.pop()
        t = type(stmt)
        if t is ast.Import or t is ast.ImportFrom:
            if is_torch_import(stmt):
                names.update(name for name, _ in import_bindings(stmt))
        elif t in (ast.If, ast.Try, ast.With, ast.For, ast.While, ast.AsyncWith, ast.AsyncFor) or (
            t.__name__ == "TryStar"
        ):
            stack.extend(stmt.body)
            stack.extend(getattr(stmt, "orelse", ()))
            stack.extend(getattr(stmt, "finalbody", ()))
            for handler in getattr(stmt, "handlers", ()):
                stack.extend(handler.body)
    return names


# fields the walk never looks into: contexts, operators (nodes without children or handlers), and
# those never holding a node (names, identifiers, flags; Constant's value has a handler)
_SKIP_FIELDS = frozenset({"ctx", "type_comment", "type_ignores", "op", "ops", "id", "attr", "arg", "name", "asname",
                          "module", "level", "kind", "is_async", "simple", "conversion", "tag"})
_FIELDS: dict[type, tuple[str, ...]] = {}
_NAME, _CONSTANT = ast.Name, ast.Constant


def _child_fields(cls: type) -> tuple[str, ...]:
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = tuple(f for f in cls._fields if f not in _SKIP_FIELDS
                                      and not (cls is ast.MatchSingleton and f == "value"))
    return fields


class _Walker:
    def __init__(self, source: str, path: str, watch: set[str]):
        self.source = source
        self.path = path
        self.watch = watch
        self.scope = Scope(MODULE, None)
        self.parent: _Record | None = None
        self.records: list[_Record] = []
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.all_imports: list[ast.Import | ast.ImportFrom] = []  # torch's or not (structure_facts' roots)
        self.scopes: list[ast.AST] = []  # functions and `for` loops (structure_facts), in the walk's order
        # functions writing an item (`x[i] = v`, `x[i] += v`, `x[i].zero_()`; None: module level):
        # where structure_facts' index assignments can be
        self.function: ast.AST | None = None
        self.item_writes: set[ast.AST | None] = set()
        self.weight_ties = False  # `a.weight = b.weight` somewhere (structure_facts' weight ties)
        self.generator_keyword = False  # a call with `generator=` somewhere (data_generators' only subject)
        self.in_except = 0
        self.flag_node: ast.AST | None = None
        self.flag = 0
        self.assign_targets: list[ast.expr] | None = None
        self.method_names = _method_names()
        self.isinstance_types: set[int] = set()  # ids of T in isinstance(x, T)
        self.annotation_nodes: set[int] = set()  # ids of nodes inside annotations (types, not values)

    # ------------------------------------------------------------------ traversal

    def visit(self, node: ast.AST) -> None:
        cls = type(node)
        if cls is _NAME:  # the commonest nodes first, without a handler call
            if node.id in self.watch:  # type: ignore[attr-defined]
                self.visit_Name(node)  # type: ignore[arg-type]
            return
        if cls is _CONSTANT:
            return
        handler = _DISPATCH.get(cls)
        if handler is not None:
            handler(self, node)
            return
        visit = self.visit
        for name in _FIELDS.get(cls) or _child_fields(cls):
            value = getattr(node, name, None)
            if value is None:
                continue
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        visit(item)
            elif isinstance(value, ast.AST):
                visit(value)

    def visit_all(self, nodes: Iterable[ast.AST | None]) -> None:
        visit = self.visit
        for node in nodes:
            if node is not None:
                visit(node)

    def bind(self, name: str, node: ast.AST, scope: Scope | None = None) -> None:
        if name in self.watch:
            (scope or self.scope).bind(
                name, Binding((node.lineno, node.col_offset), None, -1, self.in_except > 0)
            )

    # ------------------------------------------------------------------ names

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.watch:
            if type(node.ctx) is ast.Load:
                self.records.append(_Record(_REF, node, node, [], self.scope, self.parent))
            else:
                self.bind(node.id, node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        while type(value) is ast.Attribute:
            value = value.value
        if type(value) is ast.Name:
            if value.id in self.watch:
                parts = dotted(node)[1]  # type: ignore[index]
                self.records.append(_Record(_REF, node, value, parts, self.scope, self.parent))
                return
        else:
            self.visit(value)
        self.torch_only_attributes(node)

    def torch_only_attributes(self, node: ast.AST) -> None:
        """`.device`, `.grad`, ... anywhere along an attribute chain (core.constructs)."""
        while type(node) is ast.Attribute:
            if node.attr in ATTRIBUTE_NAMES:
                self.records.append(_Record(_ATTR, node, None, None, self.scope, self.parent))
            node = node.value

    def visit_Call(self, node: ast.Call) -> None:
        if type(node.func) is ast.Name and node.func.id == "isinstance":
            self.isinstance_types.update(id(t) for t in isinstance_type_nodes(node.args))
        flag = self.flag if node is self.flag_node else 0
        targets = self.assign_targets if flag == _ASSIGN else None
        func = node.func
        record = None
        t = type(func)
        if t is ast.Attribute:
            value = func.value
            while type(value) is ast.Attribute:
                value = value.value
            method = func.attr
            if (method == "zero_" or method == "fill_") and type(func.value) is ast.Subscript:
                self.item_writes.add(self.function)
            if type(value) is ast.Name and value.id in self.watch:
                record = _Record(_CALL, node, value, dotted(func)[1], self.scope, self.parent, flag, method)  # type: ignore[index]
            elif method in self.method_names or may_be_torch_only_method(method):
                record = _Record(_METHOD, node, None, None, self.scope, self.parent, flag, method)
                if type(func.value) is ast.Name:
                    record.bare = func.value.id
                if method == "backward":
                    self.scope.code_scope.has_backward = True
                elif method == "step":
                    record.receiver = _chain_text(func.value)
            if type(value) is not ast.Name:
                self.visit(value)
            if record is None or record.kind != _CALL:
                self.torch_only_attributes(func.value)
        elif t is ast.Name:
            if func.id in self.watch:
                record = _Record(_CALL, node, func, [], self.scope, self.parent, flag)
        else:
            self.visit(func)
        parent = self.parent
        if record is not None:
            if targets:
                record.targets = [text for text in map(_chain_text, targets) if text]
            self.records.append(record)
            self.parent = record
        visit = self.visit
        for arg in node.args:
            visit(arg)
        for keyword in node.keywords:
            if keyword.arg == "generator":
                self.generator_keyword = True
            visit(keyword.value)
        self.parent = parent

    # ------------------------------------------------------------------ statements

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        self.all_imports.append(node)
        index = -1
        pairs = import_bindings(node)
        if is_torch_import(node):
            index = len(self.imports)
            self.imports.append(node)
            self.watch.update(name for name, _ in pairs)
        pos = (node.lineno, node.col_offset)
        for name, qual in pairs:
            if name in self.watch:
                self.scope.bind(name, Binding(pos, qual, index if is_torch_name(qual) else -1))

    def visit_Expr(self, node: ast.Expr) -> None:
        self.flag_node, self.flag = node.value, _EXPR
        self.visit(node.value)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.flag_node, self.flag, self.assign_targets = node.value, _ASSIGN, node.targets
        value = node.value
        if type(value) is ast.Attribute and value.attr == "weight" and len(node.targets) == 1 and (
                type(node.targets[0]) is ast.Attribute and node.targets[0].attr == "weight"):  # type: ignore[attr-defined]
            self.weight_ties = True
        self.visit(value)
        for target in node.targets:
            if type(target) is ast.Subscript:
                self.item_writes.add(self.function)
            self.visit(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if type(node.target) is ast.Subscript:
            self.item_writes.add(self.function)
        self.visit(node.target)
        self.visit(node.value)

    def _annotation(self, node: ast.AST) -> None:
        first = len(self.records)
        self.visit(node)  # what it records is in the annotation, and what is in it is recorded now
        self.annotation_nodes.update(id(record.node) for record in self.records[first:])

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._annotation(node.annotation)
        if node.value is not None:
            self.flag_node, self.flag, self.assign_targets = node.value, _ASSIGN, [node.target]
            self.visit(node.value)
        self.visit(node.target)

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            flag = _WITH_ITEM if item.optional_vars is None else _WITH_AS
            self.flag_node, self.flag = item.context_expr, flag
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        self.visit_all(node.body)

    def visit_For(self, node: ast.For) -> None:
        self.scopes.append(node)
        self.visit(node.target)
        self.visit(node.iter)
        self.visit_all(node.body)
        self.visit_all(node.orelse)

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        self.scope.declare(node.names, type(node) is ast.Global)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bind(node.name, node)
        self.in_except += 1
        self.visit_all(node.body)
        self.in_except -= 1

    def visit_match_name(self, node: ast.AST) -> None:
        name = getattr(node, "name", None) or getattr(node, "rest", None)
        if name:
            self.bind(name, node)
        for field in ("pattern", "patterns", "keys"):
            value = getattr(node, field, None)
            if isinstance(value, list):
                self.visit_all(value)
            elif value is not None:
                self.visit(value)

    # ------------------------------------------------------------------ scopes

    def _decorators(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            t = type(decorator)
            if t is ast.Attribute or t is ast.Name:  # @torch.no_grad without a call
                found = dotted(decorator)
                if found is not None and found[0].id in self.watch:
                    self.records.append(
                        _Record(_REF, decorator, found[0], found[1], self.scope, self.parent, _DECORATOR)
                    )
                    continue
            self.flag_node, self.flag = decorator, _DECORATOR
            self.visit(decorator)

    def _arguments(self, args: ast.arguments) -> None:
        self.visit_all(args.defaults)
        self.visit_all(args.kw_defaults)
        for arg in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg):
            if arg is not None and arg.annotation is not None:
                self._annotation(arg.annotation)

    def _bind_parameters(self, args: ast.arguments, scope: Scope, node: ast.AST) -> None:
        for arg in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg):
            if arg is not None and arg.arg in self.watch:
                scope.bind(arg.arg, Binding((node.lineno, node.col_offset)))

    def _enter(self, kind: int) -> Scope:
        outer = self.scope
        self.scope = Scope(kind, outer)
        return outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append(node)
        self._decorators(node)
        self._arguments(node.args)
        if node.returns is not None:
            self._annotation(node.returns)
        self.bind(node.name, node)
        outer, in_except, parent, function = self._enter(FUNCTION), self.in_except, self.parent, self.function
        self.in_except, self.parent, self.function = 0, None, node
        self._bind_parameters(node.args, self.scope, node)
        self.visit_all(node.body)
        self.scope, self.in_except, self.parent, self.function = outer, in_except, parent, function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._arguments(node.args)
        outer = self._enter(FUNCTION)
        self._bind_parameters(node.args, self.scope, node)
        self.visit(node.body)
        self.scope = outer

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._decorators(node)
        for base in node.bases:
            found = dotted(base)
            if found is not None and found[0].id in self.watch:
                record = _Record(_REF, base, found[0], found[1], self.scope, self.parent)
                record.base_of = node
                self.records.append(record)
            else:
                self.visit(base)
        for keyword in node.keywords:
            self.visit(keyword.value)
        self.bind(node.name, node)
        outer, parent = self._enter(CLASS), self.parent
        self.parent = None
        self.visit_all(node.body)
        self.scope, self.parent = outer, parent

    def visit_comprehension(self, node: ast.AST) -> None:
        generators = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)
        outer = self._enter(COMPREHENSION)
        for i, generator in enumerate(generators):
            self.visit(generator.target)
            if i:
                self.visit(generator.iter)
            self.visit_all(generator.ifs)
        if type(node) is ast.DictComp:
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)  # type: ignore[attr-defined]
        self.scope = outer


def _noop(walker: _Walker, node: ast.AST) -> None:
    return None


# the walk's handlers by node class (functions, not bound methods: no walker -> method -> walker
# reference cycle keeping each file's records and tree alive until the garbage collector runs)
_DISPATCH: dict[type, Callable[[_Walker, ast.AST], None]] = {
    ast.Name: _Walker.visit_Name,
    ast.Attribute: _Walker.visit_Attribute,
    ast.Call: _Walker.visit_Call,
    ast.Constant: _noop,
    ast.Import: _Walker.visit_Import,
    ast.ImportFrom: _Walker.visit_Import,
    ast.FunctionDef: _Walker.visit_FunctionDef,
    ast.AsyncFunctionDef: _Walker.visit_FunctionDef,
    ast.Lambda: _Walker.visit_Lambda,
    ast.ClassDef: _Walker.visit_ClassDef,
    ast.ListComp: _Walker.visit_comprehension,
    ast.SetComp: _Walker.visit_comprehension,
    ast.GeneratorExp: _Walker.visit_comprehension,
    ast.DictComp: _Walker.visit_comprehension,
    ast.Global: _Walker.visit_Global,
    ast.Nonlocal: _Walker.visit_Global,
    ast.ExceptHandler: _Walker.visit_ExceptHandler,
    ast.Expr: _Walker.visit_Expr,
    ast.With: _Walker.visit_With,
    ast.For: _Walker.visit_For,
    ast.AugAssign: _Walker.visit_AugAssign,
    ast.AsyncWith: _Walker.visit_With,
    ast.Assign: _Walker.visit_Assign,
    ast.AnnAssign: _Walker.visit_AnnAssign,
    ast.MatchAs: _Walker.visit_match_name,
    ast.MatchStar: _Walker.visit_match_name,
    ast.MatchMapping: _Walker.visit_match_name,
}


_METHOD_NAMES: frozenset[str] | None = None


def _method_names() -> frozenset[str]:
    global _METHOD_NAMES
    if _METHOD_NAMES is None:
        _METHOD_NAMES = frozenset(load_rules().methods) | DEVICE_METHODS | MODE_METHODS | set(STEP_METHODS)
    return _METHOD_NAMES


# ---------------------------------------------------------------------- classification


class _FileFacts:
    """The fact modules' answers for one file and target, found on demand: one set for both
    of the file's classifications (the findings, and the unconverted lines of train steps)."""

    __slots__ = ("init_facts", "data_generators", "array_loaders", "parallel_facts", "isinstance_facts",
                 "references")

    def __init__(self) -> None:
        self.init_facts: InitFacts | None = None
        self.data_generators: frozenset[tuple[int, int]] | None = None
        self.array_loaders: set[tuple[int, int]] | None = None
        self.parallel_facts: ParallelFacts | None = None
        self.isinstance_facts: IsinstanceFacts | None = None
        self.references: dict[tuple, object] = {}  # torch_reference's decisions, by their facts


class _Classifier:
    def __init__(self, walker: _Walker, segments: _Segments, not_tensors: set[str] | None = None,
                 with_steps: bool = True, structure: StructureFacts | None = None, tree: ast.Module | None = None,
                 target: str = "nnx", facts: _FileFacts | None = None):
        from .targets import get_target

        self.target = get_target(target)  # lint decides for the target the rewrite would write
        self.w = walker
        self.structure = structure  # buffers, index assignments, weight ties (structure_facts)
        self.tree = tree
        self.facts = facts or _FileFacts()
        self.with_steps = with_steps
        self.not_tensors = not_tensors or set()
        self.seg = segments
        self.rules = load_rules(target=self.target.table)
        self.path = walker.path
        self.findings: list[Finding] = []
        self.import_ok = [True] * len(walker.imports)
        self.import_unsafe = [False] * len(walker.imports)  # a use it stays for is an unsafe fix
        self.optimizers: set[str] = set()
        self.schedulers: set[str] = set()
        self._train_lines: set[int] | None = None
        self._kept_optimizers: dict[str, int] = {}
        self._schedules = None  # schedule_plan.ScheduleFacts: lr schedulers converted with their optimizers

    # -------------------------------------------------------------- helpers

    def train_lines(self) -> set[int]:
        self._analyse_steps()
        return self._train_lines  # type: ignore[return-value]

    def kept_optimizers(self) -> dict[str, int]:
        self._analyse_steps()
        return self._kept_optimizers

    def _analyse_steps(self) -> None:
        """The rewrite's training-step decisions (trainstep.py, `ast` only), on demand."""
        if self._train_lines is not None:
            return
        self._train_lines, self._kept_optimizers = set(), {}
        if self.with_steps and self.target.converts_train_steps and (
                ".backward(" in self.w.source or ".step(" in self.w.source):
            from .trainstep import train_step_analysis

            try:
                # the lines lint leaves unconverted: a second classification, asked only by a
                # block with a backward() statement
                unconverted = _Classifier(self.w, self.seg, self.not_tensors, with_steps=False,
                                          tree=self.tree, target=self.target.name,
                                          facts=self.facts).unconverted
                analysis = train_step_analysis(self.w.source, unconverted, target=self.target, tree=self.tree)
                self._train_lines, self._kept_optimizers, _ = analysis
                self._schedules = analysis.schedules
            except Exception:  # an analysis failure must not stop lint: the steps stay manual
                pass

    def schedule_facts(self, q: str, line: int) -> dict:
        """CallSite facts from the schedule plan: a scheduler's verdict, why an optimizer stays."""
        if not q.startswith("torch.optim."):
            return {}
        self._analyse_steps()
        facts = self._schedules
        if facts is None:
            return {}
        if q.startswith("torch.optim.lr_scheduler."):
            return {"scheduler": facts.schedulers.get(line)}
        return {"kept_reason": facts.kept.get(line)}

    def data_generators(self) -> frozenset[tuple[int, int]]:
        """Calls building or reseeding a generator a torch.utils.data call keeps (data_generators.py)."""
        if self.facts.data_generators is None:  # none without a `generator=` keyword (the walk sees every call)
            self.facts.data_generators = data_generator_calls(
                self.tree or ast.parse(self.w.source), self.w.source) if self.w.generator_keyword else frozenset()
        return self.facts.data_generators

    def array_loaders(self) -> set[tuple[int, int]]:
        """DataLoader calls over a TensorDataset built in this file (data_facts.py), found once."""
        if self.facts.array_loaders is None:
            self.facts.array_loaders = array_loaders(self.tree or ast.parse(self.w.source), self.w.source)
        return self.facts.array_loaders

    def init_facts(self) -> InitFacts:
        """nn.init sites and apply(fn) calls (pt2jax_migrate.inits, as the rewrite finds them), on demand."""
        if self.facts.init_facts is None:
            self.facts.init_facts = facts_for_target(self.tree or ast.parse(self.w.source), self.w.source,
                                                self.target.converts_inits, self.rules)
        return self.facts.init_facts

    def init_site(self, record: _Record, call: ast.Call) -> bool:
        """An init of a parameter: core.decide.decide_init's finding (True: reported)."""
        attr = call.func.attr if type(call.func) is ast.Attribute else None
        if attr not in INIT_FUNCTIONS and attr not in INPLACE_METHODS:
            return False  # an init site is an attribute call named as an init (site_at): no init facts to build
        site = site_at(self.init_facts(), call.lineno, call.col_offset, attr)
        if site is None:
            return False
        decision = decide_init(site, self.rules)
        self.add(record, call, decision.code, decision.message, decision.fixable,
                 safety=decision.safety if decision.fixable else "safe")
        return True

    def unconverted(self) -> frozenset[int]:
        """Lines holding code the rewrite leaves in place (not counting the training steps)."""
        skip = {"PTJ001", "PTJ303", "PTJ202", "PTJ203", "PTJ204", "PTJ201"}
        return frozenset(f.line for f in self.run() if not f.fixable and f.code not in skip)

    def add(self, record: _Record, node: ast.AST, code: str, message: str, fixable: bool,
            severity: str = "warning", safety: str = "safe") -> None:
        """Record a finding. `safety` (safe | unsafe) is the fix's, as the rewrite reports it;
        a finding that is not fixable is `manual`."""
        if fixable:
            message += FIXABLE
        fix = (safety or "safe") if fixable else "manual"
        finding = Finding(self.path, node.lineno, self.seg.column(node), code, message, fixable, severity, fix)
        self.findings.append(finding)
        record.finding = finding
        record.fixable = fixable
        if not fixable and record.kind == _CALL and record.qual is not None and kept_layer(record.qual):
            record.kept_layer = True

    def arguments(self, call: ast.Call) -> tuple[tuple, tuple]:
        """The call's arguments as text: ((source, starred), ...), ((keyword, source), ...)."""
        text = self.seg.text
        args = tuple(
            (text(a.value), True) if type(a) is ast.Starred else (text(a), False) for a in call.args
        )
        kwargs = tuple((k.arg, text(k.value)) for k in call.keywords)
        return args, kwargs

    # -------------------------------------------------------------- resolution

    def resolve(self) -> None:
        for record in self.w.records:
            if record.root is None:
                continue
            root = record.root
            binding = lookup(record.scope, root.id, (root.lineno, root.col_offset))
            if binding is None or binding.import_index < 0:
                continue
            record.import_index = binding.import_index
            record.qual = ".".join([binding.qualname, *record.parts]) if record.parts else binding.qualname
            if record.targets and record.kind == _CALL and record.qual.startswith("torch.optim."):
                if record.qual.startswith("torch.optim.lr_scheduler."):
                    self.schedulers.update(record.targets)
                else:
                    self.optimizers.update(record.targets)

    def run(self) -> list[Finding]:
        self.resolve()
        for record in self.w.records:
            if record.qual is not None:
                if record.kind == _CALL:
                    self.torch_call(record)
                else:
                    self.torch_reference(record)
                if record.import_index >= 0:
                    if not record.fixable:
                        self.import_ok[record.import_index] = False
                    elif record.finding is not None and record.finding.fix == "unsafe":
                        self.import_unsafe[record.import_index] = True
            elif record.kind == _ATTR:
                if self.w.imports:
                    self.torch_only_attribute(record)
            elif record.method is not None and self.w.imports:
                if self.structure is None or (record.node.lineno, record.method) not in self.structure.handled_calls:
                    self.method_call(record)
        if self.structure is not None:
            self.structure_sites()
        if self.w.imports and "Parallel" in self.w.source:
            self.parallel_sites()
        for index, node in enumerate(self.w.imports):
            self.import_finding(node, self.import_ok[index], self.import_unsafe[index])
        self.classes_keeping_layers()
        self.layer_reads()
        self.target_sites()
        self.findings.sort(key=lambda f: (f.line, f.col, f.code))
        # one to-do per line and text, as the rewrite writes one TODO for it:
        # `def f(a: nn.Module, b: nn.Module)` is one thing to port, not two
        seen: set[tuple[int, str, str]] = set()
        kept = []
        for finding in self.findings:
            if self.target.wording:
                finding = replace(finding, message=self.target.reword(finding.message))
            if not finding.fixable:
                key = (finding.line, finding.code, finding.message)
                if key in seen:
                    continue
                seen.add(key)
            kept.append(finding)
        self.findings = kept
        return self.findings

    # -------------------------------------------------------------- kinds

    def import_finding(self, node: ast.Import | ast.ImportFrom, ok: bool, unsafe: bool = False) -> None:
        if type(node) is ast.ImportFrom and any(alias.name == "*" for alias in node.names):
            message = f"`from {node.module} import *`: the names it binds cannot be tracked; import them by name"
            ok = False
        else:
            modules = sorted({q for _, q in import_bindings(node) if is_torch_name(q)})
            message = f"PyTorch import of {', '.join(modules)}"
            if not ok:
                message += "; kept while code that is not converted automatically still uses it"
        record = _Record(_REF, node, None, None, None, None)
        # the import goes only once its uses are converted: unsafe when one of them is; a kept
        # import is a note, not a to-do of its own (its uses carry the TODOs)
        self.add(record, node, "PTJ001", message, ok, severity="warning" if ok else "info",
                 safety="unsafe" if unsafe else "safe")

    def torch_call(self, record: _Record) -> None:
        """Facts about the call -> core.decide.decide_call -> a finding (rewrite asks the same)."""
        q = record.qual
        call = record.node
        assert q is not None
        if self.init_site(record, call):
            return
        args, kwargs = self.arguments(call)
        # the training-step facts cost an analysis of the file: only asked where they matter
        statement = _STATEMENT.get(record.flag, VALUE)
        if q in parallel.WRAPPERS:  # `model = W(net)[.to(device)]` only (parallel_facts, as the rewrite asks)
            statement = ASSIGN if (call.lineno, call.col_offset) in self.parallel_facts().assigned else VALUE
        site = CallSite(
            q, args, kwargs, statement, data_parallel=self.target.converts_data_parallel,
            in_train_step=q in CLIPS and call.lineno in self.train_lines(),
            kept_optimizer=(record.targets[0] if q.startswith("torch.optim.") and record.targets
                            and call.lineno in self.kept_optimizers() else None),
            **self.schedule_facts(q, call.lineno),
            feeds_data=(call.lineno, call.col_offset) in self.data_generators(),
            array_dataset=q == DATA_LOADER and (call.lineno, call.col_offset) in self.array_loaders(),
        )
        decision = decide_call(site, self.rules, check_rule)
        self.add(record, call, decision.code, decision.message, decision.fixable,
                 "info" if decision.action == "note" else "warning",
                 safety=decision.safety if decision.fixable else "safe")

    def torch_reference(self, record: _Record) -> None:
        """Facts about the reference -> core.decide.decide_reference -> a finding."""
        q = record.qual
        assert q is not None
        cls = record.base_of
        in_isinstance = id(record.node) in self.w.isinstance_types
        # the file's names matter only to a test of a layer class others may convert to as well
        facts = self.isinstance_facts() if in_isinstance and isinstance_target(self.rules, q) else None
        # (qualname, base_of, decorator, in_isinstance, in_annotation): without the file's
        # names, all the decision depends on, so it is made once per file for each
        key = (q, cls.name if cls is not None else None, record.flag == _DECORATOR, in_isinstance,
               id(record.node) in self.w.annotation_nodes)
        decision = self.facts.references.get(key) if facts is None else None
        if decision is None:
            position = (record.node.lineno, record.node.col_offset)
            site = ReferenceSite(*key, file_names=facts.named if facts else frozenset(),
                                 tested_with=facts.groups.get(position, ()) if facts else ())
            decision = decide_reference(site, self.rules)
            if facts is None:
                self.facts.references[key] = decision
        # a converted base is reported on the class line, as the rewrite does
        node = cls if cls is not None and decision.fixable else record.node
        self.add(record, node, decision.code, decision.message, decision.fixable,
                 "info" if decision.action == "note" else "warning",
                 safety=decision.safety if decision.fixable else "safe")

    def method_call(self, record: _Record) -> None:
        """Facts about the method call -> core.decide.decide_method -> a finding (or none)."""
        method = record.method
        call = record.node
        assert method is not None
        if self.init_site(record, call):
            return
        training_call, in_train_step = True, False
        if method in STEP_METHODS:
            if method == "step":
                receiver = record.receiver
                training_call = receiver not in self.schedulers and (
                    receiver in self.optimizers or record.scope.code_scope.has_backward)
            in_train_step = training_call and call.lineno in self.train_lines()
        args, kwargs = self.arguments(call) if method not in STEP_METHODS else ((), ())
        func = call.func
        parent = record.parent
        site = MethodSite(
            method, args, kwargs, tuple(literal_kind(a) for a in call.args),
            receiver_text(func.value), record.bare,  # type: ignore[attr-defined]
            receiver_is_not_tensor=record.bare in self.not_tensors,
            inside_torch_call=parent is not None and parent.qual is not None,
            training_call=training_call, in_train_step=in_train_step,
            init_function=self.init_facts().applies.get((call.lineno, call.col_offset)) if method == "apply" else None,
            feeds_data=(call.lineno, call.col_offset) in self.data_generators(),
        )
        decision = decide_method(site, self.rules, check_rule)
        if decision is not None:
            self.add(record, call, decision.code, decision.message, decision.fixable,
                     "info" if decision.action == "note" else "warning",
                     safety=decision.safety if decision.fixable else "safe")

    def structure_sites(self) -> None:
        """Module-structure statements -> core.structure.decide_structure (rewrite renders the same)."""
        for site in [*self.structure.sites.values(), *self.structure.training.values()]:  # type: ignore[union-attr]
            decision = decide_structure(site, self.target.structure_kinds, self.target.name)
            self.findings.append(Finding(self.path, site.line, site.col, decision.code,
                                         decision.message + (FIXABLE if decision.fixable else ""), decision.fixable,
                                         "warning", decision.safety if decision.fixable else "manual"))

    def isinstance_facts(self) -> IsinstanceFacts:
        """The torch names the file names, and what each isinstance call tests (isinstance_facts)."""
        if self.facts.isinstance_facts is None:
            self.facts.isinstance_facts = isinstance_facts(self.tree or ast.parse(self.w.source),
                                                           self.w.source)
        return self.facts.isinstance_facts

    def parallel_facts(self) -> ParallelFacts:
        """Data-parallel wrapper assignments and `model.module` reads (parallel_facts.py), found once."""
        if self.facts.parallel_facts is None:  # none for a target without train steps: wrappers stay (marked)
            self.facts.parallel_facts = (parallel_facts(self.tree or ast.parse(self.w.source), self.w.source)
                                    if self.target.converts_data_parallel else ParallelFacts())
        return self.facts.parallel_facts

    def parallel_sites(self) -> None:
        """`model.module` of a converted data-parallel wrapper (parallel_facts): the model itself."""
        facts = self.parallel_facts()
        for position, name in facts.module_reads.items():
            node = facts.nodes[position]
            self.findings.append(Finding(self.path, node.lineno, self.seg.column(node), parallel.CODE,
                                         parallel.module_attribute_message(name) + FIXABLE, True, "warning", "safe"))
    def target_sites(self) -> None:
        """Module code the target does not convert (Target.module_sites; the rewrite asks the same)."""
        if self.tree is None:
            return
        init_calls = lambda: converted_init_calls(self.init_facts(), self.rules)  # noqa: E731
        for line, messages in self.target.module_sites(self.tree, init_calls).items():
            for message in messages:
                code, message = message if isinstance(message, tuple) else ("PTJ101", message)
                self.findings.append(Finding(self.path, line, 1, code, message, False, "warning", "manual"))

    def classes_keeping_layers(self) -> None:
        """A converted class (nn.Module base) that still builds torch layers says so on its
        class line (core.constructs.keeps_layers_message), as the rewrite writes it there."""
        kept = [r for r in self.w.records if r.kept_layer and r.qual is not None]
        if not kept:
            return
        for record in self.w.records:
            cls = record.base_of
            if cls is None or record.qual not in MODULE_BASES:
                continue
            inside = {r.qual for r in kept if cls.lineno <= r.node.lineno <= (cls.end_lineno or cls.lineno)}
            if inside:  # a record of its own: the base's (fixable) finding stays as it is
                self.add(_Record(_REF, cls, None, None, None, None), cls, "PTJ102",
                         keeps_layers_message(cls.name, inside), False)

    def layer_reads(self) -> None:
        """A converted layer's parameter or statistic read outside init code (`self.emb.weight` in
        forward, `model.bn.running_var`): core.decide.decide_layer_read, as the rewrite decides it."""
        attributes = self.target.layer_attributes  # init code's `m.out_channels`: decide_layer_attribute
        if not self.w.imports or not (layer_read(self.w.source) or (
                attributes is not None and init_hint(self.w.source))):
            return  # no attribute a weight table names nor init code: no init facts to build (lint's speed)
        for (line, col, _), read in self.init_facts().reads.items():
            if read.reported:
                decision = decide_layer_read(read, self.rules, self.target.converts_layer_reads)
            else:
                decision = decide_layer_attribute(read, self.rules, attributes)
                decision = decision if decision is not None and not decision.fixable else None
            if decision is None:
                continue
            node = ast.Name(id="", lineno=line, col_offset=col)
            self.add(_Record(_ATTR, node, None, None, None, None), node, decision.code, decision.message,
                     decision.fixable)

    def torch_only_attribute(self, record: _Record) -> None:
        node = record.node
        parent = record.parent
        if parent is not None and parent.kind == _METHOD and parent.method in DEVICE_MOVES:
            return  # x.to(y.device): the device move goes whole
        if self.structure is not None and (node.lineno, node.attr) in self.structure.handled_calls:
            return  # `p.requires_grad = False` in a freeze loop (structure_facts)
        if node.attr == "requires_grad" and parent is not None and parent.qual is not None:
            return  # SGD(filter(lambda p: p.requires_grad, ...)): the torch call's verdict covers it
        reason = torch_only_attribute(node.attr, receiver_text(node.value))
        if reason is not None:
            self.add(record, node, construct_code(node.attr), reason, False)


# ---------------------------------------------------------------------- entry points


# a torch import inside a function or class body (module-level ones are found on the tree)
_LOCAL_IMPORT = re.compile(r"^[ \t]*(?:import|from)[ \t][^\n#]*\btorch", re.MULTILINE)


def lint_source(source: str, path: str = "<string>", target: str = "nnx") -> list[Finding]:
    """Findings for one module's source text. Raises SourceError on a syntax error."""
    if "torch" not in source:
        return []
    if source.startswith("\ufeff"):
        source = source[1:]
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as error:
        raise SourceError(path, f"syntax error: {error.msg}", error.lineno) from None
    except ValueError as error:  # null bytes
        raise SourceError(path, f"cannot parse: {error}") from None
    watch = _watched_names(tree.body)
    if not watch and not _LOCAL_IMPORT.search(source):
        return []  # "torch" only in strings, comments or other names
    walker = _Walker(source, path, watch)
    walker.visit_all(tree.body)
    if not walker.imports:
        return []
    structure = None
    if may_have_structure(source):  # functions matter to it only for their item assignments
        scopes = [n for n in walker.scopes if type(n) is ast.For or n in walker.item_writes]
        names = site_names(source) if walker.weight_ties else site_names(source) - {"weight"}
        structure = analyse_structure(tree, sites_only=names, imports=walker.all_imports, scopes=scopes)
    return _Classifier(walker, _Segments(source), not_tensor_names(tree.body), structure=structure, tree=tree,
                       target=target).run()


def unconverted_lines(source: str, target: str = "nnx") -> frozenset[int]:
    """Lines where lint reports code the rewrite leaves in place (training steps aside)."""
    if "torch" not in source:
        return frozenset()
    tree = ast.parse(source.lstrip("\ufeff"))
    watch = _watched_names(tree.body)
    walker = _Walker(source, "<string>", watch)
    walker.visit_all(tree.body)
    if not walker.imports:
        return frozenset()
    return _Classifier(walker, _Segments(source), not_tensor_names(tree.body), with_steps=False,
                       tree=tree, target=target).unconverted()


# names the converted code itself imports (rewrite.IMPORTS; a test keeps the two in step)
CONVERTED_IMPORT_NAMES = frozenset(CONVERTED_IMPORTS)


def not_tensor_names(body: list[ast.stmt]) -> set[str]:
    """Module-level names bound by imports, defs and classes: receivers that are not tensors
    (as rewrite.not_tensor_names decides on the libcst tree)."""
    names = set(CONVERTED_IMPORT_NAMES)
    for stmt in body:
        t = type(stmt)
        if t is ast.FunctionDef or t is ast.AsyncFunctionDef or t is ast.ClassDef:
            names.add(stmt.name)  # type: ignore[attr-defined]
        elif t is ast.Import or t is ast.ImportFrom:
            names.update(name for name, _ in import_bindings(stmt))  # type: ignore[arg-type]
    return names


def lint_file(path: str) -> list[Finding]:
    return lint_source(read_source(path), str(path))


def lint_paths(paths: Iterable[str], *, cache: bool = False, jobs: int = 1) -> tuple[list[Finding], list[SourceError]]:
    """Lint files and folders. Files that cannot be read or parsed become errors; the rest
    are still linted; a path that does not exist is an error too. With `cache`, findings are
    reused for files whose path and content are unchanged since a previous run. `jobs` > 1
    lints the files that need it in that many processes (0: one per CPU).

    Every finding, unfiltered: `lint_project` adds selection, suppressions and exclusions."""
    files, errors = collect_python_files(paths)
    findings: list[Finding] = []
    for _file, _source, outcome in lint_sources(files, cache=cache, jobs=jobs):
        if isinstance(outcome, SourceError):
            errors.append(outcome)
        else:
            findings.extend(outcome)
    return findings, errors


def lint_sources(files: Sequence[str], *, cache: bool = False, jobs: int = 1,
                 progress: Callable[[int], None] | None = None, sources: dict[str, str] | None = None,
                 target: str = "nnx", finish: Callable[[str, str, list[Finding]], Any] | None = None
                 ) -> list[tuple[str, str | None, Any]]:
    """(file, its text or None when unreadable, its findings or the error) for each file, in
    order. `sources` gives texts to use instead of reading the files (stdin). `progress` is
    called with the number of files finished since the last call. `finish(file, text,
    findings)`, when given, stands in for each file's findings, called as each file is done
    (with -jN, in this process while the others are still linted: not a serial tail)."""
    store = LintCache.open() if cache else None
    results: dict[str, list[Finding] | SourceError] = {}
    texts: dict[str, str] = {}
    todo: list[tuple[str, str, bytes | None]] = []  # (file, source, cache key)
    ready = 0
    for file in files:
        try:
            source = sources[file] if sources is not None and file in sources else read_source(file)
        except SourceError as error:
            results[file] = error
            ready += 1
            continue
        texts[file] = source
        if "torch" not in source:
            results[file] = []
            ready += 1
            continue
        key = store.key(file, source, target) if store is not None else None
        cached = store.get(key) if store is not None and key is not None else None
        if cached is not None:
            results[file] = cached
            ready += 1
        else:
            todo.append((file, source, key))
    if progress is not None and ready:
        progress(ready)

    from .files.heap import frozen_heap
    from .files.pool import run_jobs

    settle = None
    arrivals = iter(todo)

    def advance(outcome) -> None:
        """Each outcome as it arrives, in order (with -jN: while the other files are linted)."""
        file, source, key = next(arrivals)
        if isinstance(outcome, tuple):  # (path, message, line): SourceError does not pickle
            results[file] = SourceError(*outcome)
        else:
            if store is not None and key is not None:
                store.put(key, outcome)
            results[file] = finish(file, source, outcome) if finish is not None else outcome
        settle()  # a file's findings live to the end of the run: out of the collector's scans too
        if progress is not None:
            progress(1)

    with frozen_heap() as settle:  # the collector scans the files' objects, not the loaded modules
        if finish is not None:  # files not linted here (no torch, cached) first
            for file, outcome in results.items():
                if not isinstance(outcome, SourceError):
                    results[file] = finish(file, texts[file], outcome)
        run_jobs(_lint_job, [(f, s, target) for f, s, _ in todo], jobs, advance, lambda: _prepare_lint(target))
    if store is not None:
        store.save()
    return [(file, texts.get(file), results[file]) for file in files]


def _prepare_lint(target: str) -> None:
    """What a lint loads on its first file (forked workers start with it)."""
    from .files import guard  # noqa: F401

    lint_source(WARM_UP, "<warm-up>", target)


WARM_UP = "import torch\nimport torch.nn as nn\n\nx = torch.zeros(1)\nlayer = nn.Linear(2, 2)\n"


def _lint_job(job: tuple[str, str, str]) -> list[Finding] | tuple[str, str, int | None]:
    from .files.guard import guarded

    file, source, target = job
    try:
        return guarded(file, "linting", lint_source, source, file, target)
    except SourceError as error:
        prefix = f"{error.path}:{error.line}: " if error.line else f"{error.path}: "
        text = str(error)
        return (error.path, text[len(prefix):] if text.startswith(prefix) else text, error.line)


class LintCache:
    """Findings by (path, content), so a warm run costs a read and a hash per file.

    One pickle per working folder and engine version under $PT2JAX_CACHE_DIR (default
    $XDG_CACHE_HOME/pt2jax or ~/.cache/pt2jax). The version is a hash of the rules tables and
    of the engine's own source, so editing either starts a fresh cache. Never required: any
    error reading or writing it is ignored.
    """

    MAX_ENTRIES = 200_000

    def __init__(self, file: str | None, entries: dict[bytes, tuple]):
        self.file = file
        self.entries = entries
        self.dirty = False

    @staticmethod
    def folder() -> str:
        explicit = os.environ.get("PT2JAX_CACHE_DIR")
        if explicit:
            return explicit
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "pt2jax")

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def fingerprint() -> str:
        from . import __version__

        digest = hashlib.blake2b(__version__.encode(), digest_size=12)
        for name in LintCache.fingerprint_sources():
            try:
                with open(name, "rb") as handle:
                    digest.update(handle.read())
            except OSError:
                digest.update(name.encode())
        return digest.hexdigest()

    @staticmethod
    def fingerprint_sources() -> list[str]:
        """Every file lint's verdicts may depend on: all of the package's Python (fact modules
        live beside lint.py, decisions in core/, rendering checks in targets/) and the tables.
        Reading ~150 small files costs a few ms; missing one served stale findings."""
        from .rules import rules_dir

        here = Path(__file__).resolve().parent
        return sorted(str(p) for p in here.rglob("*.py")) + sorted(str(p) for p in rules_dir().glob("*.toml"))

    @classmethod
    def open(cls) -> LintCache:
        where = hashlib.blake2b(os.getcwd().encode(), digest_size=8).hexdigest()
        file = os.path.join(cls.folder(), f"lint-{cls.fingerprint()}-{where}.pickle")
        try:
            with open(file, "rb") as handle:
                entries = pickle.load(handle)
            if not isinstance(entries, dict):
                entries = {}
        except Exception:  # missing, unreadable, corrupt: start afresh
            entries = {}
        return cls(file, entries)

    @staticmethod
    def key(path: str, source: str, target: str = "nnx") -> bytes:
        digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=16)
        if target != "nnx":  # the verdicts are the target's (nnx keys stay as they were)
            digest.update(b"\0" + target.encode())
        digest.update(b"\0")
        digest.update(source.encode("utf-8", "surrogatepass"))
        return digest.digest()

    def get(self, key: bytes) -> list[Finding] | None:
        rows = self.entries.get(key)
        if rows is None:
            return None
        return [Finding(*row) for row in rows]

    def put(self, key: bytes, findings: list[Finding]) -> None:
        self.entries[key] = tuple(
            (f.path, f.line, f.col, f.code, f.message, f.fixable, f.severity, f.fix) for f in findings
        )
        self.dirty = True

    def save(self) -> None:
        if not self.dirty or self.file is None:
            return
        entries = self.entries
        if len(entries) > self.MAX_ENTRIES:
            keep = list(entries.items())[-self.MAX_ENTRIES:]
            entries = dict(keep)
        try:
            folder = os.path.dirname(self.file)
            os.makedirs(folder, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(entries, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temp, self.file)
        except Exception:
            pass
