"""Which codes to report, and which files to look at.

Rule selection (`--select`, `--extend-select`, `--ignore`, and the same keys in
`[tool.pt2jax]`) works on code prefixes, as in ruff: `PTJ1` is every PTJ1xx code, `PTJ10`
every PTJ10x, `ALL` every code. Within one layer (the config, then the command line), the
more specific prefix wins and a tie goes to `ignore`: `--select PTJ1 --ignore PTJ104`
reports PTJ1xx but PTJ104, `--ignore PTJ1 --select PTJ102` reports PTJ102 alone of the
PTJ1xx codes. A layer that sets `select` starts over; one that only extends or ignores
changes what the previous layer chose. The default is `select = ["ALL"]`.

File patterns (`exclude`, the keys of `per-file-ignores`, and `.gitignore` files) use one
matcher, a documented subset of gitignore semantics:

* a pattern without a slash (`*_pb2.py`, `legacy`) matches a file or folder name at any depth;
* a pattern with a slash (`src/legacy/*.py`) is anchored at the folder the pattern belongs to
  (the pyproject.toml's folder for `exclude` and `per-file-ignores`, the .gitignore's folder
  for .gitignore lines); a leading `/` anchors without meaning anything else;
* a trailing `/` (`build/`) matches folders only; a folder that matches covers everything in it;
* `*` and `?` match within one path component, `[abc]` / `[!abc]` a character class,
  `**` any number of folders (`**/gen`, `gen/**`, `a/**/b`);
* `!pattern` re-includes what an earlier line excluded (the last matching line wins; as in
  git, a file inside an excluded folder cannot be re-included);
* blank lines and lines starting with `#` are skipped; `\\#` and `\\!` escape those characters.

Not supported: `.git/info/exclude`, git's global excludes file, trailing-space escapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


ALL = "ALL"
SKIP_DIRS = frozenset({"__pycache__", ".venv", "venv", "site-packages", "build", "dist"})


class SelectionError(ValueError):
    """An unknown code or prefix in --select/--ignore/--extend-select or the config."""


# ----------------------------------------------------------------------------- rule selection


def split_codes(values: Iterable[str] | str | None) -> list[str]:
    """`["PTJ1,PTJ302", "PTJ9"]` or `"PTJ1, PTJ302"` -> `["PTJ1", "PTJ302", "PTJ9"]` (upper case)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        for part in re.split(r"[,\s]+", str(value)):
            if part:
                out.append(part.upper())
    return out


def _specificity(selector: str) -> int:
    return 0 if selector == ALL else len(selector)


def matches(selector: str, code: str) -> bool:
    return selector == ALL or code.startswith(selector)


def check_selectors(selectors: Iterable[str], known: Iterable[str], where: str) -> None:
    known = sorted(known)
    for selector in selectors:
        if selector != ALL and not any(code.startswith(selector) for code in known):
            raise SelectionError(
                f"{where}: unknown rule code or prefix {selector!r} (codes: {', '.join(known)}; or ALL)"
            )


@dataclass(frozen=True)
class Layer:
    """One source of rule selection (the config or the command line)."""

    select: tuple[str, ...] | None = None  # None: keep what the previous layer chose
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def apply(self, enabled: set[str], known: Iterable[str]) -> set[str]:
        current = set(enabled) if self.select is None else set()
        steps = [(_specificity(s), 0, s) for s in (*(self.select or ()), *self.extend_select)]
        steps += [(_specificity(s), 1, s) for s in self.ignore]
        for _, is_ignore, selector in sorted(steps):
            chosen = {code for code in known if matches(selector, code)}
            if is_ignore:
                current -= chosen
            else:
                current |= chosen
        return current


def resolve_selection(layers: Sequence[Layer], known: Iterable[str]) -> frozenset[str]:
    """The enabled codes after the default (`ALL`) and each layer in turn."""
    known = list(known)
    enabled = set(known)
    for layer in layers:
        enabled = layer.apply(enabled, known)
    return frozenset(enabled)


# ----------------------------------------------------------------------------- path patterns


def _translate(pattern: str) -> str:
    """A gitignore-style glob (no leading `!`, no trailing `/`) as a regex body."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                before_ok = i == 0 or pattern[i - 1] == "/"
                after = pattern[i + 2:i + 3]
                if before_ok and after == "/":  # **/ : zero or more folders
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                if before_ok and after == "":  # trailing /** : everything inside
                    out.append(".*")
                    i += 2
                    continue
                out.append("[^/]*")  # ** inside a name is a plain *
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Pattern:
    text: str  # as written
    regex: re.Pattern
    negate: bool
    dir_only: bool

    @classmethod
    def parse(cls, line: str) -> Pattern | None:
        text = line.rstrip("\n\r")
        stripped = text.rstrip()
        if not stripped or stripped.startswith("#"):
            return None
        pattern = stripped
        negate = pattern.startswith("!")
        if negate:
            pattern = pattern[1:]
        elif pattern.startswith(("\\!", "\\#")):
            pattern = pattern[1:]
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if not pattern:
            return None
        anchored = "/" in pattern
        pattern = pattern.lstrip("/")
        body = _translate(pattern)
        regex = re.compile(("^" if anchored else "^(?:.*/)?") + body + "$", re.DOTALL)
        return cls(stripped, regex, negate, dir_only)

    def match(self, relative: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        return self.regex.match(relative) is not None


def _relative(path: str, base: str) -> str | None:
    """`path` relative to `base` with `/` separators, or None when it is not below it."""
    if path == base:
        return ""
    prefix = base.rstrip("/") + "/"
    if base == "/":
        prefix = "/"
    if not path.startswith(prefix):
        return None
    return path[len(prefix):]


def _posix(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path)).replace(os.sep, "/")


@dataclass
class PatternList:
    """Patterns read relative to one folder; the last matching one decides."""

    base: str  # absolute, posix
    patterns: list[Pattern] = field(default_factory=list)

    @classmethod
    def from_lines(cls, base: str | os.PathLike, lines: Iterable[str]) -> PatternList:
        parsed = [p for p in map(Pattern.parse, lines) if p is not None]
        return cls(_posix(base), parsed)

    def decide(self, path: str, is_dir: bool) -> bool | None:
        """True (matched), False (re-included by a `!` line) or None (no line matched)."""
        relative = _relative(path, self.base)
        if not relative:
            return None
        verdict = None
        for pattern in self.patterns:
            if pattern.match(relative, is_dir):
                verdict = not pattern.negate
        return verdict

    def matches(self, path: str | os.PathLike, is_dir: bool = False) -> bool:
        """Does this list match `path` or one of its folders below the base?"""
        full = _posix(path)
        relative = _relative(full, self.base)
        if relative is None:
            return False
        parts = relative.split("/")
        for i in range(1, len(parts)):
            if self.decide(self.base.rstrip("/") + "/" + "/".join(parts[:i]), True):
                return True
        return bool(self.decide(full, is_dir))


def read_gitignore(folder: str) -> PatternList | None:
    try:
        with open(os.path.join(folder, ".gitignore"), encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    found = PatternList.from_lines(folder, lines)
    return found if found.patterns else None


def git_root(start: str) -> str | None:
    folder = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


class GitIgnore:
    """The .gitignore files that apply while walking down from a folder."""

    def __init__(self, lists: list[PatternList] | None = None):
        self.lists = lists or []

    @classmethod
    def above(cls, folder: str, stop: str | None) -> GitIgnore:
        """.gitignore files of `folder`'s ancestors up to `stop` (the git root, else the
        project root), outermost first; `folder`'s own is added by the walk."""
        folder = os.path.abspath(folder)
        chain: list[str] = []
        if stop is not None:
            stop = os.path.abspath(stop)
            current = os.path.dirname(folder)
            if folder != stop and (folder + os.sep).startswith(stop.rstrip(os.sep) + os.sep):
                while True:
                    chain.append(current)
                    if current == stop or os.path.dirname(current) == current:
                        break
                    current = os.path.dirname(current)
        lists = [found for found in map(read_gitignore, reversed(chain)) if found is not None]
        return cls(lists)

    def ignored(self, path: str, is_dir: bool) -> bool:
        full = _posix(path)
        verdict = False
        for patterns in self.lists:
            decided = patterns.decide(full, is_dir)
            if decided is not None:
                verdict = decided
        return verdict

    def entering(self, folder: str) -> GitIgnore:
        found = read_gitignore(folder)
        return GitIgnore(self.lists + [found]) if found is not None else self
