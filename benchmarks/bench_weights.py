"""Peak memory of `pt2jax weights`: a generated checkpoint converted, peak RSS against its size.

    python benchmarks/bench_weights.py                 # a 32 MB checkpoint, every output format
    python benchmarks/bench_weights.py 1024            # a 1 GB one (MB; slow, not in the test suite)
    python benchmarks/bench_weights.py 256 --format orbax --safetensors   # one format; read a .safetensors

The model is a stack of Linear(1024, 1024) layers (4 MB of float32 weights each) written as a
torch file; its converted twin is what the library's `rewrite_source` (`pt2jax rewrite`) makes of
it. Each conversion runs in a fresh subprocess (`convert_weights`, what the CLI calls), and its
peak RSS (ru_maxrss) is compared with the checkpoint's size, together with the RSS of a process
that only imports torch, jax and flax and builds the converted model (the floor: the converted
model itself is one full copy). peak/ckpt near 1 plus the import overhead means the tensors were
streamed; near 2 or more, the checkpoint and the converted state were held together.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH = 1024

TORCH_MODEL = """\
import torch
import torch.nn as nn


class Stack(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear({width}, {width}) for _ in range(depth)])

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x
"""

CHILD = """\
import json, resource, sys, time
sys.path.insert(0, {root!r})
mode, args = sys.argv[1], json.loads(sys.argv[2])
start = time.perf_counter()
if mode == "floor":
    import runpy, torch, jax
    from flax import nnx
    ns = runpy.run_path(args["converted"])
    model = ns["Stack"](args["depth"], rngs=nnx.Rngs(0))
else:
    from pt2jax_migrate.api import convert_weights
    convert_weights(args["checkpoint"], module=args["converted"] + ":Stack", original=args["original"],
                    init=str(args["depth"]), out=args["out"], fmt=args["format"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(json.dumps({{"peak": peak, "seconds": time.perf_counter() - start}}))
"""


def child(mode: str, **args) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT), mode, json.dumps(args)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size_mb", nargs="?", type=float, default=32.0, help="checkpoint size in MB (default 32)")
    parser.add_argument("--format", choices=["orbax", "safetensors", "msgpack"], action="append",
                        help="output format(s) (default: all three)")
    parser.add_argument("--safetensors", action="store_true", help="write the checkpoint as .safetensors")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    opts = parser.parse_args()

    import torch

    sys.path.insert(0, ROOT)
    from pt2jax_migrate.rewrite import rewrite_source

    depth = max(1, round(opts.size_mb * 1e6 / ((WIDTH * WIDTH + WIDTH) * 4)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as tmp:
        original = os.path.join(tmp, "stack_torch.py")
        converted = os.path.join(tmp, "stack_nnx.py")
        source = TORCH_MODEL.format(width=WIDTH)
        with open(original, "w") as f:
            f.write(source)
        result = rewrite_source(source, original)
        with open(converted, "w") as f:
            f.write(result.new_source)
        torch.manual_seed(0)
        ns: dict = {}
        exec(compile(source, original, "exec"), ns)
        model = ns["Stack"](depth)
        state = model.state_dict()
        checkpoint = os.path.join(tmp, "stack.safetensors" if opts.safetensors else "stack.pt")
        if opts.safetensors:
            from safetensors.torch import save_file

            save_file(state, checkpoint)
        else:
            torch.save(state, checkpoint)
        del model, state, ns
        size = os.path.getsize(checkpoint)
        floor = child("floor", converted=converted, depth=depth)
        for fmt in opts.format or ["orbax", "safetensors", "msgpack"]:
            out = os.path.join(tmp, {"orbax": "out_ckpt", "safetensors": "out.safetensors",
                                     "msgpack": "out.msgpack"}[fmt])
            run = child("convert", checkpoint=checkpoint, converted=converted, original=original, depth=depth,
                        out=out, format=fmt)
            rows.append({"format": fmt, "checkpoint_mb": size / 1e6, "peak_rss_mb": run["peak"] / 1e6,
                         "floor_rss_mb": floor["peak"] / 1e6, "peak_over_ckpt": run["peak"] / size,
                         "extra_over_ckpt": (run["peak"] - floor["peak"]) / size, "seconds": run["seconds"]})
    if opts.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"checkpoint: {rows[0]['checkpoint_mb']:.1f} MB ({depth} x Linear({WIDTH}, {WIDTH}), "
          f"{'safetensors' if opts.safetensors else 'torch.save'}); floor (imports + converted model): "
          f"{rows[0]['floor_rss_mb']:.0f} MB")
    print(textwrap.dedent("""\
        format        peak RSS MB   peak/ckpt   (peak-floor)/ckpt   seconds"""))
    for r in rows:
        print(f"{r['format']:<13} {r['peak_rss_mb']:>11.0f} {r['peak_over_ckpt']:>11.2f} "
              f"{r['extra_over_ckpt']:>19.2f} {r['seconds']:>9.1f}")


if __name__ == "__main__":
    main()
