"""pt2jax verify: real torch vs real JAX on hand-written pairs in tests/data/verify/.

Shapes are tiny; reports that several tests look at are built once per module (JAX compile
time dominates the run).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from rich.console import Console

from pt2jax_migrate.verify import (
    DEFAULT_TOLERANCES,
    VerifyError,
    VerifyReport,
    render_report,
    run_verify,
    transfer_weights,
)
from pt2jax_migrate.verify.loader import load_slice
from pt2jax_migrate.verify.specs import make_arrays, parse_spec
from pt2jax_migrate.verify.transfer import perturb, plan_transfer

DATA = Path(__file__).parent / "data" / "verify"
ROOT = Path(__file__).resolve().parent.parent


def data(name: str) -> str:
    return str(DATA / name)


def cnn(converted="cnn_nnx.py", **kw) -> VerifyReport:
    return run_verify(data("cnn_torch.py"), data(converted), model="CNN", inputs=["float32[2,1,8,8]"], **kw)


def mlp(converted="mlp_nnx.py", **kw) -> VerifyReport:
    return run_verify(data("mlp_torch.py"), data(converted), model="MLP", inputs=["float32[4,6]"], **kw)


def token(converted="token_nnx.py", **kw) -> VerifyReport:
    return run_verify(data("token_torch.py"), data(converted), model="TokenNet", inputs=["int64[2,8]:0..20"], **kw)


def by_name(report: VerifyReport) -> dict:
    return {c.name: c for c in report.comparisons}


def failing(report: VerifyReport) -> set[str]:
    return {c.name for c in report.comparisons if not c.passed}


@pytest.fixture(scope="module")
def cnn_report():
    return cnn()


@pytest.fixture(scope="module")
def mlp_report():
    return mlp()


@pytest.fixture(scope="module")
def token_report():
    return token()


# ---------------------------------------------------------------- correct conversions pass


def test_cnn_conv_batchnorm_sequential_passes(cnn_report):
    r = cnn_report
    assert r.passed, r.to_dict()
    assert r.model == "CNN" and r.dtype == "float32" and r.perturbed
    assert (r.atol, r.rtol, r.grad_atol, r.grad_rtol) == DEFAULT_TOLERANCES["float32"]
    assert [c.name for c in r.outputs] == ["output"]
    assert r.outputs[0].shape == (2, 5)
    # every torch parameter gets a gradient comparison, in the nnx layout
    grads = {c.name: c.shape for c in r.gradients}
    assert grads == {
        "grad features.0.weight": (3, 3, 1, 4),
        "grad features.0.bias": (4,),
        "grad features.1.weight": (4,),
        "grad features.1.bias": (4,),
        "grad features.4.weight": (3, 3, 4, 6),
        "grad features.4.bias": (6,),
        "grad fc.weight": (24, 5),
        "grad fc.bias": (5,),
    }
    # 8 parameters + running_mean + running_var (num_batches_tracked is dropped by the table)
    assert r.transferred == 10
    assert max(c.max_abs_err for c in r.outputs) < 1e-5
    assert max(c.max_rel_err for c in r.gradients) < 1e-5


def test_mlp_modulelist_parameter_and_buffer_pass(mlp_report):
    r = mlp_report
    assert r.passed, r.to_dict()
    names = {c.name for c in r.gradients}
    assert {"grad temperature", "grad layers.0.weight", "grad layers.1.bias", "grad gate.weight"} <= names
    assert r.transferred == 10  # 4 Linear layers x 2 + temperature + center


def test_dict_and_tuple_outputs_embedding_layernorm_conv1d(token_report):
    r = token_report
    assert r.passed, r.to_dict()
    # torch's insertion order, although JAX hands dicts back with sorted keys
    assert [c.name for c in r.outputs] == ["output['logits']", "output['features'][0]", "output['features'][1]"]
    assert by_name(r)["output['features'][0]"].shape == (2, 8, 8)
    assert "grad embed.weight" in by_name(r) and "grad mix.weight" in by_name(r)


def test_float64_tightens_errors_to_1e12(cnn_report):
    r = cnn(dtype="float64")
    assert r.passed and r.dtype == "float64"
    assert (r.atol, r.rtol, r.grad_atol, r.grad_rtol) == DEFAULT_TOLERANCES["float64"]
    worst64 = max(c.max_abs_err for c in r.comparisons)
    worst32 = max(c.max_abs_err for c in cnn_report.comparisons)
    assert worst64 < 1e-12
    assert worst32 > 1e-9  # float32 rounding really is gone, not just a looser check
    assert jax.config.jax_enable_x64 is False  # the process-wide flag is restored


# ---------------------------------------------------------------- planted bugs fail


def test_gradient_only_bug_dropped_detach(mlp_report):
    r = mlp("mlp_nnx_bug_no_stop_gradient.py")
    assert not r.passed
    assert all(c.passed for c in r.outputs)  # the forward pass is identical
    # only the trunk, which the gate's gradient now reaches, differs
    assert failing(r) == {"grad layers.0.weight", "grad layers.0.bias", "grad layers.1.weight", "grad layers.1.bias"}
    for name in failing(r):
        assert by_name(r)[name].max_rel_err > 1e-2
        assert by_name(mlp_report)[name].passed


def test_forward_bug_missing_transpose():
    r = token("token_nnx_bug_no_transpose.py")
    assert not r.passed
    assert {"output['logits']", "output['features'][1]", "grad mix.weight"} <= failing(r)
    assert by_name(r)["output['features'][0]"].passed  # before the bug


def test_forward_bug_tanh_gelu():
    r = token("token_nnx_bug_gelu_tanh.py")
    assert not r.passed
    out = by_name(r)["output['features'][0]"]
    assert not out.passed and 1e-5 < out.max_abs_err < 1e-3  # the tanh approximation, not garbage
    assert any(not c.passed for c in r.gradients)


def test_perturbation_exposes_zero_init_bug():
    # `x + center` instead of `x - center`: invisible while the buffer holds its zero init
    unperturbed = mlp("mlp_nnx_bug_center_sign.py", perturb=False)
    assert unperturbed.passed and not unperturbed.perturbed
    perturbed = mlp("mlp_nnx_bug_center_sign.py")
    assert not perturbed.passed
    assert not by_name(perturbed)["output"].passed


def test_perturb_keeps_weights_valid():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.LayerNorm(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    perturb(_plan_for(model), seed=0)
    after = model.state_dict()
    for key in before:
        if key.endswith("num_batches_tracked"):
            assert torch.equal(after[key], before[key])
        else:
            assert not torch.equal(after[key], before[key]), key
    ratio = after["1.running_var"] / before["1.running_var"]  # scaled, so it stays positive
    assert torch.all((ratio >= 0.5) & (ratio <= 1.5))
    assert torch.all(after["1.running_mean"] != 0) and torch.all(after["2.weight"] != 1)
    model2 = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.LayerNorm(3))
    model2.load_state_dict(before)
    perturb(_plan_for(model2), seed=0)
    for key, value in model2.state_dict().items():  # seeded: the same noise again
        assert torch.equal(value, after[key])


def _plan_for(model):
    class Target(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List(
                [
                    nnx.Linear(4, 3, rngs=rngs),
                    nnx.BatchNorm(3, rngs=rngs),
                    nnx.LayerNorm(3, rngs=rngs),
                ]
            )

    # nnx.List stands in for nnx.Sequential's `layers` list here
    return plan_transfer(model, Target(nnx.Rngs(0)))


# ---------------------------------------------------------------- script-style files


SCRIPT_INIT = "Config(hidden=HIDDEN, act='gelu'), patch=4"


def test_script_with_top_level_training_is_sliced():
    r = run_verify(
        data("script_torch.py"),
        data("script_nnx.py"),
        model="PatchNet",
        init=SCRIPT_INIT,
        inputs=["float32[2,1,8,8]:0..1"],
        loss="(out ** 2).mean()",
    )
    assert r.passed, r.to_dict()
    assert [c.name for c in r.outputs] == ["output"] and r.outputs[0].shape == (2, 10)
    assert len(r.gradients) == 4


def test_loader_executes_only_the_model_slice():
    loaded = load_slice(data("script_torch.py"), {"PatchNet", "Config", "HIDDEN"}, label="t")
    try:
        ns = loaded.namespace
        for name in ("PatchNet", "Config", "HIDDEN", "device", "pair", "ACTIVATIONS", "nn", "F", "torch"):
            assert name in ns, name
        assert set(ns["ACTIVATIONS"]) == {"relu", "silu", "gelu"}  # the later item assignment ran
        # argparse, data download, the top-level `x`, training, plotting and __main__ never ran
        for name in ("args", "parser", "torchvision", "transforms", "plt", "train_set", "loader", "x", "model", "losses"):
            assert name not in ns, name
        assert ns["Config"]().hidden == 16  # a dataclass with string annotations works
        assert loaded.module.__name__ in sys.modules
    finally:
        loaded.unload()
    assert loaded.module.__name__ not in sys.modules


SLICE_SOURCE = """\
from __future__ import annotations
import math
try:
    import not_installed_yaml as yaml
except ImportError:
    yaml = None
if math.pi > 3:
    WIDTH = 4
else:
    WIDTH = 8
LAYERS = []
LAYERS.append(WIDTH)
for i in range(3):
    LAYERS.append(i)
data = load_everything()


def helper(n):
    x = n * SCALE  # a local `x`: not the top-level `data`/`x` statements
    return x


SCALE = 2


class Model:
    sizes = [helper(w) for w in LAYERS]

    def f(self, x):
        return x + NOT_DEFINED_UNTIL_CALLED


print("side effect")
"""


def test_loader_slice_rules(tmp_path):
    path = tmp_path / "sliced.py"
    path.write_text(SLICE_SOURCE)
    loaded = load_slice(str(path), {"Model"})
    try:
        ns = loaded.namespace
        assert ns["Model"].sizes == [8]  # WIDTH from the if block, the append kept, the loop dropped
        assert "data" not in ns and "yaml" not in ns and "i" not in ns
        lines = SLICE_SOURCE.splitlines()
        kept = {lines[n - 1].split("(")[0].split(" =")[0] for n in loaded.lines}
        assert kept == {"from __future__ import annotations", "import math", "if math.pi > 3:", "LAYERS", "LAYERS.append",
                        "def helper", "SCALE", "class Model:"}
    finally:
        loaded.unload()
    loaded = load_slice(str(path), {"yaml"})  # a needed try/except import fallback runs as a whole
    assert loaded.namespace["yaml"] is None
    loaded.unload()
    line = SLICE_SOURCE.splitlines().index("data = load_everything()") + 1
    with pytest.raises(VerifyError, match=rf"{path}:{line}: statement failed .*NameError: name 'load_everything'"):
        load_slice(str(path), {"data"})


def test_needed_import_that_fails_names_file_and_line(tmp_path):
    src = tmp_path / "uses_tv.py"
    src.write_text(
        textwrap.dedent(
            """\
            import torch
            import pt2jax_test_no_such_backbones

            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.backbone = pt2jax_test_no_such_backbones.resnet18()
            """
        )
    )
    # a module that is not installed (torchvision may be: the corpus tests read its sources)
    with pytest.raises(VerifyError, match=rf"{src}:2: import failed.*No module named 'pt2jax_test_no_such_backbones'"):
        run_verify(str(src), data("cnn_nnx.py"), model="Net", inputs=["float32[1,3,8,8]"])


# ---------------------------------------------------------------- weight transfer


class TorchNet(torch.nn.Module):
    def __init__(self, extra=None):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
        self.heads = torch.nn.ModuleList([torch.nn.Linear(4, 5), torch.nn.Linear(5, 2)])
        self.emb = torch.nn.Embedding(7, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.scale = torch.nn.Parameter(torch.randn(2))
        if extra is not None:
            self.extra = extra


class NnxNet(nnx.Module):
    def __init__(self, rngs, variant=""):
        self.features = nnx.Sequential(
            nnx.Conv(2, 3, (3, 3), padding="VALID", rngs=rngs), nnx.BatchNorm(3, rngs=rngs), jax.nn.relu
        )
        first = nnx.Linear(5, 4, rngs=rngs) if variant == "swapped" else nnx.Linear(4, 5, rngs=rngs)
        self.heads = nnx.List([first, nnx.Linear(5, 2, rngs=rngs)])
        self.emb = nnx.Embed(7, 4, rngs=rngs)
        if variant != "no_norm":
            self.norm = nnx.LayerNorm(4, epsilon=1e-5, rngs=rngs)  # torch eps
        self.scale = nnx.BatchStat(jnp.zeros(2)) if variant == "param_as_stat" else nnx.Param(jnp.zeros(2))
        if variant == "extra_param":
            self.bonus = nnx.Param(jnp.zeros(3))
        if variant == "buffer_as_param":
            self.extra = nnx.Module()
            self.extra.stat = nnx.Param(jnp.zeros(2))


class WithBuffer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("stat", torch.ones(2))


def test_transfer_weights_maps_every_tensor():
    torch.manual_seed(0)
    tm = TorchNet()
    with torch.no_grad():
        tm.features[1].running_mean.uniform_(-1, 1)
        tm.features[1].running_var.uniform_(0.5, 2)
    nm = NnxNet(nnx.Rngs(0))
    mapping = dict(transfer_weights(tm, nm))
    assert mapping == {
        "features.0.weight": ("features", "layers", 0, "kernel"),
        "features.0.bias": ("features", "layers", 0, "bias"),
        "features.1.weight": ("features", "layers", 1, "scale"),
        "features.1.bias": ("features", "layers", 1, "bias"),
        "features.1.running_mean": ("features", "layers", 1, "mean"),
        "features.1.running_var": ("features", "layers", 1, "var"),
        "heads.0.weight": ("heads", 0, "kernel"),
        "heads.0.bias": ("heads", 0, "bias"),
        "heads.1.weight": ("heads", 1, "kernel"),
        "heads.1.bias": ("heads", 1, "bias"),
        "emb.weight": ("emb", "embedding"),
        "norm.weight": ("norm", "scale"),
        "norm.bias": ("norm", "bias"),
        "scale": ("scale",),
    }
    sd = {k: v.numpy() for k, v in tm.state_dict().items()}
    np.testing.assert_array_equal(np.asarray(nm.heads[0].kernel[...]), sd["heads.0.weight"].T)
    np.testing.assert_array_equal(np.asarray(nm.features.layers[0].kernel[...]), sd["features.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(np.asarray(nm.features.layers[1].var[...]), sd["features.1.running_var"])
    np.testing.assert_array_equal(np.asarray(nm.emb.embedding[...]), sd["emb.weight"])
    np.testing.assert_array_equal(np.asarray(nm.scale[...]), sd["scale"])
    # and the layers now compute what torch computes (NHWC for the plain nnx.Conv here)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    tm.eval()
    nm.eval()
    with torch.no_grad():
        ref = tm.features(torch.from_numpy(x)).numpy()
    got = np.asarray(nm.features(jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
    h = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        ref = tm.heads[1](tm.heads[0](tm.norm(torch.from_numpy(h)))).numpy()
    np.testing.assert_allclose(np.asarray(nm.heads[1](nm.heads[0](nm.norm(jnp.asarray(h))))), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "variant, extra, message",
    [
        ("no_norm", None, r"norm\.weight -> norm\.scale: the converted model has no such variable"),
        ("extra_param", None, r"bonus \(Param \(3,\)\) in the converted model receives no torch tensor"),
        ("swapped", None, r"heads\.0\.weight -> heads\.0\.kernel: shape mismatch: torch \(5, 4\) \(transpose: \(4, 5\)\), converted \(5, 4\)"),
        ("param_as_stat", None, r"scale -> scale: a trainable torch parameter, but BatchStat \(not nnx\.Param\)"),
        ("", torch.nn.PReLU(), r"extra\.weight: no weight mapping for torch\.nn\.PReLU \(rules/layers\.toml has no entry\)"),
        ("buffer_as_param", WithBuffer(), r"extra\.stat -> extra\.stat: a torch buffer, but an nnx\.Param"),
        ("", WithBuffer(), r"extra\.stat -> extra\.stat: the converted model has no such variable"),
    ],
)
def test_transfer_refuses_partial_or_wrong_mappings(variant, extra, message):
    tm = TorchNet(extra)
    nm = NnxNet(nnx.Rngs(0), variant)
    kernel_before = np.asarray(nm.heads[1].kernel[...]).copy()
    with pytest.raises(VerifyError, match=message):
        transfer_weights(tm, nm)
    np.testing.assert_array_equal(np.asarray(nm.heads[1].kernel[...]), kernel_before)  # nothing written


# ---------------------------------------------------------------- input specs


def test_input_specs():
    specs = [parse_spec(s) for s in ("float32[2,1,28,28]", "float32[4,3]:0..1", "int64[4,16]:0..100", "float32[]", "bool[3]")]
    normal, uniform, ints, scalar, flags = make_arrays(specs, seed=0)
    assert normal.shape == (2, 1, 28, 28) and normal.dtype == np.float32
    assert abs(float(normal.mean())) < 0.1 and 0.9 < float(normal.std()) < 1.1
    assert uniform.dtype == np.float32 and uniform.min() >= 0 and uniform.max() < 1
    assert ints.dtype == np.int64 and ints.min() >= 0 and ints.max() < 100 and len(np.unique(ints)) > 30
    assert scalar.shape == () and flags.dtype == bool
    again = make_arrays(specs, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, [normal, uniform, ints, scalar, flags]))
    wide = make_arrays(specs[:1], seed=0, float64=True)[0]
    assert wide.dtype == np.float64 and np.allclose(wide, normal, atol=1e-6)  # same draws, wider type


@pytest.mark.parametrize(
    "spec",
    ["float32[2,x]", "int64[4,16]", "float32[2]:1..0", "complex64[2]", "float32(2,3)", "float32[2]:a..b", "", "int8[2]:0..1000"],
)
def test_bad_spec_is_an_error(spec):
    with pytest.raises(VerifyError) as err:
        run_verify(data("cnn_torch.py"), data("cnn_nnx.py"), model="CNN", inputs=[spec])
    assert str(err.value).startswith(f"bad input spec {spec!r}: ")


# ---------------------------------------------------------------- errors


def test_missing_file():
    with pytest.raises(VerifyError, match=r"nope_torch\.py: no such file"):
        run_verify(data("nope_torch.py"), data("cnn_nnx.py"), model="CNN", inputs=["float32[2,1,8,8]"])
    with pytest.raises(VerifyError, match=r"nope_nnx\.py: no such file"):
        run_verify(data("cnn_torch.py"), data("nope_nnx.py"), model="CNN", inputs=["float32[2,1,8,8]"])


def test_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import torch\n\nclass Net(torch.nn.Module:\n    pass\n")
    with pytest.raises(VerifyError, match=rf"{bad}:3: syntax error"):
        run_verify(str(bad), data("cnn_nnx.py"), model="Net", inputs=["float32[2,1,8,8]"])


def test_unknown_model():
    with pytest.raises(VerifyError) as err:
        run_verify(data("cnn_torch.py"), data("cnn_nnx.py"), model="ResNet", inputs=["float32[2,1,8,8]"])
    # the candidates are listed: the classes the file defines at top level
    assert str(err.value) == f"{data('cnn_torch.py')}: no class or function named 'ResNet'; classes in the file: CNN"


def test_unknown_model_lists_every_class_or_else_the_functions(tmp_path):
    classes = _write(tmp_path, "two.py", "import torch\n\nclass Encoder(torch.nn.Module):\n    pass\n\n\n"
                     "class Decoder(torch.nn.Module):\n    pass\n\n\ndef make():\n    return Encoder()\n")
    with pytest.raises(VerifyError) as err:
        run_verify(classes, data("cnn_nnx.py"), model="Encoder.Missing", inputs=["float32[2,1,8,8]"])
    assert str(err.value) == f"{classes}: no class or function named 'Encoder.Missing'; classes in the file: Encoder, Decoder"
    functions = _write(tmp_path, "funcs.py", "import torch\n\ndef build():\n    return torch.nn.Linear(2, 2)\n")
    with pytest.raises(VerifyError, match=r"funcs\.py: no class or function named 'Net'; the file defines no class; functions: build$"):
        run_verify(functions, data("cnn_nnx.py"), model="Net", inputs=["float32[2,1,8,8]"])
    empty = _write(tmp_path, "empty.py", "import torch\n")
    with pytest.raises(VerifyError, match=r"empty\.py: no class or function named 'Net'; the file defines no class or function$"):
        run_verify(empty, data("cnn_nnx.py"), model="Net", inputs=["float32[2,1,8,8]"])


def test_failure_inside_forward_names_file_and_line(tmp_path):
    # torch: the line of the torch forward that raised (not torch's internals)
    torch_file = _write(tmp_path, "tiny_torch.py", TINY_TORCH.replace("return self.fc(x)", "y = self.fc(x)\n        return y.view(7, 7)"))
    nnx_file = _write(tmp_path, "tiny_nnx.py", TINY_NNX.format(ret="self.fc(x)", rngs="*, rngs"))
    line = TINY_TORCH.splitlines().index("        return self.fc(x)") + 2
    with pytest.raises(VerifyError, match=rf"^{torch_file}:{line}: running Tiny failed: RuntimeError: .*invalid for input of size 8"):
        run_verify(torch_file, nnx_file, model="Tiny", inputs=["float32[4,3]"])
    # JAX: the line of the converted __call__, also under value_and_grad's tracing
    _write(tmp_path, "tiny_torch.py", TINY_TORCH)
    _write(tmp_path, "tiny_nnx.py", TINY_NNX.format(ret="self.fc(x).reshape(7, 7)", rngs="*, rngs"))
    line = TINY_NNX.splitlines().index("        return {ret}") + 1
    with pytest.raises(VerifyError, match=rf"^{nnx_file}:{line}: running Tiny failed: TypeError: .*reshape"):
        run_verify(torch_file, nnx_file, model="Tiny", inputs=["float32[4,3]"])


def test_failing_torch_construction_reports_the_exception():
    # the line is the one in the file's __init__ that raised (inside torch's Linear, not shown)
    line = Path(data("cnn_torch.py")).read_text().splitlines().index("        self.fc = nn.Linear(6 * 2 * 2, num_classes)") + 1
    with pytest.raises(VerifyError, match=rf"cnn_torch\.py:{line}: building CNN\(1, -5\) failed: RuntimeError: .*negative dimension"):
        run_verify(data("cnn_torch.py"), data("cnn_nnx.py"), model="CNN", init="1, -5", inputs=["float32[2,1,8,8]"])


TINY_TORCH = """\
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.fc = nn.Linear(n, 2)

    def forward(self, x):
        return self.fc(x)
"""

TINY_NNX = """\
from flax import nnx


class Tiny(nnx.Module):
    def __init__(self, n=3, {rngs}):
        self.fc = nnx.Linear(n, 2, rngs=rngs)

    def __call__(self, x):
        return {ret}
"""


def tiny(tmp_path, ret="self.fc(x)", rngs="*, rngs", nnx_init="n", **kw):
    (tmp_path / "tiny_torch.py").write_text(TINY_TORCH)
    (tmp_path / "tiny_nnx.py").write_text(TINY_NNX.format(ret=ret, rngs=rngs).replace("(self, n=3", f"(self, {nnx_init}=3"))
    return run_verify(str(tmp_path / "tiny_torch.py"), str(tmp_path / "tiny_nnx.py"), model="Tiny", inputs=["float32[4,3]"], **kw)


def _write(tmp_path, name, text) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def test_failing_converted_construction(tmp_path):
    with pytest.raises(VerifyError, match=r"tiny_nnx\.py: building Tiny\(n=5, rngs=nnx\.Rngs\(0\)\) failed: TypeError: .*'n'"):
        tiny(tmp_path, rngs="*, rngs", init="n=5", nnx_init="in_features")  # a renamed constructor argument
    # a constructor without `rngs` is built without it, and then fails on its own terms
    # (the line of the converted __init__ that raised: `self.fc = nnx.Linear(n, 2, rngs=rngs)`)
    with pytest.raises(VerifyError, match=r"tiny_nnx\.py:6: building Tiny\(\) failed: NameError: name 'rngs'"):
        tiny(tmp_path, rngs="rng=None")


def test_converted_module_without_init_is_built_without_rngs(tmp_path):
    original = _write(tmp_path, "act_torch.py", "import torch\n\n\nclass Act(torch.nn.Module):\n    def forward(self, x):\n        return torch.relu(x) * 2\n")
    converted = _write(tmp_path, "act_nnx.py", "import jax\nfrom flax import nnx\n\n\nclass Act(nnx.Module):\n    def __call__(self, x):\n        return jax.nn.relu(x) * 2\n")
    r = run_verify(original, converted, model="Act", inputs=["float32[3,4]"])
    assert r.passed and [c.name for c in r.comparisons] == ["output"] and r.transferred == 0


UNTRACEABLE = {  # constructors the compiled build must leave to the eager one
    "an array in a plain attribute": "self.scale = jnp.ones(2) * 1.0",
    "a Python number in a Variable": "self.calls = nnx.Variable(0)",
    "a concrete value": "self.n = int(jnp.sum(jnp.ones(n)))",
}


def test_compiled_build_falls_back_to_eager(tmp_path):
    """verify overwrites the converted model's initial values, so it builds the model as one
    compiled program (nnx.jit of the constructor); a constructor that cannot be traced, or
    that keeps state nnx.jit would turn into (or leak as) traced arrays, is built eagerly, as
    before, and verifies all the same."""
    from pt2jax_migrate.targets import get_target
    from pt2jax_migrate.targets.throwaway import throwaway_key

    def converted(name: str, *lines: str) -> str:
        text = TINY_NNX.format(ret="self.fc(x)", rngs="*, rngs").replace("import nnx\n", "import nnx\nimport jax.numpy as jnp\n")
        body = "".join(f"        {line}\n" for line in lines)
        return _write(tmp_path, f"{name.replace(' ', '_')}.py", text.replace("rngs=rngs)\n", f"rngs=rngs)\n{body}"))

    def values(model, kind) -> dict:
        def plain(a):
            return jax.random.key_data(a) if jnp.issubdtype(a.dtype, jax.dtypes.prng_key) else a

        return {path: np.asarray(plain(v[...])) for path, v in nnx.to_flat_state(nnx.state(model, kind))}

    target = get_target("nnx")
    kept = ("self.drop = nnx.Dropout(0.5, rngs=rngs)", "self.steps = nnx.Variable(jnp.arange(3))")
    for name, lines in {"clean": kept, **{k: (v,) for k, v in UNTRACEABLE.items()}}.items():
        tiny_cls = load_slice(converted(name, *lines), {"Tiny"}).namespace["Tiny"]
        built = target.build_compiled(lambda rngs: tiny_cls(rngs=rngs), nnx.Rngs(throwaway_key(0)))
        if name == "clean":
            assert isinstance(built, tiny_cls) and built.fc.kernel[...].shape == (3, 2)
            assert not isinstance(built.fc.kernel[...], jax.core.Tracer)
            # what verify overwrites (parameters) is zeros; the rest is what an eager build gives
            assert {p: (a.shape, a.dtype, a.any()) for p, a in values(built, nnx.Param).items()} == {
                ("fc", "kernel"): ((3, 2), np.float32, False), ("fc", "bias"): ((2,), np.float32, False)}
            eager_built = tiny_cls(rngs=nnx.Rngs(throwaway_key(0)))
            eager, compiled = (values(m, nnx.Not(nnx.Param)) for m in (eager_built, built))
            assert set(eager) == set(compiled) == {("drop", "rngs", "key"), ("drop", "rngs", "count"), ("steps",)}
            assert all(np.array_equal(eager[p], compiled[p]) and eager[p].dtype == compiled[p].dtype for p in eager)
        else:
            assert built is None, name
    report = run_verify(_write(tmp_path, "tiny_torch.py", TINY_TORCH), converted("all", *UNTRACEABLE.values()),
                        model="Tiny", inputs=["float32[4,3]"])
    assert report.passed and report.jit and not report.jit_error


def test_output_shape_mismatch(tmp_path):
    with pytest.raises(VerifyError, match=r"tiny_nnx\.py: output: shape differs: torch \(4, 2\), converted \(8,\)"):
        tiny(tmp_path, ret="self.fc(x).reshape(-1)")


def test_output_structure_mismatch(tmp_path):
    with pytest.raises(VerifyError, match=r"output structure differs: torch returns output; converted returns output\[0\]"):
        tiny(tmp_path, ret="(self.fc(x),)")


def test_weight_transfer_error_names_the_converted_file(tmp_path):
    (tmp_path / "tiny_torch.py").write_text(TINY_TORCH)
    converted = TINY_NNX.format(ret="self.fc(x)", rngs="*, rngs").replace("nnx.Linear(n, 2", "nnx.Linear(n + 1, 2")
    (tmp_path / "tiny_nnx.py").write_text(converted)
    with pytest.raises(VerifyError, match=r"tiny_nnx\.py: weight transfer failed:\n  - fc\.weight -> fc\.kernel: shape mismatch"):
        run_verify(str(tmp_path / "tiny_torch.py"), str(tmp_path / "tiny_nnx.py"), model="Tiny", inputs=["float32[4,3]"])


def test_bad_loss_and_init_and_dtype(tmp_path):
    with pytest.raises(VerifyError, match=r"--loss 'out \*\*' is not a Python expression"):
        tiny(tmp_path, loss="out **")
    with pytest.raises(VerifyError, match=r"--init '3,,' is not call arguments"):
        tiny(tmp_path, init="3,,")
    with pytest.raises(VerifyError, match=r"dtype 'float16' is not supported"):
        tiny(tmp_path, dtype="float16")
    with pytest.raises(VerifyError, match=r"tiny_torch\.py: evaluating --loss 'out\.nope\(\)' failed: AttributeError"):
        tiny(tmp_path, loss="out.nope()")


def test_explicit_tolerances_and_loss(tmp_path):
    r = tiny(tmp_path, atol=1e-3, rtol=1e-2, loss="(out ** 2).mean()")
    assert r.passed
    assert (r.atol, r.rtol) == (1e-3, 1e-2)
    assert (r.grad_atol, r.grad_rtol) == (1e-3, 1e-2)  # never tighter than the output tolerances
    assert {c.name for c in r.gradients} == {"grad fc.weight", "grad fc.bias"}


# ---------------------------------------------------------------- report and rendering


def test_report_dict_and_rendering(cnn_report):
    r = mlp("mlp_nnx_bug_no_stop_gradient.py")
    d = json.loads(json.dumps(r.to_dict()))
    assert d["passed"] is False and d["model"] == "MLP" and d["dtype"] == "float32"
    assert d["tolerances"]["atol"] == 1e-5 and d["tolerances"]["grad_rtol"] == 1e-4
    assert [o["name"] for o in d["outputs"]] == ["output"]
    assert {"name", "shape", "max_abs_err", "max_rel_err", "passed"} == set(d["outputs"][0])
    assert d["outputs"][0]["shape"] == [4, 3]
    assert {g["name"] for g in d["gradients"] if not g["passed"]} == failing(r)

    console = Console(record=True, width=200, color_system=None)
    render_report(r, console)
    text = console.export_text()
    assert "grad layers.0.weight" in text and "FAIL: 4 of 10 comparisons out of tolerance" in text
    console = Console(record=True, width=200, color_system=None)
    render_report(cnn_report, console)
    text = console.export_text()
    assert "PASS: 1 output(s) and 8 gradient(s) within tolerance" in text
    assert "(3, 3, 1, 4)" in text and "max abs err" in text


def test_importing_verify_does_not_import_torch_or_jax():
    code = "import sys, pt2jax_migrate.verify as v; v.VerifyError; print(sorted(m for m in ('torch', 'jax', 'flax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
