"""File I/O: read sources exactly and write them atomically (the one writer every command uses).

Text is never re-encoded behind the user's back: files are read as bytes and decoded as
UTF-8 (CRLF line endings and a BOM are kept), and written back as UTF-8 bytes of exactly
the text given. A write goes to a temporary file in the target's folder and is renamed over
it, so a crash leaves either the old file or the new one, never half of either.
"""

from __future__ import annotations

import ast
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator

from .model import SourceError


def read_source(path: str | os.PathLike) -> str:
    """The file's text, exactly. SourceError (naming the file, and the line for a decoding
    error) when it is missing, unreadable or not UTF-8."""
    name = os.fspath(path)
    try:
        # non-blocking, then checked: a FIFO or a device is refused, never waited on
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise SourceError(name, "no such file") from None
    except IsADirectoryError:
        raise SourceError(name, "is a directory, not a file") from None
    except OSError as error:
        raise SourceError(name, f"cannot read: {error.strerror or error}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise SourceError(name, "is a directory, not a file")
            from .files.walk import not_regular

            raise not_regular(name, mode)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise SourceError(name, f"cannot read: {error.strerror or error}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        line_start = data.rfind(b"\n", 0, error.start) + 1
        column = error.start - line_start + 1
        bad = data[error.start:error.start + 1].hex()
        raise SourceError(
            name, f"not valid UTF-8 (byte 0x{bad} at column {column}); pt2jax reads UTF-8 sources only", line
        ) from None


def check_parses(text: str, path: str = "<string>") -> None:
    """SourceError unless `text` is valid Python."""
    try:
        ast.parse(text.removeprefix("\ufeff"), filename=path)
    except SyntaxError as error:
        raise SourceError(path, f"refusing to write text that does not parse: {error.msg}", error.lineno) from None
    except ValueError as error:
        raise SourceError(path, f"refusing to write text that does not parse: {error}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace (or create) the Python file `path` with `text`, atomically, keeping its mode.
    Refuses (SourceError) text that does not parse; on any failure the target is untouched."""
    check_parses(text, os.fspath(path))
    write_text_atomic(path, text)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace (or create) `path` with `text` (any text: reports, baselines), atomically:
    a temp file in the same folder, then os.replace; the file's mode is kept."""
    name = os.fspath(path)
    target = os.path.realpath(name)  # write through a symlink, do not replace it
    folder = os.path.dirname(target) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".pt2jax-tmp")
    except OSError as error:
        raise SourceError(name, f"cannot write: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException as error:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise SourceError(name, f"cannot write: {error.strerror or error}") from None
        raise


def iter_python_files(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """The walker's files (files.walk.discover) without .gitignore or `exclude`: files given
    directly, and `*.py` files found (sorted) under folders given. SourceError for the first
    path that is missing or not a regular file."""
    from .files.walk import FileRules, discover

    seen: set[str] = set()
    for path in paths:
        found = discover([path], FileRules(respect_gitignore=False))
        if found.errors:
            raise found.errors[0]
        for file in found.paths:
            key = os.path.normpath(file)
            if key not in seen:
                seen.add(key)
                yield file


def collect_python_files(paths: Iterable[str | os.PathLike]) -> tuple[list[str], list[SourceError]]:
    """iter_python_files over all paths, with what is missing returned as errors instead."""
    from .files.walk import FileRules, discover

    found = discover(paths, FileRules(respect_gitignore=False))
    return found.paths, found.errors
