"""Render a VerifyReport with rich: one table row per comparison, then a summary line."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .report import VerifyReport


def _num(value: float) -> str:
    return f"{value:.2e}"


def render_report(report: VerifyReport, console) -> None:
    title = f"pt2jax verify: {report.model} ({report.dtype}"
    title += ", weights perturbed)" if report.perturbed else ")"
    table = Table(title=title, title_justify="left")
    table.add_column("check")
    table.add_column("name", overflow="fold")
    table.add_column("shape")
    table.add_column("max abs err", justify="right")
    table.add_column("max rel err", justify="right")
    table.add_column("result")
    for c in report.comparisons:
        result = Text("pass", style="green") if c.passed else Text("FAIL", style="bold red")
        table.add_row(
            c.kind,
            Text(c.name),
            "(" + ", ".join(str(d) for d in c.shape) + ")",
            _num(c.max_abs_err),
            _num(c.max_rel_err),
            result,
        )
    console.print(table)

    n_out, n_grad = len(report.outputs), len(report.gradients)
    tol = (
        f"outputs atol={report.atol:g} rtol={report.rtol:g}, gradients atol={report.grad_atol:g} "
        f"rtol={report.grad_rtol:g}; pass if max abs err <= atol + rtol * max|torch|"
    )
    if report.passed:
        line = Text("PASS", style="bold green")
        line.append(f": {n_out} output(s) and {n_grad} gradient(s) within tolerance ({tol})", style="default")
    else:
        failed = report.failures
        line = Text("FAIL", style="bold red")
        names = ", ".join(c.name for c in failed[:5]) + (", ..." if len(failed) > 5 else "")
        line.append(f": {len(failed)} of {n_out + n_grad} comparisons out of tolerance: {names} ({tol})", style="default")
    console.print(line)
