"""`verify --train` as text: the set-up, one row per optimizer step (both losses and, per kind of
quantity, the worst comparison as a fraction of its tolerance), the failures, and a summary.
(`json` renders TrainReport.to_dict through json.render_verify.)"""

from __future__ import annotations

from typing import TextIO

from .text import print_line

_KINDS = (("gradient", "grads"), ("parameter", "params"), ("update", "updates"), ("buffer", "buffers"))
_SHOWN_FAILURES = 10


def _ratio(comparison) -> str:
    """How much of its tolerance the worst comparison used: 0.02 is far inside, >1 fails."""
    if comparison is None:
        return "-"
    if comparison.allowed <= 0:
        return "0" if comparison.max_abs_err == 0 else "inf"
    return f"{comparison.max_abs_err / comparison.allowed:.2g}"


def _step_rows(report) -> list[str]:
    head = f"{'step':>4}  {'torch loss':>12}  {'converted loss':>14}  {'|diff|':>8}"
    head += "".join(f"  {label:>8}" for _, label in _KINDS) + "  ok"
    several = len({s.optimizer for s in report.steps}) > 1  # a script stepping two optimizers (a GAN)
    rows = [head + ("  optimizer" if several else "")]
    for s in report.steps:
        gap = abs(s.torch_loss - s.converted_loss)
        row = f"{s.step:>4}  {s.torch_loss:>12.6g}  {s.converted_loss:>14.6g}  {gap:>8.2g}"
        row += "".join(f"  {_ratio(s.worst(kind)):>8}" for kind, _ in _KINDS)
        row += "  yes" if not s.failures else "   NO"
        rows.append(row + (f"  {s.optimizer}" if several else ""))
    return rows


def render_text(report, stream: TextIO, ctx) -> None:
    color = bool(getattr(ctx, "color", False))
    lines = [
        f"pt2jax verify --train: {report.model}, {len(report.steps)} optimizer steps ({report.dtype}"
        f"{', weights perturbed' if report.perturbed else ''}, seed {report.seed})",
        f"  step:      {report.setup}",
        f"  optimizer: {report.optimizer}",
        (f"  batches:   {', '.join(report.batch)} (a new batch per step, the same for both sides)" if report.batch
         else "  batches:   each script's own data, as its loop reads them" if report.program
         else "  batches:   none (the step reads its data from module-level names of each file)"),
    ]
    lines += [f"  note:      {note}" for note in report.notes]
    lines.append("  columns grads..buffers: the worst comparison of that kind as a fraction of its tolerance "
                 "(> 1 fails)")
    lines += ["", *_step_rows(report)]
    for line in lines:
        stream.write(line + "\n")
    failures = report.numeric_failures
    if failures:
        stream.write(f"\nout of tolerance ({report.dtype}):\n")
        for step, c in failures[:_SHOWN_FAILURES]:
            stream.write(f"  step {step}: {c.describe()}\n")
        if len(failures) > _SHOWN_FAILURES:
            stream.write(f"  ... and {len(failures) - _SHOWN_FAILURES} more (--format json lists all)\n")
    if report.float64 is not None:
        stream.write("\nfloat64 rerun (same weights and batches, float64 tolerances):\n")
        for line in _step_rows(report.float64):
            stream.write(line + "\n")
    if report.float64_error:
        stream.write(f"\nfloat64 rerun could not run: {report.float64_error}\n")
    if report.plot:
        stream.write(f"\nloss curves: {report.plot}\n")
    if report.plot_error:
        stream.write(f"\nloss curves not written: {report.plot_error}\n")
    stream.write("\n")
    print_line(report.summary(), stream, color, "bold green" if report.passed else "bold red")
