"""Big and long inputs, in one run: rewrite and lint CPU time and peak memory on generated files.

    python benchmarks/bench_big_files.py            # every case
    python benchmarks/bench_big_files.py --quick    # the smaller half of each family
    python benchmarks/bench_big_files.py --cases chain sum

The cases (written to a temporary folder):

* `file_1mb`, `file_5mb`: realistic torch files, one block (an nn.Module class with BatchNorm,
  Dropout and a residual, its init function, a training function with an optimizer, a
  scheduler and a loss, an eval function) repeated with fresh names up to the size;
* `sum_N`: `y = torch.ones(3) + torch.zeros(3) + ...`, N terms in one expression;
* `chain_N`: `x.float().view(-1, 4).clamp(min=0)...`, N method calls on one tensor (links that
  stay methods in JAX, an `.abs()` every 25: the converted form nests 80 calls at N=2,000,
  Python's parser allows 200).

Each case is rewritten (api.rewrite_one: what `pt2jax rewrite` does per file, guarded) and
linted (lint_source, guarded the same way) in a fresh subprocess: CPU seconds of the work
itself, and the child's peak RSS (os.wait4). `--floor` adds libcst.parse_module and ast.parse
alone. Families report the CPU ratio of each doubling: ~2 is linear, ~4 quadratic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCK = '''

class Block{i}(nn.Module):
    """Conv, BatchNorm, Dropout and a residual."""

    def __init__(self, channels={c}, hidden=32):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(channels * 4 * 4, hidden)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 10))
        self.apply(init_{i})

    def forward(self, x):
        y = F.relu(self.bn(self.conv(x)))
        y = self.drop(y) + x
        y = torch.flatten(F.adaptive_avg_pool2d(y, 4), 1)
        return self.head(self.fc(y))


def init_{i}(m):
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)


def train_{i}(model, loader, epochs=2, lr=1e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    model.train()
    for epoch in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return loss.item()


def evaluate_{i}(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
        acc = (logits.argmax(dim=1) == y).float().mean()
    return acc.item(), torch.softmax(logits, dim=-1).max(dim=-1).values
'''

HEAD = '"""Generated: many models and training functions."""\nimport torch\nimport torch.nn as nn\n' \
       'import torch.nn.functional as F\n\ndevice = torch.device("cpu")\n'

SUM_TERMS = ["torch.ones(3)", "torch.zeros(3)", "torch.randn(3)", "torch.arange(3.0)"]
CHAIN_LINKS = [".float()", ".view(-1, 4)", ".clamp(min=0)", ".reshape(4, -1)", ".t()"]


def realistic(size: int) -> str:
    parts, total, i = [HEAD], len(HEAD), 0
    while total < size:
        block = BLOCK.format(i=i, c=3 + i % 5)
        parts.append(block)
        total += len(block)
        i += 1
    return "".join(parts)


def long_sum(n: int) -> str:
    return "import torch\n\ny = " + " + ".join(SUM_TERMS[i % len(SUM_TERMS)] for i in range(n)) + "\n"


def long_chain(n: int) -> str:
    links = ["abs()" if i % 25 == 24 else CHAIN_LINKS[i % len(CHAIN_LINKS)] for i in range(n)]
    links = [link if link.startswith(".") else "." + link for link in links]
    return "import torch\n\n\ndef f(x):\n    return x" + "".join(links) + "\n"


FAMILIES = {
    "file": [("file_256k", lambda: realistic(1 << 18)), ("file_1mb", lambda: realistic(1 << 20)),
             ("file_5mb", lambda: realistic(5 << 20))],
    "sum": [(f"sum_{n}", lambda n=n: long_sum(n)) for n in (2000, 4000, 8000)],
    "chain": [(f"chain_{n}", lambda n=n: long_chain(n)) for n in (500, 1000, 2000)],
}


def child(mode: str, path: str) -> None:
    """One measurement in this (fresh) process: prints {"cpu", "detail"} as JSON."""
    sys.path.insert(0, str(ROOT))
    from pt2jax_migrate.fsio import read_source, set_size_limit

    set_size_limit(0)  # the 5 MB case is over the default --max-file-size
    source = read_source(path)
    start = time.process_time()
    detail = ""
    try:
        if mode == "rewrite":
            from pt2jax_migrate.api import rewrite_one

            result = rewrite_one(path)
            detail = f"{len(result.findings)} findings"
        elif mode == "lint":
            from pt2jax_migrate.files.guard import guarded
            from pt2jax_migrate.lint import lint_source

            detail = f"{len(guarded(path, 'linting', lint_source, source, path))} findings"
        elif mode == "libcst":
            import libcst

            from pt2jax_migrate.files.guard import guarded

            guarded(path, "parsing", libcst.parse_module, source)
        else:
            import ast

            from pt2jax_migrate.files.guard import guarded

            guarded(path, "parsing", ast.parse, source)
    except Exception as error:  # a SourceError is a result too
        detail = f"error: {error}"[:70]
    print(json.dumps({"cpu": time.process_time() - start, "detail": detail}))


def measure(mode: str, path: str, timeout: float) -> tuple[float | None, float, str]:
    """(CPU seconds or None, the child's peak RSS in MB, detail) of one fresh child process,
    reaped here with os.wait4 for its own peak (RUSAGE_CHILDREN is the max over all children)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--child", mode, path], stdout=subprocess.PIPE,
                                stderr=err, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        out = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()  # type: ignore[union-attr]
        err.seek(0)
        tail = err.read().strip().splitlines()[-1:]
    rss = usage.ru_maxrss / 1024
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        why = f"timeout after {timeout:.0f} s" if proc.returncode == -9 else f"crashed: {tail}"
        return None, rss, why
    return data["cpu"], rss, data["detail"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--quick", action="store_true", help="leave out the largest case of each family")
    parser.add_argument("--floor", action="store_true", help="also libcst.parse_module and ast.parse alone")
    parser.add_argument("--modes", nargs="*", default=["rewrite", "lint"])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    modes = list(args.modes) + (["libcst", "ast"] if args.floor else [])
    print(f"{'case':<10} {'size':>9} " + " ".join(f"{m + ' cpu s':>12} {'MB':>6} {'x2':>5}" for m in modes))
    with tempfile.TemporaryDirectory() as folder:
        for family in args.cases:
            cases = FAMILIES[family][:-1] if args.quick else FAMILIES[family]
            previous: dict[str, float | None] = {}
            for name, make in cases:
                path = os.path.join(folder, f"{name}.py")
                text = make()
                Path(path).write_text(text)
                row, notes = f"{name:<10} {len(text) / 1024:>7.0f}KB ", []
                for mode in modes:
                    cpu, rss, detail = measure(mode, path, args.timeout)
                    ratio = f"{cpu / previous[mode]:.1f}" if cpu and previous.get(mode) else "-"
                    row += f"{cpu if cpu is not None else float('nan'):>12.2f} {rss:>6.0f} {ratio:>5} "
                    previous[mode] = cpu
                    if detail.startswith(("error", "timeout", "crash")):
                        notes.append(f"{mode}: {detail}")
                print(row + ("  " + "; ".join(notes) if notes else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
