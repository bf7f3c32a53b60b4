"""Sets and maps of nodes the transform builds, by identity.

The passes key their tables by `id(node)` (libcst nodes compare by value, so two equal
expressions would share a key). That is safe for the parsed tree's nodes, which live as long
as the rewrite, but not for a node the transform makes and later drops: Python reuses a freed
object's id, so a later node could take it and look like a member (a user's parenthesised
`return (...)` then lost its parentheses as if they were ours: "rewrite produced invalid
code", depending on what the process had allocated before). These keep their nodes alive."""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")


class NodeSet:
    """Nodes, by identity."""

    def __init__(self) -> None:
        self._nodes: dict[int, object] = {}

    def add(self, node: object) -> None:
        self._nodes[id(node)] = node

    def discard(self, node: object) -> None:
        self._nodes.pop(id(node), None)

    def __contains__(self, node: object) -> bool:
        return self._nodes.get(id(node)) is node

    def __bool__(self) -> bool:
        return bool(self._nodes)


class NodeMap(Generic[V]):
    """node -> value, by identity."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[object, V]] = {}

    def __setitem__(self, node: object, value: V) -> None:
        self._items[id(node)] = (node, value)

    def get(self, node: object, default=None):
        item = self._items.get(id(node))
        return item[1] if item is not None and item[0] is node else default

    def __contains__(self, node: object) -> bool:
        item = self._items.get(id(node))
        return item is not None and item[0] is node

    def __bool__(self) -> bool:
        return bool(self._items)
