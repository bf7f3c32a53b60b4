"""run_verify: build both models, transfer weights, run both, compare outputs and gradients.

Gradients. The loss is the sum over all floating output leaves of `.sum()`, or the `loss`
expression (Python over `out`, evaluated in each file's own namespace). torch: `backward()`,
then the gradient of every trainable named parameter. JAX: `nnx.value_and_grad` with respect to
nnx.Param. Each torch gradient goes through the same transform as its weight (transpose, conv
layout) and is compared with the nnx gradient at the same path.

Tolerances (`DEFAULT_TOLERANCES` in report.py), rule ``max_abs_err <= atol + rtol * max|torch|``:

* float32 outputs: atol 1e-5, rtol 1e-4.
* float32 gradients: atol 1e-6, rtol 1e-4. Measured with perturbed weights, seeds 0-2, loss
  = sum of outputs and (out ** 2).mean(): correct conversions of a 3-conv CNN with BatchNorm,
  MaxPool and two Linears (8x3x16x16 input) and of a 784-512-512-512 MLP with LayerNorm and
  exact GELU have gradients off by at most 1.3e-6 relative to their largest entry (the small
  test models: 2.5e-7), i.e. ~75x below rtol. Planted bugs: jax's default tanh-GELU moves
  gradients by 8e-4 relative (outputs by 3e-4), a dropped stop_gradient by >5e-2; 1e-3 would
  let the tanh-GELU gradients through, so gradients use the same rtol as outputs. The atol is
  only a floor for (nearly) all-zero gradients; the output atol of 1e-5 would be too loose:
  with a mean loss the tanh-GELU bug moves some gradients by only 4e-6 absolute.
* float64: outputs atol/rtol 1e-10; gradients atol 1e-10, rtol 1e-9 (measured ~2e-16 relative).

Passing `atol`/`rtol` sets the output tolerances, and the gradient ones become at least those
(explicit `grad_atol`/`grad_rtol` win).

Rounding or meaning. float32 error grows with depth: a 16-layer VGG at 224x224 has gradients
off by 1-2e-6 (RegNet 2e-5) against 1e-6 + 1e-4 * max|g|, although the port is right. So when
any float32 comparison fails, run_verify runs both sides again in float64 (torch `.double()`,
JAX with x64 enabled for that run only and restored after), from the same seed, so the same
weights and inputs up to float32 rounding, against the float64 tolerances above. If every
float64 comparison passes, the float32 differences are rounding noise: the report's status
says so, shows both runs' figures, and passes. If float64 fails too, the two models compute
different things (a wrong epsilon, a tanh GELU, a missing transpose): a mismatch.

jit. After the eager run the converted model runs again under the target's jit (nnx.jit),
the inputs traced as arguments: the forward pass, then value_and_grad inside nnx.jit, each
compared with torch like the eager run. An exception while tracing (a Python `if` on an
array, `int(array)`, a kept `x.device`) is the report's `jit_error`, naming the innermost
line of the converted file in its traceback; the report then fails (exit 1), but it is not a
numeric mismatch.
"""

from __future__ import annotations

import ast
import keyword
from contextlib import ExitStack, contextmanager

import numpy as np

from .report import DEFAULT_TOLERANCES
from .compare import compare, flatten_output
from .loader import LoadedFile, expression_names, load_slice, parse_source, read_source
from .report import PASS, ROUNDING, Comparison, JitFailure, VerifyError, VerifyReport
from .specs import make_arrays, parse_spec

DTYPES = tuple(DEFAULT_TOLERANCES)


def detect_target(converted: str) -> str | None:
    """The target a converted file was written for (targets.target_of_text), else None (the default)."""
    from ..targets import target_of_text

    try:
        text = read_source(converted)
    except Exception:
        return None
    return target_of_text(text)


def _check_model_name(model: str) -> None:
    parts = (model or "").split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise VerifyError(f"--model {model!r} is not a class or function name")


def build_models(torch_file, jax_file, original: str, model: str, init: str, seed: int, target):
    """NAME(ARGS) from each loaded file: torch's under torch.manual_seed(seed), the converted one
    with the target's build keyword (rngs) when its constructor takes it."""
    import torch

    torch.manual_seed(seed)
    torch_model = _build(torch_file, model, init)
    if not isinstance(torch_model, torch.nn.Module):
        raise VerifyError(f"{original}: {model}({init}) is a {type(torch_model).__name__}, not a torch.nn.Module")
    keyword, value, shown = target.build_keyword(seed)
    if keyword and _accepts_keyword(_lookup(jax_file, model), keyword):
        converted = _build(jax_file, model, init, f"{keyword}=__pt2jax_rngs__", {"__pt2jax_rngs__": value}, shown)
    else:  # e.g. a parameter-free module without __init__: the rewrite adds no rngs there
        converted = _build(jax_file, model, init)
    return torch_model, converted


def build_converted(jax_file, converted: str, model: str, init: str, seed: int, target):
    """NAME(ARGS, rngs=...) from the loaded converted file, checked to be the target's model."""
    keyword, value, shown = target.build_keyword(seed)
    if keyword and _accepts_keyword(_lookup(jax_file, model), keyword):
        built = _build(jax_file, model, init, f"{keyword}=__pt2jax_rngs__", {"__pt2jax_rngs__": value}, shown)
    else:
        built = _build(jax_file, model, init)
    if not target.is_model(built):
        raise VerifyError(f"{converted}: {model}({init}) is a {type(built).__name__}, not an {target.module_base}")
    return built


def build_transferred(torch_file, jax_file, original: str, converted: str, model: str, init: str, seed: int,
                      target, *, weights_map, perturb: bool, float64: bool, weights: str | None = None,
                      weights_prefix: tuple = (), example_inputs=None):
    """build_models, then torch's weights (perturbed when asked; `weights`: a state_dict file
    loaded into the torch model first, never perturbed) copied into the converted model by the
    tables: (torch model, converted model, transfer entries, what apply_transfer did).
    `example_inputs`: Linen builds its variables from model.init(key, *inputs)."""
    from .transfer import apply_transfer, perturb as perturb_weights, plan_transfer

    torch_model, nnx_model = build_models(torch_file, jax_file, original, model, init, seed, target)
    if not target.is_model(nnx_model):
        raise VerifyError(f"{converted}: {model}({init}) is a {type(nnx_model).__name__}, "
                          f"not an {target.module_base}")
    if example_inputs is not None:  # Linen: the variables come from model.init(key, *inputs)
        try:
            nnx_model = target.materialize(nnx_model, example_inputs, seed)
        except Exception as exc:
            raise VerifyError(f"{_where(converted, exc)}: initialising {model} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
    if float64:
        torch_model = torch_model.double()
    if weights:
        from .checkpoint import load_into_torch

        load_into_torch(weights, torch_model, weights_prefix)
        perturb = False
    try:
        entries = plan_transfer(torch_model, nnx_model, target=target, weights_map=weights_map)
    except VerifyError as exc:
        raise VerifyError(f"{converted}: {exc}") from exc
    if perturb:
        perturb_weights(entries, seed)
    transferred = apply_transfer(entries, nnx_model, dtype="float64" if float64 else None, target=target)
    return torch_model, nnx_model, entries, transferred


@contextmanager
def _jax_x64(enabled: bool):
    """Enable JAX float64 for the duration (restored afterwards: the flag is process-wide)."""
    import jax

    previous = bool(jax.config.jax_enable_x64)
    if enabled and not previous:
        jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        if enabled and not previous:
            jax.config.update("jax_enable_x64", False)


@contextmanager
def _loaded(path: str, roots: set[str], label: str):
    loaded = load_slice(path, roots, label=label)
    try:
        yield loaded
    finally:
        loaded.unload()


def _candidates(path: str) -> str:
    """The classes (else functions) `path` defines at top level, for an unknown --model's
    message; the slice the loader ran holds only what the model needs, so the file is re-read."""
    try:
        tree = parse_source(path, read_source(path))
    except VerifyError:
        return ""
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    if classes:
        return f"; classes in the file: {', '.join(classes)}"
    functions = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if functions:
        return f"; the file defines no class; functions: {', '.join(functions)}"
    return "; the file defines no class or function"


def _unknown_model(loaded: LoadedFile, model: str) -> VerifyError:
    return VerifyError(f"{loaded.path}: no class or function named {model!r}{_candidates(loaded.path)}")


def _where(path: str, exc: BaseException) -> str:
    """`path:line` of the innermost frame of `exc`'s traceback that runs code of `path` (the
    loader compiles each file under its own path), so a failure inside the model names the
    line; `path` alone when the failure never reached the file's code."""
    import traceback

    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == path]
    return f"{path}:{lines[-1]}" if lines and lines[-1] else path


def _lookup(loaded: LoadedFile, model: str):
    head, *rest = model.split(".")
    if head not in loaded.namespace:
        raise _unknown_model(loaded, model)
    obj = loaded.namespace[head]
    for attr in rest:
        if not hasattr(obj, attr):
            raise _unknown_model(loaded, model)
        obj = getattr(obj, attr)
    if not callable(obj):
        raise VerifyError(f"{loaded.path}: {model!r} is not a class or function")
    return obj


def _accepts_keyword(factory, keyword: str) -> bool:
    """Whether the converted class/factory takes `keyword` (True when its signature is unknown)."""
    import inspect

    target = factory.__init__ if isinstance(factory, type) else factory
    if target is object.__init__:
        return False
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _build(loaded: LoadedFile, model: str, init: str, extra: str = "", extra_ns: dict | None = None, shown: str = ""):
    factory = _lookup(loaded, model)
    args = init.strip().rstrip(",").strip()
    call_args = ", ".join(a for a in (args, extra) if a)
    text = f"{model}({', '.join(a for a in (args, shown or extra) if a)})"
    namespace = dict(loaded.namespace)
    namespace.update(extra_ns or {})
    namespace["__pt2jax_factory__"] = factory
    try:
        return eval(f"__pt2jax_factory__({call_args})", namespace)
    except Exception as exc:
        raise VerifyError(f"{_where(loaded.path, exc)}: building {text} failed: {type(exc).__name__}: {exc}") from exc


def _default_loss(leaves, xp_sum):
    total = None
    for _, leaf in leaves:
        part = xp_sum(leaf)
        total = part if total is None else total + part
    return total


def run_verify(
    original: str,
    converted: str,
    *,
    model: str,
    init: str = "",
    inputs: list[str],
    atol: float | None = None,
    rtol: float | None = None,
    dtype: str = "float32",
    perturb: bool = True,
    loss: str | None = None,
    seed: int = 0,
    grad_atol: float | None = None,
    grad_rtol: float | None = None,
    target=None,
    jit: bool = True,
    weights_map=None,
    float64_check: bool = True,
    weights: str | None = None,
    weights_prefix: tuple = (),
    isolate: bool = False,
    timeout: float | None = None,
    memory_limit: int | None = None,
) -> VerifyReport:
    """Run `model` from `original` (torch) and from `converted` (written for `target`, a name or
    a Target; default Flax NNX) and compare them, eagerly and (`jit`) under the target's jit.

    `weights_map`: a weightmap.WeightMap (or its TOML table as a dict) of user mappings that
    take precedence over the tables. `float64_check`: when a float32 comparison fails, rerun
    both sides in float64; if that passes, the report's status is float32 rounding noise.
    `isolate`: run each side in its own child process (isolate.py), the whole verify within
    `timeout` seconds and each side within `memory_limit` bytes of resident memory; a hang, a
    crash or the limit is a VerifyError naming the side and the user's line. Otherwise both
    sides run in this process.

    Raises VerifyError when verify cannot run (missing file, syntax error, unknown model, failing
    construction, bad input spec, incomplete weight mapping, output shape/structure mismatch).
    A numerical mismatch is not an error: it is a failed comparison in the report; nor is a
    failure under jit: it is the report's `jit_error`.
    """
    from ..targets import get_target
    from .isolate import DEFAULT_TIMEOUT, Isolation, Local
    from .sides import JaxSide, TorchSide
    from .weightmap import WeightMap

    if weights_map is not None and not isinstance(weights_map, WeightMap):
        weights_map = WeightMap.from_table(weights_map, "weights map")
    target = get_target(target if target is not None else detect_target(converted))
    common = dict(model=model, init=init, inputs=inputs, perturb=perturb and not weights, loss=loss, seed=seed,
                  target=target.name if isolate else target, weights_map=weights_map, weights=weights,
                  weights_prefix=tuple(weights_prefix))
    with ExitStack() as stack:
        if isolate:
            iso = stack.enter_context(Isolation(DEFAULT_TIMEOUT if timeout is None else timeout, memory_limit))
            sides = iso.sides(original, converted)
        else:
            sides = (Local(TorchSide(), f"the torch side ({original})"),
                     Local(JaxSide(), f"the JAX side ({converted})"))
            for side in sides:
                stack.callback(side.close)
        report = _run_once(sides, original, converted, atol=atol, rtol=rtol, dtype=dtype, grad_atol=grad_atol,
                           grad_rtol=grad_rtol, jit=jit, **common)
        if float64_check and dtype != "float64" and report.numeric_failures:
            # Same model, weights and inputs in float64 at the tight float64 tolerances: if that
            # passes, the float32 differences are rounding, not a different computation.
            rerun_jit = any(not c.passed for c in report.jit_comparisons)
            try:
                report.float64 = _run_once(sides, original, converted, dtype="float64", jit=rerun_jit, **common)
            except VerifyError as exc:
                report.float64_error = str(exc)
        report.timings = {k: v for side in sides for k, v in side.timings.items()}
    report.passed = report.status in (PASS, ROUNDING)
    return report


def _run_once(
    sides,
    original: str,
    converted: str,
    *,
    model: str,
    init: str,
    inputs: list[str],
    atol: float | None = None,
    rtol: float | None = None,
    dtype: str,
    perturb: bool,
    loss: str | None,
    seed: int,
    grad_atol: float | None = None,
    grad_rtol: float | None = None,
    target=None,
    jit: bool,
    weights_map=None,
    weights: str | None = None,
    weights_prefix: tuple = (),
) -> VerifyReport:
    if dtype not in DTYPES:
        raise VerifyError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    _check_model_name(model)
    specs = [parse_spec(s) for s in inputs]
    d_atol, d_rtol, d_gatol, d_grtol = DEFAULT_TOLERANCES[dtype]
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    if grad_atol is None:
        grad_atol = d_gatol if atol == d_atol else max(d_gatol, atol)
    if grad_rtol is None:
        grad_rtol = d_grtol if rtol == d_rtol else max(d_grtol, rtol)
    grad_atol, grad_rtol = float(grad_atol), float(grad_rtol)
    roots = {model.split(".")[0]}
    roots |= expression_names(init, what="--init", call_args=True)
    if loss:
        roots |= expression_names(loss, what="--loss") - {"out"}
    float64 = dtype == "float64"
    arrays = make_arrays(specs, seed, float64=float64)

    torch_side, jax_side = sides
    torch_side.start("build", original, model, init, seed, roots, float64=float64, weights=weights,
                     weights_prefix=weights_prefix, doing=f"building {model}")
    jax_side.start("build", converted, model, init, seed, roots, float64=float64, target_name=target,
                   arrays=arrays, doing=f"building {model}")
    modules, values = torch_side.finish()
    jax_side.finish()
    entries, changed, transferred = jax_side.call("plan", modules, values, weights_map=weights_map,
                                                  perturb=perturb, seed=seed, doing="copying the weights in")
    t = torch_side.call("run", changed, arrays, loss, doing=f"running {model} (forward and backward)")
    want_grads = t["want_grads"]
    j = jax_side.call("run", want_grads, loss, jit,
                      doing=f"running {model} (forward and backward, eagerly{' and under jit' if jit else ''})")

    by_tid = {e.tid: e for e in entries if e.is_param and e.nnx_path is not None}
    comparisons = _compare_outputs(t["outputs"], j["outputs"], converted, atol, rtol, "eager")
    if want_grads:
        comparisons += _compare_grads(t["grads"], by_tid, j["grads"], converted, grad_atol, grad_rtol, "eager")
    jit_comparisons: list[Comparison] = []
    if j["jit_outputs"] is not None:
        jit_comparisons = _compare_outputs(t["outputs"], j["jit_outputs"], converted, atol, rtol, "jit")
    if j["jit_grads"] is not None:
        jit_comparisons += _compare_grads(t["grads"], by_tid, j["jit_grads"], converted, grad_atol, grad_rtol,
                                          "jit")

    return VerifyReport(
        passed=all(c.passed for c in comparisons),
        model=model,
        dtype=dtype,
        atol=atol,
        rtol=rtol,
        grad_atol=grad_atol,
        grad_rtol=grad_rtol,
        comparisons=comparisons,
        original=original,
        converted=converted,
        transferred=transferred,
        perturbed=perturb,
        weights=weights,
        jit=j["jit"],
        jit_comparisons=jit_comparisons,
        jit_error=j["jit_error"],
    )


def _compare_outputs(torch_leaves, jax_leaves, converted: str, atol: float, rtol: float,
                     mode: str) -> list[Comparison]:
    """One comparison per output leaf ([(name, array)] from each side), matched by name: JAX
    returns dicts with sorted keys (pytree order), torch in insertion order."""
    jax_by_name = dict(jax_leaves)
    t_names = [n for n, _ in torch_leaves]
    if sorted(t_names) != sorted(jax_by_name):
        raise VerifyError(
            f"{converted}: output structure differs{' under jit' if mode == 'jit' else ''}: torch returns "
            f"{', '.join(t_names) or 'nothing'}; converted returns {', '.join(jax_by_name) or 'nothing'}"
        )
    comparisons = []
    for name, expected in torch_leaves:
        try:
            c = compare(name, "output", np.asarray(jax_by_name[name]), np.asarray(expected), atol, rtol)
        except VerifyError as exc:
            raise VerifyError(f"{converted}: {exc}") from exc
        c.mode = mode
        comparisons.append(c)
    return comparisons


def _compare_grads(torch_grads, by_tid, flat_grads, converted: str, atol: float, rtol: float,
                   mode: str) -> list[Comparison]:
    """Each torch parameter's gradient ([(key, tensor id, grad or None, shape)]), mapped through
    its weight's transfer entry onto the converted model's gradient at the same path."""
    comparisons = []
    for key, tid, grad, shape in torch_grads:
        entry = by_tid.get(tid)
        if entry is None:
            continue  # dropped by the table: nothing to compare
        expected = entry.convert(grad if grad is not None else np.zeros(shape))
        g = flat_grads.get(entry.nnx_path)
        actual = np.asarray(g) if g is not None else np.zeros_like(expected)
        try:
            c = compare(f"grad {key}", "gradient", actual, expected, atol, rtol)
        except VerifyError as exc:
            raise VerifyError(f"{converted}: {exc}") from exc
        c.mode = mode
        comparisons.append(c)
    return comparisons


def _chain(exc: BaseException):
    """`exc` and the exceptions it was raised from (JAX re-raises a tracing error with a
    filtered traceback and may keep the original as the cause)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def jit_failure(stage: str, path: str, exc: BaseException) -> JitFailure:
    """A JitFailure naming the innermost line of `path` in `exc`'s traceback."""
    import linecache
    import traceback

    line = None
    for link in _chain(exc):
        lines = [f.lineno for f in traceback.extract_tb(link.__traceback__) if f.filename == path and f.lineno]
        if lines:
            line = lines[-1]
            break
    statement = linecache.getline(path, line).strip() if line else ""
    message = next((text.strip() for text in str(exc).splitlines() if text.strip()), "")
    return JitFailure(stage, path, line, statement, type(exc).__name__, message)


def _torch_loss(loaded: LoadedFile, loss: str | None, out, float_leaves, path: str):
    if loss:
        return _eval_loss(loaded, loss, out, path)
    if not float_leaves:
        return None
    return _default_loss(float_leaves, lambda t: t.sum())


def _jax_loss(loaded: LoadedFile, loss: str | None, out, path: str):
    import jax.numpy as jnp

    if loss:
        value = _eval_loss(loaded, loss, out, path)
    else:
        leaves = [(n, x) for n, x in flatten_output(out) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
        value = _default_loss(leaves, jnp.sum)
        if value is None:
            value = jnp.zeros(())
    value = jnp.asarray(value)
    if value.size != 1:
        raise VerifyError(f"{path}: the loss must be a scalar, got shape {tuple(value.shape)}")
    return value.reshape(())


def _eval_loss(loaded: LoadedFile, loss: str, out, path: str):
    try:
        return eval(loss, {**loaded.namespace, "out": out})
    except Exception as exc:
        raise VerifyError(f"{path}: evaluating --loss {loss!r} failed: {type(exc).__name__}: {exc}") from exc
