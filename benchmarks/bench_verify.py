"""`pt2jax verify` wall and CPU time on one small model, cold and warm, in one run.

    python benchmarks/bench_verify.py                    # fixtures/cnn_classifier, 3 runs each
    python benchmarks/bench_verify.py --repeat 1 --in-process

The fixture is rewritten into a temporary folder, then `pt2jax verify ... --timings` runs as a
command (its own process, as a user runs it): "cold" with an empty JAX compilation cache
(PT2JAX_JAX_CACHE, a fresh folder per run), "warm" with the cache a first run filled. Each row
is the fastest of --repeat runs: wall seconds, CPU seconds (the command and its verify
children), and where the time went in that run (verify's --timings: imports, build, the eager
run, "jax jit (compile and run)"). The load average is printed with each row: on a shared machine
wall time is noisy, CPU time much less so.
"""

from __future__ import annotations

import argparse
import os
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
                  f"  [load {best['load']}]\n      {best['timings']}")


if __name__ == "__main__":
    main()
