"""`--target linen` on torch parameter initialisation: nn.init on a layer's parameters and on a
raw nn.Parameter, a method only __init__ runs, `self.apply(self._init)` with isinstance and
`m.bias is not None`, `weight.copy_` / `fill_` under no_grad, `model.apply(fn)` and
`model.head.weight.fill_` in a script (model.apply(widen) redraws every Linear's weight). The class's init code runs under module.init
(init_parameters, @torch_initialised); the script's on the LinenModel's variables. The values
are checked against real torch running the original."""

from __future__ import annotations

import runpy

import numpy as np

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

SOURCE = '''import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 2 * d)
        self.scale = nn.Parameter(torch.empty(2 * d))
        self.init_weights()

    def init_weights(self):
        nn.init.ones_(self.scale)
        nn.init.constant_(self.fc.bias, 0.25)

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self, d=3):
        super().__init__()
        self.block = Block(d)
        self.head = nn.Linear(2 * d, 4, bias=False)
        self.wide = nn.Linear(2 * d, 64)
        self.apply(self._init)
        fill = 0.75 / d
        nn.init.constant_(self.wide.bias, fill)
        half = self.wide.in_features / 12  # a parameter's shape: read once the parameters exist
        nn.init.constant_(self.head.weight, half)

    def _init(self, m):
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.copy_(torch.linspace(-1, 1, m.out_features * m.in_features).reshape(m.out_features, m.in_features))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x):
        h = self.block(x)
        return self.head(h) + self.wide(h).mean()


def widen(m):
    if isinstance(m, nn.Linear):
        nn.init.kaiming_uniform_(m.weight, a=0, mode="fan_in", nonlinearity="relu")


torch.manual_seed(0)
model = Net()
model.apply(widen)
with torch.no_grad():
    model.head.weight.fill_(0.125)
out = model(torch.ones(2, 3))
'''


def test_init_idioms_convert_and_match_torch(tmp_path):
    result = rewrite_source(SOURCE, "m.py", target="linen")
    new = result.new_source
    assert "TODO(pt2jax)" not in new, [f"{f.line}: {f.code} {f.message}" for f in result.findings if not f.fixable]
    assert "def init_parameters(self, rngs):" in new and "@torch_initialised" in new
    assert rewrite_source(new, "m.py", target="linen").new_source == new  # idempotent
    lint = lint_source(SOURCE, "m.py", target="linen")
    skip = {"PTJ001", "PTJ101"}
    assert {(f.line, f.code) for f in lint if f.fixable and f.code not in skip} == \
        {(f.line, f.code) for f in result.findings if f.fixable and f.code not in skip}
    assert not [f for f in lint if not f.fixable and f.code != "PTJ001" and f.severity != "info"]

    (tmp_path / "torch_side.py").write_text(SOURCE)
    (tmp_path / "linen_side.py").write_text(new)
    torch_model = runpy.run_path(str(tmp_path / "torch_side.py"))["model"]
    want = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    ns = runpy.run_path(str(tmp_path / "linen_side.py"))
    params = ns["model"].variables["params"]

    def same(got, torch_key, transpose=False):
        np.testing.assert_allclose(np.asarray(got), want[torch_key].T if transpose else want[torch_key],
                                   rtol=0, atol=1e-7, err_msg=torch_key)

    # the parent's apply (zeros_ on biases) after the child's init_weights (0.25), then the
    # parent's own constant_ (torch's order), reading a local of __init__ (copied along)
    same(params["block"]["fc"]["bias"], "block.fc.bias")
    same(params["block"]["scale"], "block.scale")
    same(params["wide"]["bias"], "wide.bias")
    same(params["head"]["kernel"], "head.weight", transpose=True)  # the script's fill_
    assert "bias" not in params["head"]
    # kaiming_uniform_ with torch's fans (fan_in = 6, not the kernel's 64): bound sqrt(2) * sqrt(3 / 6)
    wide = np.asarray(params["wide"]["kernel"])
    assert wide.shape == (6, 64) and 0.9 < np.abs(wide).max() <= 1.0, np.abs(wide).max()
    assert np.abs(want["wide.weight"]).max() <= 1.0

    # the class's own init code runs under any module.init (verify's, a user's)
    import jax
    import jax.numpy as jnp

    variables = ns["Net"]().init(jax.random.key(1), jnp.ones((2, 3)))
    fresh = variables["params"]
    setup = new[new.index("class Net("):new.index("def init_parameters", new.index("class Net("))]
    assert "half = " not in setup  # copied along and, read by nothing left in setup, gone from it
    torch_fresh = runpy.run_path(str(tmp_path / "torch_side.py"))["Net"]()
    np.testing.assert_allclose(np.asarray(fresh["head"]["kernel"]).T, torch_fresh.head.weight.detach().numpy(),
                               rtol=0, atol=1e-7)
    same(fresh["block"]["fc"]["bias"], "block.fc.bias")
    same(fresh["block"]["scale"], "block.scale")
    for layer, shape in ((fresh["wide"], (64, 6)), (fresh["block"]["fc"], (6, 3))):  # copy_ in _init
        np.testing.assert_allclose(np.asarray(layer["kernel"]).T, np.linspace(-1, 1, shape[0] * shape[1],
                                   dtype=np.float32).reshape(shape), atol=1e-7)


def test_self_training_in_forward_is_the_train_argument():
    """`self.training` in forward -> __call__'s `train` (lint agrees); elsewhere it stays a TODO."""
    import jax.numpy as jnp
    import torch

    source = ("import torch\nimport torch.nn as nn\n\n\nclass Net(nn.Module):\n"
              "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(3, 2)\n\n"
              "    def forward(self, x):\n        if self.training:\n            x = x * 2.0\n"
              "        return self.fc(x)\n\n    def mode(self):\n        return self.training\n")
    result = rewrite_source(source, "m.py", target="linen")
    lint = lint_source(source, "m.py", target="linen")
    for fixable in (True, False):
        assert {(f.line, f.code) for f in lint if f.fixable == fixable and f.code not in ("PTJ001", "PTJ101")} \
            == {(f.line, f.code) for f in result.findings if f.fixable == fixable and f.code != "PTJ101"}
    assert [(f.line, f.code) for f in result.findings if not f.fixable] == [(16, "PTJ303")]  # mode(): left, marked once
    ns: dict = {}
    exec(compile(result.new_source, "m.py", "exec"), ns)
    ns_torch: dict = {}
    exec(compile(source, "t.py", "exec"), ns_torch)
    net = ns_torch["Net"]()
    x = torch.ones(1, 3)
    variables = {"params": {"fc": {"kernel": jnp.asarray(net.fc.weight.detach().numpy().T),
                                   "bias": jnp.asarray(net.fc.bias.detach().numpy())}}}
    for train in (True, False):
        net.train(train)
        want = net(x).detach().numpy()
        got = ns["Net"]().apply(variables, jnp.ones((1, 3)), train=train)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
