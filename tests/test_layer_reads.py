"""A converted layer's parameters and statistics read outside init code: `F.linear(x,
self.fc.weight)` in forward, an output head tied by reading `self.emb.weight`, a script printing
`model.bn.running_var`. The converted layer names them (`kernel`, `embedding`, `mean`, `var`) and
lays them out as the weight tables say, so the read goes through the table back to torch's layout
(`torch_init.value(self.fc.kernel, layout="transpose")`). Before this, such reads were left as they
were, unmarked, and the converted file crashed on them ("0 TODOs"). Parity against real torch."""

from __future__ import annotations

import contextlib
import io
import runpy

import pytest

from pt2jax_migrate.core.residue import unmarked_residue
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

torch = pytest.importorskip("torch")
pytest.importorskip("flax.nnx")

FORWARD_READS = '''\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.fc = nn.Linear(6, 6)
        self.conv = nn.Conv1d(6, 4, 3)  # only its weights are used
        self.ln = nn.LayerNorm(4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, tokens):
        h = self.emb(tokens)                                   # (b, t, 6)
        h = F.linear(h, self.fc.weight, self.fc.bias) + self.fc(h)
        logits = h @ self.emb.weight.T                         # head tied by a read
        c = h @ self.conv.weight[:, :, 1].T + self.conv.bias  # the middle tap of the conv kernel
        c = c * self.ln.weight + self.ln.bias  # (b, t, 4)
        c = self.bn(c.transpose(1, 2))
        scale = self.conv.weight.shape[0] / self.fc.weight.size(1)
        stats = (self.bn.running_mean.sum() + self.bn.running_var.data.mean()) * scale
        return logits.mean(-1, keepdim=True) + c.transpose(1, 2).sum(-1, keepdim=True) + stats
'''

SCRIPT = '''\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 2, bias=False)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


model = Net()
with torch.no_grad():
    model.conv.weight.copy_(torch.arange(27.0).reshape(3, 1, 3, 3) / 27 - 0.5)
    model.fc.weight.copy_(torch.arange(6.0).reshape(2, 3) / 6)
    model.conv.bias.fill_(0.25)
x = torch.arange(2 * 36, dtype=torch.float32).reshape(2, 1, 6, 6).sin()
model(x)
model(x * 2)
print("bias", model.conv.bias.tolist())
print("var", [round(float(v), 6) for v in model.bn.running_var])
print("mean", [round(float(v), 6) for v in model.bn.running_mean])
print("kernel", tuple(model.conv.weight.shape), round(float(model.conv.weight[2, 0, 1, 0]), 6))
print("fc", round(float(model.fc.weight[1, 2]), 6), model.fc.bias)
'''


def convert(source: str, name: str) -> str:
    result = rewrite_source(source, name)
    assert result.error is None, result.error
    assert "TODO(pt2jax)" not in result.new_source, result.new_source
    assert unmarked_residue(result.new_source) == [], unmarked_residue(result.new_source)
    lint = sorted((f.line, f.code) for f in lint_source(source, name) if f.code == "PTJ105")
    rewrite = sorted((f.line, f.code) for f in result.findings if f.code == "PTJ105")
    assert lint == rewrite and lint, (lint, rewrite)  # the same reads, found by both front ends
    assert rewrite_source(result.new_source, name).new_source == result.new_source  # idempotent
    return result.new_source


def test_forward_reads_match_torch_outputs_and_grads(tmp_path):
    from pt2jax_migrate.verify import run_verify

    converted = convert(FORWARD_READS, "reads.py")
    assert 'torch_init.value(self.fc.kernel, layout="transpose")' in converted
    assert "torch_init.value(self.emb.embedding).T" in converted
    assert 'torch_init.value(self.conv.kernel, layout="conv")' in converted
    (tmp_path / "reads_torch.py").write_text(FORWARD_READS)
    (tmp_path / "reads_nnx.py").write_text(converted)
    report = run_verify(str(tmp_path / "reads_torch.py"), str(tmp_path / "reads_nnx.py"), model="Net",
                        inputs=["int64[2,5]:0..11"])
    failed = [(c.name, c.detail if hasattr(c, "detail") else "") for c in report.comparisons if not c.passed]
    assert report.passed and report.jit and not report.jit_error, failed
    assert report.transferred >= 10


def run(path) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(path), run_name="__main__")
    return out.getvalue()


def test_script_reads_batchnorm_statistics_and_weights_as_torch_does(tmp_path):
    converted = convert(SCRIPT, "script.py")
    assert "model.bn.running_var" not in converted and "torch_init.value(model.bn.var)" in converted
    (tmp_path / "script_torch.py").write_text(SCRIPT)
    (tmp_path / "script_jax.py").write_text(converted)
    assert run(tmp_path / "script_jax.py") == run(tmp_path / "script_torch.py")


def test_unconvertible_read_is_marked_and_counted():
    source = SCRIPT + 'print(model.bn.num_batches_tracked)\n'
    result = rewrite_source(source, "count.py")
    assert result.error is None
    todos = [f for f in result.findings if not f.fixable]
    assert [(f.code, f.line) for f in todos] == [("PTJ105", source.count("\n"))]
    assert "TODO(pt2jax): PTJ105 model.bn.num_batches_tracked read" in result.new_source
    lint = [(f.code, f.line) for f in lint_source(source, "count.py") if not f.fixable]
    assert lint == [(f.code, f.line) for f in todos]


def test_reads_left_alone_where_nothing_differs_or_nothing_is_known():
    source = '''\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) + self.fc.bias


model = Net()
model = make_other()
print(model.fc.weight)  # `model` is also something else: not known to be a Net
'''
    result = rewrite_source(source, "alone.py")
    assert "self.fc.bias" in result.new_source and "torch_init" not in result.new_source
    assert "print(model.fc.weight)" in result.new_source


def test_linen_leaves_the_reads_marked_alike_in_lint_and_rewrite():
    """The Linen target does not convert such reads yet: each one is a counted TODO, never left
    unmarked (a converted Linen layer has no .weight either)."""
    result = rewrite_source(FORWARD_READS, "reads.py", target="linen")
    assert result.error is None
    reads = sorted((f.line, f.code) for f in result.findings if "read:" in f.message and not f.fixable)
    assert len(reads) >= 6 and all("not converted for this target" in f.message
                                   for f in result.findings if "read:" in f.message)
    lint = sorted((f.line, f.code) for f in lint_source(FORWARD_READS, "reads.py", target="linen")
                  if "read:" in f.message and not f.fixable)
    assert lint == reads
    assert "TODO(pt2jax): PTJ105 self.emb.weight read" in result.new_source


def test_the_cheap_read_test_names_what_the_weight_tables_name():
    """inits' text test before building read facts comes from rules/layers.toml `weights` (every
    target's), not a hand-kept list: a table entry added later is read without touching code."""
    from pt2jax_migrate.core.inits import layer_read, weight_read_patterns
    from pt2jax_migrate.rules import load_rules

    names = {w["torch"] for rule in load_rules().entries for side in rule.sides.values()
             for w in side.get("weights") or ()}
    assert {"weight", "bias", "running_var", "num_batches_tracked", "weight_ih_l*"} <= names
    for name in names:
        attribute = name.replace("*", "0_reverse")
        assert layer_read(f"y = self.layer.{attribute}\n"), name
        assert weight_read_patterns()[1].search(f"print(model.layer.{attribute})"), name
    for other in ("in_features", "weights", "weight2", "shape"):
        assert not layer_read(f"y = self.layer.{other}\n"), other
    assert not weight_read_patterns()[1].search("print(self.layer.weight)")  # self: not an instance


KEPT_BESIDE_CONVERTED = '''\
import torch
import torch.nn as nn


class Pool(nn.Module):
    def __init__(self, d, **kw):
        super().__init__()
        self.q = nn.Linear(d, d, **kw)  # `**kw`: the construction stays PyTorch (a TODO)
        self.p = nn.Linear(d, d)
        self.w = nn.Parameter(torch.empty(d), requires_grad=False)  # a constant: stays PyTorch
        nn.init.zeros_(self.w)
        nn.init.zeros_(self.q.bias)
        nn.init.trunc_normal_(self.q.weight, std=0.02)
        nn.init.zeros_(self.p.bias)
        nn.init.constant_(self.p.weight, 0.5)

    def forward(self, x):
        return self.p(x) + x @ self.q.weight.T + x @ self.p.weight.T
'''


@pytest.mark.parametrize("target", ["nnx", "linen"])
def test_inits_and_reads_of_a_layer_that_stays_pytorch_are_left_marked(target):
    """`self.q = nn.Linear(d, d, **kw)` is not converted: its inits and reads never go through
    the weight tables (`self.q.kernel` would not exist); each is a counted TODO saying the layer
    itself is not converted. The converted layer beside it still converts. Lint agrees."""
    import ast

    source = KEPT_BESIDE_CONVERTED
    result = rewrite_source(source, "kept.py", target=target)
    assert result.error is None, result.error
    out = result.new_source
    ast.parse(out)
    assert "self.q.kernel" not in out and "torch_init.value(self.q" not in out
    kept = [f for f in result.findings if not f.fixable and "the layer itself (" in f.message]
    lines = source.splitlines()
    kept_lines = {lines[f.line - 1].strip() for f in kept}
    # inits converted (Linen: in init_parameters): the unconverted layer's two inits and its read are marked
    assert kept_lines == {"nn.init.zeros_(self.q.bias)", "nn.init.trunc_normal_(self.q.weight, std=0.02)",
                          "nn.init.zeros_(self.w)",
                          "return self.p(x) + x @ self.q.weight.T + x @ self.p.weight.T"}, kept_lines
    if target == "nnx":
        assert "torch_init.zeros(self.p.bias)" in out
        assert 'torch_init.constant(self.p.kernel, 0.5, layout="transpose")' in out
        assert 'torch_init.value(self.p.kernel, layout="transpose")' in out
    else:  # the bound module's variables; a read outside init code stays a TODO under Linen
        assert 'torch_init.zeros(linen_param(self.p, "bias"))' in out
        assert 'torch_init.constant(linen_param(self.p, "kernel"), 0.5, layout="transpose")' in out
    for init in ("nn.init.zeros_(self.q.bias)", "nn.init.trunc_normal_(self.q.weight, std=0.02)"):
        assert init in out
    assert unmarked_residue(out) == [], unmarked_residue(out)
    # the same findings, fixable or left, from both front ends (PTJ001 imports: lint's; PTJ101: the class)
    rewrite = sorted((f.line, f.code, f.fixable) for f in result.findings if f.code != "PTJ101")
    lint = sorted((f.line, f.code, f.fixable) for f in lint_source(source, "kept.py", target=target)
                  if f.code not in ("PTJ001", "PTJ101"))
    assert lint == rewrite
    assert rewrite_source(out, "kept.py", target=target).new_source == out  # idempotent
