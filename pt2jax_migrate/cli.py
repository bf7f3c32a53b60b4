"""The `pt2jax` command line: lint, rewrite, verify, weights, rules, rule.

Exit codes (every command): 0 clean, 1 findings / changes needed / mismatch, 2 usage error or
a file that could not be read or parsed. `lint` and `rewrite` never import torch or jax;
`verify` (and `rewrite --verify`) import them inside the command only.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

import click

from . import __version__
from .model import Finding, SourceError
from .output import FINDINGS, VERIFY, formats_for
from .output.common import is_tty
from .output.counts import plural
from .output.diff import render_diff, unified_diff
from .output.text import render_errors, render_lines

if TYPE_CHECKING:  # the rewrite's data: api.RewriteRun, one api.RewriteFile per file
    from .api import RewriteFile as _Job, RewriteRun as _RewriteRun

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _color(option: bool | None, stream) -> bool:
    if option is not None:
        return option
    if os.environ.get("NO_COLOR"):
        return False
    return is_tty(stream)


def _console(color: bool, stream=None, soft_wrap: bool = False):
    from rich.console import Console

    stream = stream or sys.stdout
    # logs and pipes get a wide console: rich's 80-column default would fold tables there
    width = None if getattr(stream, "isatty", lambda: False)() else 120
    return Console(file=stream, force_terminal=color, no_color=not color, highlight=False,
                   soft_wrap=soft_wrap, emoji=False, width=width)


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
      pt2jax lint src/ --statistics --report migration.md   # numbers, and a summary for the PR
      pt2jax lint src/ --fix                # apply the safe fixes (--diff to preview)
      pt2jax lint src/ --baseline .pt2jax-baseline.json     # CI: fail only on new findings
      pt2jax rewrite --diff src/model.py    # preview the conversion
      pt2jax rewrite src/                   # convert in place (atomic writes)
      pt2jax rewrite --out jax_src/ src/    # or write converted copies elsewhere
      pt2jax verify model.py jax_model.py --model Net --input 'float32[8,20]'
      pt2jax rules                          # the rule catalogue; `pt2jax rule PTJ102` explains one

    \b
    Exit codes: 0 nothing to report, 1 findings / changes needed / parity mismatch,
    2 usage error or a file that could not be read or parsed.

    Settings: [tool.pt2jax] in pyproject.toml (see `pt2jax lint --help`); pre-commit hooks
    pt2jax-lint and pt2jax-rewrite; SARIF, GitHub and JUnit outputs for CI.
    """


# ---------------------------------------------------------------------------------------- lint

PROGRESS_MIN_FILES = 200  # a progress bar only for runs at least this long


def _in_ci(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    value = environ.get("CI", "")
    return value.lower() not in ("", "0", "false", "no")


def want_progress(stream, total: int, *, option: bool | None = None, environ=None) -> bool:
    """A progress bar on `stream`: never in CI (CI=true) or when it is not a terminal, and
    only for long runs (PROGRESS_MIN_FILES files or more) unless --progress asks for it."""
    if option is False or not is_tty(stream) or _in_ci(environ):
        return False
    return option is True or total >= PROGRESS_MIN_FILES


class _Progress:
    """A rich progress bar on stderr, started once the number of files is known (if wanted)."""

    def __init__(self, option: bool | None):
        self.option = option
        self.bar = None
        self.task = None

    def total(self, n: int) -> None:
        if not want_progress(sys.stderr, n, option=self.option):
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("linting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(file=sys.stderr), transient=True)
        self.bar.start()
        self.task = self.bar.add_task("lint", total=n)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _codes_option(name: str, help_text: str):
    return click.option(name, "_" + name.strip("-").replace("-", "_"), multiple=True, metavar="CODES",
                        help=help_text)


def _walk_options(command):
    """--exclude and --respect-gitignore: lint and rewrite walk files with the one walker (files/)."""
    command = click.option("--respect-gitignore/--no-respect-gitignore", default=None,
                           help="Skip what .gitignore files ignore while walking folders (default: on; config "
                                "`respect-gitignore`).")(command)
    return click.option("--exclude", "exclude", multiple=True, metavar="GLOB",
                        help="Skip files and folders matching this gitignore-style glob (repeatable; added to "
                             "the config's `exclude`).")(command)


def _set_size_limit(ctx, param, value):
    from .fsio import parse_size, set_size_limit

    if value is None:  # every run sets it: an earlier run in this process must not leak into this one
        set_size_limit(None)
        return None
    try:
        limit = parse_size(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 2M, 500k, 0 for none)") from None
    set_size_limit(limit)
    return limit


def _scale_options(command):
    """-j/--jobs and --max-file-size: lint and rewrite spread files over processes and skip huge files alike."""
    command = click.option("--max-file-size", default=None, metavar="SIZE", callback=_set_size_limit,
                           expose_value=False,
                           help="Skip (with an error) files larger than this, e.g. 5M or 500k; 0: no limit "
                                "(default 2M, or $PT2JAX_MAX_FILE_SIZE in bytes).")(command)
    return click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
                        help="Work in this many processes (0: one per CPU on runs of 16 files or more); "
                             "the output is the same, in the same order.")(command)


def _explicit(ctx: click.Context, name: str) -> bool:
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


@main.command(context_settings=CONTEXT, short_help="Report PyTorch constructs (exit 1 if any).")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "--output-format", "fmt", type=click.Choice(formats_for(FINDINGS)), default="text",
              show_default=True,
              help="How findings are written (to stdout, or to --output-file): text `path:line:col CODE "
                   "message` lines and a summary; json; sarif (GitHub code scanning); github (workflow "
                   "annotations); junit (XML).")
@click.option("--output-file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write the --format output to this file (atomically) instead of stdout.")
@click.option("--output", "outputs", multiple=True, metavar="FORMAT[:FILE]",
              help="One more output, e.g. `sarif:results.sarif` or `junit:lint.xml` (repeatable; "
                   "without :FILE it goes to stdout in place of --format).")
@_codes_option("--select", "Report only these codes or code prefixes (comma-separated, repeatable): "
                           "`PTJ1` is every PTJ1xx code, `ALL` every code. Replaces the config's `select`.")
@_codes_option("--extend-select", "Report these codes in addition to those selected.")
@_codes_option("--ignore", "Do not report these codes or prefixes (the more specific prefix wins "
                           "over --select; a tie goes to --ignore).")
@_walk_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Read [tool.pt2jax] from this pyproject.toml instead of the nearest one above the paths.")
@click.option("--stdin-filename", default=None, metavar="NAME",
              help="Lint the text on stdin as if it were the file NAME (for editors); PATHS may be "
                   "omitted or `-`.")
@click.option("--fix", is_flag=True, help="Apply the safe fixes in place (atomically), as `pt2jax rewrite` "
              "does, then report what remains.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix/--diff: apply the unsafe fixes too (random "
              "sampling, seeding, 64-bit integers: they change numbers).")
@click.option("--diff", is_flag=True, help="Print the fixes --fix would apply as a unified diff; write nothing.")
@click.option("--add-noqa", is_flag=True, help="Suppress every current finding in place: append (or merge) "
              "`# noqa: CODES` on each line that has one.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="FILE",
              help="Report (and fail on) only findings that are not in this baseline file.")
@click.option("--write-baseline", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="FILE",
              help="Record the current findings in FILE (JSON) and exit 0.")
@click.option("--statistics", is_flag=True, help="Print counts per code and per file, the auto-fixable "
              "share and the torch-free share of the codebase instead of each finding.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=str), default=None,
              metavar="FILE.md", help="Also write a Markdown summary for the pull request's reviewer.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings remain (2 still means an error).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the lint cache.")
@click.option("--target", type=click.Choice(["nnx", "linen"]), default=None,
              help="Judge (and --fix) for this JAX API: nnx (the default, or the config's `target`) or linen.")
@_scale_options
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar on stderr (default: on long runs, on a terminal, never in CI).")
@color_option
@click.pass_context
def lint(ctx: click.Context, paths: tuple[str, ...], fmt: str, output_file: str | None, outputs: tuple[str, ...],
         _select, _extend_select, _ignore, exclude, respect_gitignore, config_file, stdin_filename, fix,
         unsafe_fixes, diff, add_noqa, baseline, write_baseline, statistics, report_file, exit_zero, no_cache,
         target, jobs, progress, color) -> None:
    """Report PyTorch constructs in PATHS (files, or folders searched for *.py).

    Each finding names the construct and its rule code (see `pt2jax rules`), and ends with
    [fixable] when the fix is safe (numerically identical: `--fix` applies it) or [unsafe fix]
    when it changes numbers (random sampling, seeding, 64-bit integers: `pt2jax rewrite`
    converts it, `--fix` only with --unsafe-fixes); the others say why a person has to port
    them. Linting uses Python's own parser only (no torch import, no libcst for files
    without a training loop), so it runs on large codebases in seconds; results are cached by
    file content (PT2JAX_CACHE_DIR, default ~/.cache/pt2jax), so unchanged files cost almost
    nothing on the next run.

    Settings come from [tool.pt2jax] in the nearest pyproject.toml above the paths (select,
    extend-select, ignore, exclude, per-file-ignores, respect-gitignore, target); options
    given here override them. Folders are walked skipping hidden folders, virtual
    environments, build/dist, what .gitignore files ignore and `exclude`. A finding is
    suppressed by `# noqa` or `# noqa: PTJ102` on its line, or by a `# pt2jax: noqa` /
    `# pt2jax: noqa: PTJ1,PTJ302` comment anywhere in the file; a suppression that suppresses
    nothing is reported as PTJ910.

    \b
    Examples:
      pt2jax lint train.py model.py
      pt2jax lint src/ --select PTJ1,PTJ2 --ignore PTJ104
      pt2jax lint src/ --format json > findings.json
      pt2jax lint src/ --output sarif:results.sarif --output junit:lint.xml
      pt2jax lint src/ --statistics --report migration.md
      pt2jax lint src/ --fix                  # safe fixes in place; --diff to preview
      pt2jax lint src/ --write-baseline .pt2jax-baseline.json
      pt2jax lint src/ --baseline .pt2jax-baseline.json   # fail only on new findings
      pt2jax lint src/ --add-noqa             # suppress what is there today
      pt2jax lint --stdin-filename src/m.py < src/m.py
      pt2jax lint -j 0 big_repo/              # one process per CPU

    \b
    Exit codes: 0 no findings (or --exit-zero, --write-baseline, --add-noqa), 1 findings
    (those left after --fix; only new ones with --baseline), 2 usage error, bad config, or a
    path is missing or a file cannot be read (not UTF-8) or parsed (the message names the
    file and line; other files are still linted).
    """
    from .config import ConfigError, load_config
    from .api import lint_paths
    from .project import LintOptions
    from .selection import SelectionError, check_selectors, split_codes

    # ---- usage
    if add_noqa and (fix or diff or write_baseline):
        raise click.UsageError("--add-noqa cannot be combined with --fix, --diff or --write-baseline")
    if unsafe_fixes and not (fix or diff):
        raise click.UsageError("--unsafe-fixes is an option of --fix / --diff")
    stdin_mode = stdin_filename is not None or paths == ("-",)
    if stdin_mode:
        if paths not in ((), ("-",)):
            raise click.UsageError("with --stdin-filename, give no PATHS (or `-`)")
        if fix and not diff:
            raise click.UsageError("--fix cannot write stdin; use --diff to see the fixes")
        if add_noqa:
            raise click.UsageError("--add-noqa cannot write stdin")
    elif not paths:
        raise click.UsageError("give at least one PATH (or --stdin-filename NAME to lint stdin)")
    select, extend_select, ignore = split_codes(_select), split_codes(_extend_select), split_codes(_ignore)
    from .rules import load_rules

    known = load_rules().lint_rules
    try:
        for option, codes in (("--select", select), ("--extend-select", extend_select), ("--ignore", ignore)):
            check_selectors(codes, known, option)
    except SelectionError as error:
        raise click.UsageError(str(error)) from None
    specs = _output_specs(ctx, fmt, output_file, outputs)

    # ---- config
    stdin_name = stdin_filename or "-"
    try:
        config = load_config([stdin_name if stdin_filename else "."] if stdin_mode else list(paths),
                             pyproject=config_file)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    target = target or config.target
    options = LintOptions.build(config, select=select or None, extend_select=extend_select, ignore=ignore,
                                exclude=exclude, respect_gitignore=respect_gitignore, known=known, target=target)

    # ---- lint
    bar = _Progress(progress)
    try:
        if stdin_mode:
            report = lint_paths((), options, stdin=(stdin_name, _read_stdin(stdin_name)))
        else:
            report = lint_paths(paths, options, cache=not no_cache, jobs=jobs, progress=bar.advance,
                                  on_total=bar.total)
    except KeyboardInterrupt:
        bar.stop()
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    finally:
        bar.stop()
    err_color = _color(color, sys.stderr)

    # ---- fixes
    fixed_note = None
    would_change = False
    if fix or diff:
        fixed_note, would_change = _apply_fixes(report, options, unsafe=unsafe_fixes, write=not diff,
                                                target=target, color=_color(color, sys.stdout))

    # ---- baseline
    findings = report.findings
    line_text = report.line_text()
    baseline_note = None
    baseline_info = None
    if baseline:
        from .baseline import Baseline, BaselineError

        try:
            known_findings = Baseline.load(baseline)
        except BaselineError as error:
            raise click.UsageError(str(error)) from None
        findings, matched, gone = known_findings.filter(findings, line_text, [f.path for f in report.files])
        baseline_info = (baseline, matched)
        baseline_note = f"{plural(matched, 'finding')} in the baseline {baseline} not shown"
        if gone:
            entries = "1 baseline entry no longer occurs" if gone == 1 else f"{gone} baseline entries no longer occur"
            baseline_note += f"; {entries} (fixed: update it with --write-baseline {baseline})"
        baseline_note += "."

    if add_noqa:
        _add_noqa(report, [f for f in findings if f.code != "PTJ910"], err_color)
        render_errors(report.errors, sys.stderr, err_color)
        sys.exit(2 if report.errors else 0)

    if write_baseline:
        from .baseline import write as write_baseline_file

        # every current finding, including those an old --baseline already knew
        try:
            count = write_baseline_file(write_baseline, report.findings, line_text)
        except OSError as error:
            click.echo(f"error: {write_baseline}: cannot write the baseline: {error.strerror or error}", err=True)
            sys.exit(2)
        click.echo(f"Wrote {plural(count, 'finding')} to the baseline {write_baseline}.", err=True)

    # ---- output (errors first: the summary below counts them)
    render_errors(report.errors, sys.stderr, err_color)
    if diff:
        pass  # the diffs were the output
    elif statistics:
        from .output import STATISTICS, render
        from .output.statistics import compute

        stats = compute(report, findings)
        # --format picks the statistics' format when it has one (text, json); else text
        render(fmt if fmt in formats_for(STATISTICS) else "text", STATISTICS, stats, sys.stdout)
        file_specs = [(f, p) for f, p in specs if p is not None]
        if file_specs:
            _write_outputs(findings, file_specs, report, color)
    else:
        _write_outputs(findings, specs, report, color, baseline_info=baseline_info)
    if report_file:
        from .output import LINT_REPORT
        from .output.results import LintSummary
        from .output.statistics import compute

        summary = LintSummary(compute(report, findings), findings, suppressed=report.suppressed,
                              baseline=baseline_info, errors=[str(e) for e in report.errors], target=target)
        _write_text(report_file, _rendered("markdown", LINT_REPORT, summary))
        click.echo(f"Wrote the report {report_file}.", err=True)
    for note in (fixed_note, baseline_note):
        if note:
            click.echo(note, err=True)
    if report.suppressed and not statistics:
        click.echo(f"{plural(report.suppressed, 'finding')} suppressed by noqa comments.", err=True)
    if report.errors:
        sys.exit(2)
    if exit_zero or write_baseline:
        sys.exit(0)
    sys.exit(1 if findings or (diff and would_change) else 0)


def _read_stdin(name: str) -> str:
    """stdin's bytes as text, exactly (line endings kept), decoded as fsio.read_source does."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.read()
    from .fsio import source_encoding

    data = buffer.read()
    try:
        encoding = source_encoding(data, name)  # UTF-8, or what a coding cookie names
        return data.decode(encoding)
    except SourceError as error:
        click.echo(str(error), err=True)
        sys.exit(2)
    except UnicodeDecodeError as error:
        click.echo(f"{name}: not valid {encoding} (byte {error.start})", err=True)
        sys.exit(2)


def _output_specs(ctx: click.Context, fmt: str, output_file: str | None, outputs: tuple[str, ...]):
    """The outputs to write: --format (to stdout or --output-file) and each --output."""
    from .output import parse_output_spec, parse_output_specs

    try:
        extra = [parse_output_spec(o) for o in outputs]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--output") from None
    specs = []
    if _explicit(ctx, "fmt") or output_file or not any(path is None for _, path in extra):
        specs.append((fmt, output_file))
    specs += extra
    try:
        return parse_output_specs(specs)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def _write_outputs(findings, specs, report, color, baseline_info=None) -> None:
    from .output import write_outputs
    from .output.text import print_line, summary

    sources = {f.path: f.source for f in report.files if f.source is not None}
    out_color = _color(color, sys.stdout)
    custom_text = baseline_info is not None and ("text", None) in specs
    try:
        # with a baseline the usual summary would say "No PyTorch constructs found" of baselined code
        write_outputs(findings, specs, stdout=sys.stdout, color=out_color, root=os.getcwd(),
                      sources=sources, errors=report.errors, files=[f.path for f in report.files],
                      show_summary=not custom_text)
    except SourceError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    if custom_text:
        known = plural(baseline_info[1], "known finding")
        if findings:
            line = f"{summary(findings, noun='new finding').removesuffix('.')}; {known} in the baseline."
        else:
            line = f"No new PyTorch constructs; {known} in the baseline."
        print_line(line, sys.stdout, out_color)


def _rendered(fmt: str, kind: str, data) -> str:
    import io

    from .output import render

    buffer = io.StringIO()
    render(fmt, kind, data, buffer)
    return buffer.getvalue()


def _write_text(path: str, text: str) -> None:
    from .fsio import write_text_atomic

    try:
        write_text_atomic(path, text)
    except SourceError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


def _apply_fixes(report, options, *, unsafe: bool, write: bool, target: str, color: bool) -> tuple[str, bool]:
    """api.fix_paths on the report linted above, its skips and diffs shown in file order.
    Returns the one-line account and whether any file changed."""
    from .api import fix_paths

    run = fix_paths((), options, unsafe=unsafe, write=write, target=target, report=report)
    for file in run.files:
        if file.skipped is not None:
            click.echo(f"{file.path}: not fixed: {file.skipped}", err=True)
        elif not write and file.diff is not None:
            render_diff(file.diff, sys.stdout, color)
    return run.note(), bool(run.changed)


def _add_noqa(report, findings, color: bool) -> None:
    from .api import add_noqa

    run = add_noqa(report, findings)
    for path, line, why in run.skipped:
        click.echo(f"warning: {path}:{line}: no noqa added: {why}", err=True)
    click.echo(f"Added {plural(run.added, 'noqa directive')} to {plural(len(run.files), 'file')}.", err=True)


# ------------------------------------------------------------------------------------- rewrite


@main.command(context_settings=CONTEXT, short_help="Convert PyTorch code to JAX (in place, --out, --diff, --check).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Write converted files under DIR (same relative paths) instead of in place; "
                   "inputs are never touched.")
@click.option("--diff", is_flag=True, help="Print a unified diff of what would change; write nothing.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file would change.")
@click.option("--target", type=click.Choice(["nnx", "linen"]), default=None,
              help="The JAX API to write: nnx (Flax NNX; the default, or the config's `target`) or linen "
                   "(Flax Linen: module dataclasses, model.init / apply, a jitted TrainState step).")
@click.option("--safe-only", is_flag=True, help="Apply only the safe conversions (numerically identical); "
              "leave random sampling, seeding and 64-bit integers as they are (what the pre-commit "
              "fixer and `pt2jax lint --fix` do).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=str), default=None,
              metavar="FILE.md", help="Also write a Markdown summary of the conversion for the reviewer.")
@click.option("--verify", "do_verify", is_flag=True,
              help="After rewriting, run `pt2jax verify` on each file that has a [tool.pt2jax.verify] "
                   "entry in pyproject.toml (or on every file, with --model/--input), each side in its "
                   "own process as `pt2jax verify` does (its default --timeout and --memory-limit).")
@click.option("--model", default=None, help="With --verify: the model class/factory to build in every file.")
@click.option("--init", "init", default="", help="With --verify: constructor arguments, e.g. '20, 10'.")
@click.option("--input", "inputs", multiple=True, metavar="SPEC", help="With --verify: an input spec (repeatable).")
@click.option("--atol", type=float, default=None, help="With --verify: absolute tolerance.")
@click.option("--rtol", type=float, default=None, help="With --verify: relative tolerance.")
@click.option("--helpers-module", default="_pt2jax_helpers", show_default=True, metavar="NAME",
              help="Files found in a folder import their helpers (ConvNCHW, torch_bias_init, ...) from this "
                   "module, written once per package (or per folder of loose scripts); files named "
                   "directly define them inline.")
@click.option("--inline-helpers", is_flag=True, help="Define the helpers in every converted file instead.")
@_walk_options
@_scale_options
@click.option("--force", is_flag=True, help="Rewrite in place even files with uncommitted changes or untracked "
              "in their git work tree (refused by default: the rewrite could not be reviewed or undone).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the one-line summary (and the diffs "
              "with --diff), not each change and TODO.")
@color_option
def rewrite(paths, out, diff, check, target, safe_only, report_file, do_verify, model, init, inputs, atol, rtol,
            helpers_module, inline_helpers, exclude, respect_gitignore, jobs, force, quiet, color) -> None:
    """Convert PyTorch code in PATHS to JAX (Flax NNX + Optax).

    By default files are rewritten in place, atomically, and only when something changes;
    torch-free files are left byte for byte. Whatever is not converted stays as it was,
    marked `# TODO(pt2jax): why`, and is listed. Every change and TODO is printed as
    `path:line:col CODE message`, then a summary.

    Files are found as `pt2jax lint` finds them (hidden folders, virtual environments,
    build/dist, .gitignore and the config's `exclude` are skipped). With --out, two inputs
    that would land on the same output path, or an --out folder inside an input folder, are
    refused before anything is written; so is an in-place rewrite of files with uncommitted
    changes (or untracked) in a git work tree, unless --force. A file that cannot be
    converted (unreadable, not valid Python, over --max-file-size, or an internal error) is
    one error line; the other files are still converted.

    \b
    Examples:
      pt2jax rewrite model.py train.py        # in place
      pt2jax rewrite --diff src/              # preview; writes nothing
      pt2jax rewrite --check src/             # CI: exit 1 if anything would change
      pt2jax rewrite --out jax_src/ src/      # converted copies: jax_src/<path under src>
      pt2jax rewrite --safe-only src/         # only numerically identical conversions
      pt2jax rewrite --check --report rewrite.md src/   # and a Markdown summary
      pt2jax rewrite --verify model.py        # then check parity ([tool.pt2jax.verify])
      pt2jax rewrite --verify model.py --model MLP --input 'float32[8,20]'

    \b
    Exit codes: 0 done (or nothing to do), 1 --check found changes or --verify found a
    mismatch, 2 usage error or a file that could not be read or parsed (nothing is written
    for that file; the others are still converted).
    """
    if out and (diff or check):
        raise click.UsageError("--out writes files; it cannot be combined with --diff or --check")
    if not helpers_module.isidentifier():
        raise click.UsageError(f"--helpers-module {helpers_module!r} is not a module name (a Python identifier)")
    if (model or inputs or init) and not do_verify:
        raise click.UsageError("--model/--init/--input are options of --verify")
    if do_verify and model and not inputs:
        raise click.UsageError("--verify --model needs at least one --input SPEC")
    from .config import ConfigError, load_config

    try:
        config = load_config(list(paths))
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    if target is None:
        target = config.target

    from .api import RewriteRefused, rewrite_paths
    from .files.walk import FileRules

    out_color = _color(color, sys.stdout)
    rules = FileRules.build(config, exclude=exclude, respect_gitignore=respect_gitignore)

    def show(file) -> None:  # each file's diff (--diff) or lines, as soon as it is done
        if file.result is None or (quiet and not diff):
            return
        if diff:
            if file.changed:
                render_diff(unified_diff(file.result.source, file.result.new_source, file.path), sys.stdout,
                            out_color)
        else:
            render_lines(sorted(file.result.findings), sys.stdout, out_color)
        sys.stdout.flush()

    try:
        run = rewrite_paths(paths, out=out, write=not (diff or check), target=target, unsafe_fixes=not safe_only,
                            rules=rules, jobs=jobs, force=force,
                            helpers_module=None if inline_helpers else helpers_module, on_file=show,
                            by_path=not diff)
    except RewriteRefused as error:
        raise click.UsageError(str(error)) from None
    except KeyboardInterrupt:
        click.echo("Interrupted: nothing was written.", err=True)
        sys.exit(130)
    for stale in run.cleaned:
        click.echo(f"{stale}: removed a temp file an interrupted run left behind", err=True)
    changed = run.changed
    all_findings = run.findings
    if diff and not quiet:  # after all the diffs (the lines of the others were shown as each file was done)
        render_lines(all_findings, sys.stdout, out_color)
    render_errors(run.errors, sys.stderr, _color(color, sys.stderr))  # before the summary that counts them
    for path in run.helpers_written:
        click.echo(f"Wrote the shared helpers module {path}.", err=True)
    _rewrite_summary(run, changed, all_findings, out=out, diff=diff, check=check, color=out_color)
    if report_file:
        _rewrite_report(report_file, run, changed, all_findings, out=out, dry=diff or check, quiet=quiet,
                        target=target)

    verify_failed = verify_error = False
    if do_verify:
        verify_failed, verify_error = _verify_rewritten(run, config, model, init, inputs, atol, rtol, out_color)
    if run.errors or verify_error:
        sys.exit(2)
    if (check and changed) or verify_failed:
        sys.exit(1)
    sys.exit(0)


def _rewrite_results(run: _RewriteRun, changed: list[_Job], findings: list[Finding], *, out, dry):
    """What the run did, for the summary line and the report (one source, so they agree).
    The TODO(pt2jax) marker lines are counted in the text each file converts to."""
    from .output.counts import count_todo_markers
    from .output.results import RewriteResults
    from .project import count_lines

    done = [j for j in run.jobs if j.result is not None]
    with_findings = {f.path for f in findings}
    free = [j for j in done if j.path not in with_findings]
    texts = [j.result.new_source if j.result.new_source is not None else j.result.source  # type: ignore[union-attr]
             for j in done]
    return RewriteResults(
        files=len(done),
        lines=sum(count_lines(j.result.source) for j in done),  # type: ignore[union-attr]
        changed=[j.path for j in changed],
        findings=findings,
        torch_free_files=len(free),
        torch_free_lines=sum(count_lines(j.result.source) for j in free),  # type: ignore[union-attr]
        mode=f"written to {out}" if out else "that would be rewritten" if dry else "rewritten in place",
        action="out" if out else "check" if dry else "write",
        out=out,
        written=len([j for j in run.jobs if j.written]),
        todo_markers=sum(count_todo_markers(t) for t in texts),
        errors=[str(e) for e in run.errors],
    )


def _rewrite_summary(run: _RewriteRun, changed: list[_Job], findings: list[Finding], *, out, diff, check,
                     color: bool) -> None:
    from .output.text import print_line, rewrite_summary

    results = _rewrite_results(run, changed, findings, out=out, dry=diff or check)
    print_line(rewrite_summary(results), sys.stdout, color)


def _rewrite_report(path: str, run: _RewriteRun, changed: list[_Job], findings: list[Finding], *, out, dry,
                    quiet: bool = False, target: str = "nnx") -> None:
    from dataclasses import replace

    from .output import REWRITE

    results = replace(_rewrite_results(run, changed, findings, out=out, dry=dry), target=target)
    _write_text(path, _rendered("markdown", REWRITE, results))
    if not quiet:
        click.echo(f"Wrote the report {path}.", err=True)


def _verify_rewritten(run: _RewriteRun, config, model, init, inputs, atol, rtol, color: bool) -> tuple[bool, bool]:
    """api.verify_rewritten, each outcome shown. Returns (any mismatch, any error)."""
    from .api import verify_rewritten
    from .verify import render_report

    # isolated as `pt2jax verify` is by default: the user's model cannot take the rewrite down
    outcomes = verify_rewritten(run, config, model=model, init=init, inputs=inputs, atol=atol, rtol=rtol)
    console = _console(color)
    for outcome in outcomes:
        if outcome.unset:
            print(f"{outcome.path}: no [tool.pt2jax.verify] entry; not verified", file=sys.stderr)
        elif outcome.error is not None:
            print(f"{outcome.path}: verify could not run: {outcome.error}", file=sys.stderr)
        else:
            console.print(f"verify {outcome.path}:", style="bold", markup=False)
            render_report(outcome.report, console)
    if not any(o.ran or o.error is not None for o in outcomes):
        print("--verify: no rewritten file had verify settings", file=sys.stderr)
    return any(o.ran and not o.passed for o in outcomes), any(o.error is not None for o in outcomes)


# -------------------------------------------------------------------------------------- verify


@main.command(context_settings=CONTEXT, short_help="Compare a torch model and its converted JAX model numerically.")
@click.argument("original", type=click.Path(path_type=str))
@click.argument("converted", type=click.Path(path_type=str))
@click.option("--model", default=None, help="Class or factory function defined in both files (required, "
              "except with --train: without it, the scripts' own set-up, training loops and data are run).")
@click.option("--init", "init", default="", help="Constructor arguments as Python source, e.g. '20, 10' "
              "(the converted model also gets `rngs=`).")
@click.option("--input", "inputs", multiple=True, metavar="SPEC",
              help="An input as dtype[shape], e.g. 'float32[8,20]' or 'int64[4,7]:0..100' "
                   "(repeat for several inputs; with --train, one per batch argument of the step).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance (default by dtype).")
@click.option("--rtol", type=float, default=None, help="Relative tolerance (default by dtype).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
              help="Precision both models run in.")
@click.option("--format", "fmt", type=click.Choice(formats_for(VERIFY)), default="text", show_default=True,
              help="text: a table and PASS/FAIL; json; github (workflow annotations); junit (one testcase "
                   "per comparison).")
@click.option("--no-perturb", is_flag=True, help="Keep torch's initial weights (by default they get seeded "
              "noise first, so a transfer that silently keeps initial values cannot pass).")
@click.option("--loss", default=None, help="Expression giving a scalar from the output `out` for the "
              "gradient check (default: sum of all outputs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for inputs and weight noise.")
@click.option("--weights-map", "weights_map", default=None, metavar="FILE",
              help="TOML file of weight mappings for layers the tables lack (same form as "
                   "[tool.pt2jax.weights], whose entries it overrides).")
@click.option("--no-jit", is_flag=True, help="Skip the second, compiled (jit) run of the converted model.")
@click.option("--weights", "weights", default=None, metavar="CHECKPOINT", help="Compare with these weights (a "
              "torch state_dict, .pt/.pth or .safetensors) instead of seeded random ones (--train: start from them).")
@click.option("--prefix", "prefixes", multiple=True, metavar="strip:P|add:P", help="With --weights: rename the "
              "checkpoint's keys (a uniform `module.` prefix is stripped without asking).")
@click.option("--train", is_flag=True, help="Compare training instead: K optimizer steps of the original's and "
              "the converted training step from the same weights on the same batches (one --input per batch "
              "argument), loss, gradients, parameters and buffers after each step. Without --model: each "
              "script's own set-up, training loop and data, run up to K optimizer steps.")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True, help="With --train: optimizer steps.")
@click.option("--optimizer", "optimizer", default=None, metavar="NAME|EXPR", help="With --train: a function in "
              "both files called as NAME(model), or an expression over `model` [default: build_optimizer].")
@click.option("--step", "step_fn", default=None, metavar="NAME", help="With --train: a function in both files, "
              "NAME(model, optimizer, *batch) -> loss, doing one step [default: the script's own train step].")
@click.option("--loss-fn", "loss_fn", default=None, metavar="NAME", help="With --train: a function in both "
              "files, NAME(model, *batch) -> loss; verify does the backward pass and the optimizer step.")
@click.option("--plot", default=None, metavar="PATH", help="With --train: the PNG of both loss curves (a file, "
              "or a folder) [default: <converted>.train-loss.png beside the converted file].")
@click.option("--no-plot", is_flag=True, help="With --train: write no PNG.")
@click.option("--timeout", type=click.FloatRange(min=0), default=600, show_default=True, metavar="SECONDS",
              help="Stop the check (the model's, or --train's) after this long (0: never); a hang is "
                   "reported with the side and the line it was at.")
@click.option("--memory-limit", "memory_limit", default="auto", show_default=True, metavar="SIZE",
              help="Stop a side whose resident memory goes over SIZE (e.g. 4G, 500M; auto: half the "
                   "machine's memory; off).")
@click.option("--in-process", "in_process", is_flag=True, help="Run both models in this process instead of "
              "one child process per side (no --timeout or --memory-limit).")
@click.option("--timings", is_flag=True, help="Print where the time went (imports, build, runs, jit) to stderr.")
@color_option
def verify(original, converted, model, init, inputs, atol, rtol, dtype, fmt, no_perturb, loss, seed, weights_map,
           no_jit, weights, prefixes, train, steps, optimizer, step_fn, loss_fn, plot, no_plot, timeout,
           memory_limit, in_process, timings, color) -> None:
    """Check that CONVERTED (Flax NNX) computes what ORIGINAL (PyTorch) does.

    Each model runs in its own child process (the torch one and the JAX one, started in
    parallel; --train: one child for both), which loads only the definitions MODEL needs from its file (a script's
    top-level work is not run); a hang (--timeout), a crash or too much memory (--memory-limit)
    in the user's code is reported with the side and the line. Builds both models, copies the torch weights into the converted one, feeds both the
    same inputs and compares every output and every parameter gradient, eagerly and under
    nnx.jit. A float32 difference that vanishes when both rerun in float64 is reported as
    rounding noise. Layers the tables lack: [tool.pt2jax.weights] or --weights-map.

    \b
    Examples:
      pt2jax verify model.py jax_model.py --model MLP --input 'float32[8,20]'
      pt2jax verify cnn.py jax_cnn.py --model CNN --init '10' --input 'float32[2,1,28,28]' --atol 1e-5
      pt2jax verify lm.py jax_lm.py --model LM --input 'int64[2,16]:0..1000' --format json
      pt2jax verify train.py jax_train.py --model MLP --train --input 'float32[64,20]' --input 'int64[64]:0..5'
      pt2jax verify train.py jax_train.py --train     # the scripts' own set-up, loops and data

    \b
    Exit codes: 0 parity (or float32 rounding noise: float64 agrees), 1 mismatch or a failure
    under nnx.jit, 2 verify could not run (missing file, unknown model, bad spec, incomplete
    weight mapping; the message says which).
    """
    from .verify import VerifyError, run_verify
    from .verify.weightmap import load_weights_map

    train_only = {"--optimizer": optimizer, "--step": step_fn, "--loss-fn": loss_fn, "--plot": plot,
                  "--no-plot": no_plot, "--steps": steps != 5}
    if not train and any(train_only.values()):
        raise click.UsageError(f"{', '.join(k for k, v in train_only.items() if v)}: options of --train")
    if prefixes and not weights:
        raise click.UsageError("--prefix is an option of --weights")
    if not train and not model:
        raise click.UsageError("Missing option '--model'.")
    if not train and not inputs:
        raise click.UsageError("Missing option '--input'.")
    if train and loss:
        raise click.UsageError("--loss belongs to the model check; with --train name a --loss-fn or --step")
    limit = _memory_size(memory_limit)
    if train:
        _verify_train(original, converted, fmt, color, model=model, init=init, inputs=list(inputs), atol=atol,
                      rtol=rtol, dtype=dtype, perturb=not no_perturb, seed=seed, steps=steps, optimizer=optimizer,
                      step=step_fn, loss_fn=loss_fn, plot=None if no_plot else (plot or ""),
                      weights_map=weights_map, weights=weights, weights_prefix=tuple(prefixes),
                      isolate=not in_process, timeout=timeout, memory_limit=limit, timings=timings)
    try:
        report = run_verify(original, converted, model=model, init=init, inputs=list(inputs), atol=atol,
                            rtol=rtol, dtype=dtype, perturb=not no_perturb, loss=loss, seed=seed,
                            jit=not no_jit, weights_map=load_weights_map(converted, weights_map),
                            weights=weights, weights_prefix=tuple(prefixes), isolate=not in_process,
                            timeout=timeout, memory_limit=limit)
    except VerifyError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    if timings:
        click.echo("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in report.timings.items()), err=True)
    from .output import OutputContext, render

    render(fmt, VERIFY, report, sys.stdout, OutputContext(color=_color(color, sys.stdout), root=os.getcwd()))
    sys.exit(0 if report.passed else 1)


def _memory_size(text: str) -> int | None:
    """--memory-limit: bytes from '4G', '500M', '1024K', '123' (bytes); None for off/0; auto:
    verify.isolate.default_memory_limit."""
    from .verify.isolate import default_memory_limit

    value = text.strip().lower()
    if value == "auto":
        return default_memory_limit()
    if value in ("off", "none", "0"):
        return None
    found = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([kmgt]?)i?b?", value)
    if not found:
        raise click.BadParameter(f"{text!r}: expected a size such as 4G or 500M, auto or off",
                                 param_hint="--memory-limit")
    size = int(float(found.group(1)) * 1024 ** " kmgt".index(found.group(2) or " "))
    return size or None


def _verify_train(original, converted, fmt, color, *, plot, weights_map, timings, **options) -> None:
    """`verify --train`: run verify.train, write the loss PNG (plot None: none), render, exit."""
    from .output import VERIFY_TRAIN, OutputContext, render
    from .verify import VerifyError, run_train_verify
    from .verify.plot import plot_path, write_loss_plot
    from .verify.weightmap import load_weights_map

    if fmt not in formats_for(VERIFY_TRAIN):
        raise click.UsageError(f"--train reports as {' or '.join(formats_for(VERIFY_TRAIN))}, not {fmt}")
    try:
        report = run_train_verify(original, converted, weights_map=load_weights_map(converted, weights_map),
                                  **options)
        if plot is not None:
            target = plot_path(converted, plot)
            try:
                write_loss_plot(report, target)
                report.plot = str(target)
            except VerifyError as exc:
                if plot:  # asked for by name: an error; the default plot is only noted
                    raise
                report.plot_error = str(exc)
    except VerifyError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    if timings and getattr(report, "timings", None):
        click.echo("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in report.timings.items()), err=True)
    render(fmt, VERIFY_TRAIN, report, sys.stdout, OutputContext(color=_color(color, sys.stdout), root=os.getcwd()))
    sys.exit(0 if report.passed else 1)


# ------------------------------------------------------------------------------------- weights


@main.command(context_settings=CONTEXT, short_help="Convert a PyTorch state_dict into the converted model's state.")
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("--module", "module", required=True, metavar="CONVERTED.py:NAME",
              help="The converted model: its file and the class (or factory) to build.")
@click.option("--original", required=True, metavar="ORIGINAL.py",
              help="The torch file defining NAME too: its module tree says which table maps each key.")
@click.option("--init", "init", default="", help="Constructor arguments as Python source, e.g. '20, 10'.")
@click.option("--out", required=True, metavar="PATH", help="Where to write (atomically; replaced if it exists).")
@click.option("--target", type=click.Choice(["nnx", "linen"]), default=None,
              help="The converted model's API [default: read off the file, as verify does: linen if it imports "
                   "Linen, else nnx].")
@click.option("--input", "inputs", multiple=True, metavar="SPEC",
              help="Linen: an example input for model.init (repeatable; as verify's, e.g. 'float32[1,20]').")
@click.option("--format", "fmt", type=click.Choice(["orbax", "safetensors", "msgpack"]), default=None,
              help="Output format [default: by --out's suffix: .safetensors, .msgpack, else an Orbax folder].")
@click.option("--prefix", "prefixes", multiple=True, metavar="strip:P|add:P",
              help="Rename the checkpoint's keys first (repeatable). Without it a uniform `module.` "
                   "(DataParallel) or `_orig_mod.` (torch.compile) prefix is stripped, and said so.")
@click.option("--weights-map", "weights_map", default=None, metavar="FILE",
              help="TOML weight mappings for layers the tables lack (as verify's --weights-map).")
def weights(checkpoint, module, original, init, out, target, inputs, fmt, prefixes, weights_map) -> None:
    """Convert the PyTorch state_dict CHECKPOINT (.pt/.pth, read with torch.load(weights_only=True);
    or .safetensors) into the converted model's state, with the weight tables verify uses.

    \b
    Examples:
      pt2jax weights mlp.pt --module jax_model.py:MLP --original model.py --out mlp_ckpt
      pt2jax weights ddp.pth --module jax_model.py:Net --original model.py --init '10' --out net.safetensors
      pt2jax weights mlp.pt --module linen_model.py:MLP --original model.py --input 'float32[1,20]' --out mlp.msgpack

    \b
    Exit codes: 0 written, 2 nothing written: a missing, unexpected or misshapen key, a file
    that is not a state_dict, or a model that cannot be built (the message says which).
    """
    from .api import convert_weights
    from .fsio import SourceError
    from .verify import VerifyError

    try:
        result = convert_weights(checkpoint, module=module, original=original, out=out, init=init, target=target,
                                 fmt=fmt, prefixes=prefixes, weights_map=weights_map, inputs=inputs)
    except (VerifyError, SourceError, OSError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{result.checkpoint}: {plural(result.tensors, 'tensor')} -> {result.model} ({result.target}), "
               f"{plural(result.variables, 'variable')} written to {result.out} ({result.format}, "
               f"{_size_text(result.bytes_written)})")


def _size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


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
    rules_ = load_rules()
    for code, rule in sorted(rules_.lint_rules.items()):
        fix = rule.fix + (" (some unsafe)" if rule.fix != "unsafe" and unsafe_names(rules_, code) else "")
        table.add_row(code, rule.name, rule.summary, fix)
    _console(_color(color, sys.stdout)).print(table)


def unsafe_names(rules_, code: str) -> list[str]:
    """The constructs under `code` whose conversion is unsafe (the tables' `safety = "unsafe"`,
    and the 64-bit integer dtypes)."""
    from .core.decide import UNSAFE_VALUE_NAMES

    names = {name for entry in rules_.entries if entry.code == code and entry.get("safety") == "unsafe"
             for name in entry.names}
    if code == "PTJ104":
        names |= UNSAFE_VALUE_NAMES
    return sorted(names)


FIX_MEANING = {"safe": " (numerically identical)", "unsafe": " (changes numbers or semantics)",
               "manual": " (left in place with a TODO(pt2jax) for a person)"}


@main.command(context_settings=CONTEXT, short_help="Explain one rule code.")
@click.argument("code")
@click.option("--target", type=click.Choice(["nnx", "linen"]), default="nnx", show_default=True,
              help="The Flax API the example's JAX equivalent is written for.")
@color_option
def rule(code: str, target: str, color: bool | None) -> None:
    """Explain rule CODE in fixed sections: what it detects, why it matters in JAX, an
    example, its JAX equivalent (in the --target's form), and how safe the fix is (and which
    constructs under it are unsafe fixes).

    \b
    Example:
      pt2jax rule PTJ102
      pt2jax rule PTJ101 --target linen
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
    unsafe = unsafe_names(rules_, found.code)
    console = _console(_color(color, sys.stdout), soft_wrap=True)
    console.print(f"[bold]{found.code}[/bold] {escape(found.name)}: {escape(found.summary)}")
    safety = found.fix + FIX_MEANING.get(found.fix, "")
    if unsafe and found.fix != "unsafe":
        safety += (f", except\nunsafe (changes numbers or semantics; `lint --fix` applies these only with "
                   f"--unsafe-fixes): {', '.join(unsafe)}")
    doc = found.doc(target)
    sections = [
        ("What it detects", doc["what"]),
        ("Why it matters in JAX", doc["why"]),
        ("Example", doc["example"]),
        ("JAX equivalent", doc["instead"]),
        ("Fix safety", safety),
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
