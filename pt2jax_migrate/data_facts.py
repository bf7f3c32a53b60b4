"""Facts about the data pipeline, read off the `ast` once (lint and rewrite alike): which
`DataLoader(...)` calls load a TensorDataset the program built itself (`DataLoader(
TensorDataset(x, y), ...)`, or a name only ever bound to one). Those become array loaders; the
verdicts are core.data's."""

from __future__ import annotations

import ast

from .astwalk import walk as _walk
from .core.data import DATA_LOADER, TENSOR_DATASET
from .names import module_aliases, qualname_of

Position = tuple[int, int]  # (line, column) of a call


def array_loaders(tree: ast.Module, source: str) -> set[Position]:
    """Positions of the DataLoader calls whose dataset is a TensorDataset built in this file."""
    if "DataLoader" not in source or "TensorDataset" not in source:
        return set()
    aliases = module_aliases(tree)

    def is_tensor_dataset(node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and qualname_of(node.func, aliases) == TENSOR_DATASET

    datasets: dict[str, bool] = {}  # name -> every binding of it is a TensorDataset(...)
    for node in _walk(tree):
        targets: list[ast.expr] = []
        value = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            targets, value = [node.target], node.value
        elif isinstance(node, (ast.For, ast.comprehension, ast.With)):
            targets = [node.target] if not isinstance(node, ast.With) else [
                i.optional_vars for i in node.items if i.optional_vars is not None]
        for target in targets:
            for name in _walk(target):
                if isinstance(name, ast.Name):
                    single = target is name and value is not None and is_tensor_dataset(value)
                    datasets[name.id] = datasets.get(name.id, True) and single
    out: set[Position] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Call) and qualname_of(node.func, aliases) == DATA_LOADER:
            first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "dataset"), None)
            if first is not None and (is_tensor_dataset(first)
                                      or isinstance(first, ast.Name) and datasets.get(first.id, False)):
                out.add((node.lineno, node.col_offset))
    return out
