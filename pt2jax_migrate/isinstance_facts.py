"""Facts about `isinstance(x, T)` tests, read off the `ast` once (lint and rewrite alike): every
torch name the file names (so that core.decide can tell whether a test of nn.Conv2d would also
match the file's nn.Conv1d layers once both are one converted class), and, for each type tested,
the torch names tested by the same call (`isinstance(m, (nn.Conv1d, nn.Conv2d))` is exact)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from .astwalk import walk
from .core.constructs import isinstance_type_nodes
from .names import import_bindings, is_torch_name, qualname_of

Position = tuple[int, int]  # (line, column) of a node


@dataclass(frozen=True)
class IsinstanceFacts:
    named: frozenset[str] = frozenset()  # every torch name the file names, anywhere
    groups: dict[Position, tuple[str, ...]] = field(default_factory=dict)  # type -> the call's types


NONE = IsinstanceFacts()


# a marker an earlier run left (core.decide): the layers it names still count as named here, so
# that a second run leaves the test as the first did (the others are converted by then)
_MARKER = re.compile(r"# TODO\(pt2jax\): PTJ901 isinstance\(\.\.\., [\w.]+\) would also match ([\w. /]+) layers here")


def isinstance_facts(tree: ast.Module, source: str) -> IsinstanceFacts:
    if "isinstance" not in source:
        return NONE
    aliases: dict[str, str] = {}  # imports at any depth: a name imported in a function counts too
    attributes, names, calls = [], [], []
    for node in walk(tree):  # cached: the other fact modules walk the same tree
        kind = type(node)
        if kind is ast.Attribute:
            attributes.append(node)
        elif kind is ast.Name:
            names.append(node)
        elif kind is ast.Call:
            calls.append(node)
        elif kind is ast.Import or kind is ast.ImportFrom:
            aliases.update(import_bindings(node))
    torch_aliases = {name: q for name, q in aliases.items() if is_torch_name(q)}
    named: set[str] = {n for found in _MARKER.findall(source) for n in found.split(" / ")} \
        if "would also match" in source else set()
    groups: dict[Position, tuple[str, ...]] = {}
    if torch_aliases:
        for node in attributes:
            q = qualname_of(node, torch_aliases)
            if q is not None:
                named.add(q)
        named.update(torch_aliases[node.id] for node in names if node.id in torch_aliases)
    for node in calls:
        if type(node.func) is ast.Name and node.func.id == "isinstance":
            types = isinstance_type_nodes(node.args)
            tested = tuple(q for q in (qualname_of(t, aliases) for t in types) if q is not None)
            for t in types:
                groups[(t.lineno, t.col_offset)] = tested
    return IsinstanceFacts(frozenset(named), groups)
