"""Parameters handed to a library that only knows arrays, read off the `ast` once.

`repeat(self.cls_token, "1 1 d -> b 1 d", b=b)` (einops, as lucidrains' models write it): jnp
takes a converted `nnx.Param` as an array, but einops picks its backend by the argument's type
and refuses one it does not know. The rewrite reads the value there, `self.cls_token[...]`
(what NNX itself would write); the Parameter's own conversion is already reported on its line.
A registered buffer used as an index, or handed to a plain function, is read the same way.
"""

from __future__ import annotations

import ast

from .astwalk import walk as _walk
from .names import module_aliases, qualname_of

# functions (qualified-name prefixes) that dispatch on the array's type; einops' torch layers
# are converted as layers, not here
ARRAY_ONLY = ("einops.",)
_NOT = ("einops.layers.",)


def _parameters(cls: ast.ClassDef, aliases: dict[str, str]) -> set[str]:
    """`self.p = nn.Parameter(...)` anywhere in the class -> {"p"}."""
    out = set()
    for node in _walk(cls):
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


def _buffers(cls: ast.ClassDef) -> set[str]:
    """`self.register_buffer("name", ...)` anywhere in the class -> {"name"}."""
    return {node.args[0].value for node in _walk(cls)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "register_buffer" and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self" and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)}


def _buffer_reads(tree: ast.Module, out: set[tuple[int, int]]) -> None:
    """A registered buffer used as an index (`table[self.index]`) or handed to a plain function
    (`bias(self.table, self.index)`, which may index with it): jax takes no Variable as an
    index, so the value is read there (`self.index[...]`); arithmetic on it needs no change."""
    for cls in _walk(tree):
        buffers = _buffers(cls) if isinstance(cls, ast.ClassDef) else set()
        if not buffers:
            continue
        for node in _walk(cls):
            if isinstance(node, ast.Subscript):
                reads = [node.slice]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                reads = [*node.args, *(k.value for k in node.keywords)]
            else:
                continue
            for arg in reads:
                if (isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "self"
                        and arg.attr in buffers and isinstance(arg.ctx, ast.Load)):
                    out.add((arg.lineno, arg.col_offset))


def param_reads(tree: ast.Module) -> set[tuple[int, int]]:
    """(line, col_offset) of each `self.p` (an nn.Parameter of its class) passed positionally
    to an ARRAY_ONLY function, and of each buffer read as an index or a function's argument."""
    out: set[tuple[int, int]] = set()
    _buffer_reads(tree, out)
    aliases = module_aliases(tree)
    if not any(q.startswith(ARRAY_ONLY) for q in aliases.values()):
        return out
    for cls in _walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        params = _parameters(cls, aliases)
        if not params:
            continue
        for node in _walk(cls):
            if not isinstance(node, ast.Call):
                continue
            q = qualname_of(node.func, aliases)
            if q is None or not q.startswith(ARRAY_ONLY) or q.startswith(_NOT):
                continue
            for arg in node.args:
                if (isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "self"
                        and arg.attr in params):
                    out.add((arg.lineno, arg.col_offset))
    return out
