"""Peak memory of `pt2jax weights`: a generated checkpoint converted, peak RSS against its size.

    python benchmarks/bench_weights.py                 # a 32 MB checkpoint, NNX and Linen, every format
    python benchmarks/bench_weights.py 1024            # a 1 GB one (MB; slow, not in the test suite)
    python benchmarks/bench_weights.py 256 --target linen --format msgpack --safetensors

The model is a stack of Linear(1024, 1024) layers (4 MB of float32 weights each); its converted
twins are what the library's `rewrite_source` (`pt2jax rewrite`, --target nnx and linen) makes of
it. The checkpoint is written by a subprocess (torch.save of a state_dict; or a .safetensors file,
written tensor by tensor) into a temp folder that is removed at the end, so this process never
holds the weights. Each conversion runs in a fresh subprocess (`convert_weights`, what the CLI
calls); its peak RSS (ru_maxrss, pages of the memory-mapped checkpoint included) is set against
the import floor, the peak RSS of a process that imports what a conversion imports (torch, jax,
flax, orbax, safetensors, pt2jax_migrate) and starts jax's CPU backend, and nothing else.
(peak - floor) / checkpoint near 1 means one copy: the converted state, the checkpoint streamed
into it tensor by tensor; near 2 or more, two copies were held together (Orbax's save copies
every array to host memory before writing: its rows show 2). README, "Converting checkpoints",
has the 1 GB table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH = 1024
TARGETS = ("nnx", "linen")
FORMATS = ("orbax", "safetensors", "msgpack")
OUT_NAMES = {"orbax": "out_ckpt", "safetensors": "out.safetensors", "msgpack": "out.msgpack"}

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
if mode == "make":  # the checkpoint: one copy of the weights, in this process only
    import torch
    shapes = {{}}
    for i in range(args["depth"]):
        shapes[f"layers.{{i}}.weight"], shapes[f"layers.{{i}}.bias"] = ({width}, {width}), ({width},)
    gen = torch.Generator().manual_seed(0)
    if args["checkpoint"].endswith(".safetensors"):  # tensor by tensor: header, then each one's bytes
        header, offset = {{}}, 0
        for key, shape in shapes.items():
            size = 4 * int(torch.Size(shape).numel())
            header[key] = {{"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}}
            offset += size
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        with open(args["checkpoint"], "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text)
            for shape in shapes.values():
                f.write((torch.randn(shape, generator=gen) * 0.02).numpy().tobytes())
    else:
        torch.save({{k: torch.randn(s, generator=gen) * 0.02 for k, s in shapes.items()}}, args["checkpoint"])
elif mode == "floor":  # what a conversion imports, and jax's CPU backend started
    import torch, jax, jax.numpy as jnp, orbax.checkpoint, safetensors, flax.serialization
    from flax import linen, nnx
    import pt2jax_migrate.api, pt2jax_migrate.verify.weights
    jnp.zeros(1).block_until_ready()
else:
    from pt2jax_migrate.api import convert_weights
    convert_weights(args["checkpoint"], module=args["converted"] + ":Stack", original=args["original"],
                    init=str(args["depth"]), out=args["out"], fmt=args["format"], inputs=args["inputs"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(json.dumps({{"peak": peak, "seconds": time.perf_counter() - start}}))
"""


def child(mode: str, **args) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT, width=WIDTH), mode, json.dumps(args)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _remove(path: str) -> None:
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def measure(size_mb: float, targets, formats, safetensors: bool) -> tuple[dict, list[dict]]:
    """({depth, checkpoint bytes, floor}, one row per (target, format))."""
    sys.path.insert(0, ROOT)
    from pt2jax_migrate.rewrite import rewrite_source

    depth = max(1, round(size_mb * 1e6 / ((WIDTH * WIDTH + WIDTH) * 4)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as tmp:
        original = os.path.join(tmp, "stack_torch.py")
        source = TORCH_MODEL.format(width=WIDTH)
        with open(original, "w") as f:
            f.write(source)
        converted = {}
        for target in targets:
            converted[target] = os.path.join(tmp, f"stack_{target}.py")
            with open(converted[target], "w") as f:
                f.write(rewrite_source(source, original, target=target).new_source)
        checkpoint = os.path.join(tmp, "stack.safetensors" if safetensors else "stack.pt")
        child("make", checkpoint=checkpoint, depth=depth)
        size = os.path.getsize(checkpoint)
        floor = child("floor")["peak"]
        for target in targets:
            for fmt in formats:
                out = os.path.join(tmp, OUT_NAMES[fmt])
                run = child("convert", checkpoint=checkpoint, converted=converted[target], original=original,
                            depth=depth, out=out, format=fmt, inputs=["float32[1,%d]" % WIDTH] * (target == "linen"))
                written = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs) \
                    if os.path.isdir(out) else os.path.getsize(out)
                _remove(out)  # one output on disk at a time
                rows.append({"target": target, "format": fmt, "checkpoint_mb": size / 1e6,
                             "peak_rss_mb": run["peak"] / 1e6,
                             "extra_mb": (run["peak"] - floor) / 1e6, "extra_over_ckpt": (run["peak"] - floor) / size,
                             "written_mb": written / 1e6, "seconds": run["seconds"]})
    return {"depth": depth, "checkpoint_mb": size / 1e6, "floor_rss_mb": floor / 1e6}, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size_mb", nargs="?", type=float, default=32.0, help="checkpoint size in MB (default 32)")
    parser.add_argument("--target", choices=TARGETS, action="append", help="converted model(s) (default: both)")
    parser.add_argument("--format", choices=FORMATS, action="append", help="output format(s) (default: all three)")
    parser.add_argument("--safetensors", action="store_true", help="write the checkpoint as .safetensors")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    opts = parser.parse_args()
    info, rows = measure(opts.size_mb, opts.target or TARGETS, opts.format or FORMATS, opts.safetensors)
    if opts.json:
        print(json.dumps({**info, "rows": rows}, indent=2))
        return
    print(f"checkpoint: {info['checkpoint_mb']:.1f} MB ({info['depth']} x Linear({WIDTH}, {WIDTH}), "
          f"{'.safetensors' if opts.safetensors else 'torch.save .pt'}); import floor: {info['floor_rss_mb']:.0f} MB")
    print("target  format        ckpt MB   peak RSS MB   peak-floor MB   (peak-floor)/ckpt   out MB   seconds")
    for r in rows:
        print(f"{r['target']:<7} {r['format']:<12} {r['checkpoint_mb']:>8.0f} {r['peak_rss_mb']:>13.0f} "
              f"{r['extra_mb']:>15.0f} {r['extra_over_ckpt']:>19.2f} {r['written_mb']:>8.0f} {r['seconds']:>9.1f}")


if __name__ == "__main__":
    main()
