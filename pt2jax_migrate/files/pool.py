"""Per-file work in worker processes, results back in the parent in input order.

`run_jobs(fn, items, jobs)` is `[fn(item) for item in items]`, spread over `jobs`
processes (0: one per CPU, and only when there are enough items to pay for starting them).
`fn` must be a module-level function whose results pickle, and must not raise (each caller
turns a file's failure into a value). Workers are started with `spawn` (the caller may
have threads that `fork` would deadlock) and ignore SIGINT: on Ctrl-C the parent cancels
what is queued, stops the workers and raises KeyboardInterrupt, having written nothing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

AUTO_MIN_ITEMS = 16  # with jobs=0 (auto), fewer items than this run in this process: spawning costs ~0.5 s


def worker_count(jobs: int, items: int) -> int:
    """How many processes `jobs` means for `items` items (1: run here)."""
    if jobs == 0:
        if items < AUTO_MIN_ITEMS:
            return 1
        jobs = os.cpu_count() or 1
    return max(1, min(jobs, items))


def _init_worker(size_limit: int) -> None:
    from ..fsio import set_size_limit

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    set_size_limit(size_limit)  # the parent's --max-file-size


def run_jobs(fn: Callable[[T], R], items: Sequence[T], jobs: int,
             each: Callable[[R], None] | None = None) -> list[R]:
    """[fn(item) for item in items] in `jobs` processes; `each` is called on every result as
    it arrives (in order), for progress."""
    each = each or (lambda result: None)
    workers = worker_count(jobs, len(items))
    if workers <= 1:
        results = []
        for item in items:
            results.append(fn(item))
            each(results[-1])
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from ..fsio import size_limit

    chunk = max(1, len(items) // (workers * 8))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(size_limit(),))
    try:
        results = []
        for result in pool.map(fn, items, chunksize=chunk):
            results.append(result)
            each(result)
    except KeyboardInterrupt:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # our own workers, by handle
            process.terminate()
        for process in processes:
            process.join(timeout=5)
        raise
    pool.shutdown(wait=True)
    return results
