"""libcst's hook dispatch, resolved once per node type instead of by name at every node.

CSTTransformer finds visit_X / leave_X with getattr on a formatted name for every node, and
visit_X_attr / leave_X_attr for every child field of every node (libcst's own no-ops, as no
mixin defines one). Same hooks, same order, same results: the lookup is cached per (class,
node type), libcst's no-op defaults are skipped, and the per-field hooks are skipped unless a
class of the transformer defines one."""

from __future__ import annotations

import libcst as cst
from libcst._nodes import op as _op, whitespace as _whitespace

_MISSING = object()
_SKIPPABLE = frozenset({cst.SimpleStatementLine, cst.If, cst.For, cst.While, cst.With, cst.Try, cst.TryStar,
                        cst.FunctionDef})
_VISITS: dict[tuple[type, type], object] = {}
_LEAVES: dict[tuple[type, type], object] = {}
_INERT: dict[type, frozenset[type]] = {}  # per transformer class: node types no hook of it acts on
_BRACKETS = (cst.LeftParen, cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace,
             cst.RightCurlyBrace)


def _inert(cls: type) -> frozenset[type]:
    """Whitespace, comments, punctuation and operators (libcst's whitespace and op modules, the
    brackets) that `cls` has no visit_X / leave_X hook for: nodes made of text only, left as
    parsed (their children unvisited, the node not rebuilt)."""
    found = _INERT.get(cls)
    if found is None:
        kinds = [v for module in (_op, _whitespace) for v in vars(module).values()
                 if isinstance(v, type) and issubclass(v, cst.CSTNode) and v.__module__ == module.__name__]
        found = _INERT[cls] = frozenset(kind for kind in [*kinds, *_BRACKETS]
                                        if _hook(cls, f"visit_{kind.__name__}") is None
                                        and _hook(cls, f"leave_{kind.__name__}") is None)
    return found


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

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # set on the transformer class, once its hooks are all there: _inert_types, and whether
        # to pass on on_visit/leave_attribute, which libcst calls for every field of every node
        cls._inert_types = _inert(cls)
        cls._with_field_hooks = _has_field_hooks(cls)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if type(node) in self._inert_types:  # text only: nothing to visit below it
            return False
        if type(node) in _SKIPPABLE and self._untouched(node):  # skipping.py
            self.skipped.add(id(node))
            return False
        key = (type(self), type(node))
        func = _VISITS.get(key, _MISSING)
        if func is _MISSING:
            func = _VISITS[key] = _hook(type(self), f"visit_{type(node).__name__}")
        return True if func is None else func(self, node) is not False

    def on_leave(self, original_node, updated_node):
        if type(original_node) in self._inert_types:
            return updated_node
        if id(original_node) in self.skipped:  # not visited: no hook either, the node as parsed
            return updated_node
        key = (type(self), type(original_node))
        func = _LEAVES.get(key, _MISSING)
        if func is _MISSING:
            func = _LEAVES[key] = _hook(type(self), f"leave_{type(original_node).__name__}")
        return updated_node if func is None else func(self, original_node, updated_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if self._with_field_hooks:
            cst.CSTTransformer.on_visit_attribute(self, node, attribute)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        if self._with_field_hooks:
            cst.CSTTransformer.on_leave_attribute(self, original_node, attribute)
