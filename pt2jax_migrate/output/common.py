"""Helpers every output format shares: paths as shown, file errors, source lines, finding
fingerprints, and whether a stream is a terminal. Nothing here imports rich, torch or jax."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import TextIO

from ..model import Finding, SourceError

_NEWLINES = re.compile(r"\r\n|\r|\n")  # how Python (and lint's columns) count lines


def is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def relative_path(path: str, root: str | os.PathLike | None = None) -> str | None:
    """`path` relative to `root` (default: the working folder) with forward slashes, or None
    when it lies outside the root (or on another drive)."""
    base = os.path.abspath(os.fspath(root) if root is not None else os.getcwd())
    try:
        rel = os.path.relpath(os.path.abspath(path), base)
    except ValueError:  # another drive on Windows
        return None
    rel = PurePath(rel).as_posix()
    if rel == ".." or rel.startswith("../"):
        return None
    return rel


def display_path(path: str, root: str | os.PathLike | None = None) -> str:
    """Relative to the root with forward slashes when inside it, else the absolute path."""
    rel = relative_path(path, root)
    return rel if rel is not None else PurePath(os.path.abspath(path)).as_posix()


def error_parts(error: SourceError | str) -> tuple[str | None, int | None, str]:
    """(path, line, message without the `path:line: ` prefix) of an error."""
    if isinstance(error, SourceError):
        message = getattr(error, "message", None)
        if isinstance(message, str):
            return error.path, error.line, message
        text = str(error)
        prefix = f"{error.path}:{error.line}: " if error.line else f"{error.path}: "
        return error.path, error.line, text[len(prefix):] if text.startswith(prefix) else text
    return None, None, str(error)


class SourceLines:
    """Source lines by path, split once per file."""

    def __init__(self, sources: Mapping[str, str] | None):
        self.sources = sources or {}
        self.cache: dict[str, list[str] | None] = {}

    def get(self, path: str, line: int) -> str | None:
        if path not in self.cache:
            text = self.sources.get(path)
            if text is None:
                text = self.sources.get(os.path.normpath(path))
            self.cache[path] = None if text is None else _NEWLINES.split(text.removeprefix("\ufeff"))
        lines = self.cache[path]
        if lines is None or not 1 <= line <= len(lines):
            return None
        return lines[line - 1]


def read_sources(paths: Iterable[str]) -> dict[str, str]:
    """{path: text} for each path that can be read as UTF-8 (the others are left out), for the
    `sources` argument: e.g. `read_sources({f.path for f in findings})`."""
    from ..fsio import read_source

    out: dict[str, str] = {}
    for path in paths:
        if path in out:
            continue
        try:
            out[path] = read_source(path)
        except SourceError:
            continue
    return out


def fingerprints(findings: Sequence[Finding], *, root: str | os.PathLike | None = None,
                 sources: Mapping[str, str] | None = None) -> list[str]:
    """A stable hash per finding: rule code + relative path + the stripped text of the source
    line (the message when the line is unknown) + which occurrence of that triple it is in
    the file. Moving code up or down keeps every fingerprint; editing the line changes it."""
    lines = SourceLines(sources)
    seen: dict[tuple[str, str, str], int] = {}
    out: list[str] = []
    for finding in findings:
        text = lines.get(finding.path, finding.line)
        text = " ".join(text.split()) if text is not None else f"message:{finding.message}"
        key = (finding.code, display_path(finding.path, root), text)
        occurrence = seen.get(key, 0) + 1
        seen[key] = occurrence
        digest = hashlib.sha256("\0".join(key).encode("utf-8")).hexdigest()[:32]
        out.append(f"{digest}:{occurrence}")
    return out
