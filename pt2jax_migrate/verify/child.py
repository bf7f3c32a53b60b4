"""The child process of an isolated verify: `python -m pt2jax_migrate.verify.child SIDE IN OUT DUMP`.

SIDE is "torch" or "jax" (sides.TorchSide / sides.JaxSide), or "train" (sides.TrainSide, both
frameworks: `verify --train`). The child imports its framework at once (so the two children
of a model verify import in parallel), then serves requests until told to stop or its
pipe closes: each request is a length-prefixed pickle (method, args, kwargs) read from fd IN,
each reply a length-prefixed pickle written to fd OUT:

* ("ok", result, timings) - result holds numpy arrays and plain data only;
* ("error", message) - a VerifyError (it names the user's file and line);
* ("exception", message) - anything else the user's code raised, with the innermost line of
  the user's file in the traceback.

The user's prints go to stderr (fd 1 is pointed at fd 2), so they cannot garble the replies.
A fatal signal (segfault, abort) and SIGUSR1 (sent by the parent on a timeout or over the
memory limit) dump every thread's Python stack to the file DUMP, where the parent finds the
user's line. The child dies with its parent (PR_SET_PDEATHSIG). The JAX child keeps JAX's
persistent compilation cache (_compilation_cache), which makes a repeated verify fast.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import pickle
import signal
import struct
import sys
import time
import traceback

_HEADER = struct.Struct("<Q")


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int):
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return _read_exact(fd, size)


def write_message(fd: int, payload: bytes) -> None:
    data = _HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the parent still kills the process group
        pass


def _compilation_cache() -> None:
    """JAX's persistent compilation cache, so a second verify (of this model or one sharing its
    layer shapes) reuses every compiled op: PT2JAX_JAX_CACHE names the folder (default
    ~/.cache/pt2jax/jax; "off": none); the user's own JAX_COMPILATION_CACHE_DIR wins."""
    folder = os.environ.get("PT2JAX_JAX_CACHE", "")
    if folder.lower() == "off" or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "pt2jax", "jax")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    # verify compiles many small programs (each eager op is one): cache them all
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def _user_where(exc: BaseException, paths: tuple[str, ...]) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in paths and f.lineno]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def main(argv: list[str]) -> None:
    side_name, fd_in, fd_out, dump = argv[0], int(argv[1]), int(argv[2]), argv[3]
    _die_with_parent()
    os.dup2(2, 1)  # user prints go to stderr
    dump_file = open(dump, "w")
    faulthandler.enable(dump_file, all_threads=True)
    faulthandler.register(signal.SIGUSR1, dump_file, all_threads=True)
    start = time.perf_counter()
    if side_name in ("torch", "train"):
        importlib.import_module("torch")  # timed: the import is what this line measures
    if side_name in ("jax", "train"):
        _compilation_cache()
        importlib.import_module("jax")  # timed, as torch's
    from . import sides

    side = {"torch": sides.TorchSide, "jax": sides.JaxSide, "train": sides.TrainSide}[side_name]()
    side.timings[f"import {'torch and jax' if side_name == 'train' else side_name}"] = time.perf_counter() - start
    from .report import VerifyError

    while True:
        try:
            method, args, kwargs = pickle.loads(read_message(fd_in))
        except EOFError:
            return
        if method == "exit":
            return
        try:
            result = getattr(side, method)(*args, **kwargs)
            times = os.times()  # this child's CPU so far (all threads): the load-independent cost
            reply = ("ok", result, {**side.take_timings(), f"{side_name} child CPU": times.user + times.system})
        except VerifyError as exc:
            reply = ("error", str(exc))
        except BaseException as exc:  # the user's code: an exception, SystemExit, ...
            where = _user_where(exc, getattr(side, "paths", ()) or (getattr(side, "path", ""),))
            reply = ("exception", f"{where + ': ' if where else ''}{type(exc).__name__}: {exc}")
        try:
            payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            payload = pickle.dumps(("exception", f"cannot send the result back: {type(exc).__name__}: {exc}"))
        for stream in (sys.stdout, sys.stderr):  # the parent kills this process when done
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):  # replaced or closed by the user's code
                pass
        write_message(fd_out, payload)


if __name__ == "__main__":
    main(sys.argv[1:])
