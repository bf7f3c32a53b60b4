"""Parameter initialisation: `self.apply(self._init_weights)`, `nn.init.*` and in-place inits.

The converted init writes what torch writes, in the converted layout (the weight tables'
transforms): deterministic inits give the same outputs as torch before any weight transfer;
random inits draw from torch's distributions (same bounds, same std, torch's fans).
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from pt2jax_migrate.core.residue import unmarked_residue
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")

BOOKKEEPING = {"PTJ001", "PTJ101"}


def convert(source: str) -> tuple[str, list]:
    result = rewrite_source(source, "model.py")
    assert unmarked_residue(result.new_source) == []
    lint = lint_source(source, "model.py")
    # lint reports exactly what rewrite does (fixable and left for a person)
    assert {(f.line, f.code) for f in lint if f.fixable and f.code not in BOOKKEEPING} == \
        {(f.line, f.code) for f in result.findings if f.fixable and f.code not in BOOKKEEPING}
    assert {(f.line, f.code) for f in lint if not f.fixable and f.code not in {"PTJ001", "PTJ303"}} == \
        {(f.line, f.code) for f in result.findings if not f.fixable}
    return result.new_source, result.findings


def load(source: str, name: str):
    """Run a module's source; return the attribute `name`."""
    module = types.ModuleType("converted_or_torch")
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return getattr(module, name)


# ------------------------------------------------------------------ deterministic: same outputs

DETERMINISTIC = '''\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 3, (3, 2), padding=1)
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.scale = nn.Parameter(torch.zeros(3))
        self.apply(self._init_weights)
        nn.init.constant_(self.scale, 2.0)
        nn.init.dirac_(self.conv.weight)
        with torch.no_grad():
            self.conv2.weight.copy_(torch.arange(36.0).reshape(3, 2, 3, 2) / 36)
            self.fc2.weight.data.copy_(torch.arange(12.0).reshape(3, 4) / 10 - 0.4)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.eye_(m.weight)
            m.bias.data.fill_(0.5)
        elif isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.1)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            m.bias.data.zero_()

    def forward(self, x, v):
        y = self.conv2(self.conv(x)).mean((2, 3))
        return self.norm(y + self.fc2(self.fc1(v))) * self.scale
'''


def test_deterministic_inits_give_torchs_outputs_before_any_weight_transfer():
    converted, findings = convert(DETERMINISTIC)
    assert not [f for f in findings if not f.fixable], [f.message for f in findings if not f.fixable]
    assert "module_apply(self, self._init_weights)" in converted  # no rngs: nothing random
    assert "isinstance(m, nnx.Linear)" in converted and "isinstance(m, ConvNCHW)" in converted
    assert 'torch_init.copy(self.fc2.kernel, jnp.arange(12.0).reshape(3, 4) / 10 - 0.4, layout="transpose")' \
        in converted
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 6)).astype(np.float32)
    v = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    expected = load(DETERMINISTIC, "Net")()(torch.from_numpy(x), torch.from_numpy(v)).detach().numpy()
    for seed in (0, 1):  # the rngs do not matter: every parameter is set by the init
        got = np.asarray(load(converted, "Net")(rngs=nnx.Rngs(seed))(x, v))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


MODULES_LOOP = '''\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 0.5)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0.25)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))
'''


def test_the_modules_loop_in_init_converts_torch_free():
    """torchvision's pattern: `for m in self.modules(): if isinstance(m, nn.Conv2d): ...` in __init__."""
    converted, findings = convert(MODULES_LOOP)
    assert not [f for f in findings if not f.fixable]
    assert "for m in submodules(self):" in converted and "isinstance(m, (TorchBatchNorm, GroupNormNCHW))" in converted
    model = load(converted, "Net")(rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(np.asarray(model.bn.scale[...]), np.full(8, 0.5, np.float32))
    np.testing.assert_array_equal(np.asarray(model.fc.bias[...]), np.full(2, 0.25, np.float32))
    assert np.all(np.asarray(model.conv.bias[...]) == 0)
    assert model(np.zeros((1, 3, 5, 5), np.float32)).shape == (1, 2)


# ------------------------------------------------------------------ random: same distributions

RANDOM = '''\
import math
import torch
import torch.nn as nn


class Big(nn.Module):
    def __init__(self):
        super().__init__()
        self.uniform = nn.Linear(512, 256)
        self.normal = nn.Linear(512, 256)
        self.trunc = nn.Linear(512, 256)
        self.trunc_ab = nn.Linear(512, 256)
        self.xavier_u = nn.Linear(512, 256)
        self.xavier_n = nn.Linear(256, 512)
        self.kaiming_u = nn.Linear(512, 256)
        self.conv_fan_out = nn.Conv2d(64, 128, 3)
        self.conv_groups = nn.Conv2d(64, 32, 5, groups=4)
        self.orth = nn.Linear(512, 256)
        self.inplace = nn.Linear(512, 256)
        self.apply(self._init_weights)
        nn.init.uniform_(self.uniform.weight, -0.3, 0.1)
        nn.init.normal_(self.normal.weight, 0.5, 0.2)
        nn.init.trunc_normal_(self.trunc.weight, std=.02)
        nn.init.trunc_normal_(self.trunc_ab.weight, mean=0.01, std=0.02, a=-0.02, b=0.03)
        nn.init.xavier_uniform_(self.xavier_u.weight, gain=2.0)
        nn.init.xavier_normal_(self.xavier_n.weight)
        nn.init.kaiming_uniform_(self.kaiming_u.weight, a=math.sqrt(5))
        nn.init.xavier_uniform_(self.conv_groups.weight)
        nn.init.orthogonal_(self.orth.weight)
        with torch.no_grad():
            self.inplace.weight.data.normal_(0, 0.05)
            self.inplace.bias.uniform_(-1, 1)

    def _init_weights(self, m):
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
'''

UNIFORM = {"uniform", "xavier_u", "kaiming_u", "conv_groups"}


def torch_layout(kernel: np.ndarray) -> np.ndarray:
    return kernel.T if kernel.ndim == 2 else np.transpose(kernel, (kernel.ndim - 1, kernel.ndim - 2,
                                                                   *range(kernel.ndim - 2)))


@pytest.fixture(scope="module")
def both_models():
    converted, findings = convert(RANDOM)
    assert not [f for f in findings if not f.fixable]
    assert "def _init_weights(self, m, *, rngs: nnx.Rngs)" in converted
    assert "module_apply(self, self._init_weights, rngs=rngs)" in converted
    torch.manual_seed(0)
    return load(RANDOM, "Big")(), load(converted, "Big")(rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", ["uniform", "normal", "trunc", "trunc_ab", "xavier_u", "xavier_n", "kaiming_u",
                                  "conv_fan_out", "conv_groups", "orth", "inplace"])
def test_random_inits_draw_from_torchs_distribution(both_models, name):
    torch_model, jax_model = both_models
    want = getattr(torch_model, name).weight.detach().numpy().astype(np.float64)
    got = torch_layout(np.asarray(getattr(jax_model, name).kernel[...], dtype=np.float64))
    assert got.shape == want.shape
    assert got.std() == pytest.approx(want.std(), rel=0.03)
    assert got.mean() == pytest.approx(want.mean(), abs=0.03 * want.std())
    if name in UNIFORM:  # the same bounds, reached
        spread = want.max() - want.min()
        assert got.min() >= want.min() - 0.01 * spread and got.max() <= want.max() + 0.01 * spread
        assert got.min() <= want.min() + 0.01 * spread and got.max() >= want.max() - 0.01 * spread
    assert not np.array_equal(got, want)  # drawn, not copied


def test_trunc_normal_bounds_are_absolute_as_in_torch(both_models):
    _, jax_model = both_models
    trunc = np.asarray(jax_model.trunc.kernel[...])
    assert np.abs(trunc).max() > 3 * 0.02  # a=-2, b=2 are absolute: at std .02 nothing is cut at 2 std
    trunc_ab = np.asarray(jax_model.trunc_ab.kernel[...])
    assert trunc_ab.min() >= -0.02 and trunc_ab.max() <= 0.03
    assert trunc_ab.min() < -0.0199 and trunc_ab.max() > 0.0299


def test_fans_are_torchs_for_conv_layouts(both_models):
    _, jax_model = both_models
    conv = np.asarray(jax_model.conv_fan_out.kernel[...])  # kaiming fan_out: out * k * k
    assert conv.std() == pytest.approx(math.sqrt(2.0 / (128 * 9)), rel=0.03)
    grouped = np.asarray(jax_model.conv_groups.kernel[...])  # xavier: fan_in = in/groups * k * k
    bound = math.sqrt(6.0 / (16 * 25 + 32 * 25))
    assert grouped.max() <= bound and grouped.max() > 0.99 * bound


def test_orthogonal_rows_are_orthonormal_in_torchs_layout(both_models):
    _, jax_model = both_models
    weight = torch_layout(np.asarray(jax_model.orth.kernel[...], dtype=np.float64))  # (256, 512)
    np.testing.assert_allclose(weight @ weight.T, np.eye(256), atol=1e-4)


def test_biases_and_inplace_bias(both_models):
    torch_model, jax_model = both_models
    assert np.all(np.asarray(jax_model.uniform.bias[...]) == 0)  # zeros_ through apply
    bias = np.asarray(jax_model.inplace.bias[...])
    assert bias.min() >= -1 and bias.max() <= 1 and bias.std() == pytest.approx(2 / math.sqrt(12), rel=0.1)


# ------------------------------------------------------------------ left for a person, with a reason

@pytest.mark.parametrize("body, reason", [
    ("nn.init.sparse_(m.weight, 0.1)", "torch.nn.init.sparse_"),
    ("w = m.weight\n            nn.init.normal_(w)", "which layer this tensor belongs to is not known"),
    ("nn.init.normal_(m.weight, generator=g)", "these arguments are not converted"),
    ("nn.init.normal_(m.running_mean)", "has no converted parameter for .running_mean"),
])
def test_what_cannot_be_mapped_is_left_whole_with_a_reason(body, reason):
    source = ("import torch.nn as nn\n\ng = None\n\n\ndef init(m):\n    if isinstance(m, nn.Linear):\n"
              f"            {body}\n").replace("            ", "        ")
    converted, findings = convert(source)
    todos = [f.message for f in findings if not f.fixable]
    assert any(reason in message for message in todos), todos
    assert "TODO(pt2jax)" in converted


def test_isinstance_over_classes_with_different_layouts_is_left():
    source = ("import torch.nn as nn\n\n\ndef init(m):\n    if isinstance(m, (nn.Linear, nn.LayerNorm)):\n"
              "        nn.init.ones_(m.weight)\n")
    converted, findings = convert(source)
    assert any("store .weight differently" in f.message for f in findings if not f.fixable)
    assert "nn.init.ones_(m.weight)" in converted


MIXED = '''\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 128, 3)
        self.fc = nn.Linear(512, 256)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
'''


def test_one_init_over_classes_with_different_layouts_picks_the_layout_at_run_time():
    converted, findings = convert(MIXED)
    assert not [f for f in findings if not f.fixable]
    assert 'layout="conv" if isinstance(m, ConvNCHW) else "transpose"' in converted
    model = load(converted, "Net")(rngs=nnx.Rngs(0))
    conv, fc = np.asarray(model.conv.kernel[...]), np.asarray(model.fc.kernel[...])
    assert conv.shape == (3, 3, 64, 128) and fc.shape == (512, 256)
    assert conv.std() == pytest.approx(0.02, rel=0.03) and fc.std() == pytest.approx(0.02, rel=0.03)


def test_a_random_init_outside_init_and_apply_functions_is_left():
    source = ("import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.fc = nn.Linear(2, 2)\n\n    def reset(self):\n        nn.init.normal_(self.fc.weight)\n"
              "        nn.init.zeros_(self.fc.bias)\n")
    converted, findings = convert(source)
    assert any("draws random numbers" in f.message for f in findings if not f.fixable)
    assert "torch_init.zeros(self.fc.bias)" in converted  # deterministic: converted anywhere


def test_lint_fix_leaves_random_inits_for_unsafe_fixes():
    result = rewrite_source(RANDOM, "model.py", unsafe_fixes=False)
    assert "nn.init.uniform_(self.uniform.weight, -0.3, 0.1)" in result.new_source
    assert "torch_init.zeros(m.bias)" in result.new_source


# ------------------------------------------------------------------ one layout language

def test_the_helper_writes_through_the_same_transforms_as_the_weight_transfer():
    """torch_init's layouts are verify's weight transforms (the tables name them once); a torch
    shape is recovered from the converted one for every layout an init may be written through."""
    from pt2jax_migrate.core.inits import INIT_LAYOUTS
    from pt2jax_migrate.targets.nnx.helpers import HELPERS, helper_imports
    from pt2jax_migrate.verify.transfer import TRANSFORMS

    helper = HELPERS["torch_init"]
    torch_init = load("\n".join(helper_imports([helper])) + "\n\n" + helper.source, "torch_init")
    rng = np.random.default_rng(0)
    for name in sorted(INIT_LAYOUTS):
        for shape in ([(5, 3)] if name in ("copy", "transpose") else []) + [(4, 3, 2), (6, 2, 3, 5), (2, 3, 2, 4, 5)]:
            if name == "transpose" and len(shape) != 2:
                continue
            a = rng.standard_normal(shape).astype(np.float32)
            expected = TRANSFORMS[name](a)
            np.testing.assert_array_equal(np.asarray(torch_init.LAYOUTS[name](a)), expected)
            assert torch_init.torch_shape(expected.shape, name) == shape


DIMS = '''\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 3, 3)
        self.c2 = nn.Conv2d(3, 4, 3)
        self.b1 = nn.BatchNorm1d(3)
        self.b2 = nn.BatchNorm2d(4)
        for m in self.modules():
            if isinstance(m, {weight}):
                nn.init.constant_(m.weight, 0.5)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.constant_(m.weight, 2.0)
            if isinstance(m, {bias}):
                nn.init.zeros_(m.bias)
'''


@pytest.mark.parametrize("target", ["nnx", "linen"])
def test_isinstance_of_one_conv_dimension_when_the_file_names_another_is_a_todo(target):
    """nn.Conv1d and nn.Conv2d both become ConvNCHW: `isinstance(m, nn.Conv2d)` would match the
    Conv1d layers too (kaiming init on the wrong layers, no TODO). Testing both in one call is exact."""
    source = DIMS.format(weight="nn.Conv2d", bias="nn.Conv1d")
    result = rewrite_source(source, "model.py", target=target)
    lint = lint_source(source, "model.py", target=target)
    todos = [(f.line, f.code) for f in result.findings if not f.fixable]
    # Linen: Net has no forward to run init_parameters from, so its init code stays in setup(), marked
    stuck = [(13, "PTJ103")] if target == "linen" else []
    assert todos == [(12, "PTJ901"), *stuck, (16, "PTJ901")]  # Conv2d at line 12 and Conv1d at line 16
    assert [(f.line, f.code) for f in lint if not f.fixable and f.code != "PTJ001"] == todos
    assert "would also match torch.nn.Conv1d layers here" in result.new_source
    assert "isinstance(m, (TorchBatchNorm, TorchBatchNorm))" in result.new_source  # both tested: exact
    assert result.new_source.count("# TODO(pt2jax): PTJ901") == 2


def test_isinstance_of_every_conv_dimension_the_file_names_converts_exactly():
    source = DIMS.format(weight="(nn.Conv1d, nn.Conv2d)", bias="(nn.Conv2d, nn.Conv1d)")
    converted, findings = convert(source)
    assert not [f for f in findings if not f.fixable], [f.message for f in findings if not f.fixable]
    theirs = load(source, "Net")()
    ours = load(converted, "Net")(rngs=nnx.Rngs(0))
    for name, weight, to in (("c1", "weight", "kernel"), ("c2", "weight", "kernel"), ("c1", "bias", "bias"),
                             ("c2", "bias", "bias"), ("b1", "weight", "scale"), ("b2", "weight", "scale")):
        expected = getattr(getattr(theirs, name), weight).detach().numpy()
        got = np.asarray(getattr(getattr(ours, name), to)[...])
        assert got.size == expected.size
        np.testing.assert_array_equal(np.unique(got), np.unique(expected))
