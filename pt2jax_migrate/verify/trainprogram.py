"""`pt2jax verify ORIGINAL CONVERTED --train` with nothing named: each script's own set-up, its
own training loop and its own data, run side by side for K optimizer steps.

How the set-up is found (the same on both sides): the *training loop* is the first top-level
statement (not a def, class or import) that reaches a training call, directly or through
module-level functions it calls: `.backward()` in the original, `optimizer.update(model, grads)`
or `nnx.value_and_grad` / `nnx.grad` in the converted file. Every top-level statement before it
is the *set-up*: it runs as written (so the script's own model, optimizer, lr schedulers, loss
and data exist, exactly as the script builds them).

Then, between set-up and loop:

* the models: every top-level name bound to a torch module with parameters in the original is
  paired with the same name in the converted file (the rewrite keeps names); torch's weights are
  perturbed (seeded, as verify does) and copied into the converted model, so both start equal;
* the optimizers: top-level `torch.optim.Optimizer`s paired by name with the converted file's
  optimizers; each torch optimizer steps the model whose parameters it holds;
* every dropout layer gets rate 0 (torch and JAX draw different masks).

The loop statement then runs on each side, observed (nothing in it is replaced):

* original: `Tensor.backward` records each loss; post-accumulate-grad hooks record each
  parameter's gradient (before clipping); each optimizer's `step()` is wrapped: after it, the
  parameters and buffers are read;
* converted: the optimizers' transformations report the gradients `optimizer.update` receives
  (targets/nnx/training.py); every module-level function of the file called with a paired model
  or optimizer is wrapped: the concrete scalar it returns (first of a tuple) counts as a loss,
  and when an update happened during the call, the model state is read after it.

Each optimizer step is one compared step: the loss (the sum of the losses whose backward pass fed
that step: gradient accumulation sums its micro-batch losses on both sides), the gradients of the
stepped model, and every parameter, update and buffer of every paired model. After K steps a side
stops (the rest of its loop does not run). Each side reads its own data: data code the rewrite
converted is part of what is compared (a script drawing random data with torch's generator cannot
be compared this way: name --input/--step instead).

float64 rerun: the set-up runs again with torch's default dtype float64 and JAX x64 enabled, so
the scripts' module-level data, models and the batches their loops make are float64 on both sides;
the converted optimizers' state is cast to float64 after the weights are written.

What cannot be driven (a VerifyError saying why, never a crash): no training loop at top level,
a model built inside the loop statement (`if __name__ == "__main__": main()`), a model or
optimizer without a counterpart of the same name, a converted call doing several updates.
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import sys
import types
import warnings
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import numpy as np

from .building import _jax_x64, _where
from .loader import _on_sys_path, parse_source, read_source
from .report import DEFAULT_TOLERANCES, VerifyError
from .train_report import TrainReport, TrainStepResult, compare as _compare, tolerance_table

_COUNTER = count()
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


class _Enough(BaseException):
    """Raised on a side after its K-th optimizer step: the rest of the loop does not run (a
    BaseException, so a script's own `except Exception` does not swallow it)."""


def _torch_marker(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and call.func.attr == "backward"


def _converted_marker(call: ast.Call) -> bool:
    f = call.func
    if not isinstance(f, ast.Attribute):
        return False
    if f.attr == "update" and len(call.args) >= 2:  # optimizer.update(model, grads), not nnx.update(model, state)
        return not (isinstance(f.value, ast.Name) and f.value.id in ("nnx", "jax", "optax"))
    return f.attr in ("value_and_grad", "grad") and isinstance(f.value, ast.Name) and f.value.id in ("nnx", "jax")


def find_loop(tree: ast.Module, marker) -> int | None:
    """Index in tree.body of the first top-level statement reaching a training call."""
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    memo: dict[str, bool] = {}

    def reaches(node: ast.AST, seen: frozenset) -> bool:
        for n in ast.walk(node):
            if isinstance(n, ast.Call) and marker(n):
                return True
            name = n.id if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) else None
            if name in functions and name not in seen:
                if name not in memo:
                    memo[name] = reaches(functions[name], seen | {name})
                if memo[name]:
                    return True
        return False

    for i, stmt in enumerate(tree.body):
        if not isinstance(stmt, _DEFS) and reaches(stmt, frozenset()):
            return i
    return None


@dataclass
class _Side:
    path: str
    module: types.ModuleType
    loop: ast.stmt

    @property
    def ns(self) -> dict:
        return self.module.__dict__

    @property
    def where(self) -> str:
        return f"{self.path}:{self.loop.lineno}"


@contextmanager
def _script(path: str, label: str, marker, what: str):
    """Run `path`'s set-up in a fresh module; yield the side (its loop not yet run)."""
    source = read_source(path)
    tree = parse_source(path, source)
    index = find_loop(tree, marker)
    if index is None:
        raise VerifyError(f"{path}: cannot drive the script: no top-level statement reaches {what} (the "
                          "training loop must run at module level, or in a function a top-level statement calls); "
                          "name the model and the step instead: --model/--input with --step or --loss-fn")
    stem = re.sub(r"\W", "_", Path(path).stem)
    name = f"_pt2jax_train_{label}_{next(_COUNTER)}_{stem}"
    module = types.ModuleType(name)
    module.__file__ = str(Path(path).resolve())
    module.__dict__["__builtins__"] = builtins
    sys.modules[name] = module
    try:
        with _on_sys_path(str(Path(path).resolve().parent)):
            for node in tree.body[:index]:
                code = compile(ast.Module(body=[node], type_ignores=[]), path, "exec", dont_inherit=True)
                try:
                    with redirect_stdout(io.StringIO()):
                        exec(code, module.__dict__)
                except (Exception, SystemExit) as exc:
                    raise VerifyError(f"{path}:{node.lineno}: the script's set-up failed: "
                                      f"{type(exc).__name__}: {exc}") from exc
            yield _Side(path, module, tree.body[index])
    finally:
        if sys.modules.get(name) is module:
            del sys.modules[name]


@dataclass
class _Boundary:
    """One optimizer step as a side saw it."""

    optimizer: str
    losses: list[float]  # the losses that fed this step (backward passes / the converted calls' scalars)
    grads: dict  # torch key or nnx path -> gradient
    after: dict[str, dict]  # model name -> values after the step


@dataclass
class _Pair:
    name: str
    torch: object
    nnx: object
    entries: list = field(default_factory=list)
    torch_params: set = field(default_factory=set)


def _run_loop(side: _Side, label: str) -> None:
    code = compile(ast.Module(body=[side.loop], type_ignores=[]), side.path, "exec", dont_inherit=True)
    try:
        with redirect_stdout(io.StringIO()), _on_sys_path(str(Path(side.path).resolve().parent)), \
                warnings.catch_warnings():
            # torch's lr schedulers warn that optimizer.step was replaced: it is (observed, not changed)
            warnings.filterwarnings("ignore", message=r"Seems like `optimizer.step\(\)` has been overridden")
            exec(code, side.ns)
    except _Enough:
        return
    except VerifyError:
        raise
    except (Exception, SystemExit) as exc:
        cause = exc
        while cause is not None and not isinstance(cause, (_Enough, VerifyError)):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, _Enough):
            return
        if isinstance(cause, VerifyError):
            raise cause from exc
        raise VerifyError(f"{_where(side.path, exc)}: the {label} training loop failed: "
                          f"{type(exc).__name__}: {exc}") from exc


def run_program_train_verify(original: str, converted: str, *, steps: int, dtype: str = "float32",
                             atol: float | None = None, rtol: float | None = None, perturb: bool = True,
                             seed: int = 0, target=None, weights_map=None, float64_check: bool = True) -> TrainReport:
    """verify --train on the scripts' own loops (see the module docstring)."""

    common = dict(steps=steps, perturb=perturb, seed=seed, target=target, weights_map=weights_map)
    start: dict = {}
    report = _run_once(original, converted, dtype=dtype, atol=atol, rtol=rtol, compare=_compare, start=start,
                       **common)
    if float64_check and dtype != "float64" and report.numeric_failures:
        try:  # from the very weights the float32 run started from (a random init draws differently in float64)
            report.float64 = _run_once(original, converted, dtype="float64", compare=_compare, start=start,
                                       **common)
        except VerifyError as exc:
            report.float64_error = str(exc)
    report.passed = report.status in (TrainReport.PASS, TrainReport.ROUNDING)
    return report


def _run_once(original, converted, *, steps, dtype, atol=None, rtol=None, perturb, seed, target, weights_map,
              compare, start: dict) -> TrainReport:
    """One run. `start` empty: filled with the torch weights it started from (after the perturbation);
    else those weights are written into the torch models instead of perturbing them."""
    import torch

    from ..targets import get_target
    from .transfer import apply_transfer, perturb as perturb_weights, plan_transfer

    if dtype not in DEFAULT_TOLERANCES:
        raise VerifyError(f"dtype {dtype!r} is not supported; use one of {', '.join(DEFAULT_TOLERANCES)}")
    d_atol, d_rtol, d_gatol, d_grtol = DEFAULT_TOLERANCES[dtype]
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    grad_atol = d_gatol if atol == d_atol else max(d_gatol, atol)
    grad_rtol = d_grtol if rtol == d_rtol else max(d_grtol, rtol)
    float64 = dtype == "float64"
    eps = float(np.finfo(np.float64 if float64 else np.float32).eps)
    target = get_target(target)
    try:
        runtime = target.training()
    except NotImplementedError as exc:
        raise VerifyError(str(exc)) from exc

    notes: list[str] = []
    with ExitStack() as stack:
        stack.enter_context(_jax_x64(float64))
        if float64:
            previous = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            stack.callback(torch.set_default_dtype, previous)
        torch.manual_seed(seed)
        t_side = stack.enter_context(_script(original, "torch", _torch_marker, "a `.backward()` call"))
        j_side = stack.enter_context(_script(converted, target.name, _converted_marker,
                                             "an `optimizer.update(model, grads)` or `value_and_grad` call"))

        # --- the models, paired by name; the same (perturbed) weights on both sides
        pairs: list[_Pair] = []
        seen: set[int] = set()
        for name, obj in t_side.ns.items():
            if (name.startswith("_") or not isinstance(obj, torch.nn.Module) or id(obj) in seen
                    or not any(True for _ in obj.parameters())):
                continue
            seen.add(id(obj))
            other = j_side.ns.get(name)
            if not target.is_model(other):
                raise VerifyError(
                    f"cannot drive the scripts: {original} builds the model `{name}` before its training loop "
                    f"({t_side.where}) but {converted} has no {target.module_base} named `{name}` there "
                    f"({'it is a ' + type(other).__name__ if other is not None else 'no such name'})")
            wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
            pairs.append(_Pair(name, obj.module if isinstance(obj, wrappers) else obj, other))  # converted: the module
        if not pairs:
            raise VerifyError(f"cannot drive the scripts: no model is built at module level before the training "
                              f"loop ({t_side.where}); it is built inside the loop's statement, so verify cannot "
                              "give both sides the same weights: name it with --model (and --input/--step)")
        for pair in pairs:
            try:
                pair.entries = [e for e in plan_transfer(pair.torch, pair.nnx, target=target, weights_map=weights_map)
                                if e.nnx_path is not None]
            except VerifyError as exc:
                raise VerifyError(f"{converted}: `{pair.name}`: {exc}") from exc
            if pair.name in start:
                with torch.no_grad():
                    for e, value in zip(pair.entries, start[pair.name]):
                        e.tensor.copy_(torch.from_numpy(value).to(dtype=e.tensor.dtype))
            else:
                if perturb:
                    perturb_weights(pair.entries, seed)
                start[pair.name] = [e.tensor.detach().cpu().numpy().copy() for e in pair.entries]
            apply_transfer(pair.entries, pair.nnx, dtype="float64" if float64 else None, target=target)
            pair.torch_params = {id(p) for p in pair.torch.parameters()}
        prefix = len(pairs) > 1

        def key(pair: _Pair, name: str) -> str:
            return f"{pair.name}.{name}" if prefix else name

        # --- dropout off on both sides
        t_drop = j_drop = 0
        for pair in pairs:
            for module in pair.torch.modules():
                if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                    module.p = 0.0
                    t_drop += 1
            j_drop += runtime.disable_dropout(pair.nnx)

        # --- the optimizers, paired by name
        optimizers: dict[str, tuple] = {}  # name -> (torch optimizer, converted optimizer, pair)
        for name, obj in t_side.ns.items():
            if not isinstance(obj, torch.optim.Optimizer) or any(o[0] is obj for o in optimizers.values()):
                continue
            ids = {id(p) for g in obj.param_groups for p in g["params"]}
            owner = next((p for p in pairs if p.torch_params & ids), None)
            if owner is None:
                continue
            other = j_side.ns.get(name)
            if not runtime.is_optimizer(other):
                raise VerifyError(f"cannot drive the scripts: {original} builds the optimizer `{name}` before its "
                                  f"training loop but {converted} has no optimizer named `{name}` there")
            optimizers[name] = (obj, other, owner)
            if float64:
                runtime.float64_state(other)
        if not optimizers:
            raise VerifyError(f"cannot drive the scripts: no torch optimizer is built at module level before the "
                              f"training loop ({t_side.where})")

        start_t = {p.name: _torch_values(p.entries) for p in pairs}
        start_j = {p.name: runtime.values(p.nnx) for p in pairs}

        # --- the original's loop, observed
        t_bounds: list[_Boundary] = []
        t_losses: list[float] = []
        t_grads: dict[int, np.ndarray] = {}
        original_backward = torch.Tensor.backward

        def backward(self, *args, **kwargs):
            t_losses.append(float(self.detach().double().sum().cpu()))
            return original_backward(self, *args, **kwargs)

        handles = []
        for pair in pairs:
            for p in pair.torch.parameters():
                if p.requires_grad:
                    handles.append(p.register_post_accumulate_grad_hook(
                        lambda t: t_grads.__setitem__(id(t), t.grad.detach().cpu().numpy().copy())))

        def torch_step(name, inner):
            owner = optimizers[name][2]

            def step(*args, **kwargs):
                out = inner(*args, **kwargs)
                grads = {e.torch_key: e.convert(t_grads[id(e.tensor)]) for e in owner.entries
                         if e.is_param and id(e.tensor) in t_grads}
                t_bounds.append(_Boundary(name, list(t_losses), grads,
                                          {p.name: _torch_values(p.entries) for p in pairs}))
                t_losses.clear()
                t_grads.clear()
                if len(t_bounds) >= steps:
                    raise _Enough
                return out

            return step

        saved_steps = {name: opt.__dict__.get("step") for name, (opt, _, _) in optimizers.items()}
        try:
            for name, (opt, _, _) in optimizers.items():
                opt.step = torch_step(name, opt.step)
            torch.Tensor.backward = backward
            with torch.enable_grad():
                _run_loop(t_side, "original's")
        finally:
            torch.Tensor.backward = original_backward
            for h in handles:
                h.remove()
            for name, (opt, _, _) in optimizers.items():
                if saved_steps[name] is None:
                    opt.__dict__.pop("step", None)
                else:
                    opt.step = saved_steps[name]

        # --- the converted loop, observed
        deliveries: list[tuple[str, dict]] = []
        for name, (_, opt, _) in optimizers.items():
            runtime.record_gradients(opt, lambda grads, name=name: deliveries.append((name, grads)))
        tracked = {id(p.nnx) for p in pairs} | {id(o[1]) for o in optimizers.values()}
        j_bounds: list[_Boundary] = []
        j_losses: list[float] = []
        used = [0]

        def wrap(fname, fn):
            def call(*args, **kwargs):
                if not any(id(a) in tracked for a in (*args, *kwargs.values())):
                    return fn(*args, **kwargs)
                out = fn(*args, **kwargs)
                runtime.synchronize()
                value = out[0] if isinstance(out, (tuple, list)) and out else out
                if value is not None and not runtime.is_tracer(value):
                    try:
                        a = np.asarray(value)
                        if a.size == 1 and np.issubdtype(a.dtype, np.number):
                            j_losses.append(float(a.reshape(())))
                    except (TypeError, ValueError):
                        pass
                new = deliveries[used[0]:]
                if len(new) > 1:
                    raise VerifyError(f"{converted}: cannot drive the script: one call of {fname} made "
                                      f"{len(new)} optimizer updates; verify compares one update per call")
                if new:
                    used[0] += 1
                    j_bounds.append(_Boundary(new[0][0], list(j_losses), new[0][1],
                                              {p.name: runtime.values(p.nnx) for p in pairs}))
                    j_losses.clear()
                    if len(j_bounds) >= steps:
                        raise _Enough
                return out

            call.__name__ = getattr(fn, "__name__", fname)
            call.__wrapped__ = fn
            return call

        wrapped = {}
        for fname, obj in list(j_side.ns.items()):
            inner = getattr(obj, "__wrapped__", obj)
            if (not isinstance(obj, type) and callable(obj) and not target.is_model(obj)
                    and getattr(inner, "__globals__", None) is j_side.ns):
                wrapped[fname] = obj
                j_side.ns[fname] = wrap(fname, obj)
        try:
            _run_loop(j_side, "converted")
        finally:
            j_side.ns.update(wrapped)
        if len(deliveries) > used[0] and not j_bounds:
            raise VerifyError(f"{converted}: cannot drive the script: its loop ({j_side.where}) updates the optimizer "
                              "outside any module-level function taking the model or the optimizer; put the step in "
                              "one (as the rewrite emits train_step) or name it with --step")

        # --- compare, step by step
        results: list[TrainStepResult] = []
        before_t, before_j = start_t, start_j
        for k, (tb, jb) in enumerate(zip(t_bounds, j_bounds), start=1):
            if tb.optimizer != jb.optimizer:
                notes.append(f"step {k}: the original steps {tb.optimizer}, the converted {jb.optimizer}: the "
                             "loops step their optimizers in a different order; comparison stopped")
                break
            # the converted side's scalars since its last step, the last as many as torch's backward passes
            # (an evaluation between steps returns a scalar too, and comes first)
            t_loss = sum(tb.losses) if tb.losses else np.nan
            j_loss = sum(jb.losses[-len(tb.losses):]) if tb.losses and jb.losses else np.nan
            result = TrainStepResult(k, float(t_loss), float(j_loss))
            result.optimizer = tb.optimizer
            if tb.losses and jb.losses:
                result.comparisons.append(compare("loss", "loss", np.asarray(j_loss), np.asarray(t_loss), atol, rtol))
            owner = optimizers[tb.optimizer][2]
            for e in owner.entries:
                if e.is_param and e.tensor.requires_grad:
                    expected = tb.grads.get(e.torch_key)
                    expected = np.zeros_like(before_t[owner.name][e.torch_key]) if expected is None else expected
                    actual = jb.grads.get(e.nnx_path)
                    actual = np.zeros_like(expected) if actual is None else actual
                    result.comparisons.append(compare(f"grad {key(owner, e.torch_key)}", "gradient", actual, expected,
                                                      grad_atol, grad_rtol))
            for pair in pairs:
                at, aj = tb.after[pair.name], jb.after[pair.name]
                bt, bj = before_t[pair.name], before_j[pair.name]
                for e in pair.entries:
                    if e.nnx_path not in aj:
                        continue
                    t_after, j_after = at[e.torch_key], aj[e.nnx_path]
                    label = key(pair, e.torch_key)
                    kind = "parameter" if e.is_param else "buffer"
                    result.comparisons.append(compare(f"{'param' if e.is_param else 'buffer'} {label}", kind,
                                                      j_after, t_after, atol, rtol))
                    if e.is_param and e.nnx_path in bj:
                        t_update = t_after.astype(np.float64) - bt[e.torch_key]
                        j_update = j_after.astype(np.float64) - bj[e.nnx_path]
                        scale = float(np.max(np.abs(t_after))) if t_after.size else 0.0
                        result.comparisons.append(compare(f"update {label}", "update", j_update, t_update,
                                                          grad_atol + 4 * eps * scale, grad_rtol))
            results.append(result)
            before_t, before_j = tb.after, jb.after

    if len(t_bounds) != len(j_bounds):
        notes.append(f"the original's loop made {len(t_bounds)} optimizer steps, the converted's {len(j_bounds)} "
                     f"(of {steps} asked)")
        if results:
            results[-1].comparisons.append(compare("optimizer steps made", "loss", np.asarray(float(len(j_bounds))),
                                                   np.asarray(float(len(t_bounds))), 0.0, 0.0))
    elif len(t_bounds) < steps:
        notes.append(f"the training loop ends after {len(t_bounds)} optimizer steps (of {steps} asked)")
    if not results:
        raise VerifyError(f"cannot drive the scripts: the original's loop ({t_side.where}) made {len(t_bounds)} "
                          f"optimizer steps, the converted's ({j_side.where}) {len(j_bounds)}")
    accumulated = max((len(b.losses) for b in t_bounds), default=0)
    if accumulated > 1:
        notes.append(f"each compared step is one optimizer step over up to {accumulated} backward passes (gradient "
                     "accumulation): its loss is their sum, on both sides")
    if len(optimizers) > 1:
        notes.append("optimizer stepped at each step: " + ", ".join(f"{r.step} {r.optimizer}" for r in results))
    if t_drop or j_drop:
        notes.append(f"dropout disabled in both models ({t_drop} torch / {j_drop} converted layers): torch and JAX "
                     "draw different dropout masks, so train-mode randomness is not compared")
    models = ", ".join(f"{p.name} ({type(p.torch).__name__})" for p in pairs)
    opts = ", ".join(f"{n} ({type(o[0]).__name__} of {o[2].name})" for n, o in optimizers.items())
    return TrainReport(
        passed=all(not s.failures for s in results),
        model=models,
        setup=(f"the scripts' own set-up and training loops ({t_side.where} / {j_side.where}), each on its own "
               "data, observed for the first optimizer steps"),
        optimizer=opts,
        original=original,
        converted=converted,
        dtype=dtype,
        batch=[],
        steps=results,
        tolerances=tolerance_table(atol, rtol, grad_atol, grad_rtol),
        seed=seed,
        perturbed=perturb,
        dropout=(t_drop, j_drop),
        notes=notes,
        program=True,
    )


def _torch_values(entries) -> dict[str, np.ndarray]:
    return {e.torch_key: e.convert(e.tensor.detach().cpu().numpy().copy()) for e in entries}
