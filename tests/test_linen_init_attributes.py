"""`--target linen`: torch init code reading a layer's configuration (`m.out_channels`,
`m.kernel_size`, `m.groups`, `m.num_features`, `m.num_embeddings`, ... the classic resnet init
loop over `self.modules()` with elif branches and a local `n`, a constant computed in setup
locals by a tuple assignment and a loop) moves to `init_parameters` and
reads the bound Linen layer's fields / kernel shape; the values are compared with real torch.
An attribute with no Linen counterpart is a counted TODO, in lint and rewrite alike."""

from __future__ import annotations

import runpy

import numpy as np

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

SOURCE = '''import math

import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, kernel_size=(3, 2), groups=2, padding=1)
        self.big = nn.Conv2d(16, 64, 3, bias=False)
        self.bn = nn.BatchNorm2d(6, eps=1e-3)
        self.emb = nn.Embedding(10, 5)
        self.fc = nn.Linear(6, 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.out_channels == 64:
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2. / n))
            elif isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.constant_(m.weight, 1.0 / n)
                nn.init.constant_(m.bias, 1.0 / (m.in_channels * m.groups))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1.0 / m.num_features)
                nn.init.constant_(m.bias, m.eps * 1000)
            elif isinstance(m, nn.Embedding):
                nn.init.constant_(m.weight, 1.0 / (m.num_embeddings + 10 * m.embedding_dim))
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 1.0 / m.in_features)
                nn.init.constant_(m.bias, 1.0 / m.out_features)
        scale, shift = 2.0, 0.5  # locals init code reads, not one `name = value`: copied along
        for _ in range(2):
            shift = shift * scale
        nn.init.constant_(self.fc.bias, shift)

    def forward(self, x, z, idx):
        h = self.bn(self.conv(x))
        return self.fc(h.mean((2, 3))) + self.emb(idx).sum(-1, keepdim=True) + self.big(z).mean()


torch.manual_seed(0)
model = Net()
'''

UNMAPPED = '''import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4, 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 1.0 / m.stride[0])
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 1.0 / m.out_features)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))
'''


def _agree(source, result):
    lint = lint_source(source, "m.py", target="linen")
    for fixable in (True, False):
        skip = {"PTJ001", "PTJ101"}
        assert {(f.line, f.code) for f in lint if f.fixable == fixable and f.code not in skip} == \
            {(f.line, f.code) for f in result.findings if f.fixable == fixable and f.code not in skip}


def test_layer_attributes_in_init_code_match_torch(tmp_path):
    import jax
    import jax.numpy as jnp

    result = rewrite_source(SOURCE, "m.py", target="linen")
    new = result.new_source
    assert "TODO(pt2jax)" not in new, [f"{f.line}: {f.code} {f.message}" for f in result.findings if not f.fixable]
    hook = new[new.index("def init_parameters(self, rngs):"):new.index("@torch_initialised")]
    assert "TODO" not in hook and "torch_init.constant(" not in new[:new.index("def init_parameters")]
    assert "linen_submodules(self)" in hook and "math.sqrt(2. / n)" in hook and "m.out_channels" not in hook
    assert rewrite_source(new, "m.py", target="linen").new_source == new  # idempotent
    _agree(SOURCE, result)

    (tmp_path / "torch_side.py").write_text(SOURCE)
    (tmp_path / "linen_side.py").write_text(new)
    want = {k: v.detach().numpy() for k, v in runpy.run_path(str(tmp_path / "torch_side.py"))["model"]
            .state_dict().items()}
    ns = runpy.run_path(str(tmp_path / "linen_side.py"))
    args = (jnp.ones((2, 4, 5, 5)), jnp.ones((1, 16, 5, 5)), jnp.zeros((2,), jnp.int32))
    params = ns["Net"]().init(jax.random.key(0), *args)["params"]

    def same(got, key, axes=None):
        want_value = want[key] if axes is None else want[key].transpose(axes)
        np.testing.assert_allclose(np.asarray(got), want_value, rtol=1e-6, atol=0, err_msg=key)

    same(params["conv"]["kernel"], "conv.weight", (2, 3, 1, 0))  # 1 / (3 * 2 * 6)
    same(params["conv"]["bias"], "conv.bias")  # 1 / (in_channels 4 * groups 2)
    same(params["bn"]["scale"], "bn.weight")
    same(params["bn"]["bias"], "bn.bias")
    same(params["emb"]["embedding"], "emb.weight")
    same(params["fc"]["kernel"], "fc.weight", (1, 0))
    same(params["fc"]["bias"], "fc.bias")  # 2.0: the setup locals' value
    assert float(want["fc.bias"][0]) == 2.0
    # the resnet init: normal(0, sqrt(2 / n)), n = 3 * 3 * 64, drawn by jax (same law, not the same numbers)
    big = np.asarray(params["big"]["kernel"])
    assert big.shape == (3, 3, 16, 64)
    assert abs(big.std() / np.sqrt(2.0 / (9 * 64)) - 1) < 0.05, big.std()
    assert abs(want["big.weight"].std() / np.sqrt(2.0 / (9 * 64)) - 1) < 0.05


def test_unmapped_layer_attribute_is_a_todo_in_lint_and_rewrite():
    result = rewrite_source(UNMAPPED, "m.py", target="linen")
    todos = [f for f in result.findings if not f.fixable]
    assert [(f.line, f.code) for f in todos] == [(11, "PTJ105")], todos
    assert "m.stride" in todos[0].message
    new = result.new_source
    assert new.count("# TODO(pt2jax): PTJ105 m.stride read in init code") == 1
    compile(new, "m.py", "exec")
    assert "m.features" in new  # the mapped one beside it
    _agree(UNMAPPED, result)
    lint = lint_source(UNMAPPED, "m.py", target="linen")
    assert [(f.line, f.code) for f in lint if not f.fixable and f.code != "PTJ001"] == [(11, "PTJ105")]
    # NNX keeps torch's names on its converted layers: no finding there
    assert not [f for f in rewrite_source(UNMAPPED, "m.py").findings if not f.fixable]


CHAINED = '''import torch
import torch.nn as nn


class Head(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 64)
        self.big = nn.Linear(d, 256)
        self.scale = scale = d ** -0.5
        self.half = half = scale / 2
        self.std = std = 0.02 * d
        nn.init.constant_(self.fc.weight, scale + half)
        nn.init.normal_(self.big.weight, std=std)

    def forward(self, x):
        return self.fc(x) * self.scale + self.big(x).mean() * self.std


torch.manual_seed(0)
model = Head(4)
'''


def test_chained_attribute_and_local_copied_into_init_parameters(tmp_path):
    """`self.std = std = value` read by init code: init_parameters gets `std = value` (setup keeps
    the chained statement for self.std); the values match torch (normal_: its statistics)."""
    import jax
    import jax.numpy as jnp

    result = rewrite_source(CHAINED, "m.py", target="linen")
    new = result.new_source
    assert "TODO(pt2jax)" not in new, [f"{f.line}: {f.code} {f.message}" for f in result.findings]
    setup = new[new.index("def setup(self):"):new.index("def init_parameters")]
    hook = new[new.index("def init_parameters"):new.index("@torch_initialised")]
    assert "self.scale = scale = d ** -0.5" in setup and "self.std = std = 0.02 * d" in setup
    assert "torch_init." not in setup
    assert "scale = d ** -0.5\n        half = scale / 2\n" in hook and "\n        std = 0.02 * d\n" in hook
    assert rewrite_source(new, "m.py", target="linen").new_source == new  # idempotent
    _agree(CHAINED, result)

    (tmp_path / "torch_side.py").write_text(CHAINED)
    (tmp_path / "linen_side.py").write_text(new)
    torch_model = runpy.run_path(str(tmp_path / "torch_side.py"))["model"]
    ns = runpy.run_path(str(tmp_path / "linen_side.py"))
    x = jnp.ones((2, 4))
    variables = ns["Head"](4).init(jax.random.key(0), x)
    params = variables["params"]
    np.testing.assert_allclose(np.asarray(params["fc"]["kernel"]).T, torch_model.fc.weight.detach().numpy(),
                               rtol=1e-6, atol=0)
    big = np.asarray(params["big"]["kernel"])
    assert abs(big.std() / 0.08 - 1) < 0.05 and abs(big.mean()) < 0.01, (big.std(), big.mean())
    assert abs(torch_model.big.weight.detach().numpy().std() / 0.08 - 1) < 0.05
    assert ns["Head"](4).apply(variables, x).shape == (2, 64)
