"""`NAME = Net(...)` -> `NAME = LinenModel(Net(...), key)` (libcst; the rewrite's half of training.py,
kept apart so that lint, which imports the target, never loads libcst)."""

from __future__ import annotations

import libcst as cst

from .facts import PLACEMENT

class _Wrap(cst.CSTTransformer):
    def __init__(self, classes: set[str], skip: set[str]):
        self.classes = classes
        self.skip = classes | skip
        self.wrapped = 0
        self.depth = 0

    def visit_ClassDef(self, node) -> bool:
        return node.name.value not in self.skip  # inside a converted or Linen module: submodules

    def leave_Assign(self, original, updated):
        if len(updated.targets) != 1 or not isinstance(updated.targets[0].target, cst.Name):
            return updated
        value = _placed(updated.value)
        if (isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "data_parallel"
                and len(value.args) == 1):  # data_parallel(Net()): the handle, replicated
            inner = _placed(value.args[0].value)
            if self._construction(inner):
                return updated.with_changes(value=value.with_changes(args=[cst.Arg(self._wrap(inner))]))
        if not self._construction(value):
            return updated
        return updated.with_changes(value=self._wrap(value))

    def _construction(self, value) -> bool:
        return isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in self.classes

    def _wrap(self, value):
        self.wrapped += 1
        wrapped = cst.parse_expression(f"LinenModel(__m__, jax.random.key({self.wrapped - 1}))")
        return wrapped.with_changes(args=[cst.Arg(value), *wrapped.args[1:]])


def _placed(value):
    """`Net().to(device).train()` -> `Net()`: the model is the same."""
    while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in PLACEMENT:
        value = value.func.value
    return value


def wrap_constructions(module: cst.Module, classes: set[str], linen: set[str] = frozenset()) -> tuple[cst.Module, int]:
    """`NAME = Net(...)` outside converted classes and Linen modules (`linen`: facts.linen_classes)
    -> `NAME = LinenModel(Net(...), key)`."""
    wrap = _Wrap(set(classes), set(linen))
    return module.visit(wrap), wrap.wrapped
