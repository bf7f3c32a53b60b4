"""Module structure (issue 10): buffers, ModuleDict / named Sequential, builder methods and block
classes, weight tying, index assignment on local arrays.

Each construct: the rewrite's real output (snapshot lines), lint reporting exactly what the
rewrite changes, and parity of the converted model against real torch through the verify API
(outputs and gradients; for buffers the state after calls in train mode).
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source
from pt2jax_migrate.verify import VerifyError, run_verify, transfer_weights

BUFFERS = '''\
import math
import torch
import torch.nn as nn


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=64):
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1).float()
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        pe[0] += 1.0
        self.register_buffer("pe", pe, persistent=False)
        self.register_buffer("scale", torch.ones(d_model))
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        return self.proj(x + self.pe[: x.shape[1]] * self.scale)


class RunningMean(nn.Module):
    def __init__(self, dim, momentum=0.9):
        super().__init__()
        self.momentum = momentum
        self.fc = nn.Linear(dim, dim)
        self.register_buffer("running", torch.zeros(dim))
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        y = self.fc(x)
        self.running = self.running * self.momentum + y.mean(0).detach() * (1 - self.momentum)
        self.count += 1
        return y - self.running
'''

CONTAINERS = '''\
from collections import OrderedDict
import torch
import torch.nn as nn


class MultiHead(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.heads = nn.ModuleDict({"a": nn.Linear(dim, 2), "b": nn.Linear(dim, 3)})
        self.heads["c"] = nn.Linear(dim, 4)
        self.stem = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(dim, dim)),
            ("act", nn.ReLU()),
            ("inner", nn.Sequential(OrderedDict([("fc2", nn.Linear(dim, dim)), ("act2", nn.Tanh())]))),
        ]))

    def forward(self, x):
        h = self.stem(x)
        outs = []
        for name, head in self.heads.items():
            outs.append(head(h))
        return torch.cat(outs, dim=-1)
'''

BLOCKS = '''\
import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.fc1 = nn.Linear(inplanes, planes)
        self.fc2 = nn.Linear(planes, planes)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.fc2(self.relu(self.fc1(x)))) + (x if x.shape[-1] == self.fc2.out_features else 0)


class ResNet(nn.Module):
    def __init__(self, block, layers, width=8):
        super().__init__()
        self.inplanes = width
        self.stem = nn.Linear(4, width)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.head = nn.Linear(width * 2, 3)

    def _make_layer(self, block, planes, blocks, stride=1):
        layers = [block(self.inplanes, planes, stride)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        return self.head(self.layer2(self.layer1(self.stem(x))))


def resnet_tiny():
    return ResNet(BasicBlock, [2, 2])
'''

TIED = '''\
import torch
import torch.nn as nn


class TinyLM(nn.Module):
    def __init__(self, vocab=20, dim=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.fc = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab)
        self.head.weight = self.embed.weight

    def forward(self, idx):
        return self.head(torch.tanh(self.fc(self.embed(idx))))
'''


def convert(tmp_path: Path, name: str, source: str) -> tuple[str, str, str]:
    """Write `source`, rewrite it; returns (original path, converted path, converted text)."""
    original = tmp_path / f"{name}_torch.py"
    original.write_text(source)
    result = rewrite_source(source, str(original))
    converted = tmp_path / f"{name}_nnx.py"
    converted.write_text(result.new_source)
    assert "import torch" not in result.new_source
    return str(original), str(converted), result.new_source


def lint_agrees(source: str) -> None:
    """lint marks fixable exactly what rewrite changes, and manual exactly its TODOs (PTJ101 is
    the rewrite's own bookkeeping on the class)."""
    lint = lint_source(source, "m.py")
    result = rewrite_source(source, "m.py")
    skip = {"PTJ001", "PTJ101", "PTJ303"}
    assert {(f.line, f.code) for f in lint if f.fixable and f.code not in skip} == \
        {(f.line, f.code) for f in result.findings if f.fixable and f.code not in skip}
    assert {(f.line, f.code) for f in lint if not f.fixable and f.code not in skip} == \
        {(f.line, f.code) for f in result.findings if not f.fixable and f.code not in skip}


def load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(f"_structure_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, name)


def comparisons(report) -> dict[str, bool]:
    return {c.name: c.passed for c in report.comparisons}


# ---------------------------------------------------------------- buffers and index assignment


def test_buffers_and_index_assignment_rewrite(tmp_path):
    _, _, out = convert(tmp_path, "buffers", BUFFERS)
    assert "class Buffer(nnx.Variable):" in out
    for line in ("pe = pe.at[:, 0::2].set(jnp.sin(position * div_term))",
                 "pe = pe.at[:, 1::2].set(jnp.cos(position * div_term))",
                 "pe = pe.at[0].add(1.0)",
                 "self.pe = Buffer(pe)",
                 "self.scale = Buffer(jnp.ones((d_model,)))",
                 "self.running = Buffer(jnp.zeros((dim,)))",
                 "self.running[...] = self.running * self.momentum + jax.lax.stop_gradient(y.mean(0)) * (1 - self.momentum)",
                 "self.count[...] += 1"):
        assert line in out, line
    assert "self.register_buffer" not in out and "TODO" not in out
    lint_agrees(BUFFERS)


def test_buffers_verify_against_torch(tmp_path):
    original, converted, _ = convert(tmp_path, "buffers", BUFFERS)
    report = run_verify(original, converted, model="PositionalEncoding", init="8", inputs=["float32[2,5,8]"])
    assert report.passed
    # the persistent buffer travels by name; the non-persistent one is recomputed (the .at[] code)
    assert "grad proj.weight" in comparisons(report)
    assert not any("scale" in name or "pe" == name for name in comparisons(report))  # buffers get no gradient


def test_buffer_updates_match_torch_state_after_train_calls(tmp_path):
    original, converted, _ = convert(tmp_path, "buffers", BUFFERS)
    torch.manual_seed(0)
    torch_model = load(original, "RunningMean")(6)
    nnx_model = load(converted, "RunningMean")(6, rngs=nnx.Rngs(0))
    transfer_weights(torch_model, nnx_model)
    step = nnx.jit(lambda model, x: model(x))  # how converted code runs: state updates under jit
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((4, 6)).astype(np.float32)
        want = torch_model(torch.from_numpy(x)).detach().numpy()
        got = np.asarray(step(nnx_model, jnp.asarray(x)))
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(nnx_model.running[...]), torch_model.running.numpy(), atol=1e-6)
    assert float(nnx_model.count[...]) == float(torch_model.count) == 3.0
    # buffers are not trained: not among the parameters an nnx.Optimizer(wrt=nnx.Param) updates
    params = {path for path, _ in nnx.to_flat_state(nnx.state(nnx_model, nnx.Param))}
    assert params == {("fc", "kernel"), ("fc", "bias")}


def test_index_assignment_only_on_local_torch_arrays():
    source = textwrap.dedent('''\
        import torch
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("table", torch.zeros(4))
                self.table[0] = 1.0  # a buffer: state, not a local

            def forward(self, x):
                names = {}
                names["a"] = 1  # a dict: untouched
                out = x * 2
                out[0] = 0.0  # not built by torch here: unknown, untouched
                return out
        ''')
    result = rewrite_source(source, "m.py")
    out = result.new_source
    assert 'names["a"] = 1' in out and "out[0] = 0.0" in out
    assert "# TODO(pt2jax): PTJ105 index assignment on buffer self.table" in out
    lint_agrees(source)


CHAIN = BUFFERS.replace(
    "self.running = self.running * self.momentum + y.mean(0).detach() * (1 - self.momentum)",
    "self.running.mul_(self.momentum).add_(y.mean(0).detach() * (1 - self.momentum))")


def test_inplace_chain_on_a_buffer_becomes_one_update(tmp_path):
    original, converted, out = convert(tmp_path, "chain", CHAIN)
    assert ("self.running[...] = self.running * self.momentum + jax.lax.stop_gradient(y.mean(0)) * (1 - self.momentum)"
            in out)
    assert "mul_" not in out and "TODO" not in out
    lint_agrees(CHAIN)
    torch_model = load(original, "RunningMean")(3)
    nnx_model = load(converted, "RunningMean")(3, rngs=nnx.Rngs(0))
    transfer_weights(torch_model, nnx_model)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for _ in range(2):
        torch_model(torch.from_numpy(x))
        nnx.jit(lambda model, x: model(x))(nnx_model, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(nnx_model.running[...]), torch_model.running.numpy(), atol=1e-6)


def test_inplace_chain_it_cannot_write_is_refused():
    source = CHAIN.replace(".add_(y.mean(0).detach() * (1 - self.momentum))", ".add_(y.mean(0).detach(), alpha=0.1)")
    result = rewrite_source(source, "m.py")
    todos = [f for f in result.findings if not f.fixable]
    assert [f.code for f in todos] == ["PTJ105"]
    assert "in-place update of buffer self.running.mul_(...).add_(...)" in todos[0].message
    lint_agrees(source)


# ---------------------------------------------------------------- ModuleDict, named Sequential


def test_module_dict_and_named_sequential_rewrite(tmp_path):
    _, _, out = convert(tmp_path, "containers", CONTAINERS)
    assert 'self.heads = nnx.Dict({"a": nnx.Linear(dim, 2' in out
    assert 'self.heads["c"] = nnx.Linear(dim, 4' in out
    assert "self.stem = nnx.Sequential(nnx.Linear(dim, dim" in out
    assert "jax.nn.relu,\n            nnx.Sequential(nnx.Linear(dim, dim" in out  # the pairs' layout is kept
    assert "OrderedDict([" not in out and "TODO" not in out
    lint_agrees(CONTAINERS)


def test_module_dict_and_named_sequential_verify(tmp_path):
    original, converted, _ = convert(tmp_path, "containers", CONTAINERS)
    report = run_verify(original, converted, model="MultiHead", init="6", inputs=["float32[3,6]"])
    assert report.passed
    names = comparisons(report)
    # ModuleDict keys and the named Sequential's children (by position) line up with torch's
    for key in ("grad heads.c.weight", "grad stem.fc1.weight", "grad stem.inner.fc2.bias"):
        assert names[key], key


def test_sequential_from_a_built_ordered_dict_takes_its_layers_in_order():
    source = textwrap.dedent('''\
        from collections import OrderedDict
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(OrderedDict([(f"fc{i}", nn.Linear(4, 4)) for i in range(3)]))
        ''')
    result = rewrite_source(source, "m.py")
    assert "self.body = nnx.Sequential(*OrderedDict([(f\"fc{i}\", nnx.Linear(4, 4, " in result.new_source
    assert "rngs=rngs)) for i in range(3)]).values())" in result.new_source
    assert "TODO(pt2jax)" not in result.new_source
    lint_agrees(source)


# ---------------------------------------------------------------- builder methods, block classes


def test_rngs_threaded_through_builder_and_block_class(tmp_path):
    _, _, out = convert(tmp_path, "blocks", BLOCKS)
    for line in ("self.layer1 = self._make_layer(block, width, layers[0], rngs=rngs)",
                 "self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2, rngs=rngs)",
                 "def _make_layer(self, block, planes, blocks, stride=1, *, rngs: nnx.Rngs):",
                 "layers = [block(self.inplanes, planes, stride, rngs=rngs)]",
                 "layers.append(block(self.inplanes, planes, rngs=rngs))",
                 "return ResNet(BasicBlock, [2, 2], rngs=nnx.Rngs(0))"):
        assert line in out, line
    assert "nnx.Rngs(0)" not in out.split("def resnet_tiny")[0]  # no fixed seed inside the classes
    lint_agrees(BLOCKS)


def test_builder_and_block_class_verify(tmp_path):
    original, converted, _ = convert(tmp_path, "blocks", BLOCKS)
    report = run_verify(original, converted, model="resnet_tiny", inputs=["float32[3,4]"])
    assert report.passed
    assert comparisons(report)["grad layer2.1.fc2.weight"]


# ---------------------------------------------------------------- weight tying


def test_weight_tying_kept(tmp_path):
    _, _, out = convert(tmp_path, "tied", TIED)
    assert "self.head = TiedLinear(self.embed, self.head.bias)" in out
    assert "class TiedLinear(nnx.Module):" in out
    assert "self.head.weight = self.embed.weight" not in out
    lint_agrees(TIED)


def test_weight_tying_verify_sums_both_gradients(tmp_path):
    original, converted, _ = convert(tmp_path, "tied", TIED)
    report = run_verify(original, converted, model="TinyLM", inputs=["int64[2,5]:0..20"])
    assert report.passed
    names = comparisons(report)
    assert names["grad embed.weight"] and names["grad head.bias"]  # one parameter, both uses
    assert not any(name.startswith("grad head.weight") for name in names)


def test_untied_conversion_fails_verify(tmp_path):
    """A converted model that drops the tie gets no silent pass: its head kernel receives nothing."""
    original, converted, out = convert(tmp_path, "tied", TIED)
    Path(converted).write_text(out.replace("        self.head = TiedLinear(self.embed, self.head.bias)\n", ""))
    with pytest.raises(VerifyError, match="head.kernel .* receives no torch tensor"):
        run_verify(original, converted, model="TinyLM", inputs=["int64[2,5]:0..20"])


def test_other_weight_assignments_are_refused():
    source = textwrap.dedent('''\
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)
                self.b = nn.Linear(4, 4)
                self.b.weight = self.a.weight
        ''')
    result = rewrite_source(source, "m.py")
    assert "TODO(pt2jax): PTJ102 weight tying `self.b.weight = self.a.weight`" in result.new_source
    lint_agrees(source)


def test_index_assignment_after_the_array_is_shared_is_refused():
    """In torch, writing into `pe` after `register_buffer("pe", pe)` changes the buffer too; a
    rebinding `pe = pe.at[...].set(v)` would not: refused from the line that shares it on."""
    source = textwrap.dedent('''\
        import torch
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                pe = torch.zeros(4, 4)
                pe = pe.float()
                pe[0] = 1.0
                self.register_buffer("pe", pe)
                pe[1] = 2.0
                w = torch.ones(3)
                row = w[0:2]
                w[0] += 1
        ''')
    result = rewrite_source(source, "m.py")
    out = result.new_source
    assert "pe = pe.at[0].set(1.0)" in out
    assert "# TODO(pt2jax): PTJ105 index assignment on local array `pe`, which line 10 shares" in out
    assert "pe[1] = 2.0" in out and "w[0] += 1" in out
    assert "# TODO(pt2jax): PTJ105 index assignment on local array `w`, which line 13 shares" in out
    lint_agrees(source)
