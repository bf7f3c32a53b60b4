"""lr schedulers -> the host-side scheduler helpers (targets/nnx/helpers_schedule.py) driving an
optimizer built with `with_learning_rate`, checked against real torch.optim.lr_scheduler:
the same learning-rate sequence (get_last_lr(), param_groups, the state array), the same
parameters after each training step, no retrace when the lr changes; and the rewrite/lint
decisions (a scheduler and its optimizer convert together or not at all)."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from pt2jax_migrate.helpers import helper_closure, helper_imports
from pt2jax_migrate.targets.nnx.helpers_schedule import SCHEDULERS

LR_RTOL = 1e-12


@functools.cache
def helpers() -> dict:
    """Every scheduler helper, loaded as a converted file gets them (imports + sources)."""
    closure = helper_closure(list(SCHEDULERS))
    source = "\n".join(helper_imports(closure)) + "\n\n\n" + "\n\n".join(h.source for h in closure)
    ns = {"__name__": "converted_under_test"}
    exec(compile(source, "<emitted helpers>", "exec"), ns)
    return ns


def torch_model():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def jax_model():
    return nnx.Linear(3, 2, rngs=nnx.Rngs(0))


def optimizers(kind: str, lr: float = 0.1):
    """(torch optimizer, converted optimizer) of one kind, the converted one with an lr slot."""
    ns = helpers()
    wl = ns["with_learning_rate"]
    if kind == "sgd":
        return (torch.optim.SGD(torch_model().parameters(), lr=lr, momentum=0.9),
                nnx.Optimizer(jax_model(), wl(optax.sgd(1.0, momentum=0.9), lr), wrt=nnx.Param))
    if kind == "adam_cycled":  # beta1 injected: OneCycleLR cycles it
        return (torch.optim.Adam(torch_model().parameters(), lr=lr, betas=(0.9, 0.99)),
                nnx.Optimizer(jax_model(), wl(optax.inject_hyperparams(optax.adam)(learning_rate=1.0, b1=0.9, b2=0.99),
                                              lr), wrt=nnx.Param))
    if kind == "sgd_cycled":  # momentum injected: OneCycleLR cycles it
        return (torch.optim.SGD(torch_model().parameters(), lr=lr, momentum=0.9),
                nnx.Optimizer(jax_model(), wl(optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))(
                    learning_rate=1.0, momentum=0.9), lr), wrt=nnx.Param))
    raise ValueError(kind)


# scheduler cases: id -> (optimizer kind, builder(lr_scheduler namespace, optimizer))
def _simple(name, **kwargs):
    return lambda S, opt: getattr(S, name)(opt, **kwargs)


CASES = {
    "StepLR": ("sgd", _simple("StepLR", step_size=4, gamma=0.5)),
    "StepLR-gamma0.3": ("sgd", _simple("StepLR", step_size=1, gamma=0.3)),
    "MultiStepLR": ("sgd", _simple("MultiStepLR", milestones=[3, 7, 7, 20], gamma=0.3)),
    "ExponentialLR": ("sgd", _simple("ExponentialLR", gamma=0.93)),
    "CosineAnnealingLR": ("sgd", _simple("CosineAnnealingLR", T_max=10)),
    "CosineAnnealingLR-eta_min": ("sgd", _simple("CosineAnnealingLR", T_max=7, eta_min=0.01)),
    "CosineAnnealingWarmRestarts": ("sgd", _simple("CosineAnnealingWarmRestarts", T_0=5)),
    "CosineAnnealingWarmRestarts-mult": ("sgd", _simple("CosineAnnealingWarmRestarts", T_0=3, T_mult=2, eta_min=0.001)),
    "OneCycleLR-adam": ("adam_cycled", _simple("OneCycleLR", max_lr=0.5, total_steps=40)),
    "OneCycleLR-sgd-linear-3phase": ("sgd_cycled", _simple("OneCycleLR", max_lr=[0.3], epochs=5, steps_per_epoch=8,
                                                           anneal_strategy="linear", three_phase=True)),
    "OneCycleLR-no-momentum": ("sgd", _simple("OneCycleLR", max_lr=0.5, total_steps=40, cycle_momentum=False,
                                              pct_start=0.25)),
    "LinearLR": ("sgd", _simple("LinearLR", start_factor=0.1, total_iters=8)),
    "LinearLR-down": ("sgd", _simple("LinearLR", start_factor=1.0, end_factor=0.2, total_iters=12)),
    "ConstantLR": ("sgd", _simple("ConstantLR", factor=0.5, total_iters=6)),
    "LambdaLR": ("sgd", _simple("LambdaLR", lr_lambda=lambda epoch: 0.95 ** epoch)),
    "LambdaLR-warmup": ("sgd", _simple("LambdaLR", lr_lambda=lambda e: min(1.0, (e + 1) / 10))),
    "MultiplicativeLR": ("sgd", _simple("MultiplicativeLR", lr_lambda=lambda e: 0.9)),
    "PolynomialLR": ("sgd", _simple("PolynomialLR", total_iters=20, power=2.0)),
    "SequentialLR-warmup-cosine": ("sgd", lambda S, opt: S.SequentialLR(
        opt, [S.LinearLR(opt, start_factor=0.1, total_iters=5), S.CosineAnnealingLR(opt, T_max=25)], milestones=[5])),
    "SequentialLR-three": ("sgd", lambda S, opt: S.SequentialLR(
        opt, [S.ConstantLR(opt, factor=0.5, total_iters=4), S.ExponentialLR(opt, gamma=0.9),
              S.StepLR(opt, step_size=3)], milestones=[4, 12])),
    "ChainedScheduler": ("sgd", lambda S, opt: S.ChainedScheduler(
        [S.ConstantLR(opt, factor=0.2, total_iters=5), S.ExponentialLR(opt, gamma=0.9)])),
    "ChainedScheduler-warmup-step": ("sgd", lambda S, opt: S.ChainedScheduler(
        [S.LinearLR(opt, start_factor=0.25, total_iters=4), S.StepLR(opt, step_size=6, gamma=0.5)])),
}

# when scheduler.step() is called, per training batch i (4 batches an epoch)
STEPPING = {
    "per-batch": lambda i: True,
    "per-epoch": lambda i: i % 4 == 3,
    "conditional": lambda i: i % 3 != 1,
}


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= LR_RTOL * max(abs(a), abs(b), 1e-300)


def _group_values(group: dict) -> dict:
    return {k: group[k] for k in ("lr", "betas", "momentum") if k in group}


@pytest.mark.parametrize("stepping", list(STEPPING))
@pytest.mark.parametrize("case", list(CASES))
def test_lr_sequence_matches_torch(case, stepping):
    kind, build = CASES[case]
    t_opt, j_opt = optimizers(kind)
    ns = helpers()
    S = type("S", (), {name: staticmethod(ns[name]) for name in SCHEDULERS})
    t_sched, j_sched = build(torch.optim.lr_scheduler, t_opt), build(S, j_opt)
    total = 30 if kind != "sgd_cycled" else 40
    if case.startswith("OneCycleLR"):
        total = 39  # total_steps - 1: one more step() is an error in torch
    seen = 0
    for i in range(total + (3 * total if stepping == "per-epoch" else 0)):
        want, got = t_sched.get_last_lr(), j_sched.get_last_lr()
        assert len(want) == len(got) == 1 and _close(want[0], got[0]), (i, want, got)
        t_group, j_group = t_opt.param_groups[0], ns["param_groups"](j_opt)[0]
        cycled = {"adam_cycled": "betas", "sgd_cycled": "momentum"}.get(kind)
        assert cycled is None or cycled in j_group
        for key, value in _group_values(t_group).items():
            if key not in j_group:
                continue  # torch's SGD group holds its (fixed) momentum; the converted one need not
            mine = j_group[key]
            pairs = zip(value, mine) if isinstance(value, tuple) else [(value, mine)]
            if key == "betas":
                pairs = [(value[0], mine[0])]  # beta2 is not scheduled
            for a, b in pairs:
                assert _close(a, b), (i, key, value, mine)
        # the state array the jitted step reads holds the same lr (in float32)
        slot = ns["hyperparam_slot"](j_opt.opt_state, "step_size")
        assert float(slot.get_value()) == float(np.float32(t_group["lr"]))
        assert getattr(j_sched, "last_epoch", None) == getattr(t_sched, "last_epoch", None)
        if STEPPING[stepping](i):
            if seen >= total:
                break
            t_sched.step()
            j_sched.step()
            seen += 1


def test_reduce_lr_on_plateau_matches_torch():
    metrics = [1.0, 0.9, 0.9, 0.95, 0.9, 0.91, 0.92, 0.5, 0.5, 0.5, 0.5, 0.5, 0.49999, 0.4, 0.4, 0.4, 0.4] * 3
    settings = [dict(), dict(mode="max", factor=0.5, patience=1, threshold=0.01, threshold_mode="abs", cooldown=2),
                dict(patience=0, min_lr=0.02, eps=1e-3), dict(factor=0.3, patience=2, cooldown=1, threshold=0.05)]
    for kwargs in settings:
        t_opt, j_opt = optimizers("sgd")
        t_s = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, **kwargs)
        j_s = helpers()["ReduceLROnPlateau"](j_opt, **kwargs)
        for metric in metrics:
            t_s.step(metric)
            j_s.step(jnp.asarray(metric) if metric < 0.6 else metric)  # a jax scalar metric works too
            assert _close(t_s.get_last_lr()[0], j_s.get_last_lr()[0]), (kwargs, metric)
            assert t_s.num_bad_epochs == j_s.num_bad_epochs and t_s.last_epoch == j_s.last_epoch
        assert t_s.get_last_lr()[0] < 0.1 or kwargs.get("mode") == "max"  # the case did reduce


def test_closed_form_step_epoch_matches_torch():
    """torch's deprecated step(epoch) uses the closed form: so does the helper."""
    import warnings

    for name, kwargs in [("StepLR", dict(step_size=3, gamma=0.5)), ("CosineAnnealingLR", dict(T_max=9)),
                         ("LinearLR", dict(total_iters=6)), ("CosineAnnealingWarmRestarts", dict(T_0=4, T_mult=2))]:
        t_opt, j_opt = optimizers("sgd")
        t_s = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
        j_s = helpers()[name](j_opt, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in [2, 5, 5, 11, 3, 17]:
                t_s.step(epoch)
                j_s.step(epoch)
                assert _close(t_s.get_last_lr()[0], j_s.get_last_lr()[0]), (name, epoch)


def test_manual_lr_write_through_param_groups():
    """`for g in optimizer.param_groups: g['lr'] = x` (rewritten to param_groups(optimizer)) reaches the state."""
    ns = helpers()
    _, j_opt = optimizers("sgd")
    for group in ns["param_groups"](j_opt):
        group["lr"] = 0.0125
    assert float(ns["hyperparam_slot"](j_opt.opt_state, "step_size").get_value()) == np.float32(0.0125)
    sched = ns["StepLR"](j_opt, step_size=1, gamma=0.5)
    sched.step()
    assert sched.get_last_lr() == [0.0125 * 0.5]


# ------------------------------------------------------------------ the emitted optimizer, trained


from pt2jax_migrate.lint import lint_source  # noqa: E402
from pt2jax_migrate.rewrite import rewrite_source  # noqa: E402

PROGRAM = """\
import torch
import torch.nn as nn
from torch.optim import lr_scheduler

model = nn.Linear(3, 2)
x = torch.ones(4, 3)
opt = {optimizer}
sched = {scheduler}
for i in range(3):
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
"""


def rewritten(optimizer: str, scheduler: str):
    source = PROGRAM.format(optimizer=optimizer, scheduler=scheduler)
    result = rewrite_source(source, "program.py")
    assert result.error is None, result.error
    return source, result


def assigned(source: str, name: str) -> str:
    import ast

    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name:
            return ast.unparse(node.value)
    raise AssertionError(f"no {name} = ... in\n{source}")


TRAINING = {
    "sgd-momentum-steplr": ("torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)",
                            "lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)"),
    "sgd-nesterov-wd-onecycle": ("torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, "
                                 "weight_decay=0.01)", "lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=10)"),
    "adam-onecycle": ("torch.optim.Adam(model.parameters(), lr=0.05, betas=(0.8, 0.99))",
                      "lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)"),
    "adam-exponential": ("torch.optim.Adam(model.parameters(), lr=0.05)", "lr_scheduler.ExponentialLR(opt, gamma=0.7)"),
    "adamw-cosine": ("torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)",
                     "lr_scheduler.CosineAnnealingLR(opt, T_max=5)"),
    "rmsprop-momentum-lambda": ("torch.optim.RMSprop(model.parameters(), lr=0.01, momentum=0.9)",
                                "lr_scheduler.LambdaLR(opt, lr_lambda=lambda e: 1.0 / (1 + e))"),
    "rmsprop-momentum-onecycle": ("torch.optim.RMSprop(model.parameters(), lr=0.01, momentum=0.5)",
                                  "lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10, anneal_strategy='linear')"),
    "rmsprop-centered-plateau": ("torch.optim.RMSprop(model.parameters(), lr=0.02, centered=True)",
                                 "lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)"),
}


@pytest.mark.parametrize("case", list(TRAINING))
def test_training_with_scheduler_matches_torch(case):
    """The rewrite's optimizer and scheduler, K steps from the same weights: the same parameters
    after every step (lr is torch's last factor even under momentum; OneCycleLR's cycled
    momentum / beta1 held in the state)."""
    optimizer, scheduler = TRAINING[case]
    _, result = rewritten(optimizer, scheduler)
    new = result.new_source
    assert "TODO(pt2jax)" not in new, new
    ns = dict(helpers(), optax=optax, nnx=nnx, jnp=jnp)
    torch.manual_seed(0)
    t_model = torch.nn.Linear(3, 2)
    j_model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    j_model.kernel.set_value(jnp.asarray(t_model.weight.detach().numpy().T))
    j_model.bias.set_value(jnp.asarray(t_model.bias.detach().numpy()))
    t_opt = eval(optimizer, {"torch": torch, "model": t_model})
    t_sched = eval(scheduler, {"lr_scheduler": torch.optim.lr_scheduler, "opt": t_opt})
    j_opt = eval(assigned(new, "opt"), {**ns, "model": j_model})
    j_sched = eval(assigned(new, "sched"), {**ns, "opt": j_opt})
    xs = np.linspace(-1, 1, 8 * 5 * 3, dtype=np.float32).reshape(8, 5, 3)
    targets = np.cos(np.arange(8 * 5 * 2, dtype=np.float32)).reshape(8, 5, 2)
    plateau = "Plateau" in scheduler
    for k in range(8):
        t_loss = ((t_model(torch.from_numpy(xs[k])) - torch.from_numpy(targets[k])) ** 2).mean()
        t_opt.zero_grad()
        t_loss.backward()
        t_opt.step()
        loss, grads = nnx.value_and_grad(lambda m: ((m(jnp.asarray(xs[k])) - targets[k]) ** 2).mean())(j_model)
        j_opt.update(j_model, grads)
        if plateau:
            t_sched.step(1.0)  # a flat metric: the lr halves every step
            j_sched.step(1.0)
        else:
            t_sched.step()
            j_sched.step()
        np.testing.assert_allclose(np.asarray(j_model.kernel[...]), t_model.weight.detach().numpy().T,
                                   rtol=2e-5, atol=2e-6, err_msg=f"step {k}")
        np.testing.assert_allclose(np.asarray(j_model.bias[...]), t_model.bias.detach().numpy(),
                                   rtol=2e-5, atol=2e-6, err_msg=f"step {k}")
        assert j_sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=LR_RTOL)


def test_lr_change_does_not_retrace_the_jitted_step():
    ns = helpers()
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1.0, b1=0.9)
    opt = nnx.Optimizer(model, ns["with_learning_rate"](tx, 0.01), wrt=nnx.Param)
    sched = ns["OneCycleLR"](opt, max_lr=0.1, total_steps=20)  # changes lr and beta1 every step
    traces = []

    @nnx.jit
    def train_step(model, opt, x):
        traces.append(1)
        loss, grads = nnx.value_and_grad(lambda m: (m(x) ** 2).mean())(model)
        opt.update(model, grads)
        return loss

    lrs = set()
    for _ in range(10):
        train_step(model, opt, jnp.ones((4, 3)))
        sched.step()
        lrs.add(float(ns["hyperparam_slot"](opt.opt_state, "step_size").get_value()))
    assert len(lrs) == 10 and len(traces) == 1


# ------------------------------------------------------------------ rewrite and lint decisions


def decisions(source: str):
    """{(line, code): fixable} for the scheduler/optimizer/train-step codes, from lint and rewrite."""
    codes = {"PTJ201", "PTJ202", "PTJ203", "PTJ204", "PTJ205"}
    linted = {(f.line, f.code): f.fixable for f in lint_source(source, "program.py") if f.code in codes}
    result = rewrite_source(source, "program.py")
    written = {(f.line, f.code): f.fixable for f in result.findings if f.code in codes}
    return linted, written, result


def test_converted_scheduler_lint_and_rewrite_agree():
    source = PROGRAM.format(optimizer="torch.optim.SGD(model.parameters(), lr=0.1)",
                            scheduler="lr_scheduler.StepLR(opt, 3)")
    linted, written, result = decisions(source)
    assert linted == written and all(linted.values()) and (8, "PTJ205") in linted
    assert "sched = StepLR(opt, 3)" in result.new_source
    assert "with_learning_rate(optax.sgd(1.0), 0.1)" in result.new_source
    assert "import torch" not in result.new_source and "from torch" not in result.new_source
    assert rewrite_source(result.new_source, "program.py").new_source == result.new_source


REFUSED = {
    "lambda-not-literal": ("torch.optim.SGD(model.parameters(), lr=0.1)", "lr_scheduler.LambdaLR(opt, lr_lambda=f)",
                           "lr_lambda is converted only when it is a lambda written in the call"),
    "lambda-torch": ("torch.optim.SGD(model.parameters(), lr=0.1)",
                     "lr_scheduler.LambdaLR(opt, lambda e: torch.tensor(0.9) ** e)", "lr_lambda"),
    "cyclic": ("torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)",
               "lr_scheduler.CyclicLR(opt, 0.01, 0.1)", "CyclicLR is not converted"),
    "unknown-kwarg": ("torch.optim.Adam(model.parameters())", "lr_scheduler.StepLR(opt, 3, verbose=True)",
                      "argument verbose= is not converted"),
    "resumed": ("torch.optim.Adam(model.parameters())", "lr_scheduler.StepLR(opt, 3, last_epoch=5)", "last_epoch"),
    "optimizer-refused": ("torch.optim.Rprop(model.parameters(), lr=0.1)",
                          "lr_scheduler.StepLR(opt, 3)", "its optimizer opt is not converted"),
    # each group would need its own lr in the state: refused where lint decides too (trainstep)
    "param-groups": ("torch.optim.SGD([{'params': model.parameters()}], lr=0.1)",
                     "lr_scheduler.StepLR(opt, 3)", "parameter groups"),
    "no-momentum-to-cycle": ("torch.optim.Adagrad(model.parameters())",
                             "lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)", "cycle_momentum"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_scheduler_keeps_its_optimizer_and_step(case):
    """Never half: a scheduler that cannot convert keeps its optimizer (and the training step)
    PyTorch, each with a marker saying why; lint says the same."""
    optimizer, scheduler, why = REFUSED[case]
    source = "f = None\n" + PROGRAM.format(optimizer=optimizer, scheduler=scheduler)
    linted, written, result = decisions(source)
    assert linted == written
    assert linted[(9, "PTJ205")] is False and linted[(8, "PTJ201")] is False
    assert not any(written.values()), written  # neither the step nor the optimizer converts
    new = result.new_source
    marker = next(line for line in new.splitlines() if "PTJ205" in line)
    assert why in marker, marker
    if "optimizer-refused" not in case:
        opt_marker = next(line for line in new.splitlines() if "PTJ201" in line)
        assert "lr scheduler" in opt_marker, opt_marker
    assert "torch.optim." in new and "nnx.Optimizer" not in new and "with_learning_rate" not in new
    compile(new, "program.py", "exec")


def test_sequential_with_a_refused_member_refuses_all():
    source = """\
import torch
import torch.nn as nn
from torch.optim.lr_scheduler import CyclicLR, LinearLR, SequentialLR

model = nn.Linear(3, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
warm = LinearLR(opt, total_iters=3)
cyc = CyclicLR(opt, 0.01, 0.1)
sched = SequentialLR(opt, [warm, cyc], milestones=[3])
for i in range(3):
    loss = model(torch.ones(2, 3)).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
"""
    linted, written, result = decisions(source)
    assert linted == written
    assert not any(linted.values()), linted
    assert "a scheduler it combines is not converted" in result.new_source


def test_param_groups_lr_logging_is_rewritten():
    source = PROGRAM.format(optimizer="torch.optim.Adam(model.parameters(), lr=0.01)",
                            scheduler="lr_scheduler.ExponentialLR(opt, 0.5)").replace(
        "    sched.step()\n",
        "    sched.step()\n    print(opt.param_groups[0]['lr'], sched.get_last_lr()[0], sched.last_epoch)\n"
        "    for g in opt.param_groups:\n        g['lr'] = g['lr'] * 2\n")
    linted, written, result = decisions(source)
    assert linted == written and all(linted.values())
    new = result.new_source
    assert "print(param_groups(opt)[0]['lr'], sched.get_last_lr()[0], sched.last_epoch)" in new
    assert "for g in param_groups(opt):" in new and "TODO" not in new


def test_param_groups_read_without_scheduler_gives_the_optimizer_a_slot():
    source = """\
import torch
import torch.nn as nn

model = nn.Linear(3, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(3):
    loss = model(torch.ones(2, 3)).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(opt.param_groups[0]["lr"])
"""
    linted, written, result = decisions(source)
    assert linted == written and all(linted.values())
    assert "with_learning_rate(optax.sgd(1.0), 0.1)" in result.new_source
    assert 'print(param_groups(opt)[0]["lr"])' in result.new_source


def test_lr_change_reaches_a_cached_partial_train_step():
    """nnx.cached_partial (a faster way to call the jitted step) sees the new lr too: lr 0 after
    the first scheduler step leaves the weights alone, with one trace."""
    ns = helpers()
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, ns["with_learning_rate"](optax.sgd(1.0), 0.1), wrt=nnx.Param)
    sched = ns["StepLR"](opt, step_size=1, gamma=0.0)
    traces = []

    @nnx.jit
    def train_step(model, opt, x):
        traces.append(1)
        loss, grads = nnx.value_and_grad(lambda m: (m(x) ** 2).mean())(model)
        opt.update(model, grads)
        return loss

    cached = nnx.cached_partial(train_step, model, opt)
    x = jnp.ones((4, 3))
    start = np.asarray(model.kernel[...]).copy()
    cached(x)
    moved = np.asarray(model.kernel[...]).copy()
    sched.step()
    cached(x)
    assert not np.array_equal(start, moved) and np.array_equal(moved, np.asarray(model.kernel[...]))
    assert len(traces) == 1


def test_scheduler_built_in_another_function_keeps_the_optimizer_of_that_name():
    """A scheduler built where its optimizer is not (a function taking it) stays PyTorch, and so
    does the optimizer of that name: an nnx.Optimizer handed to torch's scheduler would fail."""
    source = """\
import torch
import torch.nn as nn


def make_scheduler(opt):
    return torch.optim.lr_scheduler.StepLR(opt, 3)


model = nn.Linear(3, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
sched = make_scheduler(opt)
for i in range(3):
    loss = model(torch.ones(2, 3)).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
"""
    linted, written, result = decisions(source)
    assert linted == written
    assert linted[(6, "PTJ205")] is False and linted[(10, "PTJ201")] is False
    assert not any(linted.values()), linted
    assert "an lr scheduler of opt is not converted" in result.new_source


AGREEMENT_OPTIMIZERS = [
    "torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)",
    "torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.1)",
    "torch.optim.Adam(model.parameters(), amsgrad=True)",
    "torch.optim.AdamW(model.parameters())",
    "torch.optim.NAdam(model.parameters(), lr=0.01)",
    "torch.optim.RAdam(model.parameters())",
    "torch.optim.Adamax(model.parameters())",
    "torch.optim.Adadelta(model.parameters())",
    "torch.optim.Adagrad(model.parameters())",
    "torch.optim.RMSprop(model.parameters(), momentum=0.9)",
    "torch.optim.RMSprop(model.parameters(), momentum=0.9, centered=True)",
]


@pytest.mark.parametrize("scheduler", ["lr_scheduler.StepLR(opt, 3)",
                                       "lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10)"])
@pytest.mark.parametrize("optimizer", AGREEMENT_OPTIMIZERS)
def test_every_optimizer_with_a_scheduler_is_decided_once(optimizer, scheduler):
    """The optimizer the rewrite renders for a scheduler (lr 1.0, a cycled b1/momentum held in
    the state) is the one the shared plan tried: lint and rewrite agree, and the unit converts
    whole or stays whole -- never a converted scheduler on a PyTorch optimizer."""
    linted, written, result = decisions(PROGRAM.format(optimizer=optimizer, scheduler=scheduler))
    assert linted == written
    assert len(set(written.values())) == 1, written
    compile(result.new_source, "program.py", "exec")
