"""Which `nn.Sequential(name)` calls are handed a mapping of named layers, from the module's `ast`.

torch reads `nn.Sequential(layers)` two ways: an OrderedDict of (name -> layer) gives its layers in
order; any other single argument is one layer (a plain dict is an error). `nnx.Sequential` takes
the layers only, so a name bound to `OrderedDict()` (and nothing else) in the calling function becomes
`nnx.Sequential(*layers.values())` (torchvision's ViT and MaxViT, timm's DPN and NFNet build their
blocks so); so does `super().__init__(layers)` in a Sequential subclass (torchvision's RegNet). A name that is also bound to anything else is left to the plain conversion.
"""

from __future__ import annotations

import ast

from .astwalk import walk as _walk

Position = tuple[int, int]  # (line, column) of the Sequential call

_MAPPING_CALLS = frozenset({"OrderedDict", "collections.OrderedDict"})


def _is_mapping(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Call) and not value.args and not value.keywords:
        return ast.unparse(value.func) in _MAPPING_CALLS
    return False


def _own_nodes(scope: ast.AST):
    """The nodes of one function (or the module) without those of nested functions and classes."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _sequential_inits(tree: ast.Module) -> set[int]:
    """ids of the __init__ methods of classes subclassing a Sequential (`class Block(nn.Sequential)`):
    their `super().__init__(layers)` is the container's constructor."""
    return {id(item) for cls in _walk(tree) if isinstance(cls, ast.ClassDef)
            and any(ast.unparse(b).split(".")[-1] == "Sequential" for b in cls.bases)
            for item in cls.body if isinstance(item, ast.FunctionDef) and item.name == "__init__"}


def filled_sequentials(nodes) -> dict[str, ast.Call]:
    """Locals bound once, to an empty `nn.Sequential()`, then filled by `name.add_module(key, layer)`:
    name -> the Sequential call. It becomes a NamedSequential (its layers are read by name too:
    torchvision's ViT conv stem, `self.conv_proj.conv_last`); `nodes`: one scope's own nodes."""
    bound: dict[str, list[ast.expr]] = {}
    filled: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for sub in _walk(target):
                    if isinstance(sub, ast.Name):
                        bound.setdefault(sub.id, []).append(node.value if target is sub else node)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.NamedExpr, ast.withitem)):
            target = node.optional_vars if isinstance(node, ast.withitem) else node.target
            for sub in _walk(target) if target is not None else ():
                if isinstance(sub, ast.Name):
                    bound.setdefault(sub.id, []).append(node.value if isinstance(node, ast.AnnAssign) else node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_module"
              and isinstance(node.func.value, ast.Name) and len(node.args) == 2 and not node.keywords):
            filled.add(node.func.value.id)
    return {name: values[0] for name, values in bound.items() if name in filled and len(values) == 1
            and isinstance(values[0], ast.Call) and not values[0].args and not values[0].keywords
            and ast.unparse(values[0].func).split(".")[-1] == "Sequential"}


def mapping_sequentials(tree: ast.Module) -> set[Position]:
    found: set[Position] = set()
    scopes = [tree, *(n for n in _walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]
    sequential_inits = _sequential_inits(tree)
    for scope in scopes:
        constructor = ("Sequential", "super().__init__") if id(scope) in sequential_inits else ("Sequential",)
        mapping: dict[str, bool] = {}  # name -> every binding in this scope is a mapping
        calls: list[ast.Call] = []
        for node in _own_nodes(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        mapping[target.id] = mapping.get(target.id, True) and _is_mapping(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                mapping[node.target.id] = mapping.get(node.target.id, True) and _is_mapping(node.value)
            elif isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor, ast.NamedExpr, ast.withitem)):
                target = node.optional_vars if isinstance(node, ast.withitem) else node.target
                for sub in _walk(target) if target is not None else ():
                    if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                        mapping[sub.id] = False
            elif (isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords
                  and isinstance(node.args[0], ast.Name)
                  and (ast.unparse(node.func).split(".")[-1] == "Sequential" or ast.unparse(node.func) in constructor)):
                calls.append(node)
        found |= {(c.lineno, c.col_offset) for c in calls if mapping.get(c.args[0].id, False)}  # type: ignore[attr-defined]
        found |= {(c.lineno, c.col_offset) for c in filled_sequentials(_own_nodes(scope)).values()}
    return found
