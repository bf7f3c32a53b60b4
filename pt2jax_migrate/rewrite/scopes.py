"""Scope tracking: which names each function, class body and comprehension binds, so that a
local name shadowing a torch import is not converted; and torch qualified names."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from .cst_util import _all_params, _dotted, _is_docstring, _target_names, code_of, is_torch_import, statements_in
from .positions import _NEWLINE
from .todos import _with_todos

def _bindings(node: cst.FunctionDef) -> set[str]:
    """Names bound in one function scope (parameters, assignments, loops, with, `as` names of
    imports and handlers, nested defs and classes by name; not inside lambdas or comprehensions)."""
    names = {param.name.value for param in _all_params(node.params)}
    stop = (cst.FunctionDef, cst.ClassDef, cst.Import, cst.ImportFrom)
    for item in statements_in(node.body, stop):  # bindings are statements
        kind = type(item)
        if kind is cst.FunctionDef or kind is cst.ClassDef:
            names.add(item.name.value)
        elif kind is cst.AssignTarget or kind is cst.AnnAssign or kind is cst.AugAssign or kind is cst.For:
            names.update(_target_names(item.target))
        elif kind is cst.AsName:
            names.update(_target_names(item.name))
        elif (kind is cst.Import or kind is cst.ImportFrom) and not is_torch_import(item):
            # a torch import binds one of the file's aliases, not a shadowing local
            for alias in item.names if not isinstance(item.names, cst.ImportStar) else ():
                if alias.asname is not None:
                    names.update(_target_names(alias.asname.name))
    return names


@dataclass
class _Scope:
    """One function (or the module) being rewritten."""

    bound: set[str]
    rngs: str | None = None  # the target's randomness available here (its rngs_name)
    needs_rngs: bool = False  # random sampling without a seed: add the target's unseeded_statement()
    pending_defs: list[tuple[cst.BaseStatement, str]] = field(default_factory=list)
    in_converted_init: bool = False
    method: str | None = None  # the name of a converted class's method
    has_backward: bool = False  # a .backward() call somewhere in this function
    kind: str = "function"  # function | class | comprehension | module
    globals: set[str] = field(default_factory=set)  # names declared `global` here


class ScopesMixin:
    """The scope stack (`scopes`), name resolution (`qualname`) and function entry and exit."""

    def shadowed(self, name: str) -> bool:
        """Python's scoping: enclosing functions and comprehensions shadow a module-level
        import; a class body's names shadow only code directly in that body."""
        for depth, scope in enumerate(reversed(self.scopes[1:])):
            if scope.kind == "class" and depth > 0:
                continue
            if name in scope.bound and name not in scope.globals:
                return True
            if name in scope.globals:
                return False
        return False

    def qualname(self, node: cst.BaseExpression) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        root, _, rest = dotted.partition(".")
        if root not in self.aliases or self.shadowed(root):
            return None
        base = self.aliases[root]
        return f"{base}.{rest}" if rest else base

    def _fscope(self) -> _Scope:
        """The innermost function (or the module): where statements and variables live."""
        for scope in reversed(self.scopes):
            if scope.kind in ("function", "module"):
                return scope
        return self.scopes[0]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.handled_refs.add(id(node.name))  # `def init(self)` binds a name: not a use of torch's `init`
        bound = _bindings(node)
        in_class = bool(self.class_stack) and self.class_stack[-1]
        is_init = in_class and node.name.value == "__init__"
        builds = is_init or (in_class and self._is_builder(node.name.value))  # takes rngs
        rngs_name = self.target.rngs_name
        # no `.backward(` in the file: none in the function (printing it costs as much as parsing it)
        has_backward = self.scopes[0].has_backward and self._mentions_backward(node)
        scope = _Scope(bound=bound - {rngs_name} if builds else bound, in_converted_init=is_init,
                       has_backward=has_backward, method=node.name.value if in_class else None)
        if builds or self._init_function_needs_rngs(node.name.value):
            scope.rngs = rngs_name  # builders and init functions drawing random numbers take rngs too
            scope.bound.discard(rngs_name)
        self.scopes.append(scope)
        self.class_stack.append(False)
        self.todo_stack.append([])  # the header's TODOs (decorators, annotations) go above the def

    def _mentions_backward(self, node: cst.FunctionDef) -> bool:
        """`.backward(` in the function's code (comments and decorators too), read off the source
        between where the function starts and ends rather than printed again."""
        start, end = self.positions.get(id(node)), self.ends.get(id(node))
        if start is None or end is None:
            return ".backward(" in code_of(node)
        if self.line_offsets is None:
            self.line_offsets = [0, *(m.end() for m in _NEWLINE.finditer(self.code))]
        offsets = self.line_offsets
        if ".backward(" in self.code[offsets[start[0] - 1] + start[1]:offsets[end[0] - 1] + end[1]]:
            return True
        before = [*node.leading_lines, *node.lines_after_decorators]  # what comes before its start
        if node.decorators or any(line.comment is not None for line in before):
            return ".backward(" in code_of(node)
        return False

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        return _with_todos(self._leave_function(original, updated), self.todo_stack.pop())

    def _leave_function(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        self.class_stack.pop()
        scope = self.scopes.pop()
        in_class = bool(self.class_stack) and self.class_stack[-1]
        if in_class:
            updated = self._convert_method(original, updated)
        if self._init_function_needs_rngs(original.name.value):
            updated = self._add_rngs_param(original, updated)
        body = list(updated.body.body) if isinstance(updated.body, cst.IndentedBlock) else None
        if body is not None:
            body = self._insert_pending(scope, body)
            if scope.needs_rngs:
                at = 1 if body and _is_docstring(body[0]) else 0
                body.insert(at, cst.parse_statement(self.target.unseeded_statement() + "\n"))
            updated = updated.with_changes(body=updated.body.with_changes(body=body))
        return updated

    def _visit_comprehension(self, node) -> None:
        bound: set[str] = set()
        comp = node.for_in
        while comp is not None:
            bound |= _target_names(comp.target)
            comp = comp.inner_for_in
        self.scopes.append(_Scope(bound=bound, kind="comprehension"))

    def _leave_comprehension(self, original, updated):
        self.scopes.pop()
        return updated

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    leave_ListComp = leave_SetComp = leave_DictComp = leave_GeneratorExp = _leave_comprehension

    def visit_Global(self, node: cst.Global) -> None:
        for item in node.names:
            self.handled_refs.add(id(item.name))
            self.scopes[-1].globals.add(item.name.value)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        for item in node.names:
            self.handled_refs.add(id(item.name))

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._stores(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._stores(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._stores(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._stores(node.target)
        self.todo_stack.append([])

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._stores(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._stores(node.name)

    def visit_Param(self, node: cst.Param) -> None:
        self.handled_refs.add(id(node.name))

    def _stores(self, target) -> None:
        """Names being bound are not uses of a torch import."""
        if isinstance(target, cst.Name):
            self.handled_refs.add(id(target))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._stores(element.value)
        elif isinstance(target, cst.StarredElement):
            self._stores(target.value)
