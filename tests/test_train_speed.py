"""Converted training steps run under `@jit_train_step` (targets/nnx/helpers_speed.py): the same
numbers as the plain `@nnx.jit` step, one trace, train/eval switches seen, and the speed
benchmark (benchmarks/bench_train.py) prints its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
nnx = pytest.importorskip("flax.nnx")
optax = pytest.importorskip("optax")

from pt2jax_migrate.rewrite import rewrite_source  # noqa: E402
from pt2jax_migrate.targets.nnx.helpers import HELPERS, helper_imports  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _jit_train_step():
    """The decorator exactly as the rewrite writes it into a converted file."""
    helper = HELPERS["jit_train_step"]
    namespace: dict = {}
    exec("\n".join(helper_imports([helper])) + "\n\n" + helper.source, namespace)
    return namespace["jit_train_step"]


jit_train_step = _jit_train_step()


class Net(nnx.Module):
    """Dropout (an Rngs stream) and BatchNorm (batch statistics): both switched by train()/eval()."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(4, 8, rngs=rngs)
        self.bn = nnx.BatchNorm(8, momentum=0.9, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.fc2 = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.fc2(self.drop(jax.nn.relu(self.bn(self.fc1(x)))))


def step(model, optimizer, x, y):
    def loss_fn(model):
        return ((model(x) - y) ** 2).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def _built(seed=0):
    model = Net(rngs=nnx.Rngs(seed))
    return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)


def _batch(i):
    x = jnp.sin(jnp.arange(32.0) * (i + 1)).reshape(8, 4)
    return x, x.sum(axis=1, keepdims=True)


def _state(*nodes):
    return [(path, jnp.asarray(v[...])) for node in nodes for path, v in nnx.to_flat_state(nnx.state(node))]


def _assert_same_state(a, b):
    assert [p for p, _ in a] == [p for p, _ in b]
    for (path, x), (_, y) in zip(a, b):
        assert jnp.array_equal(x, y), path


def _schedule(run_step, model, optimizer):
    """Steps in train mode, in eval mode (no dropout, running BatchNorm statistics), in train
    mode again; returns the losses."""
    losses = []
    for i in range(7):
        if i == 2:
            model.eval()
        if i == 4:
            model.train()
        losses.append(float(run_step(model, optimizer, *_batch(i))))
    return losses


def test_train_eval_switching_gives_the_numbers_of_the_uncached_step():
    plain_model, plain_opt = _built()
    fast_model, fast_opt = _built()
    plain = _schedule(nnx.jit(step), plain_model, plain_opt)
    fast = _schedule(jit_train_step(step), fast_model, fast_opt)
    assert fast == plain
    assert plain[2] != plain[3] or plain[1] != plain[2]  # the schedule did train in eval mode
    # parameters, optimizer moments and count, BatchNorm statistics, dropout key counts
    _assert_same_state(_state(fast_model, fast_opt), _state(plain_model, plain_opt))


def test_eval_mode_is_seen_after_the_first_call():
    """The step was first called in train mode; eval() afterwards must turn dropout off and
    freeze the BatchNorm statistics (a step cached at the first call would not see it)."""
    model, optimizer = _built()
    fast = jit_train_step(step)
    fast(model, optimizer, *_batch(0))
    model.eval()
    mean = jnp.asarray(model.bn.mean[...])
    losses = [float(fast(model, optimizer, *_batch(1))) for _ in range(1)]
    assert jnp.array_equal(model.bn.mean[...], mean)  # running statistics untouched in eval mode
    reference_model, reference_opt = _built()
    nnx.jit(step)(reference_model, reference_opt, *_batch(0))
    reference_model.eval()
    assert losses == [float(nnx.jit(step)(reference_model, reference_opt, *_batch(1)))]


def test_one_trace_over_three_calls_and_one_per_mode():
    traces = []

    def counted(model, optimizer, x, y):
        traces.append(model.drop.deterministic)  # runs only while jax traces the step
        return step(model, optimizer, x, y)

    model, optimizer = _built()
    fast = jit_train_step(counted)
    for i in range(3):
        fast(model, optimizer, *_batch(i))
    assert traces == [False]
    model.eval()
    fast(model, optimizer, *_batch(3))
    model.train()
    fast(model, optimizer, *_batch(4))
    fast(model, optimizer, *_batch(5))
    assert traces == [False, True]  # back in train mode: the first compilation is reused


def test_several_models_and_steps_called_from_other_functions():
    """One step function driving two (model, optimizer) pairs alternately, called from a helper
    function as converted train_epoch functions do; values written outside a step are seen."""
    def train_epoch(run_step, model, optimizer, start):
        return [float(run_step(model, optimizer, *_batch(start + i))) for i in range(2)]

    fast, plain = jit_train_step(step), nnx.jit(step)
    fast_pairs, plain_pairs = [_built(0), _built(1)], [_built(0), _built(1)]
    for epoch in range(2):
        for (fm, fo), (pm, po) in zip(fast_pairs, plain_pairs):
            assert train_epoch(fast, fm, fo, epoch) == train_epoch(plain, pm, po, epoch)
    for (fm, fo), (pm, po) in zip(fast_pairs, plain_pairs):
        fm.fc2.bias[...] = jnp.full((1,), 3.0)  # a write between steps, outside any step
        pm.fc2.bias[...] = jnp.full((1,), 3.0)
        assert float(fast(fm, fo, *_batch(9))) == float(plain(pm, po, *_batch(9)))
        _assert_same_state(_state(fm, fo), _state(pm, po))


def test_the_rewrite_emits_the_step_under_jit_train_step():
    source = (ROOT / "fixtures" / "programs" / "sgd_momentum_tanh.py").read_text()
    out = rewrite_source(source, "sgd_momentum_tanh.py").new_source
    assert "@jit_train_step\ndef train_step(model, opt):" in out  # x, y are module-level: read, not passed
    assert "def jit_train_step(step):" in out and "@nnx.jit" not in out
    assert "    loss = train_step(model, opt)\n" in out  # the call site is what @nnx.jit's was


def _emitted(*names):
    """Helpers exactly as the rewrite writes them into a converted file (with what they need)."""
    from pt2jax_migrate.helpers import helper_closure

    closure = helper_closure(["jit_train_step", *names])
    namespace: dict = {}
    exec("\n".join(helper_imports(closure)) + "\n\n" + "\n\n".join(h.source for h in closure), namespace)
    return namespace


def test_parameter_groups_run_on_the_split_path_with_the_numbers_of_nnx_jit(monkeypatch):
    """optax.multi_transform keeps an empty MaskedNode per parameter outside a group; such a
    Variable once sent every step back to plain nnx.jit (measured 0.25x PyTorch)."""
    ns = _emitted("torch_param_groups")

    def built():
        model = Net(rngs=nnx.Rngs(0))
        tx = ns["torch_param_groups"](model, [nnx.state(model.fc1, nnx.Param), nnx.state(model.fc2, nnx.Param)],
                                      [optax.adamw(0.01, weight_decay=0.1), optax.sgd(0.05)])
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    plain_model, plain_opt = built()
    plain = [float(nnx.jit(step)(plain_model, plain_opt, *_batch(i))) for i in range(4)]
    fallbacks = []
    real_jit = nnx.jit
    monkeypatch.setattr(nnx, "jit", lambda f: lambda *a, **k: fallbacks.append(1) or real_jit(f)(*a, **k))
    fast_step = ns["jit_train_step"](step)
    monkeypatch.undo()
    fast_model, fast_opt = built()
    assert [float(fast_step(fast_model, fast_opt, *_batch(i))) for i in range(4)] == plain
    assert fallbacks == []
    fast_state, plain_state = nnx.state((fast_model, fast_opt)), nnx.state((plain_model, plain_opt))
    assert jax.tree.structure(fast_state) == jax.tree.structure(plain_state)
    assert all(jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(fast_state), jax.tree.leaves(plain_state)))


def test_a_scheduled_learning_rate_costs_no_device_sync_per_step(monkeypatch):
    """A scheduler stepped every batch reads and writes the lr (param_groups); the jitted step
    leaves the lr array as it is, so after the first step no array is read back to the host
    (which waits for the device), and the numbers are those of the plain nnx.jit step."""
    from jax._src.array import ArrayImpl

    ns = _emitted("with_learning_rate", "StepLR", "param_groups")
    reads: list[str] = []
    for name in ("__float__", "__int__", "__bool__", "__index__", "__complex__", "item", "tolist", "__array__"):
        def counted(self, *args, _name=name, _real=getattr(ArrayImpl, name), **kwargs):
            reads.append(_name)
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(ArrayImpl, name, counted)

    def run(step_fn):
        model = Net(rngs=nnx.Rngs(0))
        opt = nnx.Optimizer(model, ns["with_learning_rate"](optax.adam(1.0), 0.1), wrt=nnx.Param)
        scheduler = ns["StepLR"](opt, step_size=2, gamma=0.5)
        losses, lrs, counts = [], [], []
        for i in range(6):
            losses.append(step_fn(model, opt, *_batch(i)))
            scheduler.step()
            lrs.append(ns["param_groups"](opt)[0]["lr"])
            counts.append(len(reads))
        return losses, lrs, counts, model, opt

    losses, lrs, counts, model, opt = run(ns["jit_train_step"](step))
    assert counts[1:] == [counts[0]] * 5  # reads in the first step only (the lr set at construction)
    plain_losses, plain_lrs, plain_counts, plain_model, plain_opt = run(nnx.jit(step))
    assert plain_counts[-1] > plain_counts[0]  # the counter does see a read of the lr back
    assert [float(x) for x in losses] == [float(x) for x in plain_losses]
    assert lrs == plain_lrs == [0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]
    _assert_same_state(_state(model, opt), _state(plain_model, plain_opt))


def test_bench_train_smoke():
    """The benchmark on one small program: a table row with a ratio and no retrace."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "sgd_momentum_tanh",
                           "--seconds", "0.2", "--json"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    (row,) = summary["rows"]
    assert row["program"] == "sgd_momentum_tanh" and "error" not in row, row
    assert row["ratio"] > 0 and summary["geomean"] == pytest.approx(row["ratio"])
    assert row["jax"]["retraces"] == 0 and row["jax"]["traces_first_step"] >= 1
    assert row["torch"]["steps"] >= 20 and row["jax"]["steps"] >= 20
