"""What the commands do, as functions returning plain data; cli.py only turns options into
calls here, and the data into output and an exit code.

    lint_paths(paths, options)        -> LintRun (project.LintReport): files, findings, errors
    fix_paths(paths, options, ...)    -> FixRun: files fixed (with diffs), skipped and why, what remains
    add_noqa(report, findings)        -> NoqaRun: directives added, files written, lines skipped
    rewrite_paths(paths, out=..., ...) -> RewriteRun: per-file results, where each went, errors
    verify_rewritten(run, config, ...) -> [VerifyOutcome]: per changed file, a report, an error or no settings
    convert_weights(checkpoint, module=..., original=..., out=...) -> verify.weights.WeightsResult

Both find their files with the one walker (files.walk.discover: `exclude`, .gitignore,
symlinks, non-regular files) and write with the one atomic writer (fsio.write_atomic).
Nothing here prints.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .files.guard import guarded
from .files.walk import FileRules, SourceFile, discover
from .fsio import clean_stale_temps, read_source, write_atomic
from .model import FileResult, Finding, SourceError
from .project import LintOptions, LintReport, lint_project

LintRun = LintReport


def lint_paths(paths: Sequence[str], options: LintOptions | None = None, *, cache: bool = False, jobs: int = 1,
               progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
               stdin: tuple[str, str] | None = None) -> LintRun:
    """Lint the files under `paths` with `options` (selection, per-file ignores, exclude);
    `stdin` is (filename, text) to lint instead of files."""
    return lint_project(paths, options, cache=cache, jobs=jobs, progress=progress, on_total=on_total, stdin=stdin)


class RewriteRefused(ValueError):
    """The run as asked would lose or mix files (an --out problem); nothing was written."""


@dataclass
class RewriteFile:
    path: str  # the input file
    relative: str  # its path under --out
    outside: bool = False  # reached through a symlink leaving the folder given: never written in place
    result: FileResult | None = None  # None: it could not be rewritten (see the run's errors)
    written: str | None = None  # where the converted text went

    @property
    def changed(self) -> bool:
        return self.result is not None and self.result.changed


@dataclass
class RewriteRun:
    files: list[RewriteFile] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    excluded: int = 0
    cleaned: list[str] = field(default_factory=list)  # stale temp files of an interrupted run, removed
    helpers_written: list[str] = field(default_factory=list)  # shared helpers modules written

    @property
    def jobs(self) -> list[RewriteFile]:  # the name the report and verify code use
        return self.files

    @property
    def done(self) -> list[RewriteFile]:
        return [f for f in self.files if f.result is not None]

    @property
    def changed(self) -> list[RewriteFile]:
        return [f for f in self.files if f.changed]

    @property
    def findings(self) -> list[Finding]:
        return sorted(f for file in self.done for f in file.result.findings)  # type: ignore[union-attr]


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def check_out(out: str, paths: Sequence[str], files: Sequence[SourceFile]) -> None:
    """RewriteRefused when --out lies in an input folder, or two inputs (or an input and
    its own output) would share an output path."""
    real_out = _real(out)
    for given in paths:
        if os.path.isdir(given):
            real_in = _real(given)
            if real_out == real_in or real_out.startswith(real_in.rstrip(os.sep) + os.sep):
                where = "is the input folder" if real_out == real_in else "is inside the input folder"
                raise RewriteRefused(f"--out {out} {where} {given}: the converted copies would mix with (or "
                                     "replace) the originals; choose a folder outside the inputs")
            if real_in.startswith(real_out.rstrip(os.sep) + os.sep):
                raise RewriteRefused(f"--out {out} contains the input folder {given}: the converted copies would "
                                     "mix with the originals; choose a folder outside the inputs")
    inputs = {_real(f.path): f.path for f in files}
    taken: dict[str, SourceFile] = {}
    clashes = []
    for file in files:
        destination = os.path.join(out, file.relative)
        key = _real(destination)
        if key in inputs:
            raise RewriteRefused(f"--out {out} would overwrite the input {inputs[key]} with the converted "
                                 f"{file.path}; choose a folder outside the inputs")
        first = taken.setdefault(key, file)
        if first is not file:
            clashes.append(f"{first.path} and {file.path} would both be written to {destination}")
    if clashes:
        raise RewriteRefused("--out: " + "; ".join(clashes) + " (nothing was written; rewrite them in separate "
                             "runs, or give the folder that holds both so their paths under it differ)")


# the shared helpers module a folder rewrite writes (`rewrite_paths(helpers_module=...)`)
DEFAULT_HELPERS_MODULE = "_pt2jax_helpers"


@dataclass(frozen=True)
class HelpersHome:
    """Where the files of one package (or one folder of loose scripts) get their helpers."""
    folder: tuple[str, ...]  # under the folder given
    package: bool  # the folder is a package: files import the module relatively


def helpers_home(file: SourceFile) -> HelpersHome | None:
    """The folder whose helpers module `file` imports: the topmost package (below the folder
    given) holding it, else its own folder (loose scripts import it absolutely, as a sibling);
    None for a file given directly (it keeps its helpers inline)."""
    if not os.path.isdir(file.given) or file.outside:
        return None
    parts = tuple(file.relative.replace(os.sep, "/").split("/")[:-1])

    def is_package(folder: tuple[str, ...]) -> bool:
        return os.path.isfile(os.path.join(file.given, *folder, "__init__.py"))

    if not is_package(parts):
        return HelpersHome(parts, False)
    home = parts
    while home and is_package(home[:-1]):
        home = home[:-1]
    return HelpersHome(home, True)


def helpers_import(file: SourceFile, home: HelpersHome, name: str) -> str:
    """The module as `file`'s import statement names it (`.._pt2jax_helpers`, `_pt2jax_helpers`)."""
    if not home.package:
        return name
    depth = len(file.relative.replace(os.sep, "/").split("/")) - 1 - len(home.folder)
    return "." * (depth + 1) + name


def _helpers_path(root: str, home: HelpersHome, name: str) -> str:
    return os.path.join(root, *home.folder, name + ".py")


def _check_helpers_paths(paths: Sequence[str]) -> None:
    """RewriteRefused when a file pt2jax did not write stands where a helpers module goes."""
    from .targets.base import HELPERS_MODULE_HEADER

    for path in paths:
        if os.path.lexists(path):
            try:
                with open(path, encoding="utf-8", newline="") as handle:
                    ours = handle.read(len(HELPERS_MODULE_HEADER)) == HELPERS_MODULE_HEADER
            except (OSError, UnicodeDecodeError):
                ours = False
            if not ours:
                raise RewriteRefused(f"{path} exists and was not written by pt2jax; the converted files would "
                                     "import their helpers from it (nothing was written; choose another name "
                                     "with --helpers-module, or --inline-helpers)")


def rewrite_one(path: str, target: str = "nnx", unsafe_fixes: bool = True,
                helpers_module: str | None = None, imported_classes: dict[str, bool] | None = None) -> FileResult:
    """One file's conversion (not written). SourceError when it cannot be read or parsed,
    naming the file and line; an engine bug becomes one too, so the other files go on."""
    from .rewrite import rewrite_source

    source = read_source(path)
    result = guarded(path, "rewriting", lambda: rewrite_source(source, path, target=target, unsafe_fixes=unsafe_fixes,
                                                                helpers_module=helpers_module,
                                                                imported_classes=imported_classes))
    if result.error:
        raise SourceError(path, result.error)
    if result.new_source is None:
        result.new_source = source
    return result


def rewrite_paths(paths: Sequence[str], *, out: str | None = None, write: bool = True, target: str = "nnx",
                  unsafe_fixes: bool = True, rules: FileRules | None = None, jobs: int = 1,
                  force: bool = False, helpers_module: str | None = DEFAULT_HELPERS_MODULE,
                  on_file: Callable[[RewriteFile], None] | None = None, by_path: bool = True) -> RewriteRun:
    """Convert the files under `paths`: in place (`write`, only the files that change), into
    `out` (every file, at its path under the folder given), or not at all (`write=False`:
    --check and --diff). RewriteRefused, before anything is written, for an unsafe --out, or
    (in place, without `force`) for files that would change but have uncommitted changes or
    are untracked in their git work tree. `jobs` > 1 converts in that many processes (0: one
    per CPU); the results are the same, in the same order. Stale temp files an interrupted run
    left where this one writes are removed (listed in `run.cleaned`).

    Files found in a folder import their helpers (ConvNCHW, torch_bias_init, ...) from one module
    named `helpers_module`, written once per package (its topmost folder below the folder given;
    relative imports) or per folder of loose scripts (a sibling, absolute import) where some
    converted file imports it. Files given directly, or `helpers_module=None`, define them inline.

    `on_file(file)` streams the results: it is called for each file once it is converted (its
    `result` set, or None when it failed), in the order of the paths (`by_path`: the order the
    findings are listed in) or else of `run.files` (the walk's: the order of the diffs), before
    the writes; when an in-place run may still be refused (some input has uncommitted changes),
    only once the run is known not to be."""
    found = discover(paths, rules)
    run = RewriteRun(errors=list(found.errors), excluded=found.excluded)
    if out is not None:
        check_out(out, paths, found.files)
    homes = {f.path: helpers_home(f) for f in found.files} if helpers_module else {}
    module_paths: dict[str, str] = {}  # where each home's helpers module is written -> a file of it
    for source_file in found.files:
        home = homes.get(source_file.path)
        if home is not None:
            root = out if out is not None else source_file.given
            module_paths.setdefault(_helpers_path(root, home, helpers_module), source_file.path)
    if write and module_paths:
        inputs_there = [_helpers_path(f.given, h, helpers_module) for f in found.files
                        if (h := homes.get(f.path)) is not None]
        _check_helpers_paths(sorted(set(module_paths) | set(inputs_there)))
    files = [RewriteFile(f.path, f.relative, f.outside) for f in found.files]
    specs = [helpers_import(f, homes[f.path], helpers_module) if homes.get(f.path) is not None else None
             for f in found.files]
    run.files = files
    imported = _imported_classes(found.files)
    may_refuse = out is None and write and not force
    # converted in the order on_file wants them, so each can be shown as soon as it is done
    order = sorted(range(len(files)), key=lambda i: files[i].path) if by_path else list(range(len(files)))
    defer = on_file is None or (may_refuse and bool(uncommitted([f.path for f in files if not f.outside])))
    failed: dict[int, SourceError] = {}
    arrivals = iter(order)

    def arrived(outcome: FileResult | SourceError) -> None:
        index = next(arrivals)
        if isinstance(outcome, SourceError):
            failed[index] = outcome
        else:
            files[index].result = outcome
        if not defer:
            on_file(files[index])  # type: ignore[misc]

    _rewrite_all([files[i].path for i in order], [specs[i] for i in order], target, unsafe_fixes, jobs,
                 [imported.get(files[i].path) for i in order], arrived)
    run.errors += [failed[i] for i in sorted(failed)]  # in walk order
    if may_refuse:
        dirty = uncommitted([f.path for f in files if f.changed and not f.outside])
        if dirty:
            raise RewriteRefused(f"{plural_files(len(dirty))} to rewrite in place {'has' if len(dirty) == 1 else 'have'} "
                                 f"uncommitted changes or {'is' if len(dirty) == 1 else 'are'} untracked in git: "
                                 f"{', '.join(dirty)}; commit or stash them first (so the rewrite can be reviewed "
                                 "and undone), or pass --force")
    if defer and on_file is not None:
        for index in order:
            on_file(files[index])
    if write or out is not None:
        folders = {os.path.dirname(os.path.join(out, f.relative)) if out is not None else os.path.dirname(f.path)
                   for f in files}
        for folder in sorted(folders):
            run.cleaned += clean_stale_temps(folder)
    importing: set[str] = set()  # the helpers modules some converted file imports
    for source_file, file, spec in zip(found.files, files, specs):
        result = file.result
        if result is not None and spec is not None and result.new_source and \
                f"from {spec} import " in result.new_source:
            root = out if out is not None else source_file.given
            importing.add(_helpers_path(root, homes[source_file.path], helpers_module))
    if write:  # before the files that import them: a run killed mid-way never leaves an import dangling
        _write_helpers_modules(run, sorted(importing), target)
    for file in files:
        result = file.result
        if result is None:
            continue
        try:
            assert result.new_source is not None
            if out is not None:
                destination = os.path.join(out, file.relative)
                write_atomic(destination, result.new_source, stat.S_IMODE(os.stat(file.path).st_mode))
                file.written = destination
            elif write and result.changed:
                if file.outside:
                    raise SourceError(file.path, f"is a symlink to {os.path.realpath(file.path)}, outside the "
                                      "folder given; not rewritten in place (name the file itself, or use --out)")
                write_atomic(file.path, result.new_source)
                file.written = file.path
        except (SourceError, Exception) as error:  # one file's failure never stops the others
            if not isinstance(error, SourceError):
                error = SourceError(file.path, f"internal error while writing: {type(error).__name__}: {error}")
            run.errors.append(error)
            if file.written is None:
                file.result = None  # converted but not written: counted as an error, not as done
    return run


def plural_files(n: int) -> str:
    return "1 file" if n == 1 else f"{n} files"


def uncommitted(files: Sequence[str]) -> list[str]:
    """Those of `files` that are untracked, or changed in the git work tree holding them since
    they were last committed or staged (`git status`); none when git is missing or they are
    not in a work tree."""
    import subprocess

    from .selection import git_root

    by_root: dict[str, list[str]] = {}
    for file in files:
        root = git_root(os.path.dirname(os.path.abspath(file)))
        if root is not None:
            by_root.setdefault(root, []).append(file)
    dirty = []
    for root, members in by_root.items():
        try:
            done = subprocess.run(["git", "-C", root, "status", "--porcelain=v1", "-z", "--untracked-files=all",
                                   "--ignored=no", "--", *[os.path.abspath(m) for m in members]],
                                  capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode != 0:
            continue
        changed = set()
        entries = done.stdout.split(b"\0")
        index = 0
        while index < len(entries):
            entry = entries[index]
            index += 1
            if len(entry) < 4:
                continue
            if entry[:1] in (b"R", b"C"):
                index += 1  # a rename's old path follows
            # staged and not changed since (worktree == index): `git diff` shows and `git checkout`
            # undoes the rewrite exactly, so only worktree changes and untracked files are refused
            if entry[1:2] != b" ":
                changed.add(_real(os.path.join(root, os.fsdecode(entry[3:]))))
        dirty += [m for m in members if _real(m) in changed]
    return dirty


def _rewrite_job(job: tuple[str, str, bool, str | None]) -> FileResult | tuple[str, str, int | None]:
    """rewrite_one for a worker: a SourceError comes back as (path, message, line), since it
    does not pickle."""
    path, target, unsafe_fixes, helpers_module, imported = job
    try:
        return rewrite_one(path, target, unsafe_fixes, helpers_module, imported)
    except SourceError as error:
        return _error_tuple(error)


def _prepare_rewrite(target: str) -> None:
    """What a rewrite loads on its first file (forked workers start with it)."""
    from .lint import WARM_UP
    from .rewrite import rewrite_source

    rewrite_source(WARM_UP, "<warm-up>", target=target)


def _error_tuple(error: SourceError) -> tuple[str, str, int | None]:
    prefix = f"{error.path}:{error.line}: " if error.line else f"{error.path}: "
    text = str(error)
    return (error.path, text[len(prefix):] if text.startswith(prefix) else text, error.line)


def _imported_classes(files) -> dict[str, dict[str, bool]]:
    """path -> the converted module classes it imports from other files found under the same
    folder given (project_classes), for each file found in a folder."""
    from .project_classes import project_classes

    by_root: dict[str, dict[str, str]] = {}
    for f in files:
        if os.path.isdir(f.given):
            try:
                by_root.setdefault(f.given, {})[f.relative] = read_source(f.path)
            except SourceError:
                continue  # reported by its own rewrite
    out: dict[str, dict[str, bool]] = {}
    for given, sources in by_root.items():
        top = os.path.basename(os.path.normpath(given)) or None
        for relative, names in project_classes(sources, top).items():
            if names:
                out[os.path.join(given, relative) if not os.path.isabs(relative) else relative] = names
    return {f.path: out[os.path.join(f.given, f.relative)] for f in files
            if os.path.join(f.given, f.relative) in out}


def _rewrite_all(paths: list[str], specs: list[str | None], target: str, unsafe_fixes: bool,
                 jobs: int, imported: list[dict[str, bool] | None] | None = None,
                 each: Callable[[FileResult | SourceError], None] | None = None) -> list[FileResult | SourceError]:
    """rewrite_one for each path (importing its helpers from its spec, if any; knowing the
    converted classes it imports from the run's other files), in order, in `jobs` processes
    (see pool.run_jobs); `each` is called on each outcome as soon as it and those before it are done."""
    from .files.heap import frozen_heap
    from .files.pool import run_jobs

    def outcome(o: FileResult | tuple[str, str, int | None]) -> FileResult | SourceError:
        return SourceError(*o) if isinstance(o, tuple) else o

    def arrived(o: FileResult | tuple[str, str, int | None]) -> None:
        settle()  # a file's result (its text twice, its findings) lives to the end of the run
        if each is not None:
            each(outcome(o))

    imported = imported or [None] * len(paths)
    # the collector scans the files' objects, not the loaded modules and the results kept (as lint)
    with frozen_heap() as settle:
        outcomes = run_jobs(_rewrite_job, [(p, target, unsafe_fixes, m, c) for p, m, c in zip(paths, specs, imported)],
                            jobs, arrived, lambda: _prepare_rewrite(target))
    return [outcome(o) for o in outcomes]


def _write_helpers_modules(run: RewriteRun, destinations: Sequence[str], target: str) -> None:
    """Write (or bring up to date) each helpers module some converted file imports."""
    from .targets import get_target

    text = get_target(target).helpers_module_source()
    for destination in destinations:
        try:
            if os.path.isfile(destination) and read_source(destination) == text:
                continue
            write_atomic(destination, text)
            run.helpers_written.append(destination)
        except (OSError, SourceError) as error:
            run.errors.append(error if isinstance(error, SourceError) else SourceError(destination, str(error)))


# ------------------------------------------------------------------------------ lint --fix / --diff


@dataclass
class FileFix:
    """What --fix did to one file, in the order the files were taken."""
    path: str
    skipped: str | None = None  # why it was left alone (a fixable finding suppressed or not selected)
    diff: str | None = None  # the unified diff of the fix (written, or only shown with write=False)
    written: bool = False


@dataclass
class FixRun:
    report: LintReport  # what remains: the fixed files re-linted; errors of the fix appended
    files: list[FileFix] = field(default_factory=list)
    fixed: int = 0  # findings the fixes removed
    write: bool = True

    @property
    def changed(self) -> list[FileFix]:
        return [f for f in self.files if f.diff is not None]

    @property
    def skipped(self) -> list[FileFix]:
        return [f for f in self.files if f.skipped is not None]

    @property
    def remaining(self) -> list[Finding]:
        return self.report.findings

    def note(self) -> str:
        """The one-line account --fix / --diff ends with."""
        from .output.counts import plural

        count, changed = len(self.remaining), len(self.changed)
        if self.write and changed:
            return f"Fixed {plural(self.fixed, 'finding')} in {plural(changed, 'file')}; {count} remaining."
        if changed:
            return f"Would fix {plural(self.fixed, 'finding')} in {plural(changed, 'file')}; {count} would remain."
        return f"Nothing to fix; {count} remaining."


def fix_paths(paths: Sequence[str], options: LintOptions | None = None, *, unsafe: bool = False,
              write: bool = True, target: str = "nnx", report: LintReport | None = None,
              stdin: tuple[str, str] | None = None) -> FixRun:
    """Rewrite each file under `paths` that has a fix to apply (safe ones; unsafe ones too
    with `unsafe`), writing it atomically (or, with write=False, only giving its diff), and
    re-lint it so the run's report holds what remains. `report`: an existing lint of the
    same paths with the same options (the CLI's, made with a progress bar), not re-done.

    The rewrite converts whole files, so a file in which a fixable finding is suppressed or
    not selected is left alone (skipped, with the reason) rather than converted against the
    user's say. `report` is updated in place."""
    from .lint import lint_source
    from .output.counts import plural
    from .output.diff import unified_diff
    from .project import filter_file
    from .rewrite import rewrite_source

    options = options if options is not None else LintOptions()
    if report is None:
        report = lint_paths(paths, options, stdin=stdin)
    run = FixRun(report, write=write)
    levels = ("safe", "unsafe") if unsafe else ("safe",)
    for index, file in enumerate(report.files):
        wanted = [f for f in file.findings if f.fixable and f.fix in levels]
        if not wanted or file.source is None:
            continue
        source = file.source
        try:
            raw = guarded(file.path, "linting", lint_source, source, file.path)
        except SourceError as error:
            report.errors.append(error)
            continue
        hidden = {(f.line, f.col, f.code) for f in raw} - {(f.line, f.col, f.code) for f in file.findings}
        blocked = [f for f in raw if (f.line, f.col, f.code) in hidden and f.fixable and f.fix in levels
                   and f.code != "PTJ001"]
        if blocked:
            run.files.append(FileFix(file.path, skipped=(
                f"{plural(len(blocked), 'fixable finding')} in it {'is' if len(blocked) == 1 else 'are'} "
                "suppressed or not selected, and the rewrite converts whole files "
                f"(first: line {blocked[0].line}, {blocked[0].code})")))
            continue
        try:
            result = guarded(file.path, "fixing", lambda: rewrite_source(source, file.path, target=target,
                                                                                unsafe_fixes=unsafe))
        except SourceError as error:
            report.errors.append(error)
            continue
        if result.error or not result.changed:
            continue
        assert result.new_source is not None
        if write:
            try:
                write_atomic(file.path, result.new_source)
            except SourceError as error:
                report.errors.append(error)
                continue
        run.files.append(FileFix(file.path, diff=unified_diff(source, result.new_source, file.path), written=write))
        try:
            remaining = guarded(file.path, "linting", lint_source, result.new_source, file.path)
        except SourceError as error:
            report.errors.append(error)
            continue
        after = filter_file(file.path, result.new_source, remaining, options)
        run.fixed += max(0, len(file.findings) - len(after.findings))
        report.files[index] = after
    return run


# ---------------------------------------------------------------------------------- lint --add-noqa


@dataclass
class NoqaRun:
    added: int = 0  # lines that got (or extended) a directive
    files: list[str] = field(default_factory=list)  # the files written
    skipped: list[tuple[str, int, str]] = field(default_factory=list)  # (path, line, why) left without one
    errors: list[SourceError] = field(default_factory=list)


def add_noqa(report: LintReport, findings: Sequence[Finding] | None = None) -> NoqaRun:
    """Add a `# noqa: CODES` directive on each line with one of `findings` (default: the
    report's), writing each changed file atomically. A file that cannot be written is an
    error in the run (and in `report.errors`); the other files go on."""
    from .suppress import add_noqa as add_to_source

    run = NoqaRun()
    by_file: dict[str, dict[int, set[str]]] = {}
    for finding in report.findings if findings is None else findings:
        by_file.setdefault(finding.path, {}).setdefault(finding.line, set()).add(finding.code)
    files = report.by_path()
    for path, lines in sorted(by_file.items()):
        file = files.get(path)
        if file is None or file.source is None:
            continue
        result = add_to_source(file.source, lines)
        run.skipped += [(path, line, why) for line, why in result.skipped]
        if not result.added:
            continue
        try:
            write_atomic(path, result.source)
        except SourceError as error:
            run.errors.append(error)
            report.errors.append(error)
            continue
        run.added += result.added
        run.files.append(path)
    return run


# ---------------------------------------------------------------------------------- rewrite --verify


@dataclass
class VerifyOutcome:
    """One rewritten file's verify: a report (passed or not), an error, or no settings."""
    path: str
    report: Any = None  # verify.VerifyReport when it ran
    error: str | None = None  # why it could not run (VerifyError's message)

    @property
    def ran(self) -> bool:
        return self.report is not None

    @property
    def passed(self) -> bool:
        return self.report is not None and bool(self.report.passed)

    @property
    def unset(self) -> bool:  # no [tool.pt2jax.verify] entry (and no --model): not verified
        return self.report is None and self.error is None


def verify_settings(config: Any, path: str, model: str | None = None, init: str = "",
                    inputs: Sequence[str] = (), atol: float | None = None, rtol: float | None = None) -> dict | None:
    """run_verify's keyword arguments for one file: from `model`/`inputs` when given (every
    file), else from the file's [tool.pt2jax.verify] entry, tolerances overridden. None: no settings."""
    if model:
        return {"model": model, "init": init, "inputs": list(inputs), "atol": atol, "rtol": rtol}
    entry = config.verify_entry(path) if config is not None else None
    if entry is None:
        return None
    settings = entry.kwargs()
    if atol is not None:
        settings["atol"] = atol
    if rtol is not None:
        settings["rtol"] = rtol
    return settings


def _spill(folder: str, name: str, text: str) -> str:
    """Write `text` to a fresh file named like `name` inside `folder`."""
    sub = tempfile.mkdtemp(dir=folder)
    path = os.path.join(sub, os.path.basename(name))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def verify_rewritten(run: RewriteRun, config: Any = None, *, model: str | None = None, init: str = "",
                     inputs: Sequence[str] = (), atol: float | None = None,
                     rtol: float | None = None, isolate: bool = True, timeout: float | str | None = "auto",
                     memory_limit: int | str | None = "auto") -> list[VerifyOutcome]:
    """Run verify on each changed file of `run` that has settings (see verify_settings),
    comparing its original text with its converted text wherever each now lives (a file
    rewritten in place has its original spilled to a temporary file; one not written has
    its converted text spilled). torch and jax are imported only here, lazily. `isolate`
    (the default, as for `pt2jax verify`): each side in its own process, so a hang, a crash
    or an exit in the user's model is that file's error, not the end of the run. "auto": `pt2jax
    verify`'s defaults (600 s, half the machine's memory per side); None: no limit."""
    from .verify import VerifyError, run_verify
    from .verify.isolate import DEFAULT_TIMEOUT, default_memory_limit
    from .verify.weightmap import WeightMap

    timeout = DEFAULT_TIMEOUT if timeout == "auto" else timeout
    memory_limit = default_memory_limit() if memory_limit == "auto" else memory_limit

    outcomes = []
    table = config.settings.get("weights") if config is not None and config.pyproject is not None else None
    with tempfile.TemporaryDirectory(prefix="pt2jax-") as tmp:
        for job in run.changed:
            settings = verify_settings(config, job.path, model, init, inputs, atol, rtol)
            if settings is None:
                outcomes.append(VerifyOutcome(job.path))
                continue
            assert job.result is not None and job.result.new_source is not None
            original = _spill(tmp, job.path, job.result.source) if job.written == job.path else job.path
            converted = job.written or _spill(tmp, job.path, job.result.new_source)
            try:
                if table is not None:  # [tool.pt2jax.weights]: mappings for layers the tables lack
                    settings["weights_map"] = WeightMap.from_table(table, f"{config.pyproject}: [tool.pt2jax.weights]")
                report = run_verify(original, converted, **settings, isolate=isolate, timeout=timeout,
                                    memory_limit=memory_limit)
                outcomes.append(VerifyOutcome(job.path, report=report))
            except VerifyError as error:
                outcomes.append(VerifyOutcome(job.path, error=str(error)))
    return outcomes


# ---------------------------------------------------------------------------------- weights


def split_module(module: str) -> tuple[str, str]:
    """`converted.py:Net` -> ("converted.py", "Net") (ValueError when there is no `:NAME`)."""
    path, sep, name = module.rpartition(":")
    if not sep or not path or not name:
        raise ValueError(f"--module {module!r}: expected FILE.py:NAME, e.g. jax_model.py:Net")
    return path, name


def convert_weights(checkpoint: str, *, module: str, original: str, out: str, init: str = "",
                    target: str | None = None, fmt: str | None = None, prefixes: Sequence[str] = (),
                    weights_map: str | None = None, inputs: Sequence[str] = ()) -> Any:
    """`pt2jax weights`: the torch state_dict `checkpoint` into `module`'s (FILE.py:NAME of the
    converted file) state, mapped as verify maps weights (the model NAME of `original` gives the
    torch module tree), written to `out`. `target` None: read off the file (a Linen file's
    variables come from model.init on example `inputs`, verify's --input specs). Returns verify.weights.WeightsResult; raises
    verify.VerifyError (nothing written) when the checkpoint does not fit."""
    from .verify import VerifyError, convert_checkpoint
    from .verify.weightmap import load_weights_map

    try:
        converted, model = split_module(module)
    except ValueError as exc:
        raise VerifyError(str(exc)) from None
    return convert_checkpoint(checkpoint, original=original, converted=converted, model=model, init=init,
                              out=out, target=target, fmt=fmt, prefixes=tuple(prefixes),
                              weights_map=load_weights_map(converted, weights_map), inputs=tuple(inputs))
