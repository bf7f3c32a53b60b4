"""The rewrite package's shape: one transformer composed of mixins, small modules, no cycles.

libcst finds visit_X / leave_X by name, so a hook defined in two mixins would silently run only
the first one in the MRO, and a misspelt hook would never run at all. These tests catch both.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import libcst as cst

from pt2jax_migrate import rewrite
from pt2jax_migrate.rewrite.transformer import MIXINS, TorchToNNX

PACKAGE = Path(rewrite.__file__).parent
MAX_LINES = 300


def own_names(cls) -> set[str]:
    """Methods and other attributes the class body itself defines (not inherited ones, not
    Python's own such as __init__)."""
    return {name for name in vars(cls) if not (name.startswith("__") and name.endswith("__"))}


def test_no_name_is_defined_in_two_mixins():
    seen: dict[str, str] = {}
    clashes = []
    for mixin in MIXINS:
        for name in own_names(mixin):
            if name in seen:
                clashes.append(f"{name}: {seen[name]} and {mixin.__name__}")
            seen[name] = mixin.__name__
    assert not clashes


def test_the_transformer_is_the_mixins_and_only_sets_up_state():
    assert TorchToNNX.__bases__ == (*MIXINS, cst.CSTTransformer)
    # its body sets up state (__init__) and declares metadata; behaviour lives in the mixins
    assert {name for name in own_names(TorchToNNX) if callable(getattr(TorchToNNX, name))} == set()
    # every mixin hook comes before libcst's no-op default of the same name
    mro = TorchToNNX.__mro__
    for mixin in MIXINS:
        for name in own_names(mixin):
            owner = next(cls for cls in mro if name in vars(cls))
            assert owner is mixin, name


def test_every_hook_is_one_libcst_dispatches():
    hooks = {name for name in dir(cst.CSTTransformer) if name.startswith(("visit_", "leave_"))}
    for mixin in MIXINS:
        for name in own_names(mixin):
            if name.startswith(("visit_", "leave_")):
                assert name in hooks, f"{mixin.__name__}.{name} is not a libcst hook: it would never run"


def test_modules_stay_small():
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert len(sizes) > 5
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_import_cycles_inside_the_package():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {node.module.split(".")[0] for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, " -> ".join([*trail, module])
        for imported in graph.get(module, ()):
            visit(imported, (*trail, module))

    for module in graph:
        visit(module, ())


def test_the_names_other_code_imports_are_still_there():
    from pt2jax_migrate.rewrite import (IMPORTS, fixable_train_step_lines, import_aliases, not_tensor_names, parse,
                                        rewrite_source)
    from pt2jax_migrate.rewrite.engine import rewrite_source as engine_rewrite_source

    assert rewrite_source is engine_rewrite_source
    assert rewrite.TorchToNNX is TorchToNNX
    module = parse("import torch.nn as nn\nimport os\n\nclass M(nn.Module):\n    pass\n", "t.py")
    assert import_aliases(module) == {"nn": "torch.nn"}
    assert not_tensor_names(module) == set(IMPORTS) | {"nn", "os", "M"}
    assert callable(fixable_train_step_lines)
    assert inspect.signature(rewrite_source).parameters["unsafe_fixes"].kind is inspect.Parameter.KEYWORD_ONLY
