"""`rewrite` streams: each file's result is handed over (api: on_file; CLI: printed) as soon as
it and every file before it in the output's order are done, not after the whole run; the
worker pool hands results back the same way with -jN. Proved with events, not timings: the
first file's line is there while the last file is still being converted."""

from __future__ import annotations

import os
import sys
import time

from pt2jax_migrate import api
from pt2jax_migrate.files.pool import run_jobs

TORCH = "import torch\n\n\ndef f{i}(x):\n    return torch.zeros({i} + 1).cuda() + x\n"


def _tree(root, names):
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(TORCH.format(i=i))
    return root


def _recording(monkeypatch, events, on_convert=None):
    convert = api.rewrite_one

    def recorded(path, *args, **kwargs):
        events.append(("convert", path))
        if on_convert is not None:
            on_convert(path)
        return convert(path, *args, **kwargs)

    monkeypatch.setattr(api, "rewrite_one", recorded)


def test_on_file_comes_as_each_file_is_done_in_the_order_of_the_output(tmp_path, monkeypatch):
    # walked in the order given (z.py first); findings are listed by path
    src = _tree(tmp_path / "src", ["b.py", os.path.join("b", "c.py"), "d.py"])
    z = _tree(tmp_path / "z", ["z.py"]) / "z.py"
    events: list[tuple[str, str]] = []
    _recording(monkeypatch, events)
    shown = []

    def on_file(file):
        events.append(("shown", file.path))
        shown.append(file)

    run = api.rewrite_paths([str(z), str(src)], write=False, on_file=on_file)
    by_path = sorted(f.path for f in run.files)
    assert run.files[0].path == str(z) and [f.path for f in run.files] != by_path
    assert events == [(kind, path) for path in by_path for kind in ("convert", "shown")]
    assert all(f.result is not None for f in shown)
    # each file's sorted lines, one file after another, are the run's findings as listed today
    assert [x for f in shown for x in sorted(f.result.findings)] == run.findings and len(run.findings) == 8
    events.clear()
    walk = api.rewrite_paths([str(z), str(src)], write=False, on_file=on_file, by_path=False)  # --diff's order
    assert events == [(kind, f.path) for f in walk.files for kind in ("convert", "shown")]


def test_cli_prints_the_first_file_before_the_last_is_converted(run, tmp_path, monkeypatch):
    names = [f"m{i}.py" for i in range(4)]
    src = _tree(tmp_path / "src", names)
    seen_then: list[str] = []

    def on_convert(path):
        if path.endswith(names[-1]):  # the CLI's output so far, while the last file is converted
            sys.stdout.flush()
            seen_then.append(sys.stdout.buffer.getvalue().decode())

    _recording(monkeypatch, [], on_convert)
    result = run("rewrite", "--check", "-j", "1", src)
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(src))]
    assert len(lines) == 8 and lines == sorted(lines, key=lambda x: x.split(":")[0])
    early = seen_then[0].splitlines()
    assert early == lines[:6]  # the three files before the last, all their lines, nothing more
    assert "would be rewritten" not in seen_then[0]  # the summary comes at the end


def _wait_for_marker(item: tuple[int, str]) -> bool:
    """The last item waits (up to a minute) for the marker the parent makes on the first result."""
    index, marker = item
    if index < 3:
        return True
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(marker):
            return True
        time.sleep(0.01)
    return False


def test_pool_hands_back_each_result_while_the_others_run(tmp_path):
    marker = str(tmp_path / "first-result-arrived")
    arrived = []

    def each(result):
        arrived.append(result)
        if len(arrived) == 1:
            open(marker, "w").close()

    results = run_jobs(_wait_for_marker, [(i, marker) for i in range(4)], 2, each)
    assert results == arrived == [True] * 4  # with results held back, the last would give up: False


def _slow_pid(index: int) -> tuple[int, int]:
    time.sleep(0.03)
    return index, os.getpid()


def test_pool_runs_items_here_and_in_the_workers_and_keeps_their_order():
    """With -j2 this process works too (from the back) while one worker (from the front) starts:
    every item once, in order, both processes busy."""
    arrived = []
    results = run_jobs(_slow_pid, list(range(120)), 2, arrived.append)
    assert results == arrived and [index for index, _ in results] == list(range(120))
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2
    assert results[0][1] != os.getpid() and results[-1][1] == os.getpid()


_PREPARED: list[int] = []  # filled by `prepare` in the parent: a forked worker has it, a spawned one not


def _prepared_here(index: int) -> tuple[int, int, int]:
    time.sleep(0.02)
    return index, os.getpid(), len(_PREPARED)


_FORK_SCRIPT = """
import os, sys, threading
sys.path.insert(0, {root!r})
from tests.test_rewrite_stream import _PREPARED, _prepared_here
from pt2jax_migrate.files.pool import run_jobs, start_method
if {with_thread} == "python":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
if {with_thread} == "native":  # a thread Python's threading module does not see (as JAX's are)
    import ctypes, ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    handle = ctypes.c_ulong()
    SLEEP = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(lambda _: libc.pause())
    libc.pthread_create(ctypes.byref(handle), None, SLEEP, None)
method = start_method()
results = run_jobs(_prepared_here, list(range(60)), 2, prepare=lambda: _PREPARED.append(1))
workers = {{count for _, pid, count in results if pid != os.getpid()}}
print(method, sorted(workers), [i for i, _, _ in results] == list(range(60)))
"""


def test_pool_forks_only_a_single_threaded_process_and_workers_inherit_what_prepare_loaded():
    """Forked workers start with what `prepare` loaded in the parent (no interpreter start, no
    imports); with another thread running, a Python one or a native one (as JAX's), the pool
    spawns instead (a fork would copy locks that thread may hold); the results are the same."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outputs = [subprocess.run([sys.executable, "-c", _FORK_SCRIPT.format(root=root, with_thread=repr(flag))],
                              capture_output=True, text=True, timeout=120, cwd=root)
               for flag in ("none", "python", "native")]
    assert [o.returncode for o in outputs] == [0, 0, 0], [o.stderr[-2000:] for o in outputs]
    lines = [o.stdout.split("\n")[-2] for o in outputs]
    expected_fork = "fork [1] True" if sys.platform.startswith("linux") else "spawn [0] True"
    assert lines == [expected_fork, "spawn [0] True", "spawn [0] True"]
