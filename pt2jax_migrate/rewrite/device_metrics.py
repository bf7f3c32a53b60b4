"""Metrics stay on the device: `total += loss.item()` in a loop that calls a converted train
step becomes `total += loss` (no host sync per step), and every other read of `total` in the
scope becomes `float(total)` (`int(total)` for a count), so it is a Python number wherever
the program looks at it, as in the original.

Only accumulators whose value is fully known are converted: bound by number literals and
`+=` of `.item()` on the step's own outputs, never read by a nested function, never read
unconditionally in the loop that accumulates (a program that prints every step keeps its
`.item()`: converting would sync per step anyway). Sums run in the array's dtype (float32)
instead of Python's float64: the same to about 1e-7 relative per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from .cst_util import _children, names_in, statements_in
from .node_ids import NodeMap
from .metric_kinds import _literal_kind, _sum_kind

_LOOPS = (cst.For, cst.While)


@dataclass
class _Accumulator:
    kinds: set[str] = field(default_factory=set)  # "int" / "float" of its literals and sums
    sums: list[cst.AugAssign] = field(default_factory=list)
    loops: set[int] = field(default_factory=set)  # ids of the loops that accumulate it
    reads: list[tuple[int | None, bool]] = field(default_factory=list)  # (innermost loop, under an if)
    ok: bool = True


def device_metrics(body: list, step_outputs: NodeMap[frozenset[str]]) -> list:
    """The scope's statements with its step metrics accumulated on the device."""
    if not step_outputs or not _holds_step(body, step_outputs):
        return body
    found: dict[str, _Accumulator] = {}
    _scan(body, None, False, frozenset(), step_outputs, found)
    convert = {}
    for name, acc in found.items():
        if not acc.ok or not acc.sums or "?" in acc.kinds:
            continue
        if any(loop in acc.loops and not under_if for loop, under_if in acc.reads):
            continue  # read every step (printed per step): the per-step .item() stays
        convert[name] = "float" if "float" in acc.kinds else "int"
    if not convert:
        return body
    sums = {id(s) for name in convert for s in found[name].sums}
    rewriter = _Rewrite(convert, sums)
    return [stmt if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) else stmt.visit(rewriter) for stmt in body]


def _holds_step(body, step_outputs) -> bool:
    """Whether a train-step call stands where _scan can find its outputs (below a statement of
    the scope other than a def or class): without one, nothing here is a step metric."""
    return any(node in step_outputs for stmt in body if not isinstance(stmt, (cst.FunctionDef, cst.ClassDef))
               for node in statements_in(stmt))


def _outputs_within(node, step_outputs) -> frozenset[str]:
    """The names the train-step calls below node assign."""
    names: set[str] = set()

    class Find(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, stmt) -> None:
            names.update(step_outputs.get(stmt, ()))

    node.visit(Find())
    return frozenset(names)


def _scan(stmts, loop, under_if, outputs, step_outputs, found) -> None:
    for stmt in stmts:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            _poison_later(stmt, found)  # every name in it, those already found too
            continue
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                _small(small, loop, under_if, outputs, found)
            continue
        if isinstance(stmt, _LOOPS) and isinstance(stmt.body, cst.IndentedBlock):
            header = [stmt.iter] if isinstance(stmt, cst.For) else [stmt.test]
            _reads(header, loop, under_if, found)
            if isinstance(stmt, cst.For):
                _bind_other(stmt.target, found)
            inner = outputs | _outputs_within(stmt.body, step_outputs)
            _scan(stmt.body.body, id(stmt), False, inner, step_outputs, found)
            if stmt.orelse is not None and isinstance(stmt.orelse.body, cst.IndentedBlock):
                _scan(stmt.orelse.body.body, loop, under_if, outputs, step_outputs, found)
            continue
        if isinstance(stmt, cst.If) and isinstance(stmt.body, cst.IndentedBlock):
            _reads([stmt.test], loop, under_if, found)
            _scan(stmt.body.body, loop, True, outputs, step_outputs, found)
            orelse = stmt.orelse
            if isinstance(orelse, cst.If):
                _scan([orelse], loop, True, outputs, step_outputs, found)
            elif orelse is not None and isinstance(orelse.body, cst.IndentedBlock):
                _scan(orelse.body.body, loop, True, outputs, step_outputs, found)
            elif orelse is not None:
                _poison_later(orelse, found)
            continue
        _poison_later(stmt, found)  # with / try / match: kept simple, their names are left alone


def _poison_later(stmt, found) -> None:
    """A nested function or class may read any name: none of them is converted."""
    for name in names_in(stmt):
        found.setdefault(name, _Accumulator()).ok = False


def _small(small, loop, under_if, outputs, found) -> None:
    if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name):
        name = small.target.value
        acc = found.setdefault(name, _Accumulator())
        kind = _sum_kind(small, outputs) if loop is not None else None
        if kind is None:
            acc.ok = False
        else:
            acc.kinds.add(kind)
            acc.sums.append(small)
            acc.loops.add(loop)
        _reads([small.value], loop, under_if, found)
        return
    if isinstance(small, cst.Assign):
        for target in small.targets:
            if isinstance(target.target, cst.Name):
                acc = found.setdefault(target.target.value, _Accumulator())
                kind = _literal_kind(small.value)
                if kind is None:
                    acc.ok = False
                else:
                    acc.kinds.add(kind)
            elif (isinstance(target.target, cst.Tuple) and isinstance(small.value, cst.Tuple)
                  and len(target.target.elements) == len(small.value.elements)
                  and all(isinstance(e.value, cst.Name) for e in target.target.elements)):
                # `total, correct = 0.0, 0`
                for name_el, value_el in zip(target.target.elements, small.value.elements):
                    acc = found.setdefault(name_el.value.value, _Accumulator())
                    kind = _literal_kind(value_el.value)
                    if kind is None or isinstance(value_el, cst.StarredElement):
                        acc.ok = False
                    else:
                        acc.kinds.add(kind)
            else:
                _bind_other(target.target, found)
        _reads([small.value], loop, under_if, found)
        return
    if isinstance(small, (cst.Global, cst.Nonlocal, cst.Del, cst.AnnAssign, cst.AugAssign)):
        _poison_later(small, found)
        return
    _reads([small], loop, under_if, found)


def _bind_other(target, found) -> None:
    for name in names_in(target):
        found.setdefault(name, _Accumulator()).ok = False


def _reads(nodes, loop, under_if, found) -> None:
    for node in nodes:
        for name in names_in(node):
            found.setdefault(name, _Accumulator()).reads.append((loop, under_if))
        for inner in _rebound_or_owners(node):
            found.setdefault(inner, _Accumulator()).ok = False  # `total.item()` would break on a float


def _rebound_or_owners(node) -> set[str]:
    """The names a walrus below node binds, and those an attribute is read off (`total.item()`):
    one walk over every node (imports too), field by field."""
    names: set[str] = set()
    stack = [node]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is cst.NamedExpr:
            names.update(names_in(node.target))
        elif kind is cst.Attribute and type(node.value) is cst.Name:
            names.add(node.value.value)
        stack.extend(_children(node))
    return names


class _Rewrite(cst.CSTTransformer):
    """Strips `.item()` from the accumulations; every read of an accumulator elsewhere is
    converted to a Python number where it happens."""

    def __init__(self, convert: dict[str, str], sums: set[int]):
        super().__init__()
        self.convert = convert
        self.sums = sums
        self.in_sum = 0

    def on_leave(self, original, updated):
        # unchanged nodes keep their identity: the pass that places train steps finds its
        # calls by identity
        result = super().on_leave(original, updated)
        if result is not original and isinstance(result, cst.CSTNode) and result.deep_equals(original):
            return original
        return result

    def visit_FunctionDef(self, node) -> bool:
        return False

    def visit_ClassDef(self, node) -> bool:
        return False

    def visit_AugAssign(self, node) -> None:
        if id(node) in self.sums:
            self.in_sum += 1

    def leave_AugAssign(self, original, updated):
        if id(original) not in self.sums:
            return updated
        self.in_sum -= 1
        return updated.with_changes(target=original.target)

    def leave_Call(self, original, updated):
        if (self.in_sum and not original.args and isinstance(original.func, cst.Attribute)
                and original.func.attr.value == "item"):
            return updated.func.value.with_changes(lpar=[*updated.lpar, *updated.func.value.lpar],
                                                   rpar=[*updated.func.value.rpar, *updated.rpar])
        return updated

    def leave_Name(self, original, updated):
        kind = self.convert.get(original.value)
        if kind is None or self.in_sum:
            return updated
        return cst.Call(func=cst.Name(kind), args=[cst.Arg(updated)])

    # names in these positions are not reads of the accumulator
    def leave_Attribute(self, original, updated):
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original, updated):
        return updated.with_changes(keyword=original.keyword)

    def leave_AssignTarget(self, original, updated):
        return original

    def leave_Param(self, original, updated):
        return updated.with_changes(name=original.name)

    def leave_CompFor(self, original, updated):
        return updated.with_changes(target=original.target)

    def leave_For(self, original, updated):
        return updated.with_changes(target=original.target)
