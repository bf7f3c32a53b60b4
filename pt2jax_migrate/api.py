"""What the commands do, as functions returning plain data; cli.py only turns options into
calls here, and the data into output and an exit code.

    lint_paths(paths, options)        -> LintRun (project.LintReport): files, findings, errors
    rewrite_paths(paths, out=..., ...) -> RewriteRun: per-file results, where each went, errors

Both find their files with the one walker (files.walk.discover: `exclude`, .gitignore,
symlinks, non-regular files) and write with the one atomic writer (fsio.write_atomic).
Nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .files.walk import FileRules, SourceFile, discover
from .fsio import read_source, write_atomic
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


def rewrite_one(path: str, target: str = "nnx", unsafe_fixes: bool = True) -> FileResult:
    """One file's conversion (not written). SourceError when it cannot be read or parsed,
    naming the file and line; an engine bug becomes one too, so the other files go on."""
    from .rewrite import rewrite_source

    source = read_source(path)
    try:
        result = rewrite_source(source, path, target=target, unsafe_fixes=unsafe_fixes)
    except SourceError:
        raise
    except Exception as error:  # an engine bug must not stop the other files
        raise SourceError(path, f"internal error while rewriting: {type(error).__name__}: {error}") from error
    if result.error:
        raise SourceError(path, result.error)
    if result.new_source is None:
        result.new_source = source
    return result


def rewrite_paths(paths: Sequence[str], *, out: str | None = None, write: bool = True, target: str = "nnx",
                  unsafe_fixes: bool = True, rules: FileRules | None = None) -> RewriteRun:
    """Convert the files under `paths`: in place (`write`, only the files that change), into
    `out` (every file, at its path under the folder given), or not at all (`write=False`:
    --check and --diff). RewriteRefused, before anything is written, for an unsafe --out."""
    found = discover(paths, rules)
    run = RewriteRun(errors=list(found.errors), excluded=found.excluded)
    if out is not None:
        check_out(out, paths, found.files)
    for source_file in found.files:
        file = RewriteFile(source_file.path, source_file.relative, source_file.outside)
        run.files.append(file)
        try:
            file.result = result = rewrite_one(file.path, target, unsafe_fixes)
            assert result.new_source is not None
            if out is not None:
                destination = os.path.join(out, file.relative)
                write_atomic(destination, result.new_source)
                file.written = destination
            elif write and result.changed:
                if file.outside:
                    raise SourceError(file.path, f"is a symlink to {os.path.realpath(file.path)}, outside the "
                                      "folder given; not rewritten in place (name the file itself, or use --out)")
                write_atomic(file.path, result.new_source)
                file.written = file.path
        except SourceError as error:
            run.errors.append(error)
            if file.result is not None and file.written is None:
                file.result = None  # converted but not written: counted as an error, not as done
    return run
