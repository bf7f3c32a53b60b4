"""`pt2jax weights` on the checkpoint file side, with the small MLP fixture: bad checkpoints
refused (exit 2, no output written, an old one kept), prefixes (nn.DataParallel's `module.`,
--prefix), a training checkpoint's wrapper, `verify --weights` (also with --train), and the
writers (streamed safetensors and msgpack) and the mmap'd checkpoint's pages. Every fixture
model's round trip is tests/test_weights.py's.
"""

from __future__ import annotations

import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from pt2jax_migrate.api import convert_weights
from pt2jax_migrate.targets import get_target
from pt2jax_migrate.verify import VerifyError
from pt2jax_migrate.verify.building import _loaded, build_transferred
from pt2jax_migrate.verify.checkpoint import match_keys
from test_weights import MLP_IN, MLP_OUT, torch_state


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
            "int64[16]:0..5", "--steps", "1", "--no-plot", "--in-process", "--weights")
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
