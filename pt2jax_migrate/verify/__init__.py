"""`pt2jax verify`: run the original torch model and the converted Flax NNX model side by side.

Importing this package is cheap: torch and jax are imported only when `run_verify` or
`transfer_weights` is called (the CLI can import VerifyError at start-up).

Steps (see engine.run_verify): load only the definitions the model needs from each file
(loader), build both models, perturb the torch weights with seeded noise, copy them into the
converted model as rules/layers.toml's `weights` entries say (transfer), make the same inputs
for both from the specs (specs), run both in eval mode, compare every output leaf and the
gradient of a scalar loss with respect to every parameter (compare), and report.

The same outputs and gradients are computed again under the target's jit (nnx.jit), in a
second thread alongside the eager run; a model that cannot be traced is a `jit_error` naming
the converted file's line, not a mismatch.

Tolerances: a comparison passes when ``max_abs_err <= atol + rtol * max|torch value|``.
Defaults are in `DEFAULT_TOLERANCES` (see engine.py for how the gradient ones were chosen).
When a float32 comparison fails, both sides run again in float64 at the float64 tolerances:
if that passes, the report's status is "float32 rounding noise" (it passes); otherwise the
difference is in what the two models compute, and the report fails. User weight mappings:
weightmap.py.
"""

from __future__ import annotations

from .report import DEFAULT_TOLERANCES, Comparison, JitFailure, VerifyError, VerifyReport

__all__ = [
    "DEFAULT_TOLERANCES",
    "Comparison",
    "JitFailure",
    "VerifyError",
    "VerifyReport",
    "render_report",
    "run_train_verify",
    "run_verify",
    "convert_checkpoint",
    "transfer_weights",
]


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
    jit: bool = True,
    weights_map=None,
    float64_check: bool = True,
    weights: str | None = None,
    weights_prefix: tuple = (),
    target=None,
    isolate: bool = False,
    timeout: float | None = None,
    memory_limit: int | None = None,
) -> VerifyReport:
    """Verify that `converted` computes what `original` does. See engine.run_verify (target
    None: read off the converted file, building.detect_target; `isolate`: each side in its own
    process, within `timeout` seconds and `memory_limit` bytes, verify/isolate.py)."""
    import time

    from .isolate import open_sides

    start = time.perf_counter()
    # isolated, the children start importing torch and jax before this process imports the engine
    with open_sides(original, converted, isolate=isolate, timeout=timeout, memory_limit=memory_limit) as sides:
        from .engine import run_verify as _run

        report = _run(original, converted, model=model, init=init, inputs=inputs, atol=atol, rtol=rtol, dtype=dtype,
                      perturb=perturb, loss=loss, seed=seed, grad_atol=grad_atol, grad_rtol=grad_rtol, jit=jit,
                      weights_map=weights_map, float64_check=float64_check, weights=weights,
                      weights_prefix=weights_prefix, target=target, isolate=isolate, sides=sides)
    report.timings["verify (sides started to sides closed)"] = time.perf_counter() - start
    return report


def run_train_verify(original: str, converted: str, *, isolate: bool = False, timeout: float | None = None,
                     memory_limit: int | None = None, **options):
    """K optimizer steps of the original's and the converted training step, compared after each
    (`pt2jax verify --train`). Options and how the step and optimizer are named: verify/train.py.
    `isolate`: the whole comparison runs in a child process (verify/isolate.py), within
    `timeout` seconds and `memory_limit` bytes; a hang, a crash or the limit is a VerifyError
    naming the user's file and line."""
    if isolate:
        from .isolate import call_isolated

        steps = options.get("steps", 5)
        timings: dict = {}
        report = call_isolated("train", f"the training comparison ({original} / {converted})",
                             (original, converted), "run", original, converted, timeout=timeout,
                             memory_limit=memory_limit, doing=f"comparing up to {steps} training steps",
                             timings=timings, **options)
        report.timings = timings
        return report
    from .train import run_train_verify as _run

    return _run(original, converted, **options)


def transfer_weights(torch_model, nnx_model, *, dtype: str | None = None, target=None) -> list[tuple[str, tuple]]:
    """Copy every torch parameter/buffer into `nnx_model`; returns [(torch key, nnx path)].

    Raises VerifyError when anything would be left over or unwritten. See transfer.py.
    """
    from .transfer import transfer_weights as _transfer

    return _transfer(torch_model, nnx_model, dtype=dtype, target=target)


def convert_checkpoint(checkpoint: str, **options):
    """`pt2jax weights`: a torch state_dict file into the converted model's state, written as
    Orbax, safetensors or msgpack. See weights.py."""
    from .weights import convert_checkpoint as _convert

    return _convert(checkpoint, **options)


def render_report(report: VerifyReport, console) -> None:
    """Print `report` on a rich console as a table plus a one-line summary (the `text`
    format of pt2jax_migrate.output; `--format` offers the others)."""
    from ..output.text import render_verify_table

    render_verify_table(report, console)
