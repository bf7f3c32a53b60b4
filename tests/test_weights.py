"""`pt2jax weights` and `verify --weights`: a real torch state_dict, saved to disk, converted,
loaded back into the converted model with the README's snippets, and run against torch.

Every [tool.pt2jax.verify] fixture model is checked (its torch weights perturbed with verify's
seeded noise first, so a variable left at its initial value cannot pass); each goes through one
output format, every format at least twice. The fixture models `--target linen` converts whole
go through the same, into Linen variables. Bad checkpoints use the small MLP fixture.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from pt2jax_migrate.api import convert_weights
from pt2jax_migrate.targets import get_target
from pt2jax_migrate.verify import DEFAULT_TOLERANCES, VerifyError
from pt2jax_migrate.verify.compare import flatten_output
from pt2jax_migrate.verify.building import _accepts_keyword, _loaded, build_converted, build_transferred
from pt2jax_migrate.verify.specs import make_arrays, parse_spec
from pt2jax_migrate.verify.checkpoint import match_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pt2jax"]["verify"]
FORMATS = ("orbax", "safetensors", "msgpack")
SUFFIX = {"orbax": "_ckpt", "safetensors": ".safetensors", "msgpack": ".msgpack"}
MLP_IN, MLP_OUT = str(ROOT / "fixtures/mlp_classifier.in.py"), str(ROOT / "fixtures/mlp_classifier.out.py")


def readme_snippets() -> dict[str, str]:
    """The README's loading snippets, by format (the first comment line names it: `orbax`, and
    `orbax (linen)` for a Linen model)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Converting checkpoints", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    out = {b.splitlines()[0].lstrip("# ").strip(): b for b in blocks}
    assert set(out) == {*FORMATS, *(f"{f} (linen)" for f in FORMATS)}, out.keys()
    return out


SNIPPETS = readme_snippets()


def load_back(fmt: str, path: str, factory, init: str):
    """Run the README snippet for `fmt`, MLP(...) standing for the model's constructor."""
    import flax
    import flax.serialization  # noqa: F401
    import orbax.checkpoint as ocp
    import safetensors.numpy

    readme_path = {"orbax": "/tmp/mlp_ckpt", "safetensors": "/tmp/mlp.safetensors", "msgpack": "/tmp/mlp.msgpack"}
    code = SNIPPETS[fmt].replace(readme_path[fmt], path)
    code = code.replace("MLP(rngs=", f"__factory__({init}{', ' if init else ''}rngs=")
    ns = {"os": os, "flax": flax, "safetensors": safetensors, "ocp": ocp, "nnx": nnx, "__factory__": factory}
    exec(compile(code, f"README snippet ({fmt})", "exec"), ns)
    return ns["model"]


def torch_state(original: str, converted: str, model: str, init: str, seed: int = 3):
    """The torch model with verify's seeded noise on every weight (BatchNorm statistics too)."""
    roots = {model}
    with _loaded(original, roots, "torch") as tf, _loaded(converted, roots, "nnx") as jf:
        torch_model, *_ = build_transferred(tf, jf, original, converted, model, init, seed, get_target("nnx"),
                                            weights_map=None, perturb=True, float64=False)
    return torch_model


def jax_inputs(inputs: list[str]) -> list:
    return [jnp.asarray(a.astype(np.int32) if a.dtype == np.int64 else a)
            for a in make_arrays([parse_spec(s) for s in inputs], 0)]


def assert_parity(torch_model, jax_model, inputs: list[str]) -> None:
    """`jax_model` (an NNX module, or any callable in inference mode) gives torch's outputs."""
    arrays = make_arrays([parse_spec(s) for s in inputs], 0)
    torch_model.eval()
    if hasattr(jax_model, "eval"):
        jax_model.eval()
    with torch.no_grad():
        t_out = flatten_output(torch_model(*[torch.from_numpy(a) for a in arrays]))
    j_out = dict(flatten_output(jax_model(*jax_inputs(inputs))))
    atol, rtol = DEFAULT_TOLERANCES["float32"][:2]
    assert [n for n, _ in t_out] and sorted(n for n, _ in t_out) == sorted(j_out)
    for name, t in t_out:
        expected = t.numpy()
        err = float(np.max(np.abs(np.asarray(j_out[name]) - expected)))
        assert err <= atol + rtol * float(np.max(np.abs(expected))), (name, err)


# the fixture models a target leaves TODOs in, and why: skipped here (not converted whole), and
# listed, so a model that stops converting whole fails instead of dropping out. One that starts
# converting whole is picked up by the loop without a change here.
NOT_WHOLE = {"linen": {"gpt_decoder": "GPT's _init_weights through apply(fn): PTJ901 under Linen",
                       "lstm_language_model": "nn.init.uniform_ on the embedding: PTJ901 under Linen"}}


def whole_models(target: str, folder: Path) -> tuple[list[tuple[int, str, dict, str, str]], dict[str, str]]:
    """([(index, stem, entry, original, converted)], {stem: why skipped}) over the
    [tool.pt2jax.verify] fixture models: each rewritten with --target `target` (in process) into
    `folder`, kept when the rewrite leaves no TODO(pt2jax) marker."""
    from pt2jax_migrate.output.counts import count_todo_markers
    from pt2jax_migrate.rewrite import rewrite_source

    models, skipped = [], {}
    for key, entry in FIXTURES.items():
        original = str(ROOT / key)
        stem = Path(key).name.removesuffix(".in.py")
        text = rewrite_source(Path(original).read_text(), original, target=target).new_source
        todos = count_todo_markers(text)
        if todos:
            skipped[stem] = f"{todos} TODO(pt2jax) markers; {NOT_WHOLE.get(target, {}).get(stem, 'not listed')}"
            continue
        converted = folder / f"{stem}_{target}.py"
        converted.write_text(text)
        models.append((len(models), stem, entry, original, str(converted)))
    unlisted = {s: why for s, why in skipped.items() if s not in NOT_WHOLE.get(target, {})}
    assert not unlisted, f"fixture models --target {target} no longer converts whole: {unlisted}"
    assert models and len(models) + len(skipped) == len(FIXTURES), (models, skipped)
    print(f"--target {target}: {len(models)} fixture models checked; skipped: {skipped or 'none'}")
    return models, skipped


def save_checkpoint(torch_model, folder: Path, stem: str, safetensors: bool) -> Path:
    """The torch model's state_dict as `stem`.pt (torch.save) or `stem`.safetensors."""
    if safetensors:
        from safetensors.torch import save_file

        path = folder / f"{stem}.safetensors"
        save_file({k: v.contiguous() for k, v in torch_model.state_dict().items()}, str(path))
    else:
        path = folder / f"{stem}.pt"
        torch.save(torch_model.state_dict(), path)
    return path


def each_model(models, check) -> None:
    """check(*model) for every model, every failure reported together (by model)."""
    failures = []
    for model in models:
        try:
            check(*model)
        except Exception as exc:  # noqa: BLE001 -- reported below, by model
            failures.append(f"{model[1]}: {type(exc).__name__}: {exc}"[:2000])
    assert not failures, "\n".join(failures)


def test_fixture_models_round_trip(tmp_path):
    """A torch checkpoint of each fixture model the NNX rewrite converts whole -> `pt2jax
    weights` (one output format each, every format at least twice; one checkpoint read as
    .safetensors) -> the README's snippet -> the torch outputs; every parameter is the
    checkpoint's, not the constructor's."""
    models, _ = whole_models("nnx", tmp_path)

    def check(index, stem, entry, original, converted):
        model, init = entry["model"], entry.get("init", "")
        fmt = FORMATS[index % len(FORMATS)]
        torch_model = torch_state(original, converted, model, init)
        ckpt = save_checkpoint(torch_model, tmp_path, stem, safetensors=index == 1)
        out = str(tmp_path / f"{stem}{SUFFIX[fmt]}")
        result = convert_weights(str(ckpt), module=f"{converted}:{model}", original=original, init=init, out=out)
        assert (result.target, result.format) == ("nnx", fmt) and os.path.exists(out) and result.tensors > 0
        assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no temp left beside it
        with _loaded(converted, {model}, "nnx") as jf:
            factory = jf.namespace[model]
            if not _accepts_keyword(factory, "rngs"):  # a factory building its model with its own rngs
                factory = (lambda f: lambda *a, rngs=None, **k: f(*a, **k))(factory)
            restored = load_back(fmt, out, factory, init)
            assert_parity(torch_model, restored, entry["inputs"])
            # the snippet really replaced the weights: every parameter differs from a fresh model's
            fresh = build_converted(jf, converted, model, init, 0, get_target("nnx"))
            fresh = dict(nnx.to_flat_state(nnx.state(fresh, nnx.Param)))
            loaded = dict(nnx.to_flat_state(nnx.state(restored, nnx.Param)))
            assert set(loaded) == set(fresh) and loaded
            for path, var in loaded.items():
                assert not np.array_equal(np.asarray(var[...]), np.asarray(fresh[path][...])), path

    each_model(models, check)
    assert len(models) >= 7  # the seven [tool.pt2jax.verify] models all convert whole under NNX


# ------------------------------------------------------------------------------ bad checkpoints


@pytest.fixture(scope="module")
def mlp_state():
    return torch_state(MLP_IN, MLP_OUT, "MLP", "").state_dict()


def weights_cli(run, ckpt, out, *extra):
    return run("weights", ckpt, "--module", f"{MLP_OUT}:MLP", "--original", MLP_IN, "--out", out, *extra)


def bad_case(run, tmp_path, data, *, write=None):
    ckpt = tmp_path / "bad.pt"
    if write is not None:
        write(ckpt)
    else:
        torch.save(data, ckpt)
    out = tmp_path / "out.msgpack"
    out.write_bytes(b"previous")  # an old output survives a failed run
    result = weights_cli(run, ckpt, out)
    assert result.exit_code == 2, result.output
    assert out.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == sorted(["bad.pt", "out.msgpack", ".cache"] if (tmp_path / ".cache").exists()
                                                  else ["bad.pt", "out.msgpack"])
    return result.output


def test_missing_key(run, tmp_path, mlp_state):
    state = dict(mlp_state)
    del state["fc2.bias"]
    text = bad_case(run, tmp_path, state)
    assert "missing key 'fc2.bias' (shape (64,))" in text and "bad.pt" in text


def test_unexpected_key(run, tmp_path, mlp_state):
    text = bad_case(run, tmp_path, {**mlp_state, "extra.weight": torch.zeros(3)})
    assert "unexpected key 'extra.weight'" in text and "missing" not in text


def test_shape_mismatch(run, tmp_path, mlp_state):
    text = bad_case(run, tmp_path, {**mlp_state, "fc1.weight": torch.zeros(64, 21)})
    assert "'fc1.weight': shape mismatch: checkpoint (64, 21), model (64, 20)" in text


def test_not_a_state_dict(run, tmp_path, mlp_state):
    assert "not a state_dict" in bad_case(run, tmp_path, [1, 2, 3])
    text = bad_case(run, tmp_path, {**mlp_state, "step": 7})
    assert "not a state_dict" in text and "'step' is a int" in text


def test_corrupt_files(run, tmp_path, mlp_state):
    def truncated(path):
        torch.save(mlp_state, path)
        path.write_bytes(path.read_bytes()[:300])

    text = bad_case(run, tmp_path, None, write=truncated)
    assert "bad.pt: torch.load(weights_only=True) cannot read it" in text
    text = bad_case(run, tmp_path, None, write=lambda p: p.write_bytes(os.urandom(64)))
    assert "cannot read it" in text
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    result = weights_cli(run, bad, tmp_path / "o.msgpack")
    assert result.exit_code == 2 and "x.safetensors: not a readable .safetensors file" in result.output
    assert not (tmp_path / "o.msgpack").exists()
    result = weights_cli(run, tmp_path / "nope.pt", tmp_path / "o.msgpack")
    assert result.exit_code == 2 and "nope.pt: no such file" in result.output


def test_training_checkpoint_wrapper(tmp_path, mlp_state):
    torch.save({"state_dict": mlp_state, "epoch": 3}, tmp_path / "train.pt")
    result = convert_weights(str(tmp_path / "train.pt"), module=f"{MLP_OUT}:MLP", original=MLP_IN,
                             out=str(tmp_path / "o.msgpack"))
    assert result.tensors == len(mlp_state) and "'state_dict' entry" in result.notes[0]


def test_data_parallel_prefix(run, tmp_path, mlp_state):
    torch.save({f"module.{k}": v for k, v in mlp_state.items()}, tmp_path / "dp.pt")
    result = weights_cli(run, tmp_path / "dp.pt", tmp_path / "a.safetensors")
    assert result.exit_code == 0, result.output
    assert "every checkpoint key starts with 'module.' (nn.DataParallel): stripped it" in result.output
    assert "8 tensors -> MLP (nnx)" in result.output
    from safetensors.numpy import load_file

    flat = load_file(str(tmp_path / "a.safetensors"))
    np.testing.assert_array_equal(flat["fc1.kernel"], mlp_state["fc1.weight"].numpy().T)
    # explicit: no note; a prefix that is not there is an error
    result = weights_cli(run, tmp_path / "dp.pt", tmp_path / "b.msgpack", "--prefix", "strip:module.")
    assert result.exit_code == 0 and "note:" not in result.output
    result = weights_cli(run, tmp_path / "dp.pt", tmp_path / "c.msgpack", "--prefix", "strip:encoder.")
    assert result.exit_code == 2 and "no checkpoint key starts with 'encoder.'" in result.output
    assert not (tmp_path / "c.msgpack").exists()


def test_prefix_add_and_hints():
    expected = {"enc.a": (1,), "enc.b": (2,)}
    key_map, notes = match_keys(["a", "b"], expected, ["add:enc."], where="f")
    assert key_map == {"enc.a": "a", "enc.b": "b"} and notes == []
    with pytest.raises(VerifyError, match=r"--prefix add:enc\."):
        match_keys(["a", "b"], expected, where="f")
    with pytest.raises(VerifyError, match=r"--prefix strip:backbone\."):
        match_keys(["backbone.a", "backbone.b"], {"a": (1,), "b": (2,)}, where="f")
    with pytest.raises(VerifyError, match="expected strip:PREFIX or add:PREFIX"):
        match_keys(["a"], {"a": (1,)}, ["module."], where="f")


def test_verify_with_weights(run, tmp_path, mlp_state):
    ckpt = tmp_path / "mlp.pt"
    torch.save(mlp_state, ckpt)
    # the weights reach both models: the torch model holds the checkpoint, the converted its transform
    with _loaded(MLP_IN, {"MLP"}, "torch") as tf, _loaded(MLP_OUT, {"MLP"}, "nnx") as jf:
        torch_model, jax_model, _, _ = build_transferred(tf, jf, MLP_IN, MLP_OUT, "MLP", "", 0, get_target("nnx"),
                                                         weights_map=None, perturb=True, float64=False,
                                                         weights=str(ckpt))
    for key, value in mlp_state.items():
        torch.testing.assert_close(torch_model.state_dict()[key], value, rtol=0, atol=0)
    np.testing.assert_array_equal(np.asarray(jax_model.head.kernel[...]), mlp_state["head.weight"].numpy().T)
    result = run("verify", MLP_IN, MLP_OUT, "--model", "MLP", "--input", "float32[8,20]", "--weights", "mlp.pt",
                 "--no-jit")  # relative to tmp_path, where `run` works
    assert result.exit_code == 0, result.output
    assert "weights from mlp.pt)" in result.output and "perturbed" not in result.output
    torch.save({**mlp_state, "fc1.weight": torch.zeros(64, 21)}, tmp_path / "bad.pt")
    result = run("verify", MLP_IN, MLP_OUT, "--model", "MLP", "--input", "float32[8,20]", "--weights",
                 tmp_path / "bad.pt", "--no-jit")
    assert result.exit_code == 2 and "'fc1.weight': shape mismatch" in result.output


def test_safetensors_writer_round_trips_every_dtype(tmp_path):
    """The streaming safetensors writer (weights._save_safetensors) reads back with safetensors."""
    import ml_dtypes
    from safetensors.numpy import load_file

    from pt2jax_migrate.verify.weights import _save_safetensors

    arrays = {"a.kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "scalar": np.array(3.5),
              "bf": np.ones(3, ml_dtypes.bfloat16), "mask": np.array([True, False]),
              "empty": np.zeros((0, 4), np.int64), "t": np.arange(6, dtype=np.float16).reshape(3, 2).T}
    _save_safetensors(arrays, str(tmp_path / "x.safetensors"))
    back = load_file(str(tmp_path / "x.safetensors"))
    assert set(back) == set(arrays)
    for key, a in arrays.items():
        assert back[key].dtype == a.dtype and back[key].shape == a.shape, key
        np.testing.assert_array_equal(back[key], a)


def test_verify_train_with_weights(run, tmp_path, mlp_state):
    torch.save(mlp_state, tmp_path / "mlp.pt")
    args = ("verify", MLP_IN, MLP_OUT, "--model", "MLP", "--train", "--input", "float32[16,20]", "--input",
            "int64[16]:0..5", "--steps", "1", "--no-plot", "--weights")
    result = run(*args, tmp_path / "mlp.pt")
    assert result.exit_code == 0, result.output
    state = dict(mlp_state)
    del state["head.bias"]
    torch.save(state, tmp_path / "bad.pt")
    result = run(*args, tmp_path / "bad.pt")
    assert result.exit_code == 2 and "missing key 'head.bias'" in result.output


def test_msgpack_written_array_by_array_is_flax_bytes(tmp_path, monkeypatch):
    """Target.write_msgpack streams the bytes flax.serialization.msgpack_serialize gives for the
    whole tree, for both targets' states (an array above the chunk size chunked alike)."""
    import io

    import flax.serialization as serialization

    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 64)  # 16 float32: `big` is chunked

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(3, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)])
            self.bn = nnx.BatchNorm(2, rngs=rngs)

    nnx_target, linen_target = get_target("nnx"), get_target("linen")
    linen_state = {"params": {"big": np.arange(40, dtype=np.float32).reshape(5, 8), "d": {"kernel": jnp.ones((2, 3))}},
                   "batch_stats": {"bn": {"mean": jnp.zeros(3, jnp.bfloat16), "var": np.float32(2.0)}}}
    for target, state in ((nnx_target, nnx_target.saved_state(Net(nnx.Rngs(0)))), (linen_target, linen_state)):
        handle = io.BytesIO()
        target.write_msgpack(state, handle)
        expected = serialization.msgpack_serialize(target.msgpack_tree(state))
        assert handle.getvalue() == expected, target.name
    back = serialization.msgpack_restore(expected)
    np.testing.assert_array_equal(back["params"]["big"], linen_state["params"]["big"])


def test_dropping_mapped_checkpoint_pages_keeps_the_tensors(tmp_path):
    """verify/memory.py: the pages of an mmap'd checkpoint are given back, its tensors still read
    (from the file again); a file not mapped is left alone."""
    from pt2jax_migrate.verify.memory import drop_mapped_pages, mapped_ranges

    if not sys.platform.startswith("linux"):
        pytest.skip("the pages are dropped on Linux only")
    state = {"a": torch.arange(300_000, dtype=torch.float32), "b": torch.ones(1000, 70)}
    torch.save(state, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True, mmap=True)
    assert float(loaded["a"].sum()) == float(state["a"].sum())  # read: resident
    assert mapped_ranges(str(tmp_path / "m.pt"))
    assert drop_mapped_pages(str(tmp_path / "m.pt")) >= 1_200_000
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    assert drop_mapped_pages(str(tmp_path / "other.pt")) == 0
