"""Import-alias resolution on `ast`, cheap enough to run inside lint's one walk.

The linter records bindings and references while it walks a module and resolves them when
the walk is over, so a name bound later in a scope (Python decides locality per scope, not
per line) still shadows the import. Only names some torch import binds are tracked.

    import torch                                   torch -> torch
    import torch.nn as nn                          nn    -> torch.nn
    from torch import nn                           nn    -> torch.nn
    from torch.nn import functional as F           F     -> torch.nn.functional
    from torch.nn import Linear as L               L     -> torch.nn.Linear

A function parameter, an assignment, a def or a class of the same name in a function
shadows the import there; `global` / `nonlocal` declarations are honoured; class bodies are
not visible from their methods; a non-import binding inside an `except` handler next to an
import of the same name (`except ImportError: torch = None`) is treated as a fallback and
does not hide the import.
"""

from __future__ import annotations

import ast

TORCH_ROOTS = ("torch", "torchvision", "einops.layers.torch")
_TORCH_PREFIXES = ("torch.", "torchvision.", "einops.layers.torch.")


def is_torch_name(qualname: str | None) -> bool:
    """torch, torchvision and anything below them (not torchmetrics, torch_geometric, ...), and
    einops' torch layers (`Rearrange` is an nn.Module; einops' functions work on jax arrays)."""
    return qualname is not None and (qualname in TORCH_ROOTS or qualname.startswith(_TORCH_PREFIXES))


def import_bindings(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
    """(bound name, qualified name) for each name an import statement binds.

    `import a.b` binds `a` (to `a`); `import a.b as c` binds `c` to `a.b`; relative imports
    give qualified names starting with dots (never torch); `*` binds nothing we can name.
    """
    out: list[tuple[str, str]] = []
    if type(node) is ast.Import:
        for alias in node.names:
            if alias.asname:
                out.append((alias.asname, alias.name))
            else:
                root = alias.name.partition(".")[0]
                out.append((root, root))
        return out
    module = "." * (node.level or 0) + (node.module or "")
    for alias in node.names:
        if alias.name == "*":
            continue
        qual = f"{module}.{alias.name}" if module and not module.endswith(".") else module + alias.name
        out.append((alias.asname or alias.name, qual))
    return out


def imported_modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads (`from a.b import c` -> ['a.b'])."""
    if type(node) is ast.Import:
        return [alias.name for alias in node.names]
    if node.level:
        return []
    return [node.module or ""]


def is_torch_import(node: ast.Import | ast.ImportFrom) -> bool:
    return any(is_torch_name(m) for m in imported_modules(node))


def dotted(node: ast.AST) -> tuple[ast.Name, list[str]] | None:
    """`a.b.c` -> (Name a, ['b', 'c']); None when the chain does not start at a plain name."""
    parts: list[str] = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is not ast.Name:
        return None
    parts.reverse()
    return node, parts


def dotted_text(node: ast.AST) -> str | None:
    """`m` / `self.heads.head` as text; None when the chain does not start at a plain name."""
    found = dotted(node)
    return None if found is None else ".".join([found[0].id, *found[1]])


def module_aliases(tree: ast.Module) -> dict[str, str]:
    """Each name the module's top-level imports bind -> the dotted name it stands for."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update(import_bindings(node))
    return out


def qualname_of(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """`nn.init.zeros_` -> "torch.nn.init.zeros_" through `aliases` (None: not an imported name's chain)."""
    found = dotted(node)
    if found is None or found[0].id not in aliases:
        return None
    return ".".join([aliases[found[0].id], *found[1]])


class Binding:
    """A name bound in a scope: by an import (qualname set) or anything else (qualname None)."""

    __slots__ = ("pos", "qualname", "import_index", "fallback")

    def __init__(self, pos: tuple[int, int], qualname: str | None = None, import_index: int = -1,
                 fallback: bool = False):
        self.pos = pos
        self.qualname = qualname
        self.import_index = import_index  # index of the torch import statement, -1 otherwise
        self.fallback = fallback


MODULE, CLASS, FUNCTION, COMPREHENSION = 0, 1, 2, 3


class Scope:
    __slots__ = ("kind", "parent", "bindings", "declared", "module", "has_backward")

    def __init__(self, kind: int, parent: Scope | None):
        self.kind = kind
        self.parent = parent
        self.bindings: dict[str, list[Binding]] = {}
        self.declared: dict[str, bool] | None = None  # name -> True for global, False for nonlocal
        self.module: Scope = parent.module if parent is not None else self
        self.has_backward = False  # a `.backward()` call in this function (or module) body

    def bind(self, name: str, binding: Binding) -> None:
        found = self.bindings.get(name)
        if found is None:
            self.bindings[name] = [binding]
        else:
            found.append(binding)

    def declare(self, names: list[str], is_global: bool) -> None:
        if self.declared is None:
            self.declared = {}
        for name in names:
            self.declared[name] = is_global

    @property
    def code_scope(self) -> Scope:
        """The function (or module) whose body this scope's code runs in."""
        scope = self
        while scope.kind == CLASS or scope.kind == COMPREHENSION:
            scope = scope.parent  # type: ignore[assignment]
        return scope


def _pick(bindings: list[Binding], pos: tuple[int, int] | None) -> Binding:
    if len(bindings) == 1:
        return bindings[0]
    if any(b.qualname is not None for b in bindings):
        bindings = [b for b in bindings if not b.fallback] or bindings
    if pos is not None:
        before = [b for b in bindings if b.pos <= pos]
        if before:
            return before[-1]
    return bindings[-1]


def lookup(scope: Scope, name: str, pos: tuple[int, int]) -> Binding | None:
    """The binding a reference at `pos` in `scope` sees, or None (a builtin or unknown name).

    References made directly in a scope's own code (a class body or a comprehension runs in
    line with its surroundings) see the latest binding before them; references from inside a
    function body see the enclosing scopes' final bindings, since functions run later.
    """
    direct = True
    current: Scope | None = scope
    while current is not None:
        declared = current.declared
        if declared is not None and name in declared:
            if declared[name]:  # global
                module = current.module
                found = module.bindings.get(name)
                return _pick(found, None) if found else None
        elif current.kind != CLASS or current is scope:
            found = current.bindings.get(name)
            if found:
                return _pick(found, pos if direct else None)
        if current.kind == FUNCTION:
            direct = False
        current = current.parent
    return None
