"""Constructs that stopped torchvision architectures in benchmarks/bench_models.py, each as a
small model: rewrite it, then verify the converted model against torch."""

from __future__ import annotations

from pathlib import Path

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source
from pt2jax_migrate.verify import run_verify

# ViT's encoder, MaxViT's blocks: the layers collected in an OrderedDict variable, then
# nn.Sequential(layers); torch runs them in insertion order and names them by key
NAMED_LAYERS = '''
from collections import OrderedDict
import torch
import torch.nn as nn


class Encoder(nn.Module):
    def __init__(self, width: int, depth: int):
        super().__init__()
        layers: OrderedDict = OrderedDict()
        for i in range(depth):
            layers[f"layer_{i}"] = nn.Linear(width, width)
            layers[f"act_{i}"] = nn.Tanh()
        self.layers = nn.Sequential(layers)
        head = OrderedDict()
        head["out"] = nn.Linear(width, 3)
        self.head = nn.Sequential(head)
        block = nn.Linear(width, width)
        self.single = nn.Sequential(block)  # one layer, not a mapping

    def forward(self, x):
        return self.head(self.layers(self.single(x)))
'''

# RegNet's block widths: torch.round / torch.divide / torch.diff / .int() on arrays
WIDTHS = '''
import math
import torch
import torch.nn as nn


class Widths(nn.Module):
    def __init__(self, depth: int, w_0: int, w_a: float, w_m: float):
        super().__init__()
        widths_cont = torch.arange(depth) * w_a + w_0
        capacity = torch.round(torch.log(widths_cont / w_0) / math.log(w_m))
        widths = (torch.round(torch.divide(w_0 * torch.pow(w_m, capacity), 8)) * 8).int().tolist()
        depths = torch.diff(torch.tensor([0, 1, 3, depth])).int().tolist()
        self.fc = nn.Linear(4, sum(widths) + sum(depths))

    def forward(self, x):
        return self.fc(x)
'''


def convert(tmp_path: Path, name: str, source: str) -> tuple[str, str, str]:
    original = tmp_path / f"{name}_torch.py"
    original.write_text(source)
    result = rewrite_source(source, str(original))
    converted = tmp_path / f"{name}_nnx.py"
    converted.write_text(result.new_source)
    return str(original), str(converted), result.new_source


def lint_agrees(source: str) -> None:
    lint = lint_source(source, "m.py")
    result = rewrite_source(source, "m.py")
    skip = {"PTJ001", "PTJ101", "PTJ303"}
    assert {(f.line, f.code, f.fixable) for f in lint if f.code not in skip} == \
        {(f.line, f.code, f.fixable) for f in result.findings if f.code not in skip}


def test_sequential_of_an_ordered_dict_variable_takes_its_layers(tmp_path):
    original, converted, text = convert(tmp_path, "named", NAMED_LAYERS)
    # the layers in order, read by name too (NamedSequential: `self.heads.head` as in torch)
    assert "self.layers = NamedSequential(layers)" in text
    assert "self.head = NamedSequential(head)" in text
    assert "self.single = nnx.Sequential(block)" in text  # not a mapping: one layer, as torch reads it
    assert "import torch" not in text and "TODO(pt2jax)" not in text
    lint_agrees(NAMED_LAYERS)
    report = run_verify(original, converted, model="Encoder", init="6, 2", inputs=["float32[2,6]"], jit=True)
    assert report.comparisons and all(c.passed for c in report.comparisons), report.comparisons
    assert report.jit_error is None and all(c.passed for c in report.jit_comparisons)


def test_rebound_name_is_not_taken_for_a_mapping():
    source = NAMED_LAYERS.replace("        self.layers = nn.Sequential(layers)",
                                  "        layers = nn.Linear(width, width)\n        self.layers = nn.Sequential(layers)")
    text = rewrite_source(source, "m.py").new_source
    assert "self.layers = nnx.Sequential(layers)" in text


def test_regnet_width_arithmetic_converts_and_verifies(tmp_path):
    original, converted, text = convert(tmp_path, "widths", WIDTHS)
    assert "import torch" not in text and "TODO(pt2jax)" not in text, text
    assert "jnp.round(" in text and "jnp.divide(" in text and "jnp.diff(" in text and ".astype(jnp.int32)" in text
    lint_agrees(WIDTHS)
    report = run_verify(original, converted, model="Widths", init="4, 8, 8.0, 2.0", inputs=["float32[2,4]"])
    assert report.comparisons and all(c.passed for c in report.comparisons), report.comparisons


# torchvision's annotations and checks: `norm_layer: Callable[..., nn.Module]`, `model: nn.Module`,
# `isinstance(m, nn.Module)` (143 TODOs on the torchvision corpus before)
MODULE_VALUES = '''
from typing import Callable, Optional
import torch
import torch.nn as nn


def modules_in(items: list) -> int:
    return sum(1 for m in items if isinstance(m, nn.Module))


class Block(nn.Module):
    def __init__(self, act: Optional[Callable[..., nn.Module]] = None, extra: Optional[torch.nn.Module] = None):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.count = modules_in([self.fc, act, 1])

    def forward(self, x):
        return self.fc(x) * self.count
'''


def test_nn_module_as_a_value_becomes_the_module_class(tmp_path):
    original, converted, text = convert(tmp_path, "values", MODULE_VALUES)
    assert "isinstance(m, nnx.Module)" in text and "Callable[..., nnx.Module]" in text
    assert "Optional[nnx.Module]" in text
    assert "import torch" not in text and "TODO(pt2jax)" not in text, text
    lint_agrees(MODULE_VALUES)
    report = run_verify(original, converted, model="Block", init="", inputs=["float32[2,3]"])
    assert report.comparisons and all(c.passed for c in report.comparisons), report.comparisons


def test_mapping_fact_follows_every_binding_of_the_name():
    from pt2jax_migrate.sequential_facts import mapping_sequentials
    import ast

    source = (
        "def f(blocks):\n"
        "    a = OrderedDict()\n"
        "    with open('x') as b:\n"
        "        b = OrderedDict()\n"
        "    c = {}\n"  # a plain dict is one (bad) layer to torch, not named layers
        "    for d in blocks:\n"
        "        pass\n"
        "    d = OrderedDict()\n"
        "    return nn.Sequential(a), nn.Sequential(b), nn.Sequential(c), nn.Sequential(d), nn.Sequential(blocks)\n"
    )
    found = mapping_sequentials(ast.parse(source))
    assert found == {(9, 11)}  # only `a`: every other name has another binding (or none)
