"""Second `rewrite` changes nothing, and the first one never fails on valid code: minimal
reproducers of what the corpus check (benchmarks/corpus_check.py) found on real files."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from pt2jax_migrate.rewrite import rewrite_source


def _twice(source: str) -> tuple[str, str]:
    first = rewrite_source(source, "m.py").new_source
    assert first is not None
    return first, rewrite_source(first, "m.py").new_source


def test_an_init_site_already_marked_is_not_marked_again_with_another_reason():
    # timm maxxvit/bottleneck_attn, torchvision ssdlite: on the converted file the layer class is
    # nnx.Linear, so the second pass found a different reason for the same nn.init call
    source = (
        "import torch.nn as nn\n\n\n"
        "def init_weights(module):\n"
        "    if isinstance(module, nn.Linear):\n"
        "        nn.init.normal_(module.weight, std=.02)\n"
    )
    first, second = _twice(source)
    assert first.count("# TODO(pt2jax): PTJ103 torch.nn.init.normal_(module.weight)") == 1
    assert second == first


def test_distinct_constructs_on_one_statement_each_keep_their_marker():
    source = "import torch\n\nx = torch.manual_seed(0) or torch.get_rng_state()\n"
    first, second = _twice(source)
    assert "# TODO(pt2jax): PTJ301 torch.manual_seed()" in first
    assert "# TODO(pt2jax): PTJ901 torch.get_rng_state" in first
    assert second == first


def _converts(source: str) -> str:
    first, second = _twice(source)
    ast.parse(first)
    assert second == first
    return first


def test_an_init_helper_call_is_not_read_again_as_a_layer_read():
    # timm attention_pool2d: `nn.init.zeros_(self.q.bias)` -> `torch_init.zeros(self.q.bias)`;
    # the second pass took that argument for a weight read in init code and wrapped it again
    # (timm builds it with `**dd`, which leaves the layer PyTorch and its inits marked: see
    # tests/test_layer_reads.py; here the layer converts, so its inits do)
    source = (
        "import torch.nn as nn\n"
        "from .weight_init import trunc_normal_\n\n\n"
        "class A(nn.Module):\n"
        "    def __init__(self, d, **dd):\n"
        "        super().__init__()\n"
        "        self.q = nn.Linear(d, d)\n"
        "        self.init_weights()\n\n"
        "    def init_weights(self):\n"
        "        trunc_normal_(self.q.weight, std=0.02)\n"
        "        nn.init.zeros_(self.q.bias)\n"
    )
    first = _converts(source)
    assert "        torch_init.zeros(self.q.bias)\n" in first
    assert 'trunc_normal_(torch_init.value(self.q.kernel, layout="transpose"), std=0.02)' in first


# black-style parenthesised method chains put their line breaks before each `.`, legal only
# inside the parentheses: text cut from such a chain once made the replacement unparsable
# (torch/nn/functional.py, torch/_inductor/fx_passes/quantization.py: ParserSyntaxError) or the
# parentheses were dropped around the converted chain (torch/autograd/gradcheck.py: "the rewrite
# produced invalid code (unexpected indent)")

def test_a_black_style_chain_whose_head_converts_parses():
    source = (
        "import torch\n\n\n"
        "def f(K, N, g):\n"
        "    s = (\n"
        "        torch.tensor([1.0, 8.0])\n"
        "        .to(dtype=torch.float32)\n"
        "        .reshape(K // g, N, 2)\n"
        "        .contiguous()\n"
        "    )\n"
        "    return s\n"
    )
    first = _converts(source)
    assert "    s = (\n        jnp.asarray([1.0, 8.0]).astype(jnp.float32)\n        .reshape(K // g, N, 2)\n    )\n" \
        in first


def test_a_black_style_chain_through_the_method_tables_parses():
    source = (
        "import torch\n\n\n"
        "def f(proj, E):\n"
        "    proj = (\n"
        "        proj.unflatten(-1, (3, E))\n"
        "        .unsqueeze(0)\n"
        "        .transpose(0, -2)\n"
        "        .squeeze(-2)\n"
        "        .contiguous()\n"
        "    )\n"
        "    return torch.relu(proj)\n"
    )
    first = _converts(source)
    assert "jnp.swapaxes(jnp.expand_dims(proj.unflatten(-1, (3, E)), 0), 0, -2)\n        .squeeze(-2)\n    )" in first


def test_a_long_black_style_chain_keeps_its_parentheses_around_the_converted_call():
    # a receiver over 200 characters is put back as a node (methods._LONG_RECEIVER): its line
    # breaks need the user's parentheses, which `.t()` -> `.T` had dropped
    source = (
        "import torch\n\n\n"
        "def f(x, n):\n"
        "    y = (\n"
        "        torch.ones(3)\n"
        "        .repeat_interleave(n, 1)\n"
        + "        .add_(torch.tensor([1, 2]).reshape(2, 1) + torch.tensor([1, 2]).reshape(2, 1))\n" * 3
        + "        .t()\n"
        "    )\n"
        "    return y\n"
    )
    first = _converts(source)
    assert "    y = (\n        jnp.ones((3,))\n" in first
    assert ".T\n    )\n" in first


def test_a_line_break_inside_a_converted_receiver_or_argument_parses():
    source = (
        "import torch\n\n\n"
        "def f(a, b):\n"
        "    u = torch.sum(a\n"
        "                  + b)\n"
        "    v = (a.abs()\n"
        "         .sum(dim=(0,\n"
        "                   1)))\n"
        "    return (a\n"
        "            .float()\n"
        "            .unsqueeze(0)), u, v\n"
    )
    first = _converts(source)
    assert "jnp.expand_dims(a.astype(jnp.float32), 0)" in first


def _installed(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # found, never imported
    if spec is None or spec.origin is None:
        pytest.skip(f"{package} is not installed")
    return Path(spec.origin).parent / relative


def test_in_place_buffer_updates_already_marked_are_not_marked_again():
    # the second pass named the same `.zero_()`/`.fill_()` on a buffer differently ("in-place
    # tensor updates..." beside "in-place update of buffer ...") and added a marker each
    path = _installed("torch", "nn/modules/batchnorm.py")
    first, second = _twice(path.read_text())
    assert "# TODO(pt2jax): PTJ105 in-place update of buffer self.running_mean.zero_(...)" in first
    assert second == first
