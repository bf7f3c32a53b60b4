"""`kill -9` during an in-place `rewrite` of a tree of 200 files, three times, at three moments
(while converting, right as the first files are written, in the middle of the writes): after
each kill every file is either fully old or fully new (it parses and equals the original or
the one-shot rewrite's output), no helpers import dangles, and the next run removes the temp
files a killed write left and finishes the job."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pt2jax_migrate.api import rewrite_paths
from pt2jax_migrate.fsio import TEMP_SUFFIX

ROOT = Path(__file__).resolve().parent.parent
FILES = 200

MODULE = """import torch
import torch.nn as nn


class Net{i}(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear({i} + 1, 3)
        self.drop = nn.Dropout(0.{d})

    def forward(self, x):
        return torch.relu(self.fc(x)).sum(dim=-1) * {i}


def make_{i}():
    return torch.zeros({i} + 2).cuda()
"""

TORCH_FREE = "def plain_{i}(a, b):\n    return a * {i} + b  # no torch here\n"


def _tree(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    for i in range(FILES):
        text = TORCH_FREE.format(i=i) if i % 10 == 9 else MODULE.format(i=i, d=i % 10)
        (folder / f"m{i:03}.py").write_text(text)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _start(folder: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "pt2jax_migrate.cli", "rewrite", "--force", "-j", "1", "-q",
                             str(folder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_when(process: subprocess.Popen, ready, timeout: float = 600, poll: float = 0.0) -> bool:
    """SIGKILL `process` as soon as ready() holds; False when it finished first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return True
        time.sleep(poll)
    process.kill()
    process.wait(timeout=30)
    raise AssertionError("the rewrite neither finished nor reached the moment to kill it")


def _check_every_file_whole(folder: Path, old: dict[str, bytes], new: dict[str, bytes]) -> int:
    """Every file fully old or fully new; the number of new (changed) ones."""
    files = _snapshot(folder)
    temps = [name for name in files if name.endswith(TEMP_SUFFIX)]
    written = 0
    for name, data in files.items():
        if name in temps:
            continue
        assert name in new, f"unexpected file {name}"
        ast.parse(data.decode())
        assert data == old.get(name) or data == new[name], f"{name} is neither the original nor the rewrite"
        written += data != old.get(name) and name in old
    missing = set(old) - set(files)
    assert not missing, f"files lost: {sorted(missing)}"
    helpers = "_pt2jax_helpers.py"
    if any(b"from _pt2jax_helpers import" in data for data in files.values()):
        assert files.get(helpers) == new[helpers], "a converted file imports a helpers module not (fully) written"
    return written


def test_kill_9_mid_rewrite_leaves_every_file_whole(tmp_path):
    old = _tree(tmp_path / "ref")
    one_shot = rewrite_paths([str(tmp_path / "ref")], force=True)  # the expected result, in one go
    assert not one_shot.errors
    new = _snapshot(tmp_path / "ref")
    changed = {name for name in old if new[name] != old[name]}
    assert len(changed) == 180 and "_pt2jax_helpers.py" in new  # the torch-free tenth stay as they are

    src = tmp_path / "src"
    _tree(src)
    names = sorted(changed)

    def written(name):
        return lambda: (src / name).read_bytes() != old[name]

    # 1: early, while starting up or converting (nothing written yet: the conversions all come
    # before the first write; 200 files take seconds, the kill comes 0.3 s after the start)
    process = _start(src)
    assert _kill_when(process, lambda: time.sleep(0.3) is None)
    assert _check_every_file_whole(src, old, new) == 0
    # 2: as soon as the first file is written; 3: in the middle of the writes
    for position in (0, len(names) // 2):
        process = _start(src)
        killed = _kill_when(process, written(names[position]))
        assert killed, "the run finished before the kill"
        count = _check_every_file_whole(src, old, new)
        assert position + 1 <= count  # files are written in order
    # the next run: temp files a killed write left (aged past the grace period that protects a
    # concurrent run's live writes) are removed, and every file ends up converted
    temps = list(src.glob(f"*{TEMP_SUFFIX}"))
    for temp in temps:
        os.utime(temp, (time.time() - 3600, time.time() - 3600))
    final = _start(src)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert not list(src.glob(f"*{TEMP_SUFFIX}")) and not list(src.glob(".*"))
    assert _snapshot(src) == new
