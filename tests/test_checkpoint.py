"""Checkpoints: torch.save / torch.load -> Orbax, state_dict() / load_state_dict() on converted
modules and optimizers (pt2jax_migrate/targets/nnx/helpers_checkpoint.py).

The helpers are loaded as a converted file gets them (their import lines + sources, exec'd), and
a saved-then-restored training state is compared with the saved one leaf by leaf."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from pt2jax_migrate.helpers import helper_closure, helper_imports
from pt2jax_migrate.rewrite import rewrite_source


def _helpers(*names) -> dict:
    helpers = helper_closure(names)
    source = "\n".join(helper_imports(helpers)) + "\n\n\n" + "\n\n".join(h.source for h in helpers)
    ns = {"__name__": "converted_under_test"}
    exec(compile(source, "<emitted helpers>", "exec"), ns)
    return ns


H = _helpers("state_dict", "load_state_dict", "save_checkpoint", "load_checkpoint")


class Net(nnx.Module):
    def __init__(self, *, rngs):
        self.fc = nnx.Linear(3, 4, rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.layers = nnx.List([nnx.Linear(4, 4, rngs=rngs), nnx.Linear(4, 1, rngs=rngs)])
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        h = self.bn(self.fc(x))
        for layer in self.layers:
            h = layer(jnp.tanh(h))
        return self.drop(h)


def _trained(seed: int, steps: int):
    model = Net(rngs=nnx.Rngs(seed))
    opt = nnx.Optimizer(model, optax.adam(0.01), wrt=nnx.Param)
    x = jnp.linspace(-1, 1, 24).reshape(8, 3)

    @nnx.jit
    def step(model, opt):
        loss, grads = nnx.value_and_grad(lambda m: (m(x) ** 2).mean())(model)
        opt.update(model, grads)
        return loss

    for _ in range(steps):
        step(model, opt)
    return model, opt


def _leaves(state: dict) -> dict:
    return {k: np.asarray(v) for k, v in state.items()}


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_state_dict_is_flat_dotted_and_leaves_rng_out():
    model, opt = _trained(0, 2)
    sd = H["state_dict"](model)
    assert {"fc.kernel", "fc.bias", "bn.mean", "bn.var", "bn.scale", "bn.bias", "layers.0.kernel"} <= set(sd)
    assert not any("rngs" in k or "key" in k or "count" in k for k in sd), sorted(sd)
    osd = H["state_dict"](opt)
    assert "step" in osd and int(osd["step"]) == 2
    assert any(k.endswith("mu.fc.kernel") for k in osd) and any(k.endswith("nu.bn.scale") for k in osd)
    with pytest.raises(TypeError, match="not a converted module"):
        H["state_dict"](3)


def test_a_schedule_has_no_state_of_its_own():
    schedule = optax.exponential_decay(0.1, 10, 0.5)  # a converted lr scheduler: a function of the step
    assert H["state_dict"](schedule) == {}
    assert H["load_state_dict"](schedule, {}) is None
    with pytest.raises(TypeError, match="not a converted module"):
        H["load_state_dict"](schedule, {"last_epoch": 3})


def test_checkpoint_round_trip_restores_the_training_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, opt = _trained(0, 3)
    saved_model, saved_opt = _leaves(H["state_dict"](model)), _leaves(H["state_dict"](opt))
    H["save_checkpoint"]({"model": H["state_dict"](model), "optimizer": H["state_dict"](opt), "epoch": 3,
                          "best": 0.25, "arch": "net", "note": None, "history": [1.5, 2]}, "ckpt.pt")
    assert os.path.isdir(tmp_path / "ckpt.pt")  # the file's name, as a directory

    fresh, fresh_opt = _trained(1, 0)  # other weights, step 0
    ckpt = H["load_checkpoint"]("ckpt.pt")
    assert ckpt["epoch"] == 3 and type(ckpt["epoch"]) is int
    assert ckpt["best"] == 0.25 and ckpt["arch"] == "net" and ckpt["note"] is None and ckpt["history"] == [1.5, 2]
    result = H["load_state_dict"](fresh, ckpt["model"])
    assert result.missing_keys == [] and result.unexpected_keys == []
    H["load_state_dict"](fresh_opt, ckpt["optimizer"])
    _assert_same(_leaves(H["state_dict"](fresh)), saved_model)
    _assert_same(_leaves(H["state_dict"](fresh_opt)), saved_opt)

    # and training goes on exactly as it would have: one more step on both
    x = jnp.linspace(-1, 1, 24).reshape(8, 3)
    for m, o in ((model, opt), (fresh, fresh_opt)):
        m.eval()
        grads = nnx.grad(lambda m: (m(x) ** 2).mean())(m)
        o.update(m, grads)
    _assert_same(_leaves(H["state_dict"](fresh)), _leaves(H["state_dict"](model)))


def test_overwrite_replaces_and_guards_foreign_directories(tmp_path):
    path = str(tmp_path / "m.pt")
    (tmp_path / "m.pt").write_bytes(b"an old torch pickle")
    with pytest.raises(ValueError, match="not an Orbax checkpoint directory"):
        H["load_checkpoint"](path)
    H["save_checkpoint"]({"w": jnp.ones(2)}, path)  # the file is replaced, as torch.save replaces it
    H["save_checkpoint"]({"w": jnp.zeros(3), "n": 1}, path)
    got = H["load_checkpoint"](path)
    np.testing.assert_array_equal(got["w"], np.zeros(3))
    assert got["n"] == 1
    H["save_checkpoint"]({"only": "numbers", "epoch": 2}, path)  # no array at all
    assert H["load_checkpoint"](path) == {"only": "numbers", "epoch": 2}
    H["save_checkpoint"](jnp.arange(3.0), path)  # torch.save(tensor, path)
    np.testing.assert_array_equal(H["load_checkpoint"](path), np.arange(3.0))

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    with pytest.raises(IsADirectoryError):
        H["save_checkpoint"]({"w": jnp.ones(2)}, str(tmp_path / "data"))
    assert (tmp_path / "data" / "keep.txt").read_text() == "mine"


def test_unsupported_values_fail_before_writing(tmp_path):
    path = tmp_path / "bad.pt"
    with pytest.raises(TypeError, match="args is a Namespace"):
        import argparse
        H["save_checkpoint"]({"w": jnp.ones(2), "args": argparse.Namespace(lr=1)}, str(path))
    model, _ = _trained(0, 0)
    with pytest.raises(TypeError, match="whole module"):
        H["save_checkpoint"]({"model": model}, str(path))
    with pytest.raises(TypeError, match="give a path"):
        import io
        H["save_checkpoint"]({"w": jnp.ones(2)}, io.BytesIO())
    assert not path.exists() and not list(tmp_path.iterdir())


def test_load_state_dict_is_strict_like_torch():
    model, _ = _trained(0, 0)
    sd = H["state_dict"](model)
    del sd["fc.bias"]
    sd["extra.weight"] = jnp.ones(1)
    with pytest.raises(RuntimeError, match=r"missing keys \['fc.bias'\].*unexpected keys \['extra.weight'\]"):
        H["load_state_dict"](model, sd)
    result = H["load_state_dict"](model, sd, strict=False)
    assert result.missing_keys == ["fc.bias"] and result.unexpected_keys == ["extra.weight"]
    bad = H["state_dict"](model)
    bad["fc.kernel"] = jnp.ones((4, 3))
    with pytest.raises(RuntimeError, match="size mismatch for fc.kernel"):
        H["load_state_dict"](model, bad)


# ------------------------------------------------------------------------------ rewrite

SCRIPT = """\
import torch
import torch.nn as nn

model = nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, "ckpt.pt")
ckpt = torch.load("ckpt.pt", map_location="cpu", weights_only=True)
model.load_state_dict(ckpt["model"])
opt.load_state_dict(ckpt["optimizer"])
torch.save(model.state_dict(), path)
model.load_state_dict(torch.load(path, map_location=lambda s, loc: s))
"""


def test_rewrite_converts_the_checkpoint_calls():
    result = rewrite_source(SCRIPT, "script.py")
    new = result.new_source
    assert "TODO(pt2jax)" not in new, new
    assert 'save_checkpoint({"model": state_dict(model), "optimizer": state_dict(opt), "epoch": 1}, "ckpt.pt")' in new
    assert 'ckpt = load_checkpoint("ckpt.pt")' in new
    assert 'load_state_dict(model, ckpt["model"])' in new and 'load_state_dict(opt, ckpt["optimizer"])' in new
    assert "load_state_dict(model, load_checkpoint(path))" in new
    assert "import torch" not in new
    assert rewrite_source(new, "script.py").new_source == new


@pytest.mark.parametrize("line, why", [
    ("torch.save(model.state_dict(), buf, pickle_protocol=4)", "pickle_protocol"),
    ("x = torch.load(path, pickle_module=dill)", "pickle_module"),
    ("model.load_state_dict(sd, assign=True)", "assign"),
])
def test_rewrite_leaves_a_todo_for_what_it_cannot_convert(line, why):
    source = "import torch\nimport torch.nn as nn\nmodel = nn.Linear(3, 1)\n" + line + "\n"
    new = rewrite_source(source, "script.py").new_source
    todo = [l for l in new.splitlines() if "TODO(pt2jax)" in l]
    assert todo and why in todo[0], new
