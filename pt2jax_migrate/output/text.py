"""`text`: what a person reads in a terminal.

* lint findings: `path:line:col CODE message [fixable]` lines (the format editors and CI
  annotators parse; `[fixable]` for a safe fix, `[unsafe fix]` for an unsafe one, nothing for
  a finding left for a person), then one summary line with the counts of counts.py;
* `--statistics`: a table per code and per file, then the totals;
* rewrite results: one line per change or TODO, then the summary line;
* a verify report: a rich table, one row per comparison, then PASS/FAIL.

Colour (rich styles) only when asked for, i.e. when the stream is a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TextIO

from ..model import Finding, SourceError
from .common import is_tty
from .counts import SAFE_MARK, bare_message, count_findings, display_message, fix_mark, plural
from .statistics import Statistics, percent

_CODE_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}
_MARK_STYLE = {SAFE_MARK: "green"}  # an unsafe fix stays unstyled (bold yellow would read as a warning)


def console(stream: TextIO, color: bool, *, soft_wrap: bool = True, markup: bool = False):
    """A rich console on `stream`. Logs and pipes get a wide one: rich's 80-column default
    would fold tables there."""
    from rich.console import Console

    width = None if is_tty(stream) else 120
    return Console(file=stream, force_terminal=color, no_color=not color, highlight=False,
                   soft_wrap=soft_wrap, emoji=False, markup=markup, width=width)


# ---------------------------------------------------------------------------------- findings


def finding_line(finding: Finding) -> str:
    return f"{finding.path}:{finding.line}:{finding.col} {finding.code} {display_message(finding)}"


def _styled(finding: Finding):
    from rich.text import Text

    text = Text()
    text.append(f"{finding.path}:{finding.line}:{finding.col}", style="bold")
    text.append(" ")
    text.append(finding.code, style=_CODE_STYLE.get(finding.severity, "bold"))
    text.append(" ")
    mark = fix_mark(finding)
    if mark:
        text.append(bare_message(finding))
        text.append(" " + mark, style=_MARK_STYLE.get(mark, ""))
    else:
        text.append(finding.message)
    return text


def render_lines(findings: Iterable[Finding], stream: TextIO, color: bool) -> None:
    """One `path:line:col CODE message` line per finding, no summary."""
    if not color:
        stream.write("".join(finding_line(f) + "\n" for f in findings))
        return
    out = console(stream, True)
    for finding in findings:
        out.print(_styled(finding))


def summary(findings: Sequence[Finding], *, noun: str = "finding", errors: int = 0) -> str:
    """`Found 7 findings in 2 files: 4 safe fixes, 1 unsafe fix, 2 for a person.` With
    `errors` (files that could not be read or parsed) it never claims the code is clean."""
    counts = count_findings(findings)
    failed = f"{plural(errors, 'file')} could not be linted (see the errors)" if errors else ""
    if not counts.findings:
        if failed:  # never "No PyTorch constructs found" while some files were not read
            return f"{failed[0].upper()}{failed[1:]}; no findings in the files that could be read."
        return "No PyTorch constructs found."
    line = f"Found {plural(counts.findings, noun)} in {plural(counts.files, 'file')}: {counts.fixes_phrase()}"
    return f"{line}; {failed}." if failed else f"{line}."


def print_line(line: str, stream: TextIO, color: bool, style: str = "bold") -> None:
    if color:
        console(stream, True).print(line, style=style)
    else:
        stream.write(line + "\n")


def render_findings(findings: Sequence[Finding], stream: TextIO, ctx) -> None:
    findings = sorted(findings)
    render_lines(findings, stream, ctx.color)
    if ctx.show_summary:
        print_line(summary(findings, errors=len(ctx.errors)), stream, ctx.color, "bold green" if not findings else "bold")


def render_errors(errors: Iterable[SourceError | str], stream: TextIO, color: bool | None = None) -> None:
    """Each error as `path:line: message` (SourceError's own text)."""
    if color is None:
        color = is_tty(stream)
    lines = [str(e) for e in errors]
    if not lines:
        return
    if not color:
        stream.write("".join(f"{line}\n" for line in lines))
        return
    out = console(stream, True)
    for line in lines:
        out.print(line, style="bold red")


# -------------------------------------------------------------------------------- statistics


def render_statistics(stats: Statistics, stream: TextIO, ctx=None) -> None:
    w = stream.write
    if stats.codes:
        width = max(len(str(c.count)) for c in stats.codes)
        fwidth = max(len(str(c.fixable)) for c in stats.codes)
        w(f"{'count':>{max(width, 5)}}  {'fixable':>{max(fwidth, 7)}}  code    name\n")
        for c in stats.codes:
            w(f"{c.count:>{max(width, 5)}}  {c.fixable:>{max(fwidth, 7)}}  {c.code:<6}  {c.name}\n")
        w("\nper file:\n")
        pwidth = max(len(str(f.count)) for f in stats.per_file)
        for f in stats.per_file:
            w(f"{f.count:>{max(pwidth, 5)}}  {f.fixable:>{max(fwidth, 7)}}  {f.path}\n")
        w("\n")
    counts = stats.counts
    w(f"Findings: {counts.findings}, {counts.fixable} auto-fixable ({percent(counts.fixable_share)}: "
      f"{counts.safe} safe, {counts.unsafe} unsafe), {counts.manual} for a person"
      + (f", {plural(counts.notes, 'note')}" if counts.notes else "")
      + (f"; {stats.suppressed} suppressed" if stats.suppressed else "") + ".\n")
    w(f"Torch-free: {stats.torch_free_files} of {stats.files} files ({percent(stats.torch_free_file_share)}), "
      f"{stats.torch_free_lines} of {stats.lines} lines ({percent(stats.torch_free_line_share)}).\n")


# ---------------------------------------------------------------------------------- rewrite


def rewrite_summary(results) -> str:
    """The line `pt2jax rewrite` ends with: files, changes (how many unsafe), and TODOs left
    for a person. When the TODO(pt2jax) lines counted in the output differ from the findings
    left for a person, both numbers are given."""
    counts = results.counts
    changes = plural(counts.fixable, "change") + (f" including {counts.unsafe} unsafe" if counts.unsafe else "")
    todos = plural(counts.manual, "TODO")
    markers = ""
    if results.markers_disagree:
        markers = f"; {plural(results.todo_markers, 'TODO(pt2jax) comment line')} in the output"
    detail = f"{changes}, {todos} left for a person{markers}"
    done, changed = results.files, len(results.changed)
    # a file that could not be read is never summed up as converted or as needing no change
    failed = f"{plural(len(results.errors), 'file')} could not be converted (see the errors)" if results.errors else ""
    tail = f"; {failed}." if failed else "."
    if results.action == "out":
        return f"Wrote {plural(results.written, 'file')} to {results.out} ({changed} converted; {detail}){tail}"
    if changed:
        verb = f"{plural(changed, 'file')} would be rewritten" if results.action == "check" \
            else f"Rewrote {plural(changed, 'file')}"
        return f"{verb} ({detail}); {done - changed} unchanged{tail}"
    left = f" ({todos} left{markers})" if counts.manual or markers else ""
    if failed:
        if not done:
            return f"No file converted: {failed}."
        return f"No changes in the {plural(done, 'file')} converted{left}; {failed}."
    return f"No changes needed in {plural(done, 'file')}{left}."


def render_rewrite(results, stream: TextIO, ctx) -> None:
    render_lines(sorted(results.findings), stream, ctx.color)
    print_line(rewrite_summary(results), stream, ctx.color)


# ----------------------------------------------------------------------------------- verify


def _num(value: float) -> str:
    return f"{value:.2e}"


def _comparison_table(title: str, comparisons, mode_column: bool):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    table.add_column("check")
    if mode_column:
        table.add_column("run")
    table.add_column("name", overflow="fold")
    table.add_column("shape")
    table.add_column("max abs err", justify="right")
    table.add_column("max rel err", justify="right")
    table.add_column("result")
    for c in comparisons:
        result = Text("pass", style="green") if c.passed else Text("FAIL", style="bold red")
        cells = [c.kind, *([c.mode] if mode_column else []), Text(c.name),
                 "(" + ", ".join(str(d) for d in c.shape) + ")", _num(c.max_abs_err), _num(c.max_rel_err), result]
        table.add_row(*cells)
    return table


def _worst(comparisons) -> str:
    """'max rel err 3.1e-06 (grad fc.weight)' for the worst comparison."""
    if not comparisons:
        return "nothing compared"
    worst = max(comparisons, key=lambda c: c.max_rel_err)
    return f"max rel err {_num(worst.max_rel_err)} ({worst.name}, {worst.mode})"


def render_verify_table(report, out) -> None:
    """A verify report on a rich console: one table row per comparison (eager, then under
    jit), the float64 rerun when there was one, then a summary line."""
    from rich.text import Text

    ROUNDING, MISMATCH, JIT_FAILURE = report.ROUNDING, report.MISMATCH, report.JIT_FAILURE  # no import of verify
    title = f"pt2jax verify: {report.model} ({report.dtype}"
    weights = getattr(report, "weights", None)
    title += f", weights from {weights})" if weights else ", weights perturbed)" if report.perturbed else ")"
    out.print(_comparison_table(title, report.all_comparisons, mode_column=bool(report.jit_comparisons)))
    if report.float64 is not None:
        out.print(_comparison_table("float64 rerun (same model, weights and inputs; float64 tolerances)",
                                    report.float64.all_comparisons, mode_column=bool(report.float64.jit_comparisons)))
    if report.jit_error is not None:
        line = Text("JIT FAIL", style="bold red")
        line.append(f": {report.jit_error.describe()}", style="default")
        out.print(line)
    elif not report.jit:
        out.print(Text("jit: not run", style="yellow"))
    if report.float64_error is not None:
        out.print(Text(f"float64 rerun could not run: {report.float64_error}", style="yellow"))

    n_out, n_grad = len(report.outputs), len(report.gradients)
    tol = (
        f"outputs atol={report.atol:g} rtol={report.rtol:g}, gradients atol={report.grad_atol:g} "
        f"rtol={report.grad_rtol:g}; pass if max abs err <= atol + rtol * max|torch|"
    )
    runs = "eager and jit" if report.jit and report.jit_error is None else "eager"
    status = report.status
    failed = report.numeric_failures
    names = ", ".join(f"{c.name} ({c.mode})" for c in failed[:5]) + (", ..." if len(failed) > 5 else "")
    if status == ROUNDING:
        f64 = report.float64
        line = Text("PASS", style="bold green")
        line.append(f" (float32 rounding noise): {len(failed)} float32 comparison(s) out of tolerance: {names}; "
                    f"float32 {_worst(report.all_comparisons)}, float64 {_worst(f64.all_comparisons)} "
                    f"within atol={f64.atol:g} rtol={f64.rtol:g} (gradients rtol={f64.grad_rtol:g}): "
                    f"the same computation ({tol})", style="default")
    elif status == MISMATCH:
        eager_failed = [c for c in report.comparisons if not c.passed]
        jit_failed = [c for c in report.jit_comparisons if not c.passed]
        under_jit = f"; under jit {len(jit_failed)} of {len(report.jit_comparisons)}" if report.jit_comparisons else ""
        line = Text("FAIL", style="bold red")
        line.append(f": {len(eager_failed)} of {len(report.comparisons)} comparisons out of tolerance{under_jit}: "
                    f"{names} ({tol})", style="default")
        if report.float64 is not None:
            line.append(f"; float64 rerun fails too ({_worst(report.float64.all_comparisons)}): the models compute "
                        "different things", style="default")
    elif status == JIT_FAILURE:
        line = Text("FAIL", style="bold red")
        line.append(f": the converted model fails under jit at {report.jit_error.where}"
                    + (f"; eager: {len(failed)} comparison(s) out of tolerance: {names}" if failed else
                       f"; eager: {n_out} output(s) and {n_grad} gradient(s) within tolerance"), style="default")
    else:
        line = Text("PASS", style="bold green")
        line.append(f": {n_out} output(s) and {n_grad} gradient(s) within tolerance, {runs} ({tol})",
                    style="default")
    out.print(line)


def render_verify(report, stream: TextIO, ctx) -> None:
    render_verify_table(report, console(stream, ctx.color, soft_wrap=False, markup=True))
