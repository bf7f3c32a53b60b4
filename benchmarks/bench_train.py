"""Speed of the port: each training program's PyTorch step against its converted, jitted step.

    python benchmarks/bench_train.py                          # every program, a table and a geomean
    python benchmarks/bench_train.py regression_script        # some of them (names or paths)
    python benchmarks/bench_train.py --json                   # the rows and the geomean as JSON
    python benchmarks/bench_train.py --baseline               # also the step under plain @nnx.jit
    python benchmarks/bench_train.py --seconds 2              # time each step for longer
    python benchmarks/bench_train.py --repeat 3               # best of 3 runs per side (a busy machine)

Programs: the fixtures with a training step (fixtures/{mlp_classifier,cnn_classifier,
regression_script}.in.py) and every fixtures/programs/*.py. Each is rewritten here (the library's
`rewrite_source`, what `pt2jax rewrite` runs) into a temporary folder.

How one step is timed, in isolation, on the program's own objects and shapes. Each framework runs
in its own subprocess on one thread (torch.set_num_threads(1); XLA_FLAGS
`--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`, set before jax is imported).
The program itself runs (`runpy`, as `__main__`) under a line tracer limited to its own file, until
its first training step:
- PyTorch: the statements the rewrite lifts (zero_grad, the forward and loss statements, backward,
  clip, step; found by the rewrite's own analysis, `pt2jax_migrate.trainstep.train_step_analysis`
  and its `.plans`) are compiled on their
  own. When the program reaches its first `optimizer.step()` line every input of the step exists;
  the tracer then runs those statements again and again in the program's frame (same model,
  optimizer, batch), and stops the program.
- JAX: when the converted program reaches the line calling its train step (a call to a function
  decorated `@jit_train_step` or `@nnx.jit`), the tracer runs that statement: the first run is the
  compile time (trace + compile + one step), then steps are timed and the program stops. The
  outputs and the models' state are waited for (`block_until_ready`) before the clock stops: JAX
  dispatches asynchronously.
Steps/s = steps / seconds over at least --seconds (and 20 steps) after 5 warm-up steps; with
--repeat N the subprocesses run N times, the frameworks interleaved, and the fastest run of each
side counts (load from other processes only ever slows a run down). Retraces
after the first step = jaxpr traces JAX reports through `jax.monitoring` during the warm-up and
timed steps: any is a recompilation in the loop. Only the first training step of a program is
timed (a GAN's first update). A program that fails (no step recognised, an error before its
first step) is reported with its error and left out of the geomean.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAINING_FIXTURES = ("mlp_classifier", "cnn_classifier", "regression_script")
ONE_THREAD = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
STEP_DECORATORS = ("jit_train_step", "nnx.jit")
WARMUP = 5
MIN_STEPS = 20


def programs(selected: list[str]) -> list[Path]:
    found = [ROOT / "fixtures" / f"{name}.in.py" for name in TRAINING_FIXTURES]
    found += sorted(p for p in (ROOT / "fixtures" / "programs").glob("*.py") if not p.name.startswith("_"))
    if not selected:
        return found
    chosen = []
    for want in selected:
        path = Path(want)
        if path.is_file():
            chosen.append(path.resolve())
            continue
        matches = [p for p in found if _name(p) == want]
        if not matches:
            raise SystemExit(f"bench_train: no training program named {want!r}")
        chosen += matches
    return chosen


def _name(path: Path) -> str:
    return path.name.removesuffix(".py").removesuffix(".in")


# ----------------------------------------------------------------------------- finding the steps


def torch_step(source: str) -> tuple[int, ast.Module]:
    """(line of the first step()'s statement, the step's statements as a module) of the first
    training step the rewrite converts in `source`: the steps and their statements are the
    rewrite's own (`trainstep.train_step_analysis`, with lint's unconverted lines, as
    `pt2jax rewrite` runs it)."""
    from pt2jax_migrate import trainstep
    from pt2jax_migrate.lint import unconverted_lines

    steps = []
    for units, plan in trainstep.train_step_analysis(source, unconverted_lines(source)).plans:
        chosen = sorted({*plan.zero, *plan.group, *plan.clip, plan.backward, plan.step})
        body = [stmt for i in chosen for stmt in units[i]]
        steps.append((units[plan.step][0].lineno, ast.Module(body=body, type_ignores=[])))
    if not steps:
        raise LookupError("no training step the rewrite converts (zero_grad / forward / loss / backward / step)")
    return min(steps, key=lambda s: s[0])  # the first in the file, as on the JAX side


def jax_step_call(source: str) -> tuple[int, ast.Module, list[str]]:
    """(line, the statement as a module, its target names) of the first call to a jitted train step."""
    from pt2jax_migrate import trainstep

    tree = ast.parse(source)
    steps = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
             and any(ast.unparse(d) in STEP_DECORATORS for d in node.decorator_list)}
    calls = []
    for body in trainstep._blocks(tree):
        for stmt in body:
            if isinstance(stmt, (ast.Assign, ast.Expr)) and isinstance(stmt.value, ast.Call) \
                    and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id in steps:
                targets = [n.id for t in getattr(stmt, "targets", []) for n in ast.walk(t) if isinstance(n, ast.Name)]
                calls.append((stmt.lineno, ast.Module(body=[stmt], type_ignores=[]), targets))
    if not calls:
        raise LookupError("no call to a jitted train step in the converted program")
    return min(calls, key=lambda c: c[0])


# ----------------------------------------------------------------------------- worker (one subprocess)


class _Measured(Exception):
    """Raised from the line tracer once the step is timed: stops the program."""


def _run_at_line(path: Path, line: int, measure) -> dict:
    """Run the program at `path` as __main__; at the first time `line` is reached, call
    measure(frame) and stop the program there."""
    import runpy

    filename = str(path)
    result: dict = {}

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno == line:
            sys.settrace(None)
            result.update(measure(frame))
            raise _Measured
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code.co_filename == filename else None

    sys.path.insert(0, str(path.parent))
    sys.settrace(tracer)
    try:
        runpy.run_path(filename, run_name="__main__")
    except _Measured:
        return result
    finally:
        sys.settrace(None)
    raise LookupError(f"the program ended without reaching line {line}")


def _namespace(frame) -> tuple[dict, dict]:
    if frame.f_locals is frame.f_globals:
        return frame.f_globals, frame.f_globals
    return frame.f_globals, dict(frame.f_locals)


def _time(run, sync, seconds: float) -> tuple[float, int, float]:
    """(first call seconds, steps, steps per second after WARMUP steps)."""
    start = time.perf_counter()
    run()
    sync()
    first = time.perf_counter() - start
    for _ in range(WARMUP):
        run()
    sync()
    steps, start = 0, time.perf_counter()
    while True:
        run()
        steps += 1
        if steps >= MIN_STEPS and steps % 10 == 0:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return first, steps, steps / elapsed


def worker_torch(path: Path, seconds: float) -> dict:
    import torch

    torch.set_num_threads(1)
    line, module = torch_step(path.read_text())
    code = compile(module, str(path), "exec")

    def measure(frame):
        globals_, locals_ = _namespace(frame)
        first, steps, rate = _time(lambda: exec(code, globals_, locals_), lambda: None, seconds)
        return {"first_step_s": first, "steps": steps, "steps_per_s": rate}

    return _run_at_line(path, line, measure)


def worker_jax(path: Path, seconds: float) -> dict:
    for key, value in ONE_THREAD.items():  # before jax is imported
        os.environ.setdefault(key, value)
    import jax
    import jax.monitoring
    from flax import nnx

    line, module, targets = jax_step_call(path.read_text())
    code = compile(module, str(path), "exec")
    traces = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: traces.append(event) if event == "/jax/core/compile/jaxpr_trace_duration" else None)

    def measure(frame):
        globals_, locals_ = _namespace(frame)
        call = module.body[0].value
        nodes = [locals_.get(a.id, globals_.get(a.id)) for a in call.args if isinstance(a, ast.Name)]
        nodes = [n for n in nodes if isinstance(n, nnx.Pytree)]

        def sync():
            jax.block_until_ready([locals_.get(t) for t in targets])
            jax.block_until_ready([nnx.state(n) for n in nodes])

        start = time.perf_counter()
        exec(code, globals_, locals_)
        sync()
        compile_s = time.perf_counter() - start
        traced_first = len(traces)
        _, steps, rate = _time(lambda: exec(code, globals_, locals_), sync, seconds)
        return {"compile_s": compile_s, "steps": steps, "steps_per_s": rate,
                "traces_first_step": traced_first, "retraces": len(traces) - traced_first}

    return _run_at_line(path, line, measure)


# ----------------------------------------------------------------------------- driver


def convert(path: Path, out_dir: Path, baseline: bool) -> dict[str, Path]:
    from pt2jax_migrate.rewrite import rewrite_source

    result = rewrite_source(path.read_text(), str(path))
    converted = out_dir / f"{_name(path)}.py"
    converted.write_text(result.new_source)
    paths = {"jax": converted}
    if baseline:  # the same step under plain @nnx.jit (what the rewrite emitted before jit_train_step)
        plain = out_dir / f"{_name(path)}_nnx_jit.py"
        plain.write_text(result.new_source.replace("@jit_train_step\n", "@nnx.jit\n"))
        paths["nnx.jit"] = plain
    return paths


def run_worker(kind: str, path: Path, seconds: float, timeout: float) -> dict:
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "torch" if kind == "torch" else "jax",
               str(path), "--seconds", str(seconds)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(path.parent))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH "):
            return json.loads(line[len("BENCH "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail}"}


def bench(paths: list[Path], seconds: float, timeout: float, baseline: bool, repeat: int = 1) -> dict:
    rows = []
    with tempfile.TemporaryDirectory(prefix="pt2jax-bench-train-") as tmp:
        for path in paths:
            row: dict = {"program": _name(path)}
            try:
                converted = convert(path, Path(tmp), baseline)
            except Exception as exc:  # a program the rewrite refuses is reported, not fatal
                row["error"] = f"rewrite: {type(exc).__name__}: {exc}"
                rows.append(row)
                continue
            files = {"torch": path, **converted}
            for _ in range(repeat):  # frameworks interleaved; the best run of each (a busy machine only slows)
                for kind, file in files.items():
                    run = run_worker(kind, file, seconds, timeout)
                    if kind not in row or "error" in row[kind] or run.get("steps_per_s", 0) > row[kind]["steps_per_s"]:
                        row[kind] = run
            errors = [f"{k}: {row[k]['error']}" for k in ("torch", *converted) if "error" in row[k]]
            if errors:
                row["error"] = "; ".join(errors)
            else:
                row["ratio"] = row["jax"]["steps_per_s"] / row["torch"]["steps_per_s"]
                if baseline:
                    row["ratio_nnx_jit"] = row["nnx.jit"]["steps_per_s"] / row["torch"]["steps_per_s"]
            rows.append(row)
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    summary = {"rows": rows, "geomean": _geomean(ratios), "measured": len(ratios), "failed": len(rows) - len(ratios)}
    if baseline:
        summary["geomean_nnx_jit"] = _geomean([r["ratio_nnx_jit"] for r in rows if "ratio_nnx_jit" in r])
    return summary


def _geomean(values: list[float]) -> float | None:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def table(summary: dict, baseline: bool) -> str:
    head = f"{'program':<24} {'torch steps/s':>13} {'jax steps/s':>11} {'ratio':>6} {'compile s':>9} {'retraces':>8}"
    if baseline:
        head += f" {'nnx.jit steps/s':>15} {'ratio':>6}"
    lines = [head, "-" * len(head)]
    for row in summary["rows"]:
        if "ratio" not in row:
            lines.append(f"{row['program']:<24} FAILED {row.get('error', '')}")
            continue
        t, j = row["torch"], row["jax"]
        line = (f"{row['program']:<24} {t['steps_per_s']:>13.0f} {j['steps_per_s']:>11.0f} {row['ratio']:>5.2f}x "
                f"{j['compile_s']:>9.2f} {j['retraces']:>8d}")
        if baseline:
            line += f" {row['nnx.jit']['steps_per_s']:>15.0f} {row['ratio_nnx_jit']:>5.2f}x"
        lines.append(line)
    geomean = summary["geomean"]
    text = f"geomean {geomean:.2f}x over {summary['measured']} programs" if geomean else "geomean: nothing measured"
    if baseline and summary.get("geomean_nnx_jit"):
        text += f" (plain @nnx.jit: {summary['geomean_nnx_jit']:.2f}x)"
    if summary["failed"]:
        text += f"; {summary['failed']} failed"
    lines.append(text)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("programs", nargs="*", help="program names (regression_script, sgd_momentum_tanh) or paths")
    parser.add_argument("--json", action="store_true", help="print the rows and the geomean as JSON")
    parser.add_argument("--seconds", type=float, default=1.0, help="time each step for at least this long")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per subprocess")
    parser.add_argument("--baseline", action="store_true", help="also time the step under plain @nnx.jit")
    parser.add_argument("--repeat", type=int, default=1, help="run each side this many times, keep the fastest")
    parser.add_argument("--worker", choices=("torch", "jax"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        (path,) = args.programs
        run = worker_torch if args.worker == "torch" else worker_jax
        print("BENCH " + json.dumps(run(Path(path).resolve(), args.seconds)), flush=True)
        return 0
    sys.path.insert(0, str(ROOT))
    summary = bench(programs(args.programs), args.seconds, args.timeout, args.baseline, args.repeat)
    print(json.dumps(summary, indent=2) if args.json else table(summary, args.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
