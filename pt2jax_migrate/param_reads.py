"""Parameters handed to a library that only knows arrays, read off the `ast` once.

`repeat(self.cls_token, "1 1 d -> b 1 d", b=b)` (einops, as lucidrains' models write it): jnp
takes a converted `nnx.Param` as an array, but einops picks its backend by the argument's type
and refuses one it does not know. The rewrite reads the value there, `self.cls_token[...]`
(what NNX itself would write); the Parameter's own conversion is already reported on its line.
"""

from __future__ import annotations

import ast

from .names import import_bindings

# functions (qualified-name prefixes) that dispatch on the array's type; einops' torch layers
# are converted as layers, not here
ARRAY_ONLY = ("einops.",)
_NOT = ("einops.layers.",)


def _parameters(cls: ast.ClassDef, aliases: dict[str, str]) -> set[str]:
    """`self.p = nn.Parameter(...)` anywhere in the class -> {"p"}."""
    out = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call):
            target, func = node.targets[0], node.value.func
            head = func
            while isinstance(head, ast.Attribute):
                head = head.value
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "self" and isinstance(head, ast.Name)
                    and aliases.get(head.id, "").startswith("torch")
                    and (isinstance(func, ast.Attribute) and func.attr == "Parameter"
                         or isinstance(func, ast.Name) and aliases.get(func.id, "").endswith(".Parameter"))):
                out.add(target.attr)
    return out


def _qualname(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id], *reversed(parts)])
    return None


def param_reads(tree: ast.Module) -> set[tuple[int, int]]:
    """(line, col_offset) of each `self.p` (an nn.Parameter of its class) passed positionally
    to an ARRAY_ONLY function."""
    aliases: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            aliases.update(import_bindings(node))
    if not any(q.startswith(ARRAY_ONLY) for q in aliases.values()):
        return set()
    out: set[tuple[int, int]] = set()
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        params = _parameters(cls, aliases)
        if not params:
            continue
        for node in ast.walk(cls):
            if not isinstance(node, ast.Call):
                continue
            q = _qualname(node.func, aliases)
            if q is None or not q.startswith(ARRAY_ONLY) or q.startswith(_NOT):
                continue
            for arg in node.args:
                if (isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "self"
                        and arg.attr in params):
                    out.add((arg.lineno, arg.col_offset))
    return out
