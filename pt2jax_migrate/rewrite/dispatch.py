"""libcst's hook dispatch, resolved once per node type instead of by name at every node.

CSTTransformer finds visit_X / leave_X with getattr on a formatted name for every node, and
visit_X_attr / leave_X_attr for every child field of every node (libcst's own no-ops, as no
mixin defines one). Same hooks, same order, same results: the lookup is cached per (class,
node type), libcst's no-op defaults are skipped, and the per-field hooks are skipped unless a
class of the transformer defines one."""

from __future__ import annotations

import libcst as cst

_MISSING = object()
_VISITS: dict[tuple[type, type], object] = {}
_LEAVES: dict[tuple[type, type], object] = {}
_FIELD_HOOKS: dict[type, bool] = {}


def _hook(cls: type, name: str):
    """cls's hook `name`, None when it is libcst's default (a no-op, or `return updated_node`)."""
    func = getattr(cls, name, None)
    return None if func is None or getattr(cst.CSTTransformer, name, None) is func else func


def _has_field_hooks(cls: type) -> bool:
    """Whether a class of `cls` other than libcst's defines a visit_X_attr / leave_X_attr hook."""
    names = {name for name in dir(cst.CSTTransformer) if name.count("_") >= 2
             and name.startswith(("visit_", "leave_"))}
    return any(_hook(cls, name) is not None for name in names if name.split("_", 2)[2])


class DispatchMixin:
    """on_visit / on_leave / on_visit_attribute / on_leave_attribute of cst.CSTTransformer."""

    def on_visit(self, node: cst.CSTNode) -> bool:
        if type(node) is cst.SimpleStatementLine and self._untouched(node):  # skipping.py
            self.skipped.add(id(node))
            return False
        key = (type(self), type(node))
        func = _VISITS.get(key, _MISSING)
        if func is _MISSING:
            func = _VISITS[key] = _hook(type(self), f"visit_{type(node).__name__}")
        return True if func is None else func(self, node) is not False

    def on_leave(self, original_node, updated_node):
        if id(original_node) in self.skipped:  # not visited: no hook either, the node as parsed
            return updated_node
        key = (type(self), type(original_node))
        func = _LEAVES.get(key, _MISSING)
        if func is _MISSING:
            func = _LEAVES[key] = _hook(type(self), f"leave_{type(original_node).__name__}")
        return updated_node if func is None else func(self, original_node, updated_node)

    def _field_hooks(self) -> bool:
        found = _FIELD_HOOKS.get(type(self))
        if found is None:
            found = _FIELD_HOOKS[type(self)] = _has_field_hooks(type(self))
        return found

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if self._field_hooks():
            cst.CSTTransformer.on_visit_attribute(self, node, attribute)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        if self._field_hooks():
            cst.CSTTransformer.on_leave_attribute(self, original_node, attribute)
