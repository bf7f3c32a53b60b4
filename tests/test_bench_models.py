"""torchvision architectures end to end (rewrite -> load -> verify eagerly, and under nnx.jit for
JITTED), CI-sized: the pipeline of benchmarks/bench_models.py on a few small architectures at
small width.

The converted package is a mirror of only the torchvision modules these architectures load
(the benchmark rewrites the whole package); verify runs in a subprocess per architecture, as in
the benchmark, so importing torchvision (with its workaround) stays out of the test process.

PASSING must pass with their errors reported; a row that does not pass must name what blocks
it. No exact blocker strings: they change as the conversion improves.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_models  # noqa: E402

pytestmark = pytest.mark.corpus

# the modules the architectures below import (the model slice's relative imports)
MIRROR = ["_utils.py", "_internally_replaced_utils.py", "utils.py", "ops/misc.py", "ops/stochastic_depth.py", "models/_api.py",
          "models/_meta.py", "models/_utils.py", "transforms/_presets.py"]

# architectures verified today (resnet18: block classes and norm_layer factories get rngs;
# mobilenet_v2: ops.misc.Conv2dNormActivation, an nn.Sequential subclass imported from another
# converted file, built with nn.Conv2d passed as a value)
# googlenet: reads self.training (-> not self.deterministic), TorchScript markers;
# convnext: LayerNorm2d subclasses nn.LayerNorm (a TorchLayerNorm subclass) and calls F.layer_norm)
# (every torchvision architecture verifies now: no failing row is left to check its blocker on)
PASSING = ("squeezenet", "resnet18", "mobilenet_v2", "googlenet", "convnext")
EXPECTED = PASSING
# verified under nnx.jit as well as eagerly. The others eagerly only: their jit compile is the
# slowest part of the suite (googlenet's, mobilenet_v2's: 30-40 s each) and what jit adds for them
# is checked on small models: `self.training` -> self.deterministic under nnx.jit
# (test_tv_blockers3.py's train/eval toggles), TorchScript markers, Sequential subclasses
JITTED = ("squeezenet", "resnet18")


def _torchvision() -> Path | None:
    spec = importlib.util.find_spec("torchvision")
    return Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else None


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, Path]:
    source = _torchvision()
    if source is None:
        pytest.skip("torchvision is not installed")
    mirror = tmp_path_factory.mktemp("mirror") / "torchvision"
    archs = [a for a in bench_models.TORCHVISION if a.name in EXPECTED]
    for relative in {*MIRROR, *(a.module for a in archs)}:
        (mirror / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, mirror / relative)
    for folder in {mirror, *(p.parent for p in mirror.rglob("*.py"))}:
        (folder / "__init__.py").touch()
    out = tmp_path_factory.mktemp("out") / bench_models.CONVERTED_PACKAGE["torchvision"]
    files, errors = bench_models.rewrite_package(mirror, out)
    assert errors == 0 and files == len(list(mirror.rglob("*.py")))
    return source, out


def _row(converted, name, jit):
    source, out = converted
    arch = next(a for a in bench_models.TORCHVISION if a.name == name)
    row = bench_models.run_arch(arch, source, out, jit=jit, timeout=600)
    # the rewrite columns are real: the converted file's imports and its TODO markers
    text = (out / arch.module).read_text()
    assert row.clean == (re.search(r"^\s*(import|from) torch\b", text, re.M) is None)
    assert row.todos == text.count("TODO(pt2jax):")
    return row


@pytest.mark.parametrize("name", PASSING)
def test_architecture_verifies(converted, name):
    jit = name in JITTED
    row = _row(converted, name, jit)
    assert (row.eager, row.jit) == ("pass", "pass" if jit else "-"), row
    # (the blocker column may still name a TODO that keeps the file from being torch-free)
    assert row.clean or row.todos > 0, row
    # the errors verify measured, not placeholders
    assert row.out_err is not None and row.grad_err is not None, row
    assert 0.0 <= row.out_err < 1e-3 and 0.0 <= row.grad_err < 1e-3, row


def test_the_table_counts_what_the_rows_say():
    rows = [bench_models.Row("a", "a.py", clean=True, eager="pass", jit="n/a", out_err=1e-7, grad_err=2e-7),
            bench_models.Row("b", "b.py", clean=False, todos=3, eager="error", blocker="verify: boom")]
    table = bench_models.render(rows, jit=True)
    assert table.splitlines()[-1] == "2 architectures: 1 torch-free, 1 verified eager, 0 verified jitted"
    assert "verify: boom" in table and "1.0e-07" in table
