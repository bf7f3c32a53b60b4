"""Per-file work in worker processes, results back in the parent in input order.

`run_jobs(fn, items, jobs)` is `[fn(item) for item in items]`, spread over `jobs`
processes, this one among them (0: one per CPU, and only when there are enough items to pay
for starting them).
`fn` must be a module-level function whose results pickle, and must not raise (each caller
turns a file's failure into a value). Workers are forked where that is safe (Linux, and
this process runs no other thread, native ones included: JAX's or a BLAS pool's; a lock
another thread held would stay locked in the child), else spawned, and ignore SIGINT: on Ctrl-C the parent cancels what is queued, stops
the workers and raises KeyboardInterrupt, having written nothing. A forked worker starts in
milliseconds with the modules and tables `prepare` loaded in the parent; a spawned one pays
~0.5 s to start an interpreter and import them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
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
             each: Callable[[R], None] | None = None, prepare: Callable[[], object] | None = None) -> list[R]:
    """[fn(item) for item in items] in `jobs` processes; `each` is called on every result as
    it arrives (in order), for progress; `prepare` is called here before workers start (what
    `fn` loads lazily: forked workers inherit it)."""
    each = each or (lambda result: None)
    workers = worker_count(jobs, len(items))
    if workers <= 1:
        results = []
        for item in items:
            results.append(fn(item))
            each(results[-1])
        return results
    if prepare is not None:
        try:
            prepare()
        except Exception:  # noqa: BLE001 - only a warm-up: a real failure shows on the files themselves
            pass
    return _ParallelRun(fn, items, workers - 1, each).run()


def start_method() -> str:
    """"fork" where a fork is safe (see the module's docstring), else "spawn". The threads are
    counted by the kernel (/proc/self/task), not by `threading`, which sees only Python's."""
    if not sys.platform.startswith("linux"):
        return "spawn"
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return "spawn"
    return "fork" if threads == 1 else "spawn"


_PENDING = object()


class _ParallelRun:
    """`children` worker processes take chunks from the front of the items while this process,
    the last of the `jobs`, takes single items from the back: it works while the children are
    still starting (~0.4 s each), which is what made -j2 slow on a few hundred files. A thread
    hands the results to `each` in order as soon as they and those before them are done, so
    the output streams even while this process is busy with an item of its own."""

    def __init__(self, fn: Callable[[T], R], items: Sequence[T], children: int, each: Callable[[R], None]):
        self.fn, self.items, self.children, self.each = fn, items, children, each
        self.results: list = [_PENDING] * len(items)
        self.chunk = max(1, len(items) // ((children + 1) * 8))
        self.front, self.back = 0, len(items)  # children claim [front, ...), this process (..., back)
        self.claims = threading.Lock()
        self.stop = threading.Event()
        self.failure: BaseException | None = None

    def _claim_chunk(self) -> tuple[int, int] | None:
        with self.claims:
            if self.front >= self.back:
                return None
            start = self.front
            # smaller chunks as the items run out, so no process is left with a long tail
            size = min(self.chunk, max(1, (self.back - start) // (2 * (self.children + 1))))
            self.front = start + size
            return start, self.front

    def _claim_item(self) -> int | None:
        with self.claims:
            if self.front >= self.back:
                return None
            self.back -= 1
            return self.back

    def run(self) -> list:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from ..fsio import size_limit

        method = start_method()
        pool = ProcessPoolExecutor(max_workers=self.children, mp_context=multiprocessing.get_context(method),
                                   initializer=_init_worker, initargs=(size_limit(),))
        if method == "fork":  # the first submit forks every worker: here, while this is the only thread
            pool.submit(int)
        feeder = threading.Thread(target=self._feed_and_hand_back, args=(pool,), daemon=True)
        try:
            feeder.start()
            while not self.stop.is_set():
                index = self._claim_item()
                if index is None:
                    break
                self.results[index] = self.fn(self.items[index])
            while feeder.is_alive():
                feeder.join(0.1)  # a timed join: Ctrl-C reaches this thread
        except BaseException:  # Ctrl-C (or a bug in `fn`, which must not raise): stop everything
            self.stop.set()
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:  # our own workers, by handle
                process.terminate()
            for process in processes:
                process.join(timeout=5)
            raise
        pool.shutdown(wait=True)
        if self.failure is not None:
            raise self.failure
        return self.results

    def _feed_and_hand_back(self, pool) -> None:
        """Keep two chunks queued per child, store what they return, call `each` in order."""
        from concurrent.futures import FIRST_COMPLETED, wait

        running: dict = {}  # future -> (start, stop)
        handed = 0
        try:
            while not self.stop.is_set():
                while len(running) < 2 * self.children:
                    claimed = self._claim_chunk()
                    if claimed is None:
                        break
                    running[pool.submit(_run_chunk, self.fn, self.items[claimed[0]:claimed[1]])] = claimed
                done, _ = wait(list(running), timeout=0.02, return_when=FIRST_COMPLETED) if running else ((), ())
                for future in done:
                    start, _stop = running.pop(future)
                    chunk_results = future.result()
                    self.results[start:start + len(chunk_results)] = chunk_results
                while handed < len(self.results) and self.results[handed] is not _PENDING:
                    self.each(self.results[handed])
                    handed += 1
                if handed == len(self.results):
                    return
                if not running:
                    self.stop.wait(0.02)  # only this process's items are left
        except BaseException as error:  # a broken pool, or `each` failing: the caller raises it
            self.failure = error
            self.stop.set()


def _run_chunk(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(item) for item in chunk]
