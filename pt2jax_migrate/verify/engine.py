"""run_verify: build both models, transfer weights, run both, compare outputs and gradients.

Gradients. The loss is the sum over all floating output leaves of `.sum()`, or the `loss`
expression (Python over `out`, evaluated in each file's own namespace). torch: `backward()`,
then the gradient of every trainable named parameter. JAX: the gradient with respect to
nnx.Param, as `nnx.value_and_grad` outside jit, the forward pass op by op and the backward pass
(which runs none of the model's code) as one compiled program (targets/eager.py). Each torch
gradient goes through the same transform as its weight (transpose, conv layout) and is
compared with the nnx gradient at the same path.

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

jit. Alongside the eager run (a second thread, on Target.detached's copy of the model: XLA
compiles without holding the GIL) the converted model runs again under the target's jit
(nnx.jit), the inputs traced as arguments: value_and_grad inside nnx.jit (the forward pass
alone only when that fails), compared with torch like the eager run. An exception while tracing (a Python `if` on an
array, `int(array)`, a kept `x.device`) is the report's `jit_error`, naming the innermost
line of the converted file in its traceback; the report then fails (exit 1), but it is not a
numeric mismatch.
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np

from .report import DEFAULT_TOLERANCES
from .compare import compare
from .building import _check_model_name, detect_target
from .loader import expression_names
from .report import PASS, ROUNDING, Comparison, VerifyError, VerifyReport
from .specs import make_arrays, parse_spec

DTYPES = tuple(DEFAULT_TOLERANCES)


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
    sides=None,
) -> VerifyReport:
    """Run `model` from `original` (torch) and from `converted` (written for `target`, a name or
    a Target; default Flax NNX) and compare them, eagerly and (`jit`) under the target's jit.

    `weights_map`: a weightmap.WeightMap (or its TOML table as a dict) of user mappings that
    take precedence over the tables. `float64_check`: when a float32 comparison fails, rerun
    both sides in float64; if that passes, the report's status is float32 rounding noise.
    `isolate`: run each side in its own child process (isolate.py), the whole verify within
    `timeout` seconds and each side within `memory_limit` bytes of resident memory; a hang, a
    crash or the limit is a VerifyError naming the side and the user's line. Otherwise both
    sides run in this process. `sides`: the two sides isolate.open_sides opened (the caller
    closes them), instead of opening them here.

    Raises VerifyError when verify cannot run (missing file, syntax error, unknown model, failing
    construction, bad input spec, incomplete weight mapping, output shape/structure mismatch).
    A numerical mismatch is not an error: it is a failed comparison in the report; nor is a
    failure under jit: it is the report's `jit_error`.
    """
    from ..targets import get_target
    from .isolate import open_sides
    from .weightmap import WeightMap

    if weights_map is not None and not isinstance(weights_map, WeightMap):
        weights_map = WeightMap.from_table(weights_map, "weights map")
    target = get_target(target if target is not None else detect_target(converted))
    common = dict(model=model, init=init, inputs=inputs, perturb=perturb and not weights, loss=loss, seed=seed,
                  target=target.name if isolate else target, weights_map=weights_map, weights=weights,
                  weights_prefix=tuple(weights_prefix))
    with ExitStack() as stack:
        if sides is None:
            sides = stack.enter_context(open_sides(original, converted, isolate=isolate, timeout=timeout,
                                                   memory_limit=memory_limit))
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
    # Both sides run at once: the JAX side guesses torch's want_grads (it has gradients when it
    # has trainable parameters) and runs again in the rare case the guess was wrong.
    guess = any(t.requires_grad for m in modules for t in m.tensors)
    doing = f"running {model} (forward and backward, eagerly{' and under jit' if jit else ''})"
    torch_side.start("run", changed, arrays, loss, doing=f"running {model} (forward and backward)")
    jax_side.start("run", guess, loss, jit, doing=doing)
    t = torch_side.finish()
    want_grads = t["want_grads"]
    try:
        j = jax_side.finish()
    except VerifyError:
        if want_grads == guess:
            raise
        j = None
    if want_grads != guess:
        j = jax_side.call("run", want_grads, loss, jit, doing=doing)

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
