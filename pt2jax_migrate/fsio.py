"""File I/O: read sources exactly and write them atomically (the one writer every command uses).

Text is never re-encoded behind the user's back: files are read as bytes and decoded as
Python does (UTF-8, or the encoding a PEP 263 coding cookie names; CRLF line endings and a
BOM are kept), and Python files are written back in the encoding their text declares (the
BOM, or the cookie). A write goes to a temporary file in the target's folder and is renamed over
it, so a crash leaves either the old file or the new one, never half of either.
"""

from __future__ import annotations

import ast
import codecs
import io
import os
import re
import stat
import tempfile
import time
import tokenize
from collections.abc import Iterable, Iterator

from .model import SourceError


# files larger than this are refused with one line, not converted for minutes (the rewrite
# of a multi-megabyte generated file costs minutes and gigabytes); --max-file-size changes it
DEFAULT_MAX_SOURCE_BYTES = 2_000_000


def default_size_limit() -> int:
    """$PT2JAX_MAX_FILE_SIZE (bytes, or like 5M), else DEFAULT_MAX_SOURCE_BYTES."""
    try:
        return parse_size(os.environ.get("PT2JAX_MAX_FILE_SIZE") or str(DEFAULT_MAX_SOURCE_BYTES))
    except ValueError:
        return DEFAULT_MAX_SOURCE_BYTES


def set_size_limit(limit: int | None) -> None:
    """The largest file read_source accepts, in bytes (0: no limit; None: the default).
    Worker processes get it from files.pool."""
    global _max_source_bytes
    _max_source_bytes = default_size_limit() if limit is None else limit


def size_limit() -> int:
    return _max_source_bytes


def parse_size(text: str) -> int:
    """`2M`, `500k`, `1500000`: bytes (k and M are powers of 1000). ValueError otherwise."""
    value = text.strip().lower().removesuffix("b")
    scale = 1
    if value and value[-1] in "km":
        scale = 1000 if value[-1] == "k" else 1_000_000
        value = value[:-1]
    number = float(value)
    if number < 0:
        raise ValueError(text)
    return int(number * scale)


_max_source_bytes = default_size_limit()


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.3g} MB"


def read_source(path: str | os.PathLike) -> str:
    """The file's text, exactly. SourceError (naming the file, and the line for a decoding
    error) when it is missing, unreadable, over the size limit or not in its encoding."""
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
        size = os.fstat(fd).st_size
        if _max_source_bytes and size > _max_source_bytes:
            os.close(fd)
            raise SourceError(name, f"is {_megabytes(size)}, over the size limit of {_megabytes(_max_source_bytes)} "
                                    "(--max-file-size); skipped")
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise SourceError(name, f"cannot read: {error.strerror or error}") from None
    encoding = source_encoding(data, name)
    if encoding != "utf-8":
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            raise SourceError(name, f"not valid {encoding} (the encoding its coding cookie declares)", line) from None
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


def source_encoding(data: bytes, name: str = "<string>") -> str:
    """The encoding Python reads `data` in: UTF-8 (with or without a BOM) unless a PEP 263
    coding cookie on the first two lines names another one. SourceError for an unknown one."""
    if data.startswith(codecs.BOM_UTF8) or b"coding" not in data[:1024]:
        return "utf-8"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:  # an unknown encoding, or a cookie that contradicts a BOM
        raise SourceError(name, f"bad coding cookie: {error.msg if hasattr(error, 'msg') else error}") from None
    encoding = codecs.lookup(encoding).name
    return "utf-8" if encoding in ("utf-8", "utf-8-sig") else encoding


def encode_source(text: str, name: str = "<string>") -> bytes:
    """`text` as the bytes of a Python file: in the encoding its coding cookie declares
    (UTF-8 by default; a leading U+FEFF is written as the BOM it was read from)."""
    encoding = "utf-8"
    if not text.startswith("\ufeff") and "coding" in text[:1024]:
        head = "".join(text.splitlines(keepends=True)[:2])
        encoding = source_encoding(head.encode("utf-8", "surrogatepass"), name)
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as error:
        line = text.count("\n", 0, error.start) + 1
        raise SourceError(name, f"cannot write {text[error.start]!r} in the file's declared encoding {encoding}; "
                                "change its coding cookie to utf-8", line) from None


def check_parses(text: str, path: str = "<string>") -> None:
    """SourceError unless `text` is valid Python. Deeply nested text (a sum of thousands of
    terms) is parsed on a thread with a big stack (files.guard.run_deep), as it was converted."""
    body = text.removeprefix("\ufeff")
    try:
        try:
            ast.parse(body, filename=path)
        except RecursionError:
            from .files.guard import run_deep

            run_deep(ast.parse, body, path)
    except RecursionError:
        raise SourceError(path, "refusing to write text too deeply nested to check that it parses") from None
    except SyntaxError as error:
        raise SourceError(path, f"refusing to write text that does not parse: {error.msg}", error.lineno) from None
    except ValueError as error:
        raise SourceError(path, f"refusing to write text that does not parse: {error}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, text: str, mode: int | None = None) -> None:
    """Replace (or create) the Python file `path` with `text`, atomically, keeping its mode
    (or giving it `mode`: `--out` copies the input's). Refuses (SourceError) text that does not
    parse; on any failure the target is untouched."""
    check_parses(text, os.fspath(path))
    write_bytes_atomic(path, encode_source(text, os.fspath(path)), mode)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace (or create) `path` with `text` (any text: reports, baselines) as UTF-8, atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    """Replace (or create) `path` with `data`, atomically: a temp file in the same folder,
    fsync, then os.replace; the file's mode is kept (or set to `mode`)."""
    name = os.fspath(path)
    target = os.path.realpath(name)  # write through a symlink, do not replace it
    folder = os.path.dirname(target) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode) if mode is None else mode
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=TEMP_SUFFIX)
    except OSError as error:
        raise SourceError(name, f"cannot write: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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


TEMP_SUFFIX = ".pt2jax-tmp"
_OUR_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}" + re.escape(TEMP_SUFFIX) + "$")  # mkstemp's names (above)
STALE_TEMP_SECONDS = 60  # a live write lasts milliseconds; older temp files were left by a killed run


def clean_stale_temps(folder: str) -> list[str]:
    """Remove the temp files of ours (`.NAME.XXXXXXXX.pt2jax-tmp`) an interrupted run left in
    `folder`; returns their paths. Young ones are left alone (another run may be writing)."""
    removed = []
    try:
        entries = list(os.scandir(folder or "."))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.endswith(TEMP_SUFFIX) or not _OUR_TEMP.match(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat().st_mtime < STALE_TEMP_SECONDS:
                continue
            os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:
            continue
    return removed


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
