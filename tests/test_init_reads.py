"""Reads of a parameter inside an init function (`m.weight.numel()`, `.shape`, `.size(0)`,
`.dim()`, `m.weight.data`, subscripts, fans) mean torch's tensor: the converted read is the
converted parameter in torch's layout (`torch_init.value(m.kernel, layout=...)`), so the init
writes the values torch writes. Parity against real torch, through the weight tables' layouts."""

from __future__ import annotations

import types

import numpy as np
import pytest

from pt2jax_migrate.core.residue import unmarked_residue
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

torch = pytest.importorskip("torch")
nnx = pytest.importorskip("flax.nnx")

READS = '''\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, (3, 2))
        self.up = nn.ConvTranspose2d(4, 3, 3, groups=1)
        self.fc = nn.Linear(6, 5)
        self.apply(self._init)
        with torch.no_grad():
            self.fc.bias.copy_(torch.arange(self.fc.weight.size(0)) / self.fc.weight.numel())

    def _init(self, m):
        if isinstance(m, nn.Linear):
            n = m.weight.numel()
            m.weight.data.copy_(torch.arange(n, dtype=torch.float32).reshape(m.weight.shape) / n)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.weight.size(0) * m.weight[0][0].numel()
            with torch.no_grad():
                m.weight.copy_(torch.linspace(-1, 1, m.weight.data.numel()).reshape(m.weight.data.shape) / fan_out)
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
            nn.init.constant_(m.bias, m.weight.shape[1] / 10 + m.weight.dim() + 1 / fan_in)
        elif isinstance(m, nn.ConvTranspose2d):
            w = m.weight.data
            m.weight.data.copy_(torch.arange(w.numel()).reshape(w.shape) * 0.01 + w.size(1))
            nn.init.zeros_(m.bias)
'''


def load(source: str, name: str):
    module = types.ModuleType("init_reads")
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return getattr(module, name)


def torch_layout(kernel: np.ndarray) -> np.ndarray:
    """The weight tables' transforms undone: (in, out) -> (out, in); (*k, I, O) -> (O, I, *k)."""
    return kernel.T if kernel.ndim == 2 else np.transpose(kernel, (kernel.ndim - 1, kernel.ndim - 2,
                                                                   *range(kernel.ndim - 2)))


@pytest.fixture(scope="module")
def converted():
    result = rewrite_source(READS, "model.py")
    assert unmarked_residue(result.new_source) == []
    assert not [f for f in result.findings if not f.fixable], [f.message for f in result.findings]
    lint = lint_source(READS, "model.py")
    assert {(f.line, f.code) for f in lint if f.fixable and f.code not in {"PTJ001", "PTJ101"}} == \
        {(f.line, f.code) for f in result.findings if f.fixable and f.code != "PTJ101"}
    return result.new_source


def test_reads_are_the_parameter_in_torchs_layout(converted):
    code = converted[converted.index("class Net"):]
    assert "m.weight" not in code and "self.fc.weight" not in code
    assert 'n = torch_init.value(m.kernel, layout="transpose").size' in converted
    assert 'w = torch_init.value(m.kernel, layout="conv_transpose")' in converted
    assert 'fan_in, _ = torch_init.fans(torch_init.value(m.kernel, layout="conv").shape)' in converted


@pytest.mark.parametrize("layer", ["fc", "conv", "up"])
def test_init_that_reads_shapes_writes_torchs_values(converted, layer):
    want = getattr(load(READS, "Net")(), layer)
    got = getattr(load(converted, "Net")(rngs=nnx.Rngs(0)), layer)
    np.testing.assert_allclose(torch_layout(np.asarray(got.kernel[...])), want.weight.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(got.bias[...]), want.bias.detach().numpy(), rtol=1e-6)


def test_reads_outside_init_functions_are_findings_of_their_own():
    """In init code the init's findings cover a read; elsewhere (forward here) the read is a
    finding of its own (tests/test_layer_reads.py), reported alike by lint and rewrite."""
    source = READS.replace("self.apply(self._init)", "").replace("    def _init(self, m):", "    def forward(self, m):")
    result = rewrite_source(source, "model.py")
    assert 'n = torch_init.value(m.kernel, layout="transpose").size' in result.new_source
    reads = sorted((f.line, f.col) for f in result.findings if "read ->" in f.message)
    assert reads and reads == sorted((f.line, f.col) for f in lint_source(source, "model.py") if "read ->" in f.message)
    assert not any("read ->" in f.message for f in rewrite_source(READS, "model.py").findings)
