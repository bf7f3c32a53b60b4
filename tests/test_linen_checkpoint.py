"""Checkpoints under --target linen (targets/linen/helpers_checkpoint.py): state_dict() /
load_state_dict() of the LinenModel and LinenOptimizer handles, torch.save / torch.load as the
NNX target's Orbax directory. The helpers are exec'd as a converted file gets them; a run that
is saved, restored into fresh handles and resumed must equal the run that went on."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen

from pt2jax_migrate.targets.base import closure_of
from pt2jax_migrate.targets.linen.helpers import ALLOWED_IMPORTS, HELPERS


def _helpers(*names) -> dict:
    helpers = closure_of(HELPERS, names)
    imports = [line for line in ALLOWED_IMPORTS if any(line in h.imports for h in helpers)]
    source = "\n".join(imports) + "\n\n\n" + "\n\n".join(h.source for h in helpers)
    ns = {"__name__": __name__}  # its dataclasses look their module up
    exec(compile(source, "<emitted linen helpers>", "exec"), ns)
    return ns


H = _helpers("LinenModel", "LinenOptimizer", "linen_train_step", "TorchBatchNorm", "state_dict",
             "load_state_dict", "save_checkpoint", "load_checkpoint", "with_learning_rate")
X = jnp.linspace(-1, 1, 24).reshape(8, 3)
Y = jnp.sin(X).sum(axis=1, keepdims=True)


class Net(linen.Module):
    def setup(self):
        self.fc = linen.Dense(4)
        self.bn = H["TorchBatchNorm"](axis=1)
        self.out = linen.Dense(1)

    def __call__(self, x, *, train: bool = False):
        return self.out(jnp.tanh(self.bn(self.fc(x), use_running_average=not train)))


@H["linen_train_step"]
def step(state):
    def loss_fn(params):
        model = state.bind(params)
        return ((model(X) - Y) ** 2).mean(), model.updates
    (loss, updates), grads = H["jax"].value_and_grad(loss_fn, has_aux=True)(state.params)
    tx_updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, tx_updates)
    return state.replace(params=params, opt_state=opt_state, **updates), loss


def _fresh(seed=0):
    model = H["LinenModel"](Net(), H["jax"].random.key(seed))
    return model, H["LinenOptimizer"](model, optax.adam(0.05))


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert np.asarray(a[key]).dtype == np.asarray(b[key]).dtype, key
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def test_save_restore_resume_equals_going_on(tmp_path):
    model, opt = _fresh()
    for _ in range(3):
        step(model, opt)
    sd, osd = H["state_dict"](model), H["state_dict"](opt)
    assert {"params.fc.kernel", "params.bn.scale", "batch_stats.bn.mean", "batch_stats.bn.var"} <= set(sd)
    assert any(k.endswith("count") for k in osd) and any(".mu.fc.kernel" in k for k in osd), sorted(osd)
    path = tmp_path / "ckpt.pt"
    H["save_checkpoint"]({"model": sd, "optimizer": osd, "epoch": 2}, str(path))
    ckpt = H["load_checkpoint"](str(path))
    assert ckpt["epoch"] == 2
    # a fresh model (no variables before its first call) and optimizer, restored, in that order
    model2, opt2 = _fresh(seed=7)
    H["load_state_dict"](model2, ckpt["model"])
    H["load_state_dict"](opt2, ckpt["optimizer"])
    _same(H["state_dict"](model2), sd)
    _same(H["state_dict"](opt2), osd)
    went_on = [float(step(model, opt)) for _ in range(2)]
    resumed = [float(step(model2, opt2)) for _ in range(2)]
    assert went_on == resumed
    _same(H["state_dict"](model2), H["state_dict"](model))
    _same(H["state_dict"](opt2), H["state_dict"](opt))


def test_optimizer_loaded_before_its_model_and_into_a_trained_model():
    model, opt = _fresh()
    step(model, opt)
    sd, osd = H["state_dict"](model), H["state_dict"](opt)
    model2, opt2 = _fresh(seed=3)
    H["load_state_dict"](opt2, osd)  # before the model has variables: loaded when its state is made
    assert opt2.state is None and opt2.loaded is not None
    step(model2, opt2)  # model2 starts from its own init: only the optimizer's state was loaded
    assert int(H["state_dict"](opt2)["0.count"]) == 2
    keys = H["load_state_dict"](model2, sd)  # a model with variables: loaded now, checked now
    assert keys.missing_keys == [] and keys.unexpected_keys == []
    _same(H["state_dict"](model2), sd)


def test_strict_like_torch():
    model, opt = _fresh()
    step(model, opt)
    sd = H["state_dict"](model)
    bad = {**sd, "params.extra": jnp.zeros(2)}
    with pytest.raises(RuntimeError, match=r"unexpected keys \['params.extra'\]"):
        H["load_state_dict"](model, bad)
    keys = H["load_state_dict"](model, {k: v for k, v in sd.items() if k != "params.out.bias"},
                                strict=False)
    assert keys.missing_keys == ["params.out.bias"]
    with pytest.raises(RuntimeError, match="size mismatch for params.fc.kernel"):
        H["load_state_dict"](model, {**sd, "params.fc.kernel": jnp.zeros((3, 5))})
    # before the first call the values are taken as they are and checked at that call
    fresh, fresh_opt = _fresh()
    H["load_state_dict"](fresh, bad)
    with pytest.raises(RuntimeError, match="unexpected keys"):
        step(fresh, fresh_opt)
    with pytest.raises(TypeError, match="whole module/optimizer is not saved"):
        H["save_checkpoint"](model, "/tmp/never-written.pt")
    with pytest.raises(ValueError, match="call the model first"):
        H["state_dict"](_fresh()[0])
    with pytest.raises(TypeError, match="variables are its LinenModel's"):
        H["state_dict"](Net())
