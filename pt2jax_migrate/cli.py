"""The `pt2jax` command line: lint, rewrite, verify, rules, rule.

Exit codes (every command): 0 clean, 1 findings / changes needed / mismatch, 2 usage error or
a file that could not be read or parsed. `lint` and `rewrite` never import torch or jax;
`verify` (and `rewrite --verify`) import them inside the command only.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import click

from . import __version__
from .fsio import iter_python_files, read_source, write_atomic
from .model import FileResult, Finding, SourceError
from .render import (
    FORMATS,
    is_tty,
    plural,
    render_diff,
    render_errors,
    render_findings,
    render_lines,
    unified_diff,
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _color(option: bool | None, stream) -> bool:
    if option is not None:
        return option
    if os.environ.get("NO_COLOR"):
        return False
    return is_tty(stream)


def _console(color: bool, stream=None, soft_wrap: bool = False):
    from rich.console import Console

    return Console(file=stream or sys.stdout, force_terminal=color, no_color=not color, highlight=False,
                   soft_wrap=soft_wrap, emoji=False)


color_option = click.option(
    "--color/--no-color", default=None, help="Colour the output (default: only on a terminal; NO_COLOR disables)."
)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="pt2jax")
def main() -> None:
    """Lint PyTorch code, rewrite it to JAX (Flax NNX + Optax), and verify numerical parity.

    \b
    Typical session:
      pt2jax lint src/                      # what would move, and what needs a person
      pt2jax rewrite --diff src/model.py    # preview the conversion
      pt2jax rewrite src/                   # convert in place (atomic writes)
      pt2jax rewrite --out jax_src/ src/    # or write converted copies elsewhere
      pt2jax verify model.py jax_model.py --model Net --input 'float32[8,20]'
      pt2jax rules                          # the rule catalogue; `pt2jax rule PTJ102` explains one

    \b
    Exit codes: 0 nothing to report, 1 findings / changes needed / parity mismatch,
    2 usage error or a file that could not be read or parsed.
    """


# ---------------------------------------------------------------------------------------- lint


@main.command(context_settings=CONTEXT, short_help="Report PyTorch constructs (exit 1 if any).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: `path:line:col CODE message` lines and a summary; json: a list of findings.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the lint cache.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Lint in this many processes (0: one per CPU).")
@color_option
def lint(paths: tuple[str, ...], fmt: str, no_cache: bool, jobs: int, color: bool | None) -> None:
    """Report PyTorch constructs in PATHS (files, or folders searched for *.py).

    Each finding names the construct, its rule code (see `pt2jax rules`), and ends with
    [fixable] when `pt2jax rewrite` converts it automatically; the others say why a person has
    to port them. Linting uses Python's own parser only (no torch import, no libcst for files
    without a training loop), so it runs on large codebases in seconds; results are cached by
    file content (PT2JAX_CACHE_DIR, default ~/.cache/pt2jax), so unchanged files cost almost
    nothing on the next run.

    \b
    Examples:
      pt2jax lint train.py model.py
      pt2jax lint src/ --format json > findings.json
      pt2jax lint -j 0 big_repo/              # one process per CPU

    \b
    Exit codes: 0 no PyTorch constructs, 1 findings, 2 a path is missing or a file cannot
    be read (not UTF-8) or parsed (the message names the file and line; other files are still
    linted).
    """
    from .lint import lint_paths

    findings, errors = lint_paths(paths, cache=not no_cache, jobs=jobs)
    render_findings(findings, fmt, sys.stdout, _color(color, sys.stdout))
    render_errors(errors, sys.stderr, _color(color, sys.stderr))
    sys.exit(2 if errors else 1 if findings else 0)


# ------------------------------------------------------------------------------------- rewrite


@dataclass
class _Job:
    path: str  # the input file
    relative: str  # its path under --out
    result: FileResult | None = None
    written: str | None = None  # where the converted text went


@dataclass
class _RewriteRun:
    jobs: list[_Job] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)


def _collect(paths: tuple[str, ...], out: str | None) -> _RewriteRun:
    run = _RewriteRun()
    seen: set[str] = set()
    out_root = Path(out).resolve() if out else None
    for given in paths:
        try:
            files = list(iter_python_files([given]))
        except SourceError as error:
            run.errors.append(error)
            continue
        for file in files:
            resolved = Path(file).resolve()
            if resolved in seen:
                continue
            if out_root is not None and out_root in resolved.parents:
                continue  # a previous run's output inside the input folder
            seen.add(resolved)
            relative = os.path.relpath(file, given) if os.path.isdir(given) else os.path.basename(file)
            run.jobs.append(_Job(file, relative))
    return run


def _rewrite_one(job: _Job, target: str) -> None:
    from .rewrite import rewrite_source

    source = read_source(job.path)
    try:
        result = rewrite_source(source, job.path, target=target)
    except SourceError:
        raise
    except Exception as error:  # an engine bug must not stop the other files
        raise SourceError(job.path, f"internal error while rewriting: {type(error).__name__}: {error}") from error
    if result.error:
        raise SourceError(job.path, result.error)
    if result.new_source is None:
        result.new_source = source
    job.result = result


def _verify_settings(config, job: _Job, cli_model: str | None, cli_init: str, cli_inputs: tuple[str, ...],
                     atol: float | None, rtol: float | None) -> dict | None:
    if cli_model:
        return {"model": cli_model, "init": cli_init, "inputs": list(cli_inputs), "atol": atol, "rtol": rtol}
    entry = config.verify_entry(job.path) if config is not None else None
    if entry is None:
        return None
    settings = entry.kwargs()
    if atol is not None:
        settings["atol"] = atol
    if rtol is not None:
        settings["rtol"] = rtol
    return settings


@main.command(context_settings=CONTEXT, short_help="Convert PyTorch code to JAX (in place, --out, --diff, --check).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Write converted files under DIR (same relative paths) instead of in place; "
                   "inputs are never touched.")
@click.option("--diff", is_flag=True, help="Print a unified diff of what would change; write nothing.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file would change.")
@click.option("--target", type=click.Choice(["nnx"]), default="nnx", show_default=True,
              help="The JAX API to write (Flax NNX).")
@click.option("--verify", "do_verify", is_flag=True,
              help="After rewriting, run `pt2jax verify` on each file that has a [tool.pt2jax.verify] "
                   "entry in pyproject.toml (or on every file, with --model/--input).")
@click.option("--model", default=None, help="With --verify: the model class/factory to build in every file.")
@click.option("--init", "init", default="", help="With --verify: constructor arguments, e.g. '20, 10'.")
@click.option("--input", "inputs", multiple=True, metavar="SPEC", help="With --verify: an input spec (repeatable).")
@click.option("--atol", type=float, default=None, help="With --verify: absolute tolerance.")
@click.option("--rtol", type=float, default=None, help="With --verify: relative tolerance.")
@color_option
def rewrite(paths, out, diff, check, target, do_verify, model, init, inputs, atol, rtol, color) -> None:
    """Convert PyTorch code in PATHS to JAX (Flax NNX + Optax).

    By default files are rewritten in place, atomically, and only when something changes;
    torch-free files are left byte for byte. Whatever is not converted stays as it was,
    marked `# TODO(pt2jax): why`, and is listed. Every change and TODO is printed as
    `path:line:col CODE message`, then a summary.

    \b
    Examples:
      pt2jax rewrite model.py train.py        # in place
      pt2jax rewrite --diff src/              # preview; writes nothing
      pt2jax rewrite --check src/             # CI: exit 1 if anything would change
      pt2jax rewrite --out jax_src/ src/      # converted copies: jax_src/<path under src>
      pt2jax rewrite --verify model.py        # then check parity ([tool.pt2jax.verify])
      pt2jax rewrite --verify model.py --model MLP --input 'float32[8,20]'

    \b
    Exit codes: 0 done (or nothing to do), 1 --check found changes or --verify found a
    mismatch, 2 usage error or a file that could not be read or parsed (nothing is written
    for that file; the others are still converted).
    """
    if out and (diff or check):
        raise click.UsageError("--out writes files; it cannot be combined with --diff or --check")
    if (model or inputs or init) and not do_verify:
        raise click.UsageError("--model/--init/--input are options of --verify")
    if do_verify and model and not inputs:
        raise click.UsageError("--verify --model needs at least one --input SPEC")
    config = None
    if do_verify:
        from .config import ConfigError, load_config

        try:
            config = load_config(list(paths))
        except ConfigError as error:
            raise click.UsageError(str(error)) from None

    out_color = _color(color, sys.stdout)
    run = _collect(paths, out)
    write = not (diff or check)
    originals: dict[str, str] = {}  # job.path -> a file holding the original text (for --verify)
    tmp = tempfile.TemporaryDirectory(prefix="pt2jax-") if do_verify else None
    all_findings: list[Finding] = []
    changed: list[_Job] = []
    try:
        for job in run.jobs:
            try:
                _rewrite_one(job, target)
            except SourceError as error:
                run.errors.append(error)
                continue
            result = job.result
            assert result is not None and result.new_source is not None
            all_findings.extend(result.findings)
            try:
                if out:
                    destination = os.path.join(out, job.relative)
                    write_atomic(destination, result.new_source)
                    job.written = destination
                elif write and result.changed:
                    if tmp is not None:
                        originals[job.path] = _spill(tmp.name, job, result.source)
                    write_atomic(job.path, result.new_source)
                    job.written = job.path
            except SourceError as error:
                run.errors.append(error)
                continue
            if result.changed:
                changed.append(job)
            if diff and result.changed:
                render_diff(unified_diff(result.source, result.new_source, job.path), sys.stdout, out_color)

        render_lines(sorted(all_findings), sys.stdout, out_color)
        _rewrite_summary(run, changed, all_findings, out=out, diff=diff, check=check, color=out_color)

        verify_failed = verify_error = False
        if do_verify:
            verify_failed, verify_error = _verify_jobs(
                run, changed, config, originals, tmp.name,  # type: ignore[union-attr]
                model, init, inputs, atol, rtol, out_color,
            )
    finally:
        if tmp is not None:
            tmp.cleanup()
    render_errors(run.errors, sys.stderr, _color(color, sys.stderr))
    if run.errors or verify_error:
        sys.exit(2)
    if (check and changed) or verify_failed:
        sys.exit(1)
    sys.exit(0)


def _spill(folder: str, job: _Job, text: str) -> str:
    """Write `text` to a fresh file named like the job's file inside `folder`."""
    sub = tempfile.mkdtemp(dir=folder)
    path = os.path.join(sub, os.path.basename(job.path))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def _rewrite_summary(run: _RewriteRun, changed: list[_Job], findings: list[Finding], *, out, diff, check,
                     color: bool) -> None:
    done = len([j for j in run.jobs if j.result is not None])
    changes = sum(1 for f in findings if f.fixable)
    todos = sum(1 for f in findings if not f.fixable)
    detail = f"{plural(changes, 'change')}, {plural(todos, 'TODO')} left for a person"
    if check or diff:
        if changed:
            line = f"{plural(len(changed), 'file')} would be rewritten ({detail}); {done - len(changed)} unchanged."
        else:
            line = f"No changes needed in {plural(done, 'file')}" + (f" ({plural(todos, 'TODO')} left)." if todos else ".")
    elif out:
        written = len([j for j in run.jobs if j.written])
        line = f"Wrote {plural(written, 'file')} to {out} ({len(changed)} converted; {detail})."
    elif changed:
        line = f"Rewrote {plural(len(changed), 'file')} ({detail}); {done - len(changed)} unchanged."
    else:
        line = f"No changes needed in {plural(done, 'file')}" + (f" ({plural(todos, 'TODO')} left)." if todos else ".")
    if color:
        _console(True).print(line, style="bold", markup=False)
    else:
        print(line)


def _verify_jobs(run: _RewriteRun, changed: list[_Job], config, originals: dict[str, str], tmp: str,
                 model, init, inputs, atol, rtol, color: bool) -> tuple[bool, bool]:
    """Run verify on each changed file that has settings. Returns (any mismatch, any error)."""
    from .verify import VerifyError, render_report, run_verify

    console = _console(color)
    failed = errored = False
    verified = 0
    for job in changed:
        settings = _verify_settings(config, job, model, init, inputs, atol, rtol)
        if settings is None:
            print(f"{job.path}: no [tool.pt2jax.verify] entry; not verified", file=sys.stderr)
            continue
        assert job.result is not None and job.result.new_source is not None
        original = originals.get(job.path, job.path)
        converted = job.written or _spill(tmp, job, job.result.new_source)
        try:
            report = run_verify(original, converted, **settings)
        except VerifyError as error:
            print(f"{job.path}: verify could not run: {error}", file=sys.stderr)
            errored = True
            continue
        verified += 1
        console.print(f"verify {job.path}:", style="bold", markup=False)
        render_report(report, console)
        failed = failed or not report.passed
    if not verified and not errored:
        print("--verify: no rewritten file had verify settings", file=sys.stderr)
    return failed, errored


# -------------------------------------------------------------------------------------- verify


@main.command(context_settings=CONTEXT, short_help="Compare a torch model and its converted JAX model numerically.")
@click.argument("original", type=click.Path(path_type=str))
@click.argument("converted", type=click.Path(path_type=str))
@click.option("--model", required=True, help="Class or factory function defined in both files.")
@click.option("--init", "init", default="", help="Constructor arguments as Python source, e.g. '20, 10' "
              "(the converted model also gets `rngs=`).")
@click.option("--input", "inputs", multiple=True, required=True, metavar="SPEC",
              help="An input as dtype[shape], e.g. 'float32[8,20]' or 'int64[4,7]:0..100' "
                   "(repeat for several inputs).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance (default by dtype).")
@click.option("--rtol", type=float, default=None, help="Relative tolerance (default by dtype).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
              help="Precision both models run in.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--no-perturb", is_flag=True, help="Keep torch's initial weights (by default they get seeded "
              "noise first, so a transfer that silently keeps initial values cannot pass).")
@click.option("--loss", default=None, help="Expression giving a scalar from the output `out` for the "
              "gradient check (default: sum of all outputs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for inputs and weight noise.")
@color_option
def verify(original, converted, model, init, inputs, atol, rtol, dtype, fmt, no_perturb, loss, seed, color) -> None:
    """Check that CONVERTED (Flax NNX) computes what ORIGINAL (PyTorch) does.

    Loads only the definitions MODEL needs from each file (a script's top-level work is not
    run), builds both models, copies the torch weights into the converted one, feeds both the
    same inputs and compares every output and every parameter gradient.

    \b
    Examples:
      pt2jax verify model.py jax_model.py --model MLP --input 'float32[8,20]'
      pt2jax verify cnn.py jax_cnn.py --model CNN --init '10' --input 'float32[2,1,28,28]' --atol 1e-5
      pt2jax verify lm.py jax_lm.py --model LM --input 'int64[2,16]:0..1000' --format json

    \b
    Exit codes: 0 parity, 1 mismatch, 2 verify could not run (missing file, unknown model,
    bad spec, incomplete weight mapping; the message says which).
    """
    from .verify import VerifyError, render_report, run_verify

    try:
        report = run_verify(original, converted, model=model, init=init, inputs=list(inputs), atol=atol,
                            rtol=rtol, dtype=dtype, perturb=not no_perturb, loss=loss, seed=seed)
    except VerifyError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(report, _console(_color(color, sys.stdout)))
    sys.exit(0 if report.passed else 1)


# --------------------------------------------------------------------------------------- rules


@main.command(context_settings=CONTEXT, short_help="List the rule codes.")
@color_option
def rules(color: bool | None) -> None:
    """List the rule codes: name, summary and how safe the automatic fix is.

    \b
    Fix safety: safe = numerically identical, unsafe = changes numbers or semantics,
    manual = left in place with a TODO(pt2jax) for a person.
    See one rule in full with `pt2jax rule CODE`.
    """
    from rich.table import Table

    from .rules import load_rules

    table = Table(title="pt2jax rules", title_justify="left", show_lines=False)
    table.add_column("code", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("summary")
    table.add_column("fix", no_wrap=True)
    for code, rule in sorted(load_rules().lint_rules.items()):
        table.add_row(code, rule.name, rule.summary, rule.fix)
    _console(_color(color, sys.stdout)).print(table)


@main.command(context_settings=CONTEXT, short_help="Explain one rule code.")
@click.argument("code")
@color_option
def rule(code: str, color: bool | None) -> None:
    """Explain rule CODE: what it detects, why it matters in JAX, an example, what to use
    instead, and how safe the fix is.

    \b
    Example:
      pt2jax rule PTJ102
    """
    from rich.markup import escape

    from .rules import load_rules

    rules_ = load_rules()
    found = rules_.lint_rules.get(code.upper())
    if found is None:
        known = ", ".join(sorted(rules_.lint_rules))
        click.echo(f"error: unknown rule code {code!r}; known codes: {known}", err=True)
        sys.exit(2)
    mapped = sorted({name for entry in rules_.entries if entry.code == found.code for name in entry.names})
    console = _console(_color(color, sys.stdout), soft_wrap=True)
    console.print(f"[bold]{found.code}[/bold] {escape(found.name)}: {escape(found.summary)}")
    sections = [
        ("What it detects", found.what),
        ("Why it matters in JAX", found.why),
        ("Example", found.example),
        ("Use instead", found.instead),
        ("Fix safety", found.fix + {"safe": " (numerically identical)", "unsafe": " (changes numbers or semantics)",
                                     "manual": " (left in place with a TODO(pt2jax))"}.get(found.fix, "")),
    ]
    if mapped:
        sections.append(("Covers", ", ".join(mapped)))
    for title, body in sections:
        console.print()
        console.print(f"[bold]{title}[/bold]")
        for line in body.splitlines() or [""]:
            console.print("    " + escape(line))


if __name__ == "__main__":  # pragma: no cover
    main()
