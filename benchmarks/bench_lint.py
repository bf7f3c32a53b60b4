"""Lint speed: lines per second, and the ratio to `ast.parse` + `ast.walk` in the same run.

    python benchmarks/bench_lint.py                 # a generated codebase (~200k lines)
    python benchmarks/bench_lint.py --lines 1000000 # bigger
    python benchmarks/bench_lint.py PATH            # a real folder instead

The generated codebase mixes what a PyTorch project holds: model files (nn.Module classes,
layers, functional ops, tensor methods), training scripts (optimizer, zero_grad / backward /
step loops) and plain Python helpers that never mention torch. Every source is read into
memory first, so the numbers compare parsing and analysis, not the disk.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL = '''
class Block{i}(nn.Module):
    """A residual block."""

    def __init__(self, dim: int = {d}, hidden: int = {h}, p: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim, bias=False)
        self.drop = nn.Dropout(p)
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, mask=None) -> torch.Tensor:
        h = self.norm(x)
        h = F.gelu(self.fc1(h))
        h = self.drop(self.fc2(h))
        if mask is not None:
            h = h * mask.unsqueeze(-1).float()
        y = x + h
        z = y.view(y.size(0), -1).transpose(0, 1).contiguous()
        w = torch.cat([z, z * 2], dim=1)
        stats = {{"mean": w.mean(dim=0, keepdim=True), "std": torch.std(w, dim=0)}}
        for key, value in stats.items():
            if value.dim() > 1 and key.startswith("m"):
                w = w - value
        return torch.relu(w).permute(1, 0)
'''

TRAIN = '''
def train_{i}(model, loader, epochs: int = 3, lr: float = 1e-3):
    torch.manual_seed({i})
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    history = []
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / max(1, len(loader)))
        model.eval()
        with torch.no_grad():
            acc = evaluate_{i}(model, loader)
        print(f"epoch {{epoch}}: loss={{history[-1]:.4f}} acc={{acc:.3f}}")
    return history


def evaluate_{i}(model, loader):
    correct = total = 0
    for x, y in loader:
        pred = model(x).argmax(1)
        correct += int((pred == y).sum())
        total += y.numel()
    return correct / max(1, total)
'''

PLAIN = '''
def parse_record_{i}(line: str, sep: str = ",") -> dict:
    """Split one CSV line into a record."""
    fields = [f.strip() for f in line.split(sep)]
    if len(fields) < 3:
        raise ValueError(f"bad line: {{line!r}}")
    record = {{"id": int(fields[0]), "name": fields[1], "tags": fields[2:]}}
    for tag in record["tags"]:
        if tag.startswith("#"):
            record.setdefault("hashtags", []).append(tag[1:])
    return record


class Cache{i}:
    def __init__(self, size: int = {d}):
        self.size = size
        self.items: dict = {{}}

    def get(self, key, default=None):
        value = self.items.get(key, default)
        if value is not default:
            self.items[key] = self.items.pop(key)
        return value

    def put(self, key, value) -> None:
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.pop(next(iter(self.items)))
'''

MODEL_HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
TRAIN_HEADER = "import torch\nfrom torch import nn\n"
PLAIN_HEADER = "import json\nimport os\nfrom collections import OrderedDict\n"


def generate(folder: Path, lines: int, seed: int = 0, train_share: int = 1) -> int:
    """Write a synthetic codebase of about `lines` lines; returns the file count.

    Out of every 20 files, 10 hold models, 9 plain helpers and `train_share` a training script
    (one training loop among helpers, as a real train.py is)."""
    rng = random.Random(seed)
    total = count = 0
    weights = [10, 10 - train_share, train_share]
    while total < lines:
        kind = rng.choices(["model", "plain", "train"], weights=weights)[0]
        d, h = rng.choice([64, 128, 256]), rng.choice([256, 512])
        if kind == "model":
            parts = [MODEL_HEADER] + [MODEL.format(i=i, d=d, h=h) for i in range(rng.randint(4, 12))]
        elif kind == "plain":
            parts = [PLAIN_HEADER] + [PLAIN.format(i=i, d=d) for i in range(rng.randint(4, 12))]
        else:
            parts = [TRAIN_HEADER, TRAIN.format(i=0)] + [PLAIN.format(i=i, d=d) for i in range(rng.randint(2, 6))]
        text = "\n".join(parts)
        sub = folder / f"pkg{count % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{kind}_{count}.py").write_text(text)
        total += text.count("\n")
        count += 1
    return count


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", help="lint this folder instead of a generated one")
    parser.add_argument("--lines", type=int, default=200_000, help="size of the generated codebase")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args(argv)

    from pt2jax_migrate.fsio import iter_python_files, read_source
    from pt2jax_migrate.lint import lint_paths, lint_source
    from pt2jax_migrate.rules import load_rules

    load_rules()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.path) if args.path else Path(tmp)
        if not args.path:
            generate(folder, args.lines)
        files = list(iter_python_files([folder]))
        sources = [(f, read_source(f)) for f in files]
        lines = sum(s.count("\n") + 1 for _, s in sources)

        def baseline():
            for name, source in sources:
                for _ in ast.walk(ast.parse(source, filename=name)):
                    pass

        def parse_only():
            for name, source in sources:
                ast.parse(source, filename=name)

        def lint():
            for name, source in sources:
                lint_source(source, name)

        def lint_each(items):
            for name, source in items:
                lint_source(source, name)

        def walk_each(items):
            for name, source in items:
                for _ in ast.walk(ast.parse(source, filename=name)):
                    pass

        lint()  # warm the rules tables and the lazy imports
        t_parse = best_of(args.repeat, parse_only)
        t_base = best_of(args.repeat, baseline)
        t_lint = best_of(args.repeat, lint)
        t_paths = best_of(args.repeat, lambda: lint_paths([folder]))
        findings = sum(len(lint_source(s, n)) for n, s in sources)
        # training scripts: the train-step calls' fixability comes from the rewrite (libcst)
        train = [(n, s) for n, s in sources if ".backward(" in s]
        rest = [(n, s) for n, s in sources if ".backward(" not in s]
        train_lines = sum(s.count("\n") + 1 for _, s in train)
        t_rest = best_of(args.repeat, lambda: lint_each(rest))
        t_rest_base = best_of(args.repeat, lambda: walk_each(rest))
        t_train = best_of(1, lambda: lint_each(train)) if train else 0.0
        cache_dir = Path(tmp) / "cache"
        os.environ["PT2JAX_CACHE_DIR"] = str(cache_dir)
        lint_paths([folder], cache=True)  # cold, fills the cache
        t_warm = best_of(args.repeat, lambda: lint_paths([folder], cache=True))

    def row(label: str, seconds: float, n: int = lines) -> str:
        return f"{label:<44} {seconds:8.3f} s  {n / seconds / 1000:8.1f} k lines/s"

    print(f"{len(files)} files, {lines} lines, {findings} findings; "
          f"{len(train)} files ({train_lines} lines) call .backward(")
    print(row("ast.parse", t_parse))
    print(row("ast.parse + ast.walk", t_base))
    print(row("lint_source, all files (in memory)", t_lint))
    print(row("lint_paths, all files (reading files)", t_paths))
    print(row("lint_paths, warm cache", t_warm))
    if rest:
        print(row("lint_source, files without .backward(", t_rest, lines - train_lines))
    if train:
        print(row("lint_source, files with .backward( (train-step analysis)", t_train, train_lines))
    print(f"lint / (ast.parse + ast.walk) time ratio: all files {t_lint / t_base:.2f}"
          + (f"; files without .backward( {t_rest / t_rest_base:.2f}" if rest else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
