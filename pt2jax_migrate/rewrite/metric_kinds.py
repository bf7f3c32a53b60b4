"""What a device-side metric sums: an int count or a float (rewrite/device_metrics.py)."""

from __future__ import annotations

import libcst as cst

from .cst_util import names_in

_COMPARE_METHODS = {"eq", "ne", "lt", "le", "gt", "ge"}


def _literal_kind(value) -> str | None:
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        value = value.expression
    if isinstance(value, cst.Integer):
        return "int"
    if isinstance(value, cst.Float):
        return "float"
    return None


def _item_receivers(node) -> list[cst.BaseExpression]:
    found: list[cst.BaseExpression] = []

    class Find(cst.CSTVisitor):
        def visit_Call(self, call) -> None:
            if (not call.args and isinstance(call.func, cst.Attribute) and call.func.attr.value == "item"):
                found.append(call.func.value)

    node.visit(Find())
    return found


def _sum_kind(aug: cst.AugAssign, outputs: frozenset[str]) -> str | None:
    """'int' / 'float' for `NAME += <.item() of the step's outputs>`, else None (left alone)."""
    if not isinstance(aug.operator, cst.AddAssign):
        return None
    receivers = _item_receivers(aug.value)
    if not receivers or not all(names_in(r) & outputs for r in receivers):
        return None
    kinds = {_receiver_kind(r) for r in receivers}
    if None in kinds:
        return None
    # `a.item() * n`, `a.item() + b.item()`: any float makes the sum a float
    if len(receivers) == 1 and isinstance(aug.value, cst.Call):
        return kinds.pop()
    return "float" if "float" in kinds or _has_float(aug.value) else (
        "int" if _only_ints(aug.value, receivers) else None)


def _receiver_kind(receiver) -> str | None:
    """A count (`(pred == y).sum()`, `pred.eq(y).sum()`) or a float (anything else reduced
    from the step's float outputs, e.g. the loss)."""
    if (isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute)
            and receiver.func.attr.value == "sum" and not receiver.args):
        counted = receiver.func.value
        if isinstance(counted, cst.Comparison):
            return "int"
        if (isinstance(counted, cst.Call) and isinstance(counted.func, cst.Attribute)
                and counted.func.attr.value in _COMPARE_METHODS):
            return "int"
    if _mentions_compare(receiver):
        return None  # some other reduction of a comparison: its dtype is not clear here
    return "float"


def _mentions_compare(node) -> bool:
    hits = []

    class Find(cst.CSTVisitor):
        def visit_Comparison(self, _node) -> None:
            hits.append(1)

    node.visit(Find())
    return bool(hits)


def _has_float(node) -> bool:
    hits = []

    class Find(cst.CSTVisitor):
        def visit_Float(self, _node) -> None:
            hits.append(1)

        def visit_BinaryOperation(self, op) -> None:
            if isinstance(op.operator, cst.Divide):
                hits.append(1)

    node.visit(Find())
    return bool(hits)


def _only_ints(node, receivers) -> bool:
    """Only int receivers combined by + - * with integer literals."""
    if isinstance(node, cst.Integer):
        return True
    if any(node is r for r in receivers):
        return True
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "item":
        return any(node.func.value is r for r in receivers)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract, cst.Multiply)):
        return _only_ints(node.left, receivers) and _only_ints(node.right, receivers)
    return False
