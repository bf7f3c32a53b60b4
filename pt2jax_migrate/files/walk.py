"""The one file walker: which files `lint`, `lint --fix` and `rewrite` look at.

Rules (the same for every command):
* a path given directly is taken as is (any name), unless `exclude` matches it;
* a folder is walked in sorted order for `*.py` files, skipping hidden folders,
  __pycache__, virtual environments, site-packages, build and dist, what `exclude` matches
  and, with `respect_gitignore`, what .gitignore files say (see selection.py for the
  pattern semantics; `exclude` is relative to the pyproject's folder);
* a symlinked folder is walked only when it points inside the folder given and was not
  walked already (no loops); a symlinked file that points outside it is read but marked
  `outside`, and an in-place rewrite does not write through it;
* anything that is not a regular file (FIFO, device, socket) is an error naming it, and is
  never opened, so a walk never hangs;
* a missing path is an error; each file is listed once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..model import SourceError
from ..selection import SKIP_DIRS, GitIgnore, PatternList, git_root


@dataclass(frozen=True)
class SourceFile:
    path: str  # as found (normalised; relative when the path given was)
    given: str  # the command-line path it was found under
    relative: str  # its path under `given` (its own name for a file given directly)
    outside: bool = False  # a symlink out of `given`: read it, never write through it


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    excluded: int = 0  # files left out by `exclude`

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]


class AnyOf:
    """Pattern lists (the config's, the command line's): a path matched by any is matched."""

    def __init__(self, *lists: PatternList | None):
        self.lists = [x for x in lists if x is not None]

    def matches(self, path, is_dir: bool = False) -> bool:
        return any(x.matches(path, is_dir) for x in self.lists)


@dataclass(frozen=True)
class FileRules:
    """Which files to take: `exclude` patterns, .gitignore, and the folder patterns are
    relative to (the pyproject's, else the current one)."""

    exclude: PatternList | AnyOf | None = None
    respect_gitignore: bool = True
    root: str | None = None

    @classmethod
    def build(cls, config=None, *, exclude: Sequence[str] = (), respect_gitignore: bool | None = None) -> FileRules:
        """From a config.Config (may be None), then command-line values: `exclude` adds to
        the config's, `respect_gitignore` (when not None) replaces it."""
        root = os.getcwd()
        config_exclude = None
        gitignore = True
        if config is not None and config.pyproject is not None:
            root = str(config.root)
            if config.exclude:
                config_exclude = PatternList.from_lines(root, config.exclude)
            gitignore = config.respect_gitignore
        if respect_gitignore is not None:
            gitignore = respect_gitignore
        cli_exclude = PatternList.from_lines(os.getcwd(), exclude) if exclude else None
        merged = AnyOf(config_exclude, cli_exclude) if config_exclude or cli_exclude else None
        return cls(merged, gitignore, root)


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def not_regular(name: str, mode: int) -> SourceError:
    kind = next((text for test, text in _KINDS if test(mode)), "not a regular file")
    return SourceError(name, f"is {kind}, not a regular file; skipped")


def _skip_dir(name: str) -> bool:
    return name.startswith(".") or name in SKIP_DIRS


def _inside(real: str, real_top: str) -> bool:
    return real == real_top or real.startswith(real_top.rstrip(os.sep) + os.sep)


def _walk(top: str, rules: FileRules, found: Discovery) -> list[SourceFile]:
    files: list[SourceFile] = []
    real_top = os.path.realpath(top)
    walked = {real_top}
    ignore = None
    if rules.respect_gitignore:
        ignore = GitIgnore.above(top, git_root(top) or rules.root)
    stack: list[tuple[str, GitIgnore | None]] = [(top, ignore)]
    while stack:
        folder, ignore = stack.pop()
        if ignore is not None:
            ignore = ignore.entering(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            found.errors.append(SourceError(folder, f"cannot list: {error.strerror or error}"))
            continue
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
                is_link = entry.is_symlink()
            except OSError:
                continue
            full = os.path.normpath(os.path.join(folder, entry.name))
            if is_dir and _skip_dir(entry.name):
                continue
            if not is_dir and not entry.name.endswith(".py"):
                continue
            if ignore is not None and ignore.ignored(full, is_dir):
                continue
            if rules.exclude is not None and rules.exclude.matches(full, is_dir):
                found.excluded += 0 if is_dir else 1
                continue
            real = os.path.realpath(full) if is_link else None
            if is_dir:
                if real is not None and (not _inside(real, real_top) or real in walked):
                    continue  # a link out of the tree, or back into it (a loop)
                walked.add(real or os.path.realpath(full))
                subfolders.append((full, ignore))
                continue
            try:
                mode = entry.stat().st_mode
            except OSError:
                found.errors.append(SourceError(full, "is a broken symlink; skipped"))
                continue
            if not stat.S_ISREG(mode):
                found.errors.append(not_regular(full, mode))
                continue
            outside = real is not None and not _inside(real, real_top)
            files.append(SourceFile(full, top, os.path.relpath(full, top), outside))
        stack.extend(reversed(subfolders))
    files.sort(key=lambda f: f.path)
    return files


def discover(paths: Iterable[str | os.PathLike], rules: FileRules | None = None) -> Discovery:
    """The files under `paths` by the rules above; errors for what is missing or not a
    regular file (the other paths are still walked)."""
    rules = rules or FileRules()
    found = Discovery()
    seen: set[str] = set()
    for path in paths:
        name = os.fspath(path)
        try:
            mode = os.stat(name).st_mode
        except FileNotFoundError:
            message = "is a broken symlink" if os.path.islink(name) else "no such file or directory"
            found.errors.append(SourceError(name, message))
            continue
        except OSError as error:
            found.errors.append(SourceError(name, f"cannot read: {error.strerror or error}"))
            continue
        if stat.S_ISDIR(mode):
            files = _walk(name, rules, found)
        elif not stat.S_ISREG(mode):
            found.errors.append(not_regular(name, mode))
            continue
        elif rules.exclude is not None and rules.exclude.matches(name):
            found.excluded += 1
            continue
        else:
            files = [SourceFile(name, name, os.path.basename(name))]
        for file in files:
            key = os.path.normpath(os.path.abspath(file.path))
            if key not in seen:
                seen.add(key)
                found.files.append(file)
    unique: dict[str, SourceError] = {}  # a path named and also walked is reported once
    for error in found.errors:
        unique.setdefault(str(error), error)
    found.errors = list(unique.values())
    return found


def discover_files(paths: Iterable[str | os.PathLike], *, exclude: PatternList | None = None,
                   respect_gitignore: bool = True, root: str | os.PathLike | None = None,
                   ) -> tuple[list[str], list[SourceError], int]:
    """`discover` as (files, errors, number of files excluded)."""
    found = discover(paths, FileRules(exclude, respect_gitignore, os.fspath(root) if root is not None else None))
    return found.paths, found.errors, found.excluded
