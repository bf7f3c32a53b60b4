"""Real models through rewrite and verify: torchvision's classification architectures (and timm's).

    python benchmarks/bench_models.py                      # every torchvision architecture
    python benchmarks/bench_models.py alexnet resnet18     # some of them
    python benchmarks/bench_models.py --no-jit             # verify eagerly only (default: also under nnx.jit)
    python benchmarks/bench_models.py --timm               # timm's model files instead
    python benchmarks/bench_models.py --json out.json      # the rows as JSON too

How. The whole installed source folder (torchvision/ or timm/) is rewritten once into a temporary
--out folder (`rewrite_paths`, what `pt2jax rewrite DIR --out OUT` runs): the model files import
their siblings relatively (`from ..ops.misc import Conv2dNormActivation`, `from ._api import
register_model`), so the converted copy of the package is what makes a converted model file
loadable. The converted package's `__init__.py` files are emptied: they only re-export, and running
them would import every converted module (any one that fails to import would stop all).

Per architecture, in its own subprocess with a timeout (one crash or hang does not stop the rest):
`run_verify` (what `pt2jax verify` runs) on the original file inside the installed package and the
converted file inside the converted one, at a small input and, where the constructor allows, a
small width and num_classes=10. Reported: rewrite clean (no torch import left in the file), the
converted modules it imports that still import torch, TODO(pt2jax) markers, verify pass/fail with
the largest output and gradient errors, and what blocks it (the verify error, else the first
TODO in the file).

Importing torchvision beside torch 2.13 needs a workaround (its _meta_registrations refers to an
operator the CPU build lacks); it is applied in the verify subprocess only: rewrite never imports
torch or torchvision.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Arch:
    name: str
    module: str  # path of the model file under the package folder
    model: str  # the class verify builds
    init: str  # its constructor arguments (Python argument text, evaluated in each file)
    input: str  # verify input spec


SMALL = "float32[2,3,32,32]"
TORCHVISION: tuple[Arch, ...] = (
    Arch("alexnet", "models/alexnet.py", "AlexNet", "num_classes=10", "float32[1,3,64,64]"),
    # VGG's classifier is fixed at 512*7*7 -> 4096 -> 4096; only the conv stack can be narrowed
    Arch("vgg11", "models/vgg.py", "VGG", 'make_layers(cfgs["A"]), num_classes=10, init_weights=False', SMALL),
    Arch("vgg16", "models/vgg.py", "VGG", 'make_layers(cfgs["D"]), num_classes=10, init_weights=False', SMALL),
    # 64x64, batch 4: at 32x32 and batch 2 layer4's BatchNorm normalises 2 values per channel, an
    # ill-conditioned step that turns float32 rounding into 2% gradient differences (float64: exact)
    Arch("resnet18", "models/resnet.py", "ResNet", "BasicBlock, [1, 1, 1, 1], num_classes=10",
         "float32[4,3,64,64]"),
    Arch("resnet50", "models/resnet.py", "ResNet", "Bottleneck, [1, 1, 1, 1], num_classes=10", SMALL),
    Arch("resnext", "models/resnet.py", "ResNet", "Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=4, num_classes=10", SMALL),
    Arch("wide_resnet", "models/resnet.py", "ResNet", "Bottleneck, [1, 1, 1, 1], width_per_group=128, num_classes=10", SMALL),
    Arch("densenet121", "models/densenet.py", "DenseNet",
         "growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, num_classes=10", SMALL),
    Arch("squeezenet", "models/squeezenet.py", "SqueezeNet", '"1_1", num_classes=10', SMALL),
    Arch("googlenet", "models/googlenet.py", "GoogLeNet", "num_classes=10, aux_logits=False, init_weights=False",
         "float32[1,3,64,64]"),
    Arch("inception_v3", "models/inception.py", "Inception3", "num_classes=10, aux_logits=False, init_weights=False",
         "float32[1,3,80,80]"),
    Arch("mobilenet_v2", "models/mobilenetv2.py", "MobileNetV2", "num_classes=10, width_mult=0.25", SMALL),
    Arch("mobilenet_v3", "models/mobilenetv3.py", "MobileNetV3",
         '*_mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25), num_classes=10', SMALL),
    Arch("mnasnet", "models/mnasnet.py", "MNASNet", "0.25, num_classes=10", SMALL),
    Arch("shufflenet_v2", "models/shufflenetv2.py", "ShuffleNetV2", "[2, 2, 2], [8, 16, 32, 64, 128], num_classes=10",
         SMALL),
    Arch("efficientnet_b0", "models/efficientnet.py", "EfficientNet",
         '_efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)[0], 0.2, num_classes=10', SMALL),
    Arch("efficientnet_v2", "models/efficientnet.py", "EfficientNet",
         '_efficientnet_conf("efficientnet_v2_s")[0], 0.2, num_classes=10, '
         'last_channel=_efficientnet_conf("efficientnet_v2_s")[1]', SMALL),
    Arch("regnet", "models/regnet.py", "RegNet",
         "BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8), num_classes=10", SMALL),
    Arch("convnext", "models/convnext.py", "ConvNeXt",
         "[CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=10", SMALL),
    Arch("vit", "models/vision_transformer.py", "VisionTransformer",
         "image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=10", SMALL),
    Arch("swin", "models/swin_transformer.py", "SwinTransformer",
         "patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=[2, 2], num_classes=10", SMALL),
    Arch("maxvit", "models/maxvit.py", "MaxVit",
         "input_size=(32, 32), stem_channels=8, partition_size=2, block_channels=[16, 32], block_layers=[1, 1], "
         "head_dim=8, stochastic_depth_prob=0.0, num_classes=10", SMALL),
)

# timm: a harder corpus (absolute `timm.layers` imports, registries, many helpers). Verified on a
# few small models; every other model file gets the rewrite columns only.
TIMM: tuple[Arch, ...] = (
    Arch("timm_resnet", "models/resnet.py", "ResNet", "BasicBlock, [1, 1, 1, 1], num_classes=10", SMALL),
    Arch("timm_vit", "models/vision_transformer.py", "VisionTransformer",
         "img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=10", SMALL),
    Arch("timm_mixer", "models/mlp_mixer.py", "MlpMixer",
         "num_classes=10, img_size=32, patch_size=8, num_blocks=1, embed_dim=16", SMALL),
    Arch("timm_convnext", "models/convnext.py", "ConvNeXt", "depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), num_classes=10", SMALL),
)

TODO = re.compile(r"TODO\(pt2jax\):\s*(\S+)\s*(.*)")
CONVERTED_PACKAGE = {"torchvision": "tv_pt2jax", "timm": "timm_pt2jax"}


@dataclass
class Row:
    name: str
    module: str
    clean: bool | None = None  # no torch import left in the converted file
    deps_with_torch: list[str] = field(default_factory=list)  # converted modules it imports that still do
    todos: int = 0
    eager: str = "-"  # pass / FAIL / error / timeout / -
    jit: str = "-"  # same, or n/a when verify has no jit
    out_err: float | None = None
    grad_err: float | None = None
    blocker: str = ""
    seconds: float = 0.0
    rounding: bool = False  # verify passed on its float64 rerun: the float32 errors are rounding


# ------------------------------------------------------------------------- rewrite side (no torch)

def package_folder(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def rewrite_package(source: Path, out: Path) -> tuple[int, int]:
    """Rewrite every file of `source` into `out`; empty the converted __init__.py files.
    Returns (files, files that could not be rewritten)."""
    from pt2jax_migrate.api import rewrite_paths

    run = rewrite_paths([str(source)], out=str(out))
    for init in out.rglob("__init__.py"):
        init.write_text(lazy_init(init.read_text(encoding="utf-8")), encoding="utf-8")
    rename_self_imports(out, source.name)
    for error in run.errors:
        print(f"rewrite error: {error}", file=sys.stderr)
    return len(run.files), len(run.errors)


def lazy_init(text: str) -> str:
    """A package __init__ that imports nothing until asked: its relative re-exports
    (`from .stochastic_depth import StochasticDepth`) become a module __getattr__ (PEP 562), so
    `from ..ops import StochasticDepth` loads only ops/stochastic_depth.py."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    lazy = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level and node.module:
            for alias in node.names:
                if alias.name != "*":
                    lazy[alias.asname or alias.name] = ("." * node.level + node.module, alias.name)
    return ("# rewritten by bench_models.py: the converted package is imported module by module; its\n"
            "# re-exports load their module when first asked for\n"
            "import importlib\n\n"
            f"_LAZY = {lazy!r}\n\n\n"
            "def __getattr__(name):\n"
            "    if name in _LAZY:\n"
            "        module, attr = _LAZY[name]\n"
            "        return getattr(importlib.import_module(module, __name__), attr)\n"
            "    raise AttributeError(f\"module {__name__!r} has no attribute {name!r}\")\n")


def rename_self_imports(out: Path, name: str) -> None:
    """`from torchvision.ops import StochasticDepth` inside the converted copy imports the copy
    (`tv_pt2jax.ops`), as the package converted in place would import itself."""
    pattern = re.compile(rf"^(\s*from\s+){re.escape(name)}(?=[.\s])", re.MULTILINE)
    for path in out.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        new = pattern.sub(rf"\g<1>{out.name}", text)
        if new != text:
            path.write_text(new, encoding="utf-8")


def imports_torch(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "torch":
            return True
    return False


def relative_imports(path: Path, package_root: Path) -> list[Path]:
    """The package's modules `path` imports relatively (one level, as files)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            parts = (node.module or "").split(".") if node.module else []
            target = base.joinpath(*parts)
            candidates = [target.with_suffix(".py")] if parts else []
            if not parts:  # from . import x: x is a module
                candidates = [base / f"{a.name}.py" for a in node.names]
            found += [c for c in candidates if c.is_file() and package_root in c.parents]
    return found


def rewrite_columns(row: Row, converted: Path, package_root: Path) -> None:
    text = converted.read_text(encoding="utf-8")
    row.clean = not imports_torch(text)
    todos = [m for m in (TODO.search(line) for line in text.splitlines()) if m]
    row.todos = len(todos)
    row.deps_with_torch = sorted(str(d.relative_to(package_root)) for d in relative_imports(converted, package_root)
                                 if imports_torch(d.read_text(encoding="utf-8")))
    if todos:
        row.blocker = f"{todos[0].group(1)} {todos[0].group(2)}".strip()


# ------------------------------------------------------------------------- verify side (subprocess)

def _child(args) -> None:
    """Run verify once (eagerly, and under jit unless --no-jit) and print one JSON line."""
    import types

    # torchvision 0.28 beside torch 2.13: skip the meta registrations that refer to a missing operator
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    from pt2jax_migrate.verify import VerifyError, run_verify

    kwargs = {"model": args.model, "init": args.init, "inputs": [args.input], "jit": not args.no_jit}
    try:
        report = run_verify(args.original, args.converted, **kwargs)
    except VerifyError as error:
        print(json.dumps({"status": "error", "message": str(error)}))
        return
    rounding = report.rounding_noise
    eager_failed = [c for c in report.comparisons if not c.passed and not rounding]
    jit_failed = [c for c in report.jit_comparisons if not c.passed and not rounding]
    if not report.jit:
        jit_status, jit_message = "-", ""
    elif report.jit_error is not None:
        error = report.jit_error
        jit_status, jit_message = "error", f"{error.stage} {error.path}:{error.line}: {error.error}: {error.message}"
    else:
        jit_status = "FAIL" if jit_failed else "pass"
        jit_message = f"{len(jit_failed)} comparisons fail, first {jit_failed[0].name}" if jit_failed else ""
    outputs = [c.max_abs_err for c in report.outputs]
    grads = [c.max_abs_err for c in report.gradients]
    print(json.dumps({"status": "FAIL" if eager_failed else "pass", "out_err": max(outputs, default=None),
                      "grad_err": max(grads, default=None), "failed": len(eager_failed),
                      "first": eager_failed[0].name if eager_failed else "", "rounding": rounding,
                      "jit": jit_status, "jit_message": jit_message}))


def verify_in_subprocess(original: Path, converted: Path, arch: Arch, *, jit: bool, timeout: float) -> dict:
    command = [sys.executable, __file__, "--child", "--original", str(original), "--converted", str(converted),
               "--model", arch.model, "--init", arch.init, "--input", arch.input]
    if not jit:
        command.append("--no-jit")
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "message": f"verify took more than {timeout:.0f}s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "error", "message": f"verify crashed (exit {done.returncode}): {tail}"}
    return json.loads(lines[-1])


def _short(message: str, width: int | None = None) -> str:
    """One line, paths from the package folder on, cut to `width` (the table's) if given."""
    message = " ".join(message.split())
    message = re.sub(r"/\S*/(tv_pt2jax|timm_pt2jax|site-packages)/", r"\1/", message)
    return message if width is None or len(message) <= width else message[: width - 3] + "..."


def run_arch(arch: Arch, source_root: Path, converted_root: Path, *, jit: bool, timeout: float) -> Row:
    row = Row(arch.name, arch.module)
    start = time.perf_counter()
    original, converted = source_root / arch.module, converted_root / arch.module
    if not converted.is_file():
        row.blocker = "not rewritten (see the rewrite errors above)"
        return row
    rewrite_columns(row, converted, converted_root)
    todo_blocker = row.blocker
    eager = verify_in_subprocess(original, converted, arch, jit=jit, timeout=timeout)
    row.eager = eager["status"]
    row.out_err, row.grad_err = eager.get("out_err"), eager.get("grad_err")
    row.rounding = bool(eager.get("rounding"))
    if row.eager in ("error", "timeout"):
        row.blocker = "verify: " + _short(eager.get("message", ""))
    elif row.eager == "FAIL":
        row.blocker = f"verify: {eager['failed']} comparisons fail, first {eager['first']}"
    else:
        row.blocker = todo_blocker if row.todos else ""
        if row.rounding and not row.blocker:
            row.blocker = "passes as float32 rounding noise (float64 rerun agrees)"
    row.jit = eager.get("jit", "-")
    if row.jit in ("error", "FAIL") and row.eager == "pass":
        row.blocker = "jit: " + _short(eager.get("jit_message", ""))
    row.seconds = time.perf_counter() - start
    return row


# ------------------------------------------------------------------------- table

def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _reason(blocker: str) -> str:
    """The table's blocker: the exception, not the constructor call verify repeats before it."""
    return re.sub(r"building .*? failed: ", "build failed: ", blocker)


def render(rows: list[Row], jit: bool) -> str:
    head = ["arch", "torch-free", "deps w/ torch", "TODOs", "eager", "jit", "max out err", "max grad err", "blocker"]
    body = [[r.name, {True: "yes", False: "no", None: "-"}[r.clean], str(len(r.deps_with_torch)), str(r.todos),
             r.eager, r.jit if jit else "-", _num(r.out_err), _num(r.grad_err), _short(_reason(r.blocker), 110)]
            for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    summary = (f"{len(rows)} architectures: {sum(bool(r.clean) for r in rows)} torch-free, "
               f"{sum(r.eager == 'pass' for r in rows)} verified eager, "
               f"{sum(r.jit == 'pass' for r in rows)} verified jitted" + ("" if jit else " (jit not run)"))
    return "\n".join([*lines, "", summary])


def timm_file_rows(converted_root: Path, skip: set[str]) -> list[Row]:
    """Rewrite columns for every timm model file (not verified)."""
    rows = []
    for path in sorted((converted_root / "models").glob("*.py")):
        relative = str(path.relative_to(converted_root))
        if path.name.startswith("_") or relative in skip:
            continue
        row = Row(path.stem, relative)
        rewrite_columns(row, path, converted_root)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="architectures to run (default: all)")
    parser.add_argument("--timm", action="store_true", help="timm's models instead of torchvision's")
    parser.add_argument("--no-jit", action="store_true", help="verify eagerly only (default: also under nnx.jit)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per verify run")
    parser.add_argument("--converted", help="reuse this converted package folder (skip the rewrite)")
    parser.add_argument("--keep", help="write the converted package here (kept)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    # the verify subprocess
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    
    for name in ("--original", "--model", "--init", "--input"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0

    package = "timm" if args.timm else "torchvision"
    archs = TIMM if args.timm else TORCHVISION
    if args.names:
        unknown = set(args.names) - {a.name for a in archs}
        if unknown:
            parser.error(f"unknown architecture(s) {sorted(unknown)}; known: {[a.name for a in archs]}")
        archs = tuple(a for a in archs if a.name in args.names)
    source_root = package_folder(package)
    with tempfile.TemporaryDirectory(prefix="pt2jax-bench-") as tmp:
        if args.converted:
            converted_root = Path(args.converted)
        else:
            converted_root = Path(args.keep or tmp) / CONVERTED_PACKAGE[package]
            start = time.perf_counter()
            files, errors = rewrite_package(source_root, converted_root)
            print(f"rewrote {package} ({files} files, {errors} errors) into {converted_root} "
                  f"in {time.perf_counter() - start:.0f}s", file=sys.stderr)
        rows = []
        for arch in archs:
            row = run_arch(arch, source_root, converted_root, jit=not args.no_jit, timeout=args.timeout)
            print(f"{arch.name}: eager {row.eager}, {row.seconds:.0f}s", file=sys.stderr)
            rows.append(row)
        print(render(rows, not args.no_jit))
        if args.timm and not args.names:
            files = timm_file_rows(converted_root, {a.module for a in archs})
            print(f"\ntimm model files (rewrite only): {len(files)} files, "
                  f"{sum(bool(r.clean) for r in files)} torch-free, {sum(r.todos for r in files)} TODOs")
            rows += files
        if args.json:
            Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
