"""Incremental migration through `flax.nnx.bridge` (README, "Mixing NNX and Linen"): a converted
NNX module inside Linen code (`nnx.bridge.to_linen`) and a converted Linen module inside NNX code
(`nnx.bridge.ToNNX` + `lazy_init`), each proven against real torch through the bridge: outputs
(eager and jitted), gradients, and BatchNorm's running statistics after a training-mode call.
And `pt2jax rewrite --target nnx` leaves the Linen code of a half-migrated file byte for byte.

The model is the cnn_classifier fixture (Conv, BatchNorm, Dropout, Linear) under a new Linear
head written in the host framework: torch `Host(body, head)` against `body` converted and bridged.
Its torch weights get verify's seeded noise (build_transferred), so no variable can pass by
keeping its initial value.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import linen, nnx, traverse_util

from pt2jax_migrate.rewrite import rewrite_source
from pt2jax_migrate.targets import get_target
from pt2jax_migrate.verify import DEFAULT_TOLERANCES
from pt2jax_migrate.verify.building import _loaded, build_transferred

ROOT = Path(__file__).resolve().parent.parent
CNN_IN = str(ROOT / "fixtures/cnn_classifier.in.py")
CNN_NNX = str(ROOT / "fixtures/cnn_classifier.out.py")
ATOL, RTOL, GRAD_ATOL, GRAD_RTOL = DEFAULT_TOLERANCES["float32"]
X = np.random.default_rng(0).normal(size=(4, 1, 16, 16)).astype(np.float32)
W = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)  # the loss's weights: sum(out * W)


class TorchHost(torch.nn.Module):
    """The torch model being migrated: the fixture's ConvNet under a Linear head."""

    def __init__(self, body):
        super().__init__()
        self.body = body
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.body(x))


def close(actual, expected, atol=ATOL, rtol=RTOL, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert err <= atol + rtol * float(np.max(np.abs(expected), initial=0.0)), (what, err)


def torch_reference(body):
    """Torch's eval output, gradients of sum(out * W) (eval mode) and, after one training-mode
    call, BatchNorm's running statistics: the numbers the bridged models must reproduce."""
    torch.manual_seed(7)
    host = TorchHost(body)
    head = (host.head.weight.detach().numpy().T.copy(), host.head.bias.detach().numpy().copy())
    host.eval()
    x = torch.from_numpy(X)
    out = host(x)
    (out * torch.from_numpy(W)).sum().backward()
    grads = {id(p): p.grad.detach().numpy().copy() for p in host.parameters()}
    head_grads = (host.head.weight.grad.numpy().T.copy(), host.head.bias.grad.numpy().copy())
    host.train()
    with torch.no_grad():
        host(x)
    stats = {id(b): b.detach().numpy().copy() for b in host.buffers()}
    return out.detach().numpy(), head, grads, head_grads, stats


def check_body(entries, jax_grads, jax_stats, grads, stats):
    """The bridged body's gradients and updated statistics against torch's, mapped by the
    transfer entries (the weight tables' paths and layouts)."""
    checked = {"grad": 0, "stat": 0}
    for e in entries:
        if e.nnx_path is None:
            continue  # num_batches_tracked: dropped by the table
        if e.is_param:
            close(jax_grads[e.nnx_path], e.convert(grads[id(e.tensor)]), GRAD_ATOL, GRAD_RTOL, e.torch_key)
            checked["grad"] += 1
        else:
            close(jax_stats[e.nnx_path], e.convert(stats[id(e.tensor)]), ATOL, RTOL, e.torch_key)
            checked["stat"] += 1
    assert checked == {"grad": 10, "stat": 4}, checked  # 2 conv + 2 BN + 1 linear; 2 BN x (mean, var)


def eval_call(module, x):
    """Used as to_linen's nnx_method: the NNX module is rebuilt on every Linen call, so inference
    mode is set there, on the fresh module, before calling it."""
    module.eval()
    return module(x)


def test_converted_nnx_module_inside_linen():
    """nnx.bridge.to_linen: the NNX conversion of ConvNet as a submodule of Linen code."""
    with _loaded(CNN_IN, {"ConvNet"}, "torch") as tf, _loaded(CNN_NNX, {"ConvNet"}, "nnx") as jf:
        body, nnx_body, entries, _ = build_transferred(tf, jf, CNN_IN, CNN_NNX, "ConvNet", "", 3, get_target("nnx"),
                                                       weights_map=None, perturb=True, float64=False)
        NNXConvNet = jf.namespace["ConvNet"]

        class LinenHost(linen.Module):
            @linen.compact
            def __call__(self, x, train: bool = False):
                body = nnx.bridge.to_linen(NNXConvNet, name="body")
                y = body(x) if train else body(x, nnx_method=eval_call)
                return linen.Dense(3, name="head")(y)

        out, (kernel, bias), grads, head_grads, stats = torch_reference(body)
        model = LinenHost()
        x = jnp.asarray(X)
        # init needs a 'dropout' stream too: the NNX constructor builds its Dropout from rngs
        initial = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
        # the converted module's weights (here from verify's transfer; in practice `pt2jax weights`
        # loaded into an NNX model) become the wrapper's variables, split by collection
        variables = {"params": {"body": nnx.to_pure_dict(nnx.state(nnx_body, nnx.Param)),
                                "head": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}},
                     "batch_stats": {"body": nnx.to_pure_dict(nnx.state(nnx_body, nnx.BatchStat))}}
        assert jax.tree.structure(variables) == jax.tree.structure(initial)

        close(model.apply(variables, x), out, what="eager")
        close(jax.jit(model.apply)(variables, x), out, what="jit")

        def loss(params):
            return jnp.sum(model.apply({**variables, "params": params}, x) * W)

        g = jax.jit(jax.grad(loss))(variables["params"])
        close(g["head"]["kernel"], head_grads[0], GRAD_ATOL, GRAD_RTOL, "head.weight")
        close(g["head"]["bias"], head_grads[1], GRAD_ATOL, GRAD_RTOL, "head.bias")
        _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                 rngs={"dropout": jax.random.key(2)})
        check_body(entries, traverse_util.flatten_dict(g["body"]),
                   traverse_util.flatten_dict(updates["batch_stats"]["body"]), grads, stats)


def test_converted_linen_module_inside_nnx(tmp_path):
    """nnx.bridge.ToNNX (+ lazy_init): the Linen conversion of ConvNet as a submodule of NNX code."""
    linen_file = tmp_path / "cnn_linen.py"
    linen_file.write_text(rewrite_source(Path(CNN_IN).read_text(), CNN_IN, target="linen").new_source)
    x = jnp.asarray(X)
    with _loaded(CNN_IN, {"ConvNet"}, "torch") as tf, _loaded(str(linen_file), {"ConvNet"}, "linen") as jf:
        body, linen_body, entries, _ = build_transferred(tf, jf, CNN_IN, str(linen_file), "ConvNet", "", 3,
                                                         get_target("linen"), weights_map=None, perturb=True,
                                                         float64=False, example_inputs=[x])
        LinenConvNet = jf.namespace["ConvNet"]

        class NNXHost(nnx.Module):
            def __init__(self, *, rngs: nnx.Rngs):
                self.body = nnx.bridge.ToNNX(LinenConvNet(), rngs=rngs)
                self.head = nnx.Linear(4, 3, rngs=rngs)

            def __call__(self, x, train: bool = False):
                if train:  # Linen's batch_stats are written back into the NNX variables
                    return self.head(self.body(x, train=True, mutable=["batch_stats"]))
                return self.head(self.body(x))

        out, (kernel, bias), grads, head_grads, stats = torch_reference(body)
        host = nnx.bridge.lazy_init(NNXHost(rngs=nnx.Rngs(params=0, dropout=1)), x)
        # the Linen variables (here verify's transfer; in practice `pt2jax weights` output) go into
        # the wrapper: ToNNX keeps them by path, the collections merged
        state = nnx.state(host.body, nnx.Not(nnx.RngState))
        merged = {**traverse_util.flatten_dict(linen_body.variables["params"]),
                  **traverse_util.flatten_dict(linen_body.variables["batch_stats"])}
        nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(merged))
        nnx.update(host.body, state)
        host.head.kernel.set_value(jnp.asarray(kernel))
        host.head.bias.set_value(jnp.asarray(bias))

        close(host(x), out, what="eager")
        close(nnx.jit(lambda m, x: m(x))(host, x), out, what="jit")
        g = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x) * W)))(host)
        close(g.head.kernel[...], head_grads[0], GRAD_ATOL, GRAD_RTOL, "head.weight")
        close(g.head.bias[...], head_grads[1], GRAD_ATOL, GRAD_RTOL, "head.bias")
        host(x, train=True)
        flat_grads = {path: v[...] for path, v in nnx.to_flat_state(g.body)}
        flat_stats = {path: v[...] for path, v in nnx.to_flat_state(nnx.state(host.body, nnx.BatchStat))}
        check_body(entries, flat_grads, flat_stats, grads, stats)


# ------------------------------------------------------------------------------ the rewrite

HALF_MIGRATED = '''"""Half migrated: the head is already Linen, the encoder still PyTorch."""
import jax
import jax.numpy as jnp
import flax.linen as fnn
from flax import linen
import torch
import torch.nn as nn
import torch.nn.functional as F


class LinenHead(fnn.Module):
    """Already Linen: a dataclass field, @compact, BatchNorm and Dropout driven by `train`."""
    features: int = 3

    @fnn.compact
    def __call__(self, x, train: bool = False):
        x = fnn.Dense(16)(x)
        x = fnn.BatchNorm(use_running_average=not train)(x)
        x = fnn.Dropout(0.1, deterministic=not train)(x)
        return fnn.Dense(self.features)(jax.nn.relu(x))


class Projection(linen.Module):
    width: int

    def setup(self):
        self.dense = linen.Dense(self.width)
        self.scale = self.param("scale", linen.initializers.ones, (self.width,))

    def __call__(self, x):
        return self.dense(x) * self.scale


def linen_loss(variables, x, y):
    return jnp.mean((LinenHead().apply(variables, x) - y) ** 2)


class Encoder(nn.Module):
    def __init__(self, d_in=8, d_out=16):
        super().__init__()
        self.fc = nn.Linear(d_in, d_out)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.drop(F.relu(self.fc(x)))
'''

# linen imported as `nn`, torch only as `torch`: the name `nn` is Linen's here
LINEN_AS_NN = '''import torch
import flax.linen as nn


class Head(nn.Module):
    features: int = 3

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(16)(x)
        x = nn.LayerNorm()(x)
        return nn.Dense(self.features)(nn.relu(x))


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 16)

    def forward(self, x):
        return torch.relu(self.fc(x))
'''


def segments(source: str) -> dict[str, str]:
    """Each top-level class/function and import's exact text, by name (imports by their text)."""
    tree = ast.parse(source)
    out = {}
    for node in tree.body:
        text = ast.get_source_segment(source, node)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out[node.name] = text
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out[text] = text
    return out


def test_rewrite_nnx_leaves_linen_code_alone():
    """The torch module converts; the Linen modules, the Linen function and the flax.linen
    imports are kept byte for byte, nothing in them is reported, and the result runs: the
    converted encoder feeds the Linen head through nnx.bridge.to_linen."""
    from pt2jax_migrate.lint import lint_source

    cases = {"half_migrated.py": (HALF_MIGRATED, ["LinenHead", "Projection", "linen_loss", "import flax.linen as fnn",
                                                  "from flax import linen"], "LinenHead"),
             "linen_as_nn.py": (LINEN_AS_NN, ["Head", "import flax.linen as nn"], "Head")}
    for path, (source, kept, head) in cases.items():
        result = rewrite_source(source, path)  # the default target: nnx
        before, after = segments(source), segments(result.new_source)
        for name in kept:
            assert after.get(name) == before[name], (path, name)
        assert "class Encoder(nnx.Module):" in result.new_source and "import torch" not in result.new_source, path
        linen_lines = {n for node in ast.parse(source).body if getattr(node, "name", "") in kept
                       for n in range(node.lineno, node.end_lineno + 1)}
        assert not [f for f in result.findings if f.line in linen_lines], path
        assert not [f for f in lint_source(source, path) if f.line in linen_lines], path
        assert rewrite_source(result.new_source, path).new_source == result.new_source  # idempotent
        linen_only = "\n".join(line for line in source.split("class Encoder")[0].splitlines() if "torch" not in line)
        assert rewrite_source(linen_only, path).new_source == linen_only  # no torch: untouched

        ns: dict = {}
        exec(compile(result.new_source, path, "exec"), ns)

        class Mixed(linen.Module):
            @linen.compact
            def __call__(self, x):
                return ns[head]()(nnx.bridge.to_linen(ns["Encoder"], name="encoder")(x, nnx_method=eval_call))

        x = jnp.ones((2, 8))
        variables = Mixed().init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
        assert Mixed().apply(variables, x).shape == (2, 3)
        assert set(variables["params"]) == {"encoder", f"{head}_0"}


def test_readme_bridge_snippets(tmp_path, monkeypatch):
    """The README's two bridge examples run as written (from the repository root; the Linen
    conversion where the README's `pt2jax rewrite --target linen` line writes it)."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text.split("### Mixing NNX and Linen", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert [b.splitlines()[0] for b in blocks] == ["# NNX inside Linen: the --target nnx conversion of ConvNet "
                                                   "under a Linen head", "# Linen inside NNX: the --target linen "
                                                   "conversion of ConvNet under an NNX head"]
    assert "pt2jax rewrite --target linen fixtures/cnn_classifier.in.py --out /tmp/linen" in section
    (tmp_path / "cnn_classifier.in.py").write_text(
        rewrite_source(Path(CNN_IN).read_text(), CNN_IN, target="linen").new_source)
    monkeypatch.chdir(ROOT)
    for block in blocks:
        ns: dict = {}
        exec(compile(block.replace("/tmp/linen/", f"{tmp_path}/"), "README bridge snippet", "exec"), ns)
        assert ns["logits"].shape == (4, 3) and np.all(np.isfinite(np.asarray(ns["logits"])))
    grads = {path: v[...] for path, v in nnx.to_flat_state(ns["grads"])}
    assert ("body", "features", "layers_0", "kernel") in grads and ("head", "kernel") in grads
