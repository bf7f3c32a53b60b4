"""`pt2jax verify` wall and CPU time on one small model, cold and warm, in one run.

    python benchmarks/bench_verify.py                    # fixtures/cnn_classifier, 3 runs each
    python benchmarks/bench_verify.py --repeat 1 --in-process

The fixture is rewritten into a temporary folder, then `pt2jax verify ... --timings` runs as a
command (its own process, as a user runs it): "cold" with an empty JAX compilation cache
(PT2JAX_JAX_CACHE, a fresh folder per run), "warm" with the cache a first run filled. Each row
is the fastest of --repeat runs: wall seconds, CPU seconds (the command and its verify
children), and where the time went in that run, a line per process: the parent's start-up and
exit (the command's wall minus verify's own), then each child's phases from verify's --timings
(imports, build, the weights' transfer, the runs; the JAX child compiles and runs the jit check
in a second thread alongside its eager run) and its CPU seconds. The load average is printed
with each row: on a shared machine wall time is noisy, CPU time much less so.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ("cnn_classifier", "ConvNet", "float32[4,1,16,16]")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_verify(original: str, converted: str, model: str, spec: str, cache: Path, in_process: bool) -> dict:
    cmd = [sys.executable, "-m", "pt2jax_migrate.cli", "verify", original, converted, "--model", model,
           "--input", spec, "--timings", *(["--in-process"] if in_process else [])]
    env = dict(os.environ, PT2JAX_JAX_CACHE=str(cache), PYTHONPATH=str(ROOT))
    load, wall, cpu = _load(), time.perf_counter(), _children_cpu()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"verify failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    lines = done.stderr.splitlines()
    timings = next((line[len("timings: "):] for line in lines if line.startswith("timings: ")), "")
    return {"wall": wall, "cpu": cpu, "load": load, "timings": timings}


def parse_timings(text: str) -> dict[str, float]:
    """verify --timings' line ("import torch 3.76 s, torch build 0.02 s, ...") as {phase: seconds}."""
    return {name: float(seconds) for name, seconds in re.findall(r"(.+?) (\d+(?:\.\d+)?) s(?:, |$)", text)}


def phase_lines(text: str, wall: float) -> list[str]:
    """Where one run's wall time went, a line per process: the parent's start-up and exit (the
    command's wall time minus verify's own), then each child's phases in the order they run
    (a child's phases follow one another; the JAX child's jit run overlaps its eager run)."""
    phases = parse_timings(text)
    inside = phases.pop("verify (sides started to sides closed)", None)
    lines = []
    if inside is not None:
        lines.append(f"parent: start-up and exit {wall - inside:.2f} s, verify {inside:.2f} s "
                     "(children started to closed)")
    for side in ("torch", "jax"):
        mine = {k: v for k, v in phases.items() if side in k.split()}
        cpu = mine.pop(f"{side} child CPU", None)
        parts = [f"{k.replace(side, '').strip()} {v:.2f}" for k, v in mine.items()]
        if parts:
            lines.append(f"{side} child: {', '.join(parts)} s" + (f" (CPU {cpu:.2f} s)" if cpu is not None else ""))
    rest = {k: v for k, v in phases.items() if not {"torch", "jax"} & set(k.split())}
    if rest:
        lines.append(", ".join(f"{k} {v:.2f} s" for k, v in rest.items()))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (the fastest is shown)")
    parser.add_argument("--in-process", action="store_true", help="verify --in-process (no child processes)")
    args = parser.parse_args(argv)
    name, model, spec = MODEL
    with tempfile.TemporaryDirectory(prefix="pt2jax-bench-verify-") as tmp:
        out = Path(tmp) / "converted"
        original = str(ROOT / "fixtures" / f"{name}.in.py")
        subprocess.run([sys.executable, "-m", "pt2jax_migrate.cli", "rewrite", original, "--out", str(out)],
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True, capture_output=True)
        converted = str(out / f"{name}.in.py")
        print(f"pt2jax verify fixtures/{name}.in.py <converted> --model {model} --input {spec!r}"
              f"{' --in-process' if args.in_process else ''} ({os.cpu_count()} CPUs)")
        rows = {}
        for i in range(args.repeat):
            rows.setdefault("cold", []).append(
                run_verify(original, converted, model, spec, Path(tmp) / f"cold-{i}", args.in_process))
        warm = Path(tmp) / "warm"
        run_verify(original, converted, model, spec, warm, args.in_process)  # fills the cache
        for _ in range(args.repeat):
            rows.setdefault("warm", []).append(run_verify(original, converted, model, spec, warm, args.in_process))
        for kind, runs in rows.items():
            best = min(runs, key=lambda r: r["wall"])
            cpu = min(r["cpu"] for r in runs)
            print(f"{kind:5} wall {best['wall']:6.2f} s (min of {len(runs)}), CPU {cpu:6.2f} s"
                  f"  [load {best['load']}]")
            for line in phase_lines(best["timings"], best["wall"]):
                print("      " + line)


if __name__ == "__main__":
    main()
