"""The helpers the rewrite emits into converted files, checked against real PyTorch.

Each helper is loaded the way a converted file gets it: its import lines plus the sources of
helper_closure([name]), exec'd into a fresh namespace. Torch results are computed here, in the
test, on the same random numpy inputs; float32 max abs error must stay <= 1e-5.
"""

from __future__ import annotations

import ast
import builtins
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import nnx

from pt2jax_migrate.helpers import ALLOWED_IMPORTS, HELPERS, Helper, helper_closure, helper_imports

TOL = 1e-5


# ---------------------------------------------------------------------------- loading


def emitted_source(names) -> str:
    """The text a converted file would carry for these helpers: imports, then definitions."""
    helpers = helper_closure(names)
    return "\n".join(helper_imports(helpers)) + "\n\n\n" + "\n\n".join(h.source for h in helpers)


@functools.cache
def _namespace(names: tuple[str, ...]) -> dict:
    ns = {"__name__": "converted_under_test"}
    exec(compile(emitted_source(names), "<emitted helpers>", "exec"), ns)
    return ns


@pytest.fixture
def load():
    """load("max_pool2d") -> the object, from a namespace holding only that helper's closure."""

    def _load(name):
        return _namespace((name,))[name]

    return _load


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(*shape, seed=0, loc=0.0, scale=1.0):
    return rng(seed).normal(loc, scale, size=shape).astype(np.float32)


def max_err(jax_value, torch_value) -> float:
    a = np.asarray(jax_value)
    b = torch_value.detach().numpy() if isinstance(torch_value, torch.Tensor) else np.asarray(torch_value)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def set_param(variable, value):
    # jnp.array copies: jnp.asarray may share memory with a torch buffer that torch updates in place
    value = jnp.array(np.asarray(value), jnp.float32)
    assert variable[...].shape == value.shape, (variable[...].shape, value.shape)
    variable[...] = value


# ---------------------------------------------------------------------------- API and sources


def test_helper_table_is_well_formed():
    assert set(HELPERS) >= {
        "ConvNCHW", "TorchBatchNorm", "max_pool1d", "max_pool2d", "avg_pool2d",
        "adaptive_avg_pool2d", "identity", "torch_kernel_init", "torch_bias_init",
        "torch_embedding_init", "ntuple",
    }
    seen = set()
    for key, h in HELPERS.items():
        assert isinstance(h, Helper) and h.name == key
        assert set(h.imports) <= set(ALLOWED_IMPORTS), h.imports
        assert len(set(h.imports)) == len(h.imports)
        assert set(h.requires) <= seen, f"{key} must come after what it requires"
        seen.add(key)
        assert h.source.endswith("\n") and not h.source.endswith("\n\n")
        assert h.source.strip() and not h.source.startswith(("\n", " "))
        assert all(len(line) <= 99 and line == line.rstrip() for line in h.source.splitlines())
        assert "\t" not in h.source
        assert "pt2jax" not in h.source  # converted code never refers back to the tool


@pytest.mark.parametrize("name", list(HELPERS))
def test_source_parses_defines_its_name_and_has_no_imports(name):
    tree = ast.parse(HELPERS[name].source)
    defined = set()
    for node in tree.body:
        assert not isinstance(node, (ast.Import, ast.ImportFrom)), "imports go in Helper.imports"
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
            assert ast.get_docstring(node), f"{node.name} needs a docstring saying why it exists"
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    assert defined == {name}
    if not isinstance(tree.body[0], (ast.FunctionDef, ast.ClassDef)):
        assert HELPERS[name].source.startswith("#"), "a plain assignment needs a comment saying why"


def _imported_name(line: str) -> str:
    return line.split()[-1]  # "import jax.numpy as jnp" -> jnp, "from flax import nnx" -> nnx


def _free_names(source: str) -> set[str]:
    """Names a snippet reads but never binds (a superset of its real free names is fine here)."""
    tree = ast.parse(source)
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):  # a helper's own lazy import (orbax)
            bound |= {a.asname or a.name.split(".")[0] for a in node.names}
    return loaded - bound - set(dir(builtins))


@pytest.mark.parametrize("name", list(HELPERS))
def test_imports_cover_exactly_what_the_source_uses(name):
    h = HELPERS[name]
    free = _free_names(h.source)
    provided = {_imported_name(line) for line in h.imports}
    assert free <= provided | set(h.requires), f"missing imports/requires: {free - provided - set(h.requires)}"
    assert provided <= free, f"unused imports: {provided - free}"
    assert set(h.requires) <= free, f"unused requires: {set(h.requires) - free}"
    # Exec with only its own imports (requirements defined from their own imports, separately).
    ns = {"__name__": "converted_under_test"}
    for dep in helper_closure(h.requires):
        dep_ns = {"__name__": "converted_under_test"}
        exec("\n".join(dep.imports) + "\n" + dep.source, dep_ns)
        ns[dep.name] = dep_ns[dep.name]
    exec("\n".join(h.imports) + "\n" + h.source, ns)
    assert name in ns


def test_helper_closure_orders_dependencies_first_and_is_stable():
    order = [h.name for h in helper_closure(["adaptive_avg_pool2d", "max_pool2d"])]
    assert order == ["ntuple", "pool_pads", "max_pool2d", "adaptive_avg_pool2d"]
    assert [h.name for h in helper_closure({"max_pool2d", "adaptive_avg_pool2d", "ntuple"})] == order
    assert [h.name for h in helper_closure(iter(["identity", "identity"]))] == ["identity"]
    assert helper_closure([]) == []
    everything = helper_closure(reversed(list(HELPERS)))
    assert [h.name for h in everything] == list(HELPERS)
    with pytest.raises(KeyError, match="no_such_helper"):
        helper_closure(["no_such_helper"])


def test_helper_imports_are_deduplicated_in_canonical_order():
    assert helper_imports(helper_closure(["identity"])) == []
    assert helper_imports(helper_closure(["ConvNCHW", "torch_bias_init"])) == [
        "import math", "import jax", "import jax.numpy as jnp", "from flax import nnx",
    ]


def test_helpers_module_imports_no_framework():
    tree = ast.parse(Path(__file__).parents[1].joinpath("pt2jax_migrate", "helpers.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots = {(node.module or "").split(".")[0]}
        else:
            continue
        assert not roots & {"jax", "flax", "torch", "numpy", "optax"}, ast.unparse(node)


def test_all_helpers_together_form_a_valid_module():
    ns = _namespace(tuple(HELPERS))
    assert all(name in ns for name in HELPERS)


def test_ntuple_and_identity(load):
    ntuple, identity = load("ntuple"), load("identity")
    assert ntuple(3, 2) == (3, 3)
    assert ntuple([1, 2], 2) == (1, 2)
    assert ntuple((4,), 1) == (4,)
    assert ntuple(None, 2) == (None, None)
    x = jnp.arange(3.0)
    assert identity(x) is x


# ---------------------------------------------------------------------------- ConvNCHW

CONV_CASES = [
    # (torch kwargs, input shape, how padding is written for flax)
    (dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1), (2, 3, 8, 8), "int"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1), (2, 3, 8, 8), "pairs"),
    (dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2), (2, 4, 6, 6), "pairs"),
    (dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4, bias=False), (1, 4, 5, 5), "pairs"),
    (dict(in_channels=2, out_channels=3, kernel_size=3, padding=2, dilation=2), (2, 2, 9, 9), "pairs"),
    (dict(in_channels=2, out_channels=3, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2)), (2, 2, 8, 7), "pairs"),
    (dict(in_channels=2, out_channels=5, kernel_size=2, bias=False), (3, 2, 5, 4), "int"),
]


def _flax_conv_for(ConvNCHW, conv: torch.nn.Module, padding_style: str):
    nd = conv.weight.ndim - 2
    pad = conv.padding
    padding = pad[0] if padding_style == "int" else tuple((p, p) for p in pad)
    if padding_style == "int":
        assert len(set(pad)) == 1
    layer = ConvNCHW(
        conv.in_channels,
        conv.out_channels,
        kernel_size=tuple(conv.kernel_size),
        strides=tuple(conv.stride),
        padding=padding,
        kernel_dilation=tuple(conv.dilation),
        feature_group_count=conv.groups,
        use_bias=conv.bias is not None,
        rngs=nnx.Rngs(0),
    )
    w = conv.weight.detach().numpy()
    set_param(layer.kernel, w.transpose(tuple(range(2, 2 + nd)) + (1, 0)))  # (*k, I/g, O)
    if conv.bias is not None:
        set_param(layer.bias, conv.bias.detach().numpy())
    return layer


@pytest.mark.parametrize("kwargs,shape,padding_style", CONV_CASES)
def test_conv2d_parity(load, kwargs, shape, padding_style):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(**kwargs)
    layer = _flax_conv_for(load("ConvNCHW"), conv, padding_style)
    x = randn(*shape, seed=1)
    with torch.no_grad():
        expected = conv(torch.from_numpy(x))
    assert max_err(layer(jnp.asarray(x)), expected) <= TOL
    params = nnx.to_flat_state(nnx.state(layer, nnx.Param))
    assert {path for path, _ in params} == ({("kernel",), ("bias",)} if conv.bias is not None else {("kernel",)})


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        (dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1), (2, 3, 10)),
        (dict(in_channels=4, out_channels=6, kernel_size=3, padding=2, dilation=2, groups=2), (2, 4, 9)),
        (dict(in_channels=2, out_channels=3, kernel_size=4, bias=False), (3, 2, 7)),
    ],
)
def test_conv1d_parity(load, kwargs, shape):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(**kwargs)
    layer = _flax_conv_for(load("ConvNCHW"), conv, "pairs")
    x = randn(*shape, seed=2)
    with torch.no_grad():
        expected = conv(torch.from_numpy(x))
    assert max_err(layer(jnp.asarray(x)), expected) <= TOL


def test_conv3d_and_unbatched_parity(load):
    torch.manual_seed(0)
    conv3 = torch.nn.Conv3d(2, 3, kernel_size=(2, 3, 3), stride=(1, 2, 1), padding=1)
    layer3 = _flax_conv_for(load("ConvNCHW"), conv3, "pairs")
    x3 = randn(2, 2, 4, 6, 5, seed=3)
    with torch.no_grad():
        assert max_err(layer3(jnp.asarray(x3)), conv3(torch.from_numpy(x3))) <= TOL
    # torch also accepts an input without batch axis: (C, H, W)
    conv2 = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    layer2 = _flax_conv_for(load("ConvNCHW"), conv2, "int")
    x2 = randn(3, 8, 8, seed=4)
    with torch.no_grad():
        assert max_err(layer2(jnp.asarray(x2)), conv2(torch.from_numpy(x2))) <= TOL


def test_conv_under_jit_and_grad(load):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    layer = _flax_conv_for(load("ConvNCHW"), conv, "pairs")
    x = randn(2, 3, 8, 8, seed=5)
    r = randn(2, 4, 4, 4, seed=6)
    (conv(torch.from_numpy(x)) * torch.from_numpy(r)).sum().backward()

    @nnx.jit
    def loss_and_grad(layer, x):
        return nnx.value_and_grad(lambda m: (m(x) * r).sum())(layer)

    _, grads = loss_and_grad(layer, jnp.asarray(x))
    k_grad = conv.weight.grad.numpy().transpose(2, 3, 1, 0)
    assert max_err(grads["kernel"][...], k_grad) <= TOL
    assert max_err(grads["bias"][...], conv.bias.grad) <= TOL


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("torch_padding,flax_padding", [("same", "SAME"), ("valid", "VALID")])
def test_conv_string_padding(load, torch_padding, flax_padding):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 4, padding=torch_padding)  # even kernel: 'same' pads (1, 2)
    layer = load("ConvNCHW")(2, 3, kernel_size=(4, 4), padding=flax_padding, rngs=nnx.Rngs(0))
    set_param(layer.kernel, conv.weight.detach().numpy().transpose(2, 3, 1, 0))
    set_param(layer.bias, conv.bias.detach().numpy())
    x = randn(2, 2, 7, 6, seed=7)
    with torch.no_grad():
        assert max_err(layer(jnp.asarray(x)), conv(torch.from_numpy(x))) <= TOL


# ---------------------------------------------------------------------------- TorchBatchNorm


def _bn_pair(load, torch_cls, channels, momentum=0.1, seed=0):
    """A torch BN with random affine params and running stats, and a TorchBatchNorm copy of it."""
    bn = torch_cls(channels, momentum=momentum)
    g = rng(seed)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(g.uniform(0.5, 1.5, channels).astype(np.float32)))
        bn.bias.copy_(torch.from_numpy(g.normal(size=channels).astype(np.float32)))
        bn.running_mean.copy_(torch.from_numpy(g.normal(size=channels).astype(np.float32)))
        bn.running_var.copy_(torch.from_numpy(g.uniform(0.5, 2.0, channels).astype(np.float32)))
    layer = load("TorchBatchNorm")(
        channels, axis=1, momentum=1 - momentum, epsilon=1e-05, use_fast_variance=False, rngs=nnx.Rngs(0)
    )
    set_param(layer.scale, bn.weight.detach().numpy())
    set_param(layer.bias, bn.bias.detach().numpy())
    set_param(layer.mean, bn.running_mean.numpy())
    set_param(layer.var, bn.running_var.numpy())
    return bn, layer


BN_CASES = [
    (torch.nn.BatchNorm1d, (6, 3), 0.1),  # (N, C): n = 6 values per channel
    (torch.nn.BatchNorm1d, (4, 3, 5), 0.1),  # (N, C, L)
    (torch.nn.BatchNorm2d, (4, 5, 3, 3), 0.2),  # the rules' example: momentum 0.2 -> 0.8
    (torch.nn.BatchNorm2d, (2, 3, 4, 4), 0.1),
]


def _check_bn_train_then_eval(bn, layer, shape, call):
    """Two train steps (outputs and running stats), then an eval-mode call."""
    bn.train()
    layer.train()
    for step in range(2):
        x = randn(*shape, seed=10 + step, loc=2.0 * step - 1.0, scale=1.0 + step)
        expected = bn(torch.from_numpy(x)).detach()
        assert max_err(call(layer, jnp.asarray(x)), expected) <= TOL
        assert max_err(layer.mean[...], bn.running_mean) <= TOL
        assert max_err(layer.var[...], bn.running_var) <= TOL
    bn.eval()
    layer.eval()
    x = randn(*shape, seed=20, loc=0.5)
    with torch.no_grad():
        expected = bn(torch.from_numpy(x))
    mean_before, var_before = np.asarray(layer.mean[...]), np.asarray(layer.var[...])
    assert max_err(call(layer, jnp.asarray(x)), expected) <= TOL
    # eval leaves the running statistics alone
    assert np.array_equal(np.asarray(layer.mean[...]), mean_before)
    assert np.array_equal(np.asarray(layer.var[...]), var_before)


@pytest.mark.parametrize("torch_cls,shape,momentum", BN_CASES)
def test_batchnorm_train_stats_and_eval_parity(load, torch_cls, shape, momentum):
    bn, layer = _bn_pair(load, torch_cls, shape[1], momentum)
    _check_bn_train_then_eval(bn, layer, shape, lambda m, x: m(x))


@pytest.mark.parametrize("torch_cls,shape,momentum", BN_CASES[1:3])
def test_batchnorm_parity_under_nnx_jit(load, torch_cls, shape, momentum):
    bn, layer = _bn_pair(load, torch_cls, shape[1], momentum)

    @nnx.jit
    def call(m, x):
        return m(x)

    _check_bn_train_then_eval(bn, layer, shape, call)


def test_batchnorm_plain_flax_would_differ(load):
    """The check above is sensitive: stock nnx.BatchNorm's running var is off by 0.1*var_b/(n-1)."""
    x = randn(4, 3, 5, seed=30, scale=2.0)
    bn, layer = _bn_pair(load, torch.nn.BatchNorm1d, 3)
    plain = nnx.BatchNorm(3, axis=1, momentum=0.9, epsilon=1e-05, use_fast_variance=False, rngs=nnx.Rngs(0))
    set_param(plain.var, layer.var[...])
    bn(torch.from_numpy(x))
    layer(jnp.asarray(x))
    plain(jnp.asarray(x))
    assert max_err(layer.var[...], bn.running_var) <= TOL
    assert max_err(plain.var[...], bn.running_var) > 1e-3


def test_batchnorm_use_running_average_argument(load):
    bn, layer = _bn_pair(load, torch.nn.BatchNorm2d, 3)
    x = randn(2, 3, 4, 4, seed=40)
    bn.eval()
    with torch.no_grad():
        expected = bn(torch.from_numpy(x))
    mean_before = np.asarray(layer.mean[...])
    assert layer.use_running_average is False  # a new layer starts in train mode, like nnx.BatchNorm
    assert max_err(layer(jnp.asarray(x), use_running_average=True), expected) <= TOL
    assert np.array_equal(np.asarray(layer.mean[...]), mean_before)
    # and the argument overrides an eval-mode attribute the other way round
    layer.eval()
    bn.train()
    expected = bn(torch.from_numpy(x)).detach()
    assert max_err(layer(jnp.asarray(x), use_running_average=False), expected) <= TOL
    assert max_err(layer.var[...], bn.running_var) <= TOL


def test_batchnorm_inside_a_model_train_step(load):
    """model.train()/eval() reach the helper, and a jitted value_and_grad step updates its stats."""
    TorchBatchNorm = load("TorchBatchNorm")
    bn, _ = _bn_pair(load, torch.nn.BatchNorm2d, 3)

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.bn = TorchBatchNorm(3, axis=1, momentum=0.9, epsilon=1e-05, use_fast_variance=False, rngs=rngs)

        def __call__(self, x):
            return self.bn(x)

    net = Net(nnx.Rngs(0))
    for name in ("scale", "bias", "mean", "var"):
        torch_name = {"scale": "weight", "mean": "running_mean", "var": "running_var"}.get(name, name)
        set_param(getattr(net.bn, name), getattr(bn, torch_name).detach().numpy())
    x = randn(2, 3, 4, 4, seed=50, loc=1.0)
    r = randn(2, 3, 4, 4, seed=51)

    @nnx.jit
    def step(net, x):
        return nnx.value_and_grad(lambda m: (m(x) * r).sum())(net)

    bn.train()
    net.train()
    torch_loss = (bn(torch.from_numpy(x)) * torch.from_numpy(r)).sum()
    torch_loss.backward()
    loss, grads = step(net, jnp.asarray(x))
    assert abs(float(loss) - torch_loss.item()) <= 1e-4
    assert max_err(grads["bn"]["scale"][...], bn.weight.grad) <= TOL
    assert max_err(grads["bn"]["bias"][...], bn.bias.grad) <= TOL
    assert max_err(net.bn.mean[...], bn.running_mean) <= TOL
    assert max_err(net.bn.var[...], bn.running_var) <= TOL
    net.eval()
    assert net.bn.use_running_average is True
    bn.eval()
    with torch.no_grad():
        assert max_err(net(jnp.asarray(x)), bn(torch.from_numpy(x))) <= TOL


def test_batchnorm_without_affine(load):
    """affine=False maps to use_scale=False, use_bias=False."""
    bn = torch.nn.BatchNorm2d(3, affine=False)
    layer = load("TorchBatchNorm")(
        3, axis=1, momentum=0.9, epsilon=1e-05, use_fast_variance=False, use_scale=False, use_bias=False,
        rngs=nnx.Rngs(0),
    )
    assert not nnx.state(layer, nnx.Param)
    _check_bn_train_then_eval(bn, layer, (2, 3, 3, 4), lambda m, x: m(x))


def test_batchnorm_refuses_one_value_per_channel_in_training(load):
    layer = load("TorchBatchNorm")(3, axis=1, momentum=0.9, use_fast_variance=False, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(jnp.ones((1, 3)))
    with pytest.raises(ValueError):  # torch agrees
        torch.nn.BatchNorm1d(3)(torch.ones(1, 3))


# ---------------------------------------------------------------------------- pooling

MAX_POOL2D_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=(2, 3), stride=1, padding=(1, 1)),
    dict(kernel_size=3, stride=2, padding=1, dilation=2),
    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
]


@pytest.mark.parametrize("kwargs", MAX_POOL2D_CASES)
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 9)])
def test_max_pool2d_parity(load, kwargs, shape):
    # all-negative inputs: padding with zeros instead of -inf would change the border outputs
    x = randn(*shape, seed=60, loc=-5.0)
    expected = F.max_pool2d(torch.from_numpy(x), **kwargs)
    assert max_err(load("max_pool2d")(jnp.asarray(x), **kwargs), expected) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, stride=1, padding=1, dilation=2),
        dict(kernel_size=(4,), stride=(3,), padding=(2,)),
    ],
)
def test_max_pool1d_parity(load, kwargs):
    x = randn(2, 3, 9, seed=61, loc=-5.0)
    expected = F.max_pool1d(torch.from_numpy(x), **kwargs)
    assert max_err(load("max_pool1d")(jnp.asarray(x), **kwargs), expected) == 0.0


def test_max_pool_positional_args_unbatched_and_module_form(load):
    x = randn(3, 8, 8, seed=62)  # (C, H, W), which torch also accepts
    expected = F.max_pool2d(torch.from_numpy(x), 3, 2, 1)
    assert max_err(load("max_pool2d")(jnp.asarray(x), 3, 2, 1), expected) == 0.0
    xb = randn(2, 3, 9, seed=63)
    module = torch.nn.MaxPool1d(3, stride=2, padding=1)  # the rules' nn.MaxPool1d example
    assert max_err(load("max_pool1d")(jnp.asarray(xb), 3, stride=2, padding=1), module(torch.from_numpy(xb))) == 0.0


AVG_POOL2D_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=(2, 3), stride=1, padding=(1, 1)),
    dict(kernel_size=3, stride=1, padding=1),
]


@pytest.mark.parametrize("kwargs", AVG_POOL2D_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 7)])
def test_avg_pool2d_parity(load, kwargs, count_include_pad, shape):
    x = randn(*shape, seed=64, loc=1.0)
    expected = F.avg_pool2d(torch.from_numpy(x), count_include_pad=count_include_pad, **kwargs)
    got = load("avg_pool2d")(jnp.asarray(x), count_include_pad=count_include_pad, **kwargs)
    assert max_err(got, expected) <= TOL


def test_avg_pool2d_unbatched_and_module_form(load):
    x = randn(3, 7, 7, seed=65)
    expected = torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)(torch.from_numpy(x))
    assert max_err(load("avg_pool2d")(jnp.asarray(x), 3, 2, 1, count_include_pad=False), expected) <= TOL


@pytest.mark.parametrize(
    "shape,output_size",
    [
        ((2, 3, 5, 5), 1),
        ((2, 3, 7, 8), (1, 1)),
        ((2, 3, 7, 8), (2, 3)),
        ((2, 3, 7, 8), (None, 3)),
        ((2, 3, 7, 8), (4, None)),
        ((2, 3, 7, 8), (5, 5)),  # overlapping bins
        ((2, 3, 7, 8), (4, 4)),  # divisible along W
        ((1, 2, 3, 4), (5, 7)),  # larger than the input: bins repeat
        ((3, 7, 8), (2, 3)),  # (C, H, W)
    ],
)
def test_adaptive_avg_pool2d_parity(load, shape, output_size):
    x = randn(*shape, seed=66)
    expected = F.adaptive_avg_pool2d(torch.from_numpy(x), output_size)
    assert max_err(load("adaptive_avg_pool2d")(jnp.asarray(x), output_size), expected) <= TOL


def test_pools_under_jit(load):
    x = randn(2, 3, 7, 8, seed=67)
    tx = torch.from_numpy(x)
    max_pool2d, avg_pool2d, adaptive = load("max_pool2d"), load("avg_pool2d"), load("adaptive_avg_pool2d")

    @jax.jit
    def f(x):
        return (
            max_pool2d(x, 3, 2, 1),
            avg_pool2d(x, 3, 2, 1, count_include_pad=False),
            adaptive(x, (2, 3)),
        )

    got = f(jnp.asarray(x))
    assert max_err(got[0], F.max_pool2d(tx, 3, 2, 1)) == 0.0
    assert max_err(got[1], F.avg_pool2d(tx, 3, 2, 1, count_include_pad=False)) <= TOL
    assert max_err(got[2], F.adaptive_avg_pool2d(tx, (2, 3))) <= TOL


def test_pool_gradients_match_torch(load):
    x = randn(2, 2, 6, 6, seed=68)
    r = randn(2, 2, 2, 3, seed=69)
    tx = torch.from_numpy(x).requires_grad_()
    pooled = F.adaptive_avg_pool2d(F.avg_pool2d(F.max_pool2d(tx, 3, 1, 1), 2, 1, 1), (2, 3))
    (pooled * torch.from_numpy(r)).sum().backward()
    max_pool2d, avg_pool2d, adaptive = load("max_pool2d"), load("avg_pool2d"), load("adaptive_avg_pool2d")

    def loss(x):
        return (adaptive(avg_pool2d(max_pool2d(x, 3, 1, 1), 2, 1, 1), (2, 3)) * r).sum()

    assert max_err(jax.grad(loss)(jnp.asarray(x)), tx.grad) <= TOL


# ---------------------------------------------------------------------------- initialisers


def test_torch_kernel_init_matches_torch_range(load):
    init = load("torch_kernel_init")
    torch.manual_seed(0)
    for shape, fan_in, torch_layer in [
        ((64, 256), 64, torch.nn.Linear(64, 256)),  # nnx.Linear kernel (in, out)
        ((3, 3, 4, 32), 36, torch.nn.Conv2d(4, 32, 3)),  # nnx.Conv kernel (kh, kw, I/g, O)
    ]:
        w = np.asarray(init(jax.random.key(0), shape, jnp.float32))
        assert w.shape == shape and w.dtype == np.float32
        ours = np.abs(w).max() * np.sqrt(fan_in)
        theirs = torch_layer.weight.detach().abs().max().item() * np.sqrt(fan_in)
        assert 0.95 <= ours <= 1.0 and 0.95 <= theirs <= 1.0
        assert abs(w.mean()) < 0.05 / np.sqrt(fan_in)
        assert abs(w.std() * np.sqrt(fan_in) - 1 / np.sqrt(3)) < 0.02  # uniform on [-1, 1]: std 1/sqrt(3)


def test_torch_init_on_real_layers(load):
    kernel_init, bias_init, ConvNCHW = load("torch_kernel_init"), load("torch_bias_init"), load("ConvNCHW")
    conv = ConvNCHW(
        8, 64, kernel_size=(3, 3), padding=1, feature_group_count=2,
        kernel_init=kernel_init, bias_init=bias_init(4 * 3 * 3), rngs=nnx.Rngs(0),
    )
    fan_in = 4 * 3 * 3
    assert 0.95 <= np.abs(np.asarray(conv.kernel[...])).max() * np.sqrt(fan_in) <= 1.0
    assert 0.7 <= np.abs(np.asarray(conv.bias[...])).max() * np.sqrt(fan_in) <= 1.0  # only 64 draws
    linear = nnx.Linear(50, 2000, kernel_init=kernel_init, bias_init=bias_init(50), rngs=nnx.Rngs(1))
    assert 0.95 <= np.abs(np.asarray(linear.bias[...])).max() * np.sqrt(50) <= 1.0


def test_torch_bias_init_matches_torch_range(load):
    bias_init = load("torch_bias_init")
    b = np.asarray(bias_init(50)(jax.random.key(1), (4000,)))
    assert b.dtype == np.float32
    assert 0.95 <= np.abs(b).max() * np.sqrt(50) <= 1.0
    torch.manual_seed(0)
    torch_bias = torch.nn.Linear(50, 4000).bias.detach().numpy()
    assert 0.95 <= np.abs(torch_bias).max() * np.sqrt(50) <= 1.0
    assert abs(b.std() - torch_bias.std()) < 0.01
    assert np.asarray(bias_init(8)(jax.random.key(2), (3,), jnp.bfloat16)).dtype == jnp.bfloat16
    assert np.all(np.asarray(bias_init(0)(jax.random.key(3), (5,))) == 0.0)  # torch: bound 0 if fan_in == 0


def test_torch_embedding_init_matches_torch(load):
    init = load("torch_embedding_init")
    table = np.asarray(nnx.Embed(100, 64, embedding_init=init, rngs=nnx.Rngs(0)).embedding[...])
    torch.manual_seed(0)
    torch_table = torch.nn.Embedding(100, 64).weight.detach().numpy()
    assert abs(table.std() - 1.0) < 0.05 and abs(torch_table.std() - 1.0) < 0.05
    assert abs(table.mean()) < 0.05
    default = np.asarray(nnx.Embed(100, 64, rngs=nnx.Rngs(0)).embedding[...])
    assert default.std() < 0.2  # flax's own default is far from torch's N(0, 1)
