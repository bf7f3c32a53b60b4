"""`pt2jax verify --train`: K optimizer steps of the original and of the converted training code,
from the same weights on the same batches, compared after every step.

Nothing named (no model): each script's own set-up, training loop and data, observed side by
side for K optimizer steps: trainprogram.py. Otherwise the model is --model (and --init), the
batches are drawn from --input specs, and the step is named as follows (first that applies):

* `step="NAME"` (`--step`): a function defined in both files, `NAME(model, optimizer, *batch)`,
  that does one whole step and returns the loss (or a tuple starting with it);
* `loss_fn="NAME"` (`--loss-fn`): a function defined in both files, `NAME(model, *batch)` ->
  scalar loss; verify drives the step (torch: zero_grad / backward / step; the converted
  side: nnx.value_and_grad and optimizer.update under nnx.jit);
* otherwise the script's own step: the `zero_grad / forward / loss / backward / step` group
  the rewrite lifts (trainsource.py) is rebuilt as a torch function, and the converted file's
  `train_step(model, optimizer, *batch)` (the function the rewrite emitted) is called by name.

The optimizer (`optimizer=`, `--optimizer`): a function defined in both files called as
`NAME(model)`, or a Python expression over `model` evaluated in each file's namespace
(`build_optimizer(model, lr=0.01)`); default `build_optimizer`.

Each step gets a fresh batch drawn from the input specs (one per batch argument) with seed
(seed, step), the same arrays for both sides. Both models are in train mode (BatchNorm uses
batch statistics and updates its running ones) with every dropout layer's rate set to 0:
torch and JAX draw different dropout masks, so train-mode randomness cannot be compared.

Observed per step: the loss the step returns; the gradients (torch: each parameter's `.grad`
right after backward, before clipping, via post-accumulate-grad hooks; converted: what
`optimizer.update(model, grads)` receives, see targets/nnx/training.py); every parameter and
buffer after the step; each parameter's update (after - before). Each torch value goes through
its weight's transfer transform (transfer.py) and is compared with the converted value at the
same path. Tolerances, rule ``max_abs_err <= allowed``:

* loss, parameters, buffers: atol + rtol * max|torch| (verify's output tolerances);
* gradients: grad_atol + grad_rtol * max|torch| (verify's gradient tolerances);
* updates: grad_atol + grad_rtol * max|torch update| + 4 * eps(dtype) * max|torch parameter|:
  the last term is the rounding of a difference of two parameters (a 1e-5 update on weights
  of size 1 is known to float32 only to ~1e-7).

As in verify, a float32 failure reruns everything in float64: if float64 agrees, the report
says float32 rounding noise and passes; otherwise the first step and quantity that differ
(in float64) are named.
"""

from __future__ import annotations

import ast
import keyword
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from .building import _check_model_name, _jax_x64, _loaded, _lookup, _where, build_transferred
from .loader import expression_names
from .report import DEFAULT_TOLERANCES, PASS, ROUNDING, VerifyError
from .specs import make_arrays, parse_spec
from .train_report import compare as _compare, tolerance_table
from .train_report import TrainReport, TrainStepResult
from .trainsource import STEP_FUNCTION, ScriptStep, SchedulerUse, find_construction, find_schedulers, find_script_steps

DEFAULT_STEPS = 5
DEFAULT_OPTIMIZER = "build_optimizer"
CONVERTED_STEP = "train_step"  # the name the rewrite gives the step it lifts
_LOSS_STEP = "__pt2jax_loss_step__"


def _is_name(text: str) -> bool:
    parts = text.split(".")
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in parts)


def _optimizer_call(optimizer: str) -> str:
    """`build_optimizer` -> `build_optimizer(model)`; an expression stays as it is."""
    text = optimizer.strip()
    if not text:
        raise VerifyError("--optimizer is empty")
    return f"{text}(model)" if _is_name(text) else text


def run_train_verify(
    original: str,
    converted: str,
    *,
    model: str | None = None,
    init: str = "",
    inputs: list[str] | None = None,
    steps: int = DEFAULT_STEPS,
    optimizer: str | None = None,
    loss_fn: str | None = None,
    step: str | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    dtype: str = "float32",
    perturb: bool = True,
    seed: int = 0,
    target=None,
    weights_map=None,
    float64_check: bool = True,
    weights: str | None = None,
    weights_prefix: tuple = (),
) -> TrainReport:
    """Train `model` for `steps` steps in `original` (torch) and in `converted` and compare them
    after every step (see the module docstring). Raises VerifyError when verify cannot run (a
    missing function, a step that raises, a bad spec, an incomplete weight mapping); numerical
    differences are failed comparisons in the report."""
    from .weightmap import WeightMap

    if weights_map is not None and not isinstance(weights_map, WeightMap):
        weights_map = WeightMap.from_table(weights_map, "weights map")
    if steps < 1:
        raise VerifyError(f"--steps must be at least 1, got {steps}")
    if not model:
        named = [k for k, v in (("--input", inputs), ("--init", init), ("--step", step), ("--loss-fn", loss_fn),
                                ("--optimizer", optimizer), ("--weights", weights)) if v]
        if named:
            raise VerifyError(f"{', '.join(named)} name a set-up: give --model too (or nothing, to run the "
                              "scripts' own set-up and training loops)")
        from .trainprogram import run_program_train_verify

        return run_program_train_verify(original, converted, steps=steps, dtype=dtype, atol=atol, rtol=rtol,
                                        perturb=perturb, seed=seed, target=target, weights_map=weights_map,
                                        float64_check=float64_check)
    inputs = list(inputs or [])
    if step and loss_fn:
        raise VerifyError("name the training step one way: --step NAME or --loss-fn NAME, not both")
    for what, name in (("--step", step), ("--loss-fn", loss_fn)):
        if name and not _is_name(name):
            raise VerifyError(f"{what} {name!r} is not a function name")
    script = None
    if not step and not loss_fn:
        found = find_script_steps(original)
        if not found:
            raise VerifyError(
                f"{original}: no training step found (zero_grad / forward / loss / backward / step in one "
                "block); name one: --step NAME (a function in both files taking (model, optimizer, *batch)) "
                "or --loss-fn NAME (taking (model, *batch))")
        if len(found) > 1:
            where = ", ".join(s.where for s in found)
            raise VerifyError(f"{original}: {len(found)} training steps ({where}); name the one to compare "
                              "with --step NAME or --loss-fn NAME (a function defined in both files)")
        script = found[0]
    setup = _optimizer_setup(optimizer, script, original, converted)
    schedulers = find_schedulers(original, script) if script is not None else []
    common = dict(model=model, init=init, inputs=inputs, steps=steps, optimizer=setup, schedulers=schedulers,
                  loss_fn=loss_fn, step=step, script=script, perturb=perturb and not weights, seed=seed,
                  target=target, weights_map=weights_map, weights=weights, weights_prefix=tuple(weights_prefix))
    report = _run_once(original, converted, atol=atol, rtol=rtol, dtype=dtype, **common)
    if float64_check and dtype != "float64" and report.numeric_failures:
        try:
            report.float64 = _run_once(original, converted, dtype="float64", **common)
        except VerifyError as exc:
            report.float64_error = str(exc)
    report.passed = report.status in (PASS, ROUNDING)
    return report


def _describe_setup(script: ScriptStep | None, step: str | None, loss_fn: str | None, converted: str) -> str:
    if step:
        return f"step function {step}(model, optimizer, *batch) in both files"
    if loss_fn:
        return f"loss function {loss_fn}(model, *batch) in both files, stepped by verify"
    assert script is not None
    return f"the script's training step ({script.where}) vs {converted}'s {CONVERTED_STEP}"


def _run_once(original: str, converted: str, *, model: str, init: str, inputs: list[str], steps: int,
              optimizer: OptimizerSetup, schedulers: list[SchedulerUse], loss_fn: str | None, step: str | None,
              script: ScriptStep | None,
              atol: float | None = None, rtol: float | None = None, dtype: str, perturb: bool, seed: int,
              target=None, weights_map=None, weights: str | None = None, weights_prefix: tuple = ()) -> TrainReport:
    if dtype not in DEFAULT_TOLERANCES:
        raise VerifyError(f"dtype {dtype!r} is not supported; use one of {', '.join(DEFAULT_TOLERANCES)}")
    _check_model_name(model)
    specs = [parse_spec(s) for s in inputs]
    d_atol, d_rtol, d_gatol, d_grtol = DEFAULT_TOLERANCES[dtype]
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    grad_atol = d_gatol if atol == d_atol else max(d_gatol, atol)
    grad_rtol = d_grtol if rtol == d_rtol else max(d_grtol, rtol)
    float64 = dtype == "float64"
    eps = float(np.finfo(np.float64 if float64 else np.float32).eps)
    roots = {model.split(".")[0]} | expression_names(init, what="--init", call_args=True)
    torch_roots = roots | optimizer.torch_reads
    for use in schedulers:
        torch_roots |= use.construction.reads - {script.optimizer}
    jax_roots = roots | optimizer.jax_reads
    named = step or loss_fn
    if named:
        torch_roots.add(named.split(".")[0])
        jax_roots.add(named.split(".")[0])
    else:
        torch_roots |= script.reads
        jax_roots.add(CONVERTED_STEP)

    import jax
    import jax.numpy as jnp
    import torch

    from ..targets import get_target

    target = get_target(target)
    try:
        runtime = target.training()
    except NotImplementedError as exc:
        raise VerifyError(str(exc)) from exc

    with ExitStack() as stack:
        stack.enter_context(_jax_x64(float64))
        if float64:  # module-level data computed in float64 on the torch side too, as JAX x64 does
            previous = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            stack.callback(torch.set_default_dtype, previous)
        torch_file = stack.enter_context(_loaded(original, torch_roots, "torch"))
        jax_file = stack.enter_context(_loaded(converted, jax_roots, target.name))
        if float64:  # and data a file makes float32 explicitly: the models' float64 too
            _module_data_float64(torch_file.namespace, jax_file.namespace)

        # --- the two models, the same weights (as verify builds them)
        torch_model, nnx_model, entries, _ = build_transferred(
            torch_file, jax_file, original, converted, model, init, seed, target,
            weights_map=weights_map, perturb=perturb, float64=float64, weights=weights,
            weights_prefix=weights_prefix)
        entries = [e for e in entries if e.nnx_path is not None]

        # --- train mode without dropout randomness
        torch_model.train()
        runtime.train_mode(nnx_model)
        torch_dropout = 0
        for module in torch_model.modules():
            if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                module.p = 0.0
                torch_dropout += 1
        jax_dropout = runtime.disable_dropout(nnx_model)

        # --- the optimizers, built after the weights are in place
        torch_opt = _evaluate(torch_file, optimizer.torch, dict.fromkeys(optimizer.model_names, torch_model),
                              optimizer.torch_where)
        if not isinstance(torch_opt, torch.optim.Optimizer):
            raise VerifyError(f"{optimizer.torch_where}: {optimizer.torch} is a {type(torch_opt).__name__}, not a "
                              "torch.optim.Optimizer")
        notes: list[str] = []
        torch_schedulers = _build_schedulers(torch_file, schedulers, script, torch_opt, steps, notes)
        jax_opt = _evaluate(jax_file, optimizer.jax, dict.fromkeys(optimizer.model_names, nnx_model),
                            optimizer.jax_where)
        if not runtime.is_optimizer(jax_opt):
            raise VerifyError(f"{optimizer.jax_where}: {optimizer.jax} is a {type(jax_opt).__name__}, not the "
                              f"{target.name} target's optimizer")

        # --- the steps
        if step:
            torch_step, jax_step = _lookup(torch_file, step), _lookup(jax_file, step)
            signature = (jax_step, 2)
        elif loss_fn:
            torch_step = _torch_loss_step(_lookup(torch_file, loss_fn))
            jax_loss = _lookup(jax_file, loss_fn)
            jax_step = runtime.loss_step(jax_loss)
            signature = (jax_loss, 1)
        else:
            torch_step = _define(torch_file, script.function, STEP_FUNCTION, script.where)
            if not callable(jax_file.namespace.get(CONVERTED_STEP)):
                raise VerifyError(
                    f"{converted}: no module-level {CONVERTED_STEP} function to compare with the step at "
                    f"{script.where} (the rewrite nests it in a function when it reads that function's "
                    "local names); name the step: --step NAME or --loss-fn NAME, a function in both files")
            jax_step = jax_file.namespace[CONVERTED_STEP]
            signature = (jax_step, 2)
        batch_names = _batch_names(script, *signature, len(specs), converted)

        # --- gradients as each side's optimizer receives them
        torch_grads: dict[int, np.ndarray] = {}
        handles = []
        for p in torch_model.parameters():
            if p.requires_grad:
                handles.append(p.register_post_accumulate_grad_hook(
                    lambda t: torch_grads.__setitem__(id(t), t.grad.detach().cpu().numpy().copy())))
        stack.callback(lambda: [h.remove() for h in handles])
        jax_grads: list[dict[tuple, np.ndarray]] = []
        runtime.record_gradients(jax_opt, jax_grads.append)

        results: list[TrainStepResult] = []
        for k in range(1, steps + 1):
            arrays = make_arrays(specs, [seed, k], float64=float64)
            device = next((p.device for p in torch_model.parameters()), torch.device("cpu"))
            torch_batch = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]
            jax_batch = [jnp.asarray(a.astype(np.int32) if a.dtype == np.int64 else a) for a in arrays]
            before_t = _torch_values(entries)
            before_j = runtime.values(nnx_model)
            torch_grads.clear()
            jax_grads.clear()
            with torch.enable_grad():
                try:
                    t_loss = _scalar(torch_step(torch_model, torch_opt, *torch_batch))
                    for scheduler in torch_schedulers:
                        scheduler.step()
                except VerifyError:
                    raise
                except Exception as exc:
                    raise VerifyError(f"{_where(original, exc)}: step {k} of the torch training step failed: "
                                      f"{type(exc).__name__}: {exc}") from exc
            try:
                with jax.default_matmul_precision("highest"):
                    j_loss = _scalar(jax_step(nnx_model, jax_opt, *jax_batch))
                runtime.synchronize()
            except VerifyError:
                raise
            except Exception as exc:
                raise VerifyError(f"{_where(converted, exc)}: step {k} of the converted training step failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
            after_t = _torch_values(entries)
            after_j = runtime.values(nnx_model)
            result = TrainStepResult(k, t_loss, j_loss)
            result.comparisons.append(_compare("loss", "loss", np.asarray(j_loss), np.asarray(t_loss), atol, rtol))
            grads_seen = jax_grads[-1] if jax_grads else None
            for e in entries:
                trainable = e.is_param and e.tensor.requires_grad
                if trainable and grads_seen is not None:
                    t_grad = torch_grads.get(id(e.tensor))
                    expected = e.convert(t_grad) if t_grad is not None else np.zeros_like(before_t[e.torch_key])
                    actual = grads_seen.get(e.nnx_path)
                    actual = np.zeros_like(expected) if actual is None else actual
                    result.comparisons.append(_compare(f"grad {e.torch_key}", "gradient", actual, expected,
                                                       grad_atol, grad_rtol))
            for e in entries:
                path = e.nnx_path
                if path not in after_j or path not in before_j:
                    continue
                t_after, j_after = after_t[e.torch_key], after_j[path]
                kind = "parameter" if e.is_param else "buffer"
                result.comparisons.append(_compare(f"{'param' if e.is_param else 'buffer'} {e.torch_key}", kind,
                                                   j_after, t_after, atol, rtol))
                if e.is_param:
                    t_update = t_after.astype(np.float64) - before_t[e.torch_key]
                    j_update = j_after.astype(np.float64) - before_j[path]
                    scale = float(np.max(np.abs(t_after))) if t_after.size else 0.0
                    result.comparisons.append(_compare(f"update {e.torch_key}", "update", j_update, t_update,
                                                       grad_atol + 4 * eps * scale, grad_rtol))
            results.append(result)

    if grads_seen is None and results:
        notes.append("the converted step never called optimizer.update(model, grads): gradients not compared")
    if torch_dropout or jax_dropout:
        notes.append(f"dropout disabled in both models ({torch_dropout} torch / {jax_dropout} converted layers): "
                     "torch and JAX draw different dropout masks, so train-mode randomness is not compared")
    names = [f"{n}={s.text}" for n, s in zip(batch_names, specs)]
    return TrainReport(
        passed=all(not s.failures for s in results),
        model=model,
        setup=_describe_setup(script, step, loss_fn, converted),
        optimizer=optimizer.description,
        original=original,
        converted=converted,
        dtype=dtype,
        batch=names,
        steps=results,
        tolerances=tolerance_table(atol, rtol, grad_atol, grad_rtol),
        seed=seed,
        perturbed=perturb,
        dropout=(torch_dropout, jax_dropout),
        notes=notes,
    )


def _module_data_float64(torch_namespace: dict, jax_namespace: dict) -> None:
    """Module-level floating torch tensors and JAX/numpy arrays, made float64 (the float64 rerun
    makes the models double: data left float32 would not multiply with them)."""
    import jax.numpy as jnp
    import torch

    for name, value in list(torch_namespace.items()):
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float64:
            torch_namespace[name] = value.double()
    for name, value in list(jax_namespace.items()):
        dtype = getattr(value, "dtype", None)
        if (isinstance(value, (np.ndarray, jnp.ndarray)) and dtype is not None
                and np.issubdtype(dtype, np.floating) and dtype != np.float64):
            jax_namespace[name] = jnp.asarray(value, dtype=jnp.float64)


def _torch_values(entries) -> dict[str, np.ndarray]:
    """torch key -> the tensor's value in the converted layout (float64 for the differences)."""
    return {e.torch_key: e.convert(e.tensor.detach().cpu().numpy().copy()) for e in entries}


def _scalar(value) -> float:
    """The loss from what a step returns: a scalar tensor/array/float, or a tuple starting with it."""
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.size != 1 or not np.issubdtype(a.dtype, np.number):
        raise VerifyError(f"the training step must return the loss (a scalar), got {type(value).__name__} "
                          f"of shape {tuple(a.shape)}")
    return float(a.reshape(()))


def _evaluate(loaded, text: str, names: dict, where: str):
    try:
        return eval(text, {**loaded.namespace, **names})
    except Exception as exc:
        hint = ("; name the optimizer set-up with --optimizer NAME (a function in both files taking the model)"
                if isinstance(exc, NameError) else "")
        raise VerifyError(f"{where}: building the optimizer `{text}` failed: {type(exc).__name__}: {exc}"
                          f"{hint}") from exc


@dataclass(frozen=True)
class OptimizerSetup:
    """How each side's optimizer is built: an expression per file, evaluated in that file's
    namespace with the model bound to `model_names`."""

    torch: str
    jax: str
    torch_where: str
    jax_where: str
    description: str
    model_names: tuple[str, ...] = ("model",)

    def _reads(self, text: str) -> set[str]:
        return expression_names(text, what="the optimizer set-up") - set(self.model_names)

    @property
    def torch_reads(self) -> set[str]:
        return self._reads(self.torch)

    @property
    def jax_reads(self) -> set[str]:
        return self._reads(self.jax)


def _optimizer_setup(optimizer: str | None, script: ScriptStep | None, original: str,
                     converted: str) -> OptimizerSetup:
    """--optimizer when given; else the assignment to the step's optimizer variable each file
    makes (`optimizer = build_optimizer(model)`, `optimizer = nnx.Optimizer(model, ...)`), when
    each file has exactly one; else `build_optimizer(model)`."""
    if optimizer:
        text = _optimizer_call(optimizer)
        return OptimizerSetup(text, text, original, converted, f"{text} in each file")
    if script is not None:
        built = find_construction(original, script.optimizer), find_construction(converted, script.optimizer)
        if built[0] is not None and built[1] is not None:
            names = tuple(dict.fromkeys(("model", script.model)))
            return OptimizerSetup(built[0].expression, built[1].expression, built[0].where, built[1].where,
                                  f"{script.optimizer} = {built[0].expression} ({built[0].where}) / "
                                  f"{built[1].expression} ({built[1].where})", names)
    text = _optimizer_call(DEFAULT_OPTIMIZER)
    return OptimizerSetup(text, text, original, converted, f"{text} in each file (the default)")


def _define(loaded, source: str, name: str, where: str):
    """Define the rebuilt script step in the original's namespace (it reads the file's globals)."""
    try:
        code = compile(ast.parse(source), f"<training step of {where}>", "exec")
        exec(code, loaded.namespace)
    except Exception as exc:  # pragma: no cover - the text comes from ast.unparse
        raise VerifyError(f"{where}: cannot rebuild the training step: {type(exc).__name__}: {exc}") from exc
    return loaded.namespace[name]


def _build_schedulers(loaded, uses: list[SchedulerUse], script: ScriptStep | None, torch_opt, steps: int,
                      notes: list[str]) -> list:
    """Build the original's lr schedulers on the torch optimizer (some set the learning rate when
    built: OneCycleLR, LinearLR) and return those stepped once per optimizer step, as the script
    does. (The converted optimizer carries its schedule inside its optax transformation.)"""
    stepped = []
    for use in uses:
        where, text = use.construction.where, use.construction.expression
        try:
            scheduler = eval(text, {**loaded.namespace, script.optimizer: torch_opt})
        except Exception as exc:
            notes.append(f"lr scheduler {use.name} ({where}) not built ({type(exc).__name__}: {exc}): the torch "
                         "side runs without it")
            continue
        if use.per_step:
            stepped.append(scheduler)
            notes.append(f"lr scheduler {use.name} ({where}) stepped after every optimizer step, as the script does")
        else:
            notes.append(f"lr scheduler {use.name} ({where}) is stepped outside the training step's block (per "
                         f"epoch): not stepped within the {steps} compared steps")
    return stepped


def _torch_loss_step(loss_fn):
    def step(model, optimizer, *batch):
        optimizer.zero_grad()
        loss = loss_fn(model, *batch)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _batch_names(script: ScriptStep | None, fn, skip: int, count: int, converted: str) -> list[str]:
    """The batch arguments' names (for the report): `fn`'s positional parameters after the first
    `skip` (model, optimizer), checked against the script's step and the number of --input specs."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][skip:]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or not params:
        positional = []
    if script is not None:
        if positional and len(positional) != len(script.batch):
            raise VerifyError(f"{converted}: {CONVERTED_STEP} takes {len(positional)} batch arguments "
                              f"({', '.join(positional)}) but the original's step reads {len(script.batch)} "
                              f"({', '.join(script.batch)}); name the step with --step or --loss-fn")
        positional = script.batch
    wanted = positional or [f"batch[{i}]" for i in range(count)]
    if len(wanted) != count:
        raise VerifyError(f"the training step takes {len(wanted)} batch arguments ({', '.join(wanted)}) but "
                          f"{count} --input specs were given; give one --input SPEC per batch argument")
    return wanted
