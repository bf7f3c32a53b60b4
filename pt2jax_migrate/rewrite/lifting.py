"""The pieces of a train step: the planner's summary of a libcst statement (`_cst_info`) and
the lifter that turns the data a forward pass reads into train-step parameters."""

from __future__ import annotations

import libcst as cst

from .. import trainstep
from .cst_util import _expr_call, _target_names, code_of, names_in
from .todos import _has_todo

def _cst_info(stmt, qualname) -> trainstep.StmtInfo:
    """The planner's summary of one libcst statement (trainstep.ast_info is its twin)."""
    method = None
    call = _expr_call(stmt)
    clip = None
    if call is not None and qualname(call.func) in trainstep.CLIPS:
        clip = trainstep.clip_info([code_of(a.value) for a in call.args if a.keyword is None],
                                   {a.keyword.value: code_of(a.value) for a in call.args if a.keyword is not None},
                                   qualname(call.func))
    if (call is not None and isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name)
            and trainstep.is_training_call(call.func.attr.value, sum(a.keyword is None for a in call.args),
                                           [a.keyword.value for a in call.args if a.keyword is not None])):
        method = (call.func.value.value, call.func.attr.value)
    targets = _assign_targets(stmt)
    called: set[str] = set()
    grad = []

    class Calls(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            if isinstance(node.func, cst.Name):
                called.add(node.func.value)

        def visit_Attribute(self, node: cst.Attribute) -> None:
            if node.attr.value == "grad" or node.attr.value in trainstep.GRAD_FUNCTIONS:
                grad.append(node)

        def visit_Name(self, node: cst.Name) -> None:
            if node.value in trainstep.GRAD_FUNCTIONS:
                grad.append(node)

    stmt.visit(Calls())
    return trainstep.StmtInfo(method, None if targets is None else frozenset(targets), frozenset(names_in(stmt)),
                              frozenset(called), clip, _has_todo(stmt), bool(grad))


def _assign_targets(stmt) -> set[str] | None:
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if isinstance(small, cst.Assign):
        names: set[str] = set()
        for target in small.targets:
            if not isinstance(target.target, (cst.Name, cst.Tuple, cst.List)):
                return None
            names |= _target_names(target.target)
        return names
    if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) and small.value is not None:
        return {small.target.value}
    return None


class _Lifter(cst.CSTTransformer):
    """Turns the data a forward pass reads (batches, labels) into train-step parameters.

    Expressions that mention the model or values computed from it stay; callees, literals and
    module-level names stay; every other maximal sub-expression becomes a parameter.
    """

    def __init__(self, model: str, tainted: set[str], closure: set[str]):
        self.model, self.tainted, self.closure = model, tainted, closure
        self.params: list[tuple[str, cst.BaseExpression]] = []
        self.by_code: dict[str, str] = {}
        self.lifted: dict[int, str] = {}
        self.callees: set[int] = set()
        self.not_expressions: set[int] = set()  # attribute names and keyword names
        self.taken = {model, *tainted}

    def _free(self, node: cst.CSTNode) -> set[str]:
        return names_in(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if id(node) in self.not_expressions:
            return False
        if isinstance(node, cst.Attribute):
            self.not_expressions.add(id(node.attr))
        if isinstance(node, cst.Arg) and node.keyword is not None:
            self.not_expressions.add(id(node.keyword))
        if isinstance(node, cst.Call):
            self.callees.add(id(node.func))
        if isinstance(node, (cst.AssignTarget,)):
            return False
        if not isinstance(node, cst.BaseExpression) or isinstance(node, cst.Lambda):
            return not isinstance(node, cst.Lambda)
        if id(node) in self.callees:
            return bool(self._free(node) & (self.tainted | {self.model}))
        free = self._free(node)
        if free & (self.tainted | {self.model}):
            return True
        if not (free - self.closure):
            return False  # literals and module-level names: keep inline
        if isinstance(node, cst.Subscript) and not (names_in(node) - names_in(node.value) - {"None", "True", "False"}):
            return True  # `y[:, None]`: pass `y`, keep the constant indexing inside the step
        code = code_of(node).strip()
        if code not in self.by_code:
            name = _param_name(node)
            base, i = name, 1
            while name in self.taken:
                name = f"{base}_{i}"
                i += 1
            self.taken.add(name)
            self.by_code[code] = name
            self.params.append((name, node))
        self.lifted[id(node)] = self.by_code[code]
        return False

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode):
        name = self.lifted.get(id(original))
        if name is not None:
            return cst.Name(name)
        return updated


def _param_name(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Subscript):
        return _param_name(node.value)
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return "batch"


def defs_before(body: list, texts: dict[int, list[str]], blank_lines: int) -> list:
    """body with the lifted defs `texts[id(stmt)]` right before each stmt, in order, in one pass
    (set apart by `blank_lines` blank lines, and stmt from them)."""
    if not texts:
        return body
    out: list = []
    for stmt in body:
        for text in texts.get(id(stmt), ()):
            new_def = cst.parse_statement(text)
            if out:
                new_def = new_def.with_changes(leading_lines=[cst.EmptyLine(indent=False)] * blank_lines)
            out.append(new_def)
        if id(stmt) in texts:
            blanks = next((i for i, line in enumerate(stmt.leading_lines) if line.comment is not None),
                          len(stmt.leading_lines))
            if blanks < blank_lines:
                extra = [cst.EmptyLine(indent=False)] * (blank_lines - blanks)
                stmt = stmt.with_changes(leading_lines=[*extra, *stmt.leading_lines])
        out.append(stmt)
    return out
