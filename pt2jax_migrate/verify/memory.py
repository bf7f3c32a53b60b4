"""Keeping `pt2jax weights` to one copy of the model in memory (Linux with glibc; no-ops elsewhere).

Two things make a process's resident memory outgrow what it holds:
- glibc's malloc raises its mmap threshold when a large block is freed, so later 4 MB arrays
  come from the heap and stay there once freed (freeing a 250 MB model returned 30 MB of it);
  `return_freed_memory` fixes the threshold, so large blocks are mmap'd and given back on free.
- pages of a memory-mapped checkpoint stay resident (and counted) once read, though the file
  holds them; `drop_mapped_pages` gives them back once their tensors are converted
  (madvise(MADV_DONTNEED) on the read-only mappings of that file: read again from the file if
  touched again, so nothing is lost).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
_MADV_DONTNEED = 4
_THRESHOLD = 256 * 1024


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def return_freed_memory() -> bool:
    """Blocks of 256 KB and more are mmap'd from now on (freed: back to the system)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))


def mapped_ranges(path: str) -> list[tuple[int, int, str]]:
    """(start, end, permissions) of this process's mappings of the file `path`."""
    real = os.path.realpath(path)
    out = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].rstrip("\n") == real:
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    out.append((start, end, parts[1]))
    except OSError:
        return []
    return out


def drop_mapped_pages(path: str) -> int:
    """Drop this process's resident pages of the memory-mapped file `path` (the file keeps the
    data; a later read maps it in again). Bytes of mappings advised."""
    libc = _libc()
    if libc is None:
        return 0
    done = 0
    for start, end, perms in mapped_ranges(path):
        if "w" in perms and perms.endswith("s"):
            continue  # a shared writable mapping is never ours to drop
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED) == 0:
            done += end - start
    return done
