"""One file's work must never take the run down.

`guarded(path, what, fn, *args)` calls `fn(*args)`; a SourceError passes through, and any
other failure (an engine bug, MemoryError) becomes a SourceError naming the file, so the
other files are still done. A RecursionError (a valid but deeply nested input: a sum of
thousands of terms, a method chain hundreds of calls long) is first retried on a thread
with a large stack and a high recursion limit, where the recursive walkers (ast's, ours,
libcst's) have room; only if that fails too does it become the file's error.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from ..model import SourceError

T = TypeVar("T")

DEEP_STACK_BYTES = 512 * 1024 * 1024  # virtual: only the pages a deep input touches are used
DEEP_RECURSION_LIMIT = 200_000
_deep_lock = threading.Lock()  # the stack size and recursion limit are process-wide settings


def run_deep(fn: Callable[..., T], *args) -> T:
    """fn(*args) on a fresh thread with a big stack and a raised recursion limit."""
    outcome: list = []

    def body() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as error:  # handed to the caller's thread
            outcome.append((False, error))

    with _deep_lock:
        old_stack = threading.stack_size()
        old_limit = sys.getrecursionlimit()
        try:
            threading.stack_size(DEEP_STACK_BYTES)
            sys.setrecursionlimit(max(old_limit, DEEP_RECURSION_LIMIT))
            thread = threading.Thread(target=body, name="pt2jax-deep", daemon=True)
            thread.start()
        finally:
            threading.stack_size(old_stack)
        try:
            thread.join()
        finally:
            sys.setrecursionlimit(old_limit)
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def guarded(path: str, what: str, fn: Callable[..., T], *args) -> T:
    """fn(*args), its failures turned into one SourceError for `path` ("internal error while
    `what`: ..."), a RecursionError retried with a deep stack first."""
    try:
        try:
            return fn(*args)
        except RecursionError:
            return run_deep(fn, *args)
    except SourceError:
        raise
    except RecursionError:
        raise SourceError(path, f"too deeply nested for {what} (RecursionError even with a "
                                f"{DEEP_STACK_BYTES >> 20} MB stack); split the expression") from None
    except MemoryError:
        raise SourceError(path, f"out of memory while {what}") from None
    except Exception as error:  # an engine bug must not stop the other files
        raise SourceError(path, f"internal error while {what}: {type(error).__name__}: {error}") from error
