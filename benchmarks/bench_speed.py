"""Speed on real files, in one run: the parse floors, lint, rewrite and TorchFix on the same files.

    python benchmarks/bench_speed.py                       # 150 files of torch, torchvision, timm
    python benchmarks/bench_speed.py --limit 300 --jobs 2
    python benchmarks/bench_speed.py --no-torchfix PATH ... # any folders or files

The files (an even slice of the installed packages' sources, as benchmarks/corpus_check.py picks
them, or PATHS) are copied into a temporary folder first. Every row is lines per second of wall
time and per CPU second (children's CPU counted for -jN and TorchFix), and the ratio of its CPU
time to the floor it compares with, all measured in this run, so the ratios hold on a busy machine:

* `ast.parse`, `ast.parse` + `ast.walk` and `libcst.parse_module` over the sources in memory: the
  floors for lint (ast) and rewrite (libcst); and this machine's own -jN speed-up (N copies of
  the lint floor at once in forked processes, against one alone), the ceiling of any -jN row;
* `lint` (api.lint_paths over the folder, reading the files): -j1 without a cache, -jN, cold (an
  empty PT2JAX_CACHE_DIR) and warm (the same tree again, nothing changed);
* `rewrite` (api.rewrite_paths, written to nowhere) -j1 and -jN;
* TorchFix (`torchfix PATH`, its checks without --fix) from a throwaway virtual environment under
  the system temp folder (`pip install torchfix` on the first run; skipped with a message when it
  cannot be installed or run).
"""

from __future__ import annotations

import argparse
import ast
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_check import select  # noqa: E402  (the same files the corpus check picks)

TORCHFIX_VENV = Path(tempfile.gettempdir()) / "pt2jax-torchfix-venv"


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn, repeat: int = 1) -> tuple[float, float]:
    """(wall, cpu) seconds of the fastest of `repeat` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), _cpu()
        fn()
        best = min(best, (time.perf_counter() - wall, _cpu() - cpu))
    return best


def paired(fn, floor, trials: int) -> float:
    """CPU of `fn` over CPU of `floor`: the median of `trials` pairs measured back to back (on a
    shared host the speed drifts by tens of percent between rows measured minutes apart; a pair
    drifts least, as in ceiling)."""
    return statistics.median(measure(fn)[1] / measure(floor)[1] for _ in range(trials))


_SOURCES: list[str] = []  # the texts, for the forked copies of the floor (ceiling)


def _walk_floor(_copy: int = 0) -> float:
    """ast.parse + ast.walk over every text: wall seconds."""
    start = time.perf_counter()
    for text in _SOURCES:
        for _ in ast.walk(ast.parse(text)):
            pass
    return time.perf_counter() - start


def _set_sources(texts: list[str]) -> None:
    _SOURCES[:] = texts


def ceiling(copies: int, trials: int) -> float:
    """This machine's own speed-up for `copies` processes: `copies` copies of the same
    CPU-bound work (the lint floor) at once against one alone, in workers already running;
    the median of `trials` pairs, each alone-then-together (a shared host's speed drifts by
    tens of percent within seconds: a pair measured back to back drifts least). 2.0 for two
    cores that do not slow each other; less where they share a physical core or caches."""
    import multiprocessing

    from pt2jax_migrate.files.pool import start_method  # fork where it is safe, as the -jN rows do

    context = multiprocessing.get_context(start_method())
    with context.Pool(copies, initializer=_set_sources, initargs=(list(_SOURCES),)) as pool:
        pool.map(_walk_floor, range(copies), chunksize=1)  # started, warm
        ratios = []
        for _ in range(trials):
            alone = pool.apply(_walk_floor)
            start = time.perf_counter()
            pool.map(_walk_floor, range(copies), chunksize=1)
            ratios.append(copies * alone / (time.perf_counter() - start))
    return statistics.median(ratios)


def torchfix_command() -> list[str] | str:
    """The torchfix command, installing it into a throwaway venv if needed; a reason string when
    it cannot be had."""
    exe = TORCHFIX_VENV / "bin" / "torchfix"
    if not exe.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(TORCHFIX_VENV)], check=True, capture_output=True)
            subprocess.run([str(TORCHFIX_VENV / "bin" / "pip"), "install", "-q", "torchfix"], check=True,
                           capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as error:
            return f"TorchFix skipped: could not install it into {TORCHFIX_VENV} ({type(error).__name__})"
    return [str(exe)] if exe.exists() else f"TorchFix skipped: no {exe} after pip install"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="folders or files (default: the installed torch, torchvision, timm)")
    parser.add_argument("--limit", type=int, default=150, help="files (an even slice; 0: all)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="N of the -jN rows")
    parser.add_argument("--repeat", type=int, default=1, help="best of N for the in-memory floors and lint")
    parser.add_argument("--no-torchfix", action="store_true", help="skip TorchFix")
    parser.add_argument("--no-rewrite", action="store_true", help="skip rewrite (the slow rows)")
    args = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    import libcst

    from pt2jax_migrate.api import rewrite_paths
    from pt2jax_migrate.lint import lint_paths
    from pt2jax_migrate.rules import load_rules

    corpora = [] if args.paths else ["torch", "torchvision", "timm"]
    files, _skipped = select(args.paths, corpora, args.limit, None)
    tmp = Path(tempfile.mkdtemp(prefix="pt2jax-bench-"))
    try:
        tree = tmp / "tree"
        sources = []
        for index, file in enumerate(files):
            try:
                text = Path(file).read_text(encoding="utf-8")
                ast.parse(text)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue  # only files every tool can read: the rows compare the same work
            dest = tree / f"{index:05d}" / Path(file).name
            dest.parent.mkdir(parents=True)
            dest.write_text(text, encoding="utf-8")
            sources.append(text)
        lines = sum(text.count("\n") + 1 for text in sources)
        print(f"{len(sources)} files, {lines} lines (copied to {tree}); -jN is -j{args.jobs}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        load_rules()
        lint_paths([str(tree)])  # warm the lazy imports and tables
        rows: list[tuple[str, float, float]] = []

        def floor_ast():
            for text in sources:
                ast.parse(text)

        def floor_cst():
            for text in sources:
                libcst.parse_module(text)

        rows.append(("ast.parse (floor)", *measure(floor_ast, args.repeat)))
        _SOURCES[:] = sources  # the lint floor here and in the -jN ceiling's copies
        rows.append(("ast.parse + ast.walk (lint's floor)", *measure(_walk_floor, args.repeat)))
        rows.append(("libcst.parse_module (rewrite's floor)", *measure(floor_cst, 1)))
        machine = ceiling(args.jobs, max(5, args.repeat)) if args.jobs > 1 else 1.0
        rows.append(("lint -j1", *measure(lambda: lint_paths([str(tree)]), args.repeat)))
        lint_paired = paired(lambda: lint_paths([str(tree)]), _walk_floor, max(5, args.repeat))
        rows.append((f"lint -j{args.jobs}", *measure(lambda: lint_paths([str(tree)], jobs=args.jobs), args.repeat)))
        os.environ["PT2JAX_CACHE_DIR"] = str(tmp / "cache")
        rows.append(("lint -j1, cold cache", *measure(lambda: lint_paths([str(tree)], cache=True))))
        rows.append(("lint -j1, warm cache (tree unchanged)", *measure(lambda: lint_paths([str(tree)], cache=True),
                                                                        args.repeat)))
        if not args.no_rewrite:
            rows.append(("rewrite -j1", *measure(lambda: rewrite_paths([str(tree)], write=False, jobs=1))))
            rows.append((f"rewrite -j{args.jobs}",
                         *measure(lambda: rewrite_paths([str(tree)], write=False, jobs=args.jobs))))
        torchfix_note = None
        if not args.no_torchfix:
            command = torchfix_command()
            if isinstance(command, str):
                torchfix_note = command
            else:
                done = []
                wall_cpu = measure(lambda: done.append(subprocess.run([*command, str(tree)], capture_output=True)))
                if done and done[0].returncode not in (0, 1):
                    torchfix_note = f"TorchFix skipped: it exited {done[0].returncode}: {done[0].stderr[-300:]!r}"
                else:
                    rows.append(("TorchFix (torchfix PATH)", *wall_cpu))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    by_label = {label: cpu for label, _wall, cpu in rows}
    floors = {"lint": by_label["ast.parse + ast.walk (lint's floor)"],
              "rewrite": by_label["libcst.parse_module (rewrite's floor)"]}
    print(f"{'':<40} {'wall s':>8} {'CPU s':>8} {'lines/s':>9} {'lines/CPU-s':>11}  CPU ratio")
    for label, wall, cpu in rows:
        ratio = ""
        if label.startswith("lint"):
            ratio = f"{cpu / floors['lint']:.2f}x ast.parse+walk"
        elif label.startswith(("rewrite", "TorchFix")):
            ratio = f"{cpu / floors['rewrite']:.2f}x libcst.parse_module"
        print(f"{label:<40} {wall:8.2f} {cpu:8.2f} {lines / wall:9.0f} {lines / cpu:11.0f}  {ratio}")
    wall = {label: w for label, w, _cpu in rows}
    print(f"this machine's own -j{args.jobs} speed-up: {machine:.2f}x ({args.jobs} copies of the lint floor at "
          f"once against one alone)")
    speedup = wall['lint -j1'] / wall[f'lint -j{args.jobs}']
    print(f"lint -j{args.jobs} / -j1 speed-up (wall): {speedup:.2f}x ({speedup / machine:.0%} of the machine's); "
          f"warm / cold lint (wall): {wall['lint -j1, warm cache (tree unchanged)'] / wall['lint -j1, cold cache']:.1%}")
    print(f"lint -j1 / ast.parse+walk (CPU), median of {max(5, args.repeat)} back-to-back pairs: {lint_paired:.2f}x")
    if f"rewrite -j{args.jobs}" in wall:
        speedup = wall['rewrite -j1'] / wall[f'rewrite -j{args.jobs}']
        print(f"rewrite -j{args.jobs} / -j1 speed-up (wall): {speedup:.2f}x ({speedup / machine:.0%} of the machine's)")
    if "TorchFix (torchfix PATH)" in by_label:
        print(f"TorchFix / lint -j1 (CPU): {by_label['TorchFix (torchfix PATH)'] / by_label['lint -j1']:.1f}x")
    if torchfix_note:
        print(torchfix_note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
