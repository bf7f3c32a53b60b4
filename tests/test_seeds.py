"""Seeds and generators -> explicit key streams: torch.manual_seed / torch.random.manual_seed(s)
-> `rngs = nnx.Rngs(s)` (the seed carried over), torch.Generator() -> a stream of its own,
g.manual_seed(s) -> a new stream, `generator=g` -> keys drawn from g.

JAX's numbers differ from torch's by design; what is checked is what a program relies on: the
same seed gives the same draws, reseeding a generator replays them, a generator's draws do not
move the global stream, a permutation is a permutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

SCRIPT = """\
import torch

torch.random.manual_seed(SEED)
a = torch.randn(3)
g = torch.Generator().manual_seed(1)
b1 = torch.randn(2, 3, generator=g)
g.manual_seed(1)
b2 = torch.randn(2, 3, generator=g)
g2 = torch.Generator(device="cpu")
g2.manual_seed(5)
p = torch.randperm(10, generator=g2)
u = torch.rand(4, generator=None)
i = torch.randint(0, 5, (6,), generator=g2)
c = torch.randn(3)
"""


def run(source: str, seed: int) -> dict:
    namespace: dict = {}
    exec(compile(source.replace("SEED", str(seed)), "<program>", "exec"), namespace)
    return {k: np.asarray(v) for k, v in namespace.items() if k in {"a", "b1", "b2", "p", "u", "i", "c"}}


@pytest.fixture(scope="module")
def converted() -> str:
    result = rewrite_source(SCRIPT, "seeds.py")
    assert "TODO(pt2jax)" not in result.new_source, result.new_source
    assert "import torch" not in result.new_source
    return result.new_source


def test_rewrite_spells_explicit_streams(converted):
    assert "rngs = nnx.Rngs(SEED)" in converted
    assert "g = nnx.Rngs(1)" in converted  # torch.Generator().manual_seed(1)
    assert converted.count("g = nnx.Rngs(1)") == 2  # the statement g.manual_seed(1) rebinds g
    assert "g2 = nnx.Rngs(0)" in converted and "g2 = nnx.Rngs(5)" in converted
    assert "jax.random.normal(g(), (2, 3))" in converted
    assert "jax.random.permutation(g2(), 10)" in converted
    assert "jax.random.randint(g2(), (6,), 0, 5)" in converted
    assert "jax.random.uniform(rngs(), (4,))" in converted
    assert rewrite_source(converted, "seeds.py").new_source == converted


def test_lint_and_rewrite_agree_on_seeds():
    lint = sorted((f.line, f.code, f.fixable, f.fix) for f in lint_source(SCRIPT, "seeds.py") if f.code != "PTJ001")
    rewrite = sorted((f.line, f.code, f.fixable, f.fix) for f in rewrite_source(SCRIPT, "seeds.py").findings)
    assert lint == rewrite
    assert all(fixable for _, _, fixable, _ in lint)


@pytest.mark.parametrize("source", ["torch", "jax"])
def test_the_program_relies_on_what_both_give(source, converted):
    program = SCRIPT if source == "torch" else converted
    first, again, other = run(program, 0), run(program, 0), run(program, 1)
    for key in first:  # the same seed: the same numbers, every one
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    assert not np.array_equal(first["a"], other["a"])  # the seed is carried over
    np.testing.assert_array_equal(first["b1"], first["b2"])  # reseeding a generator replays it
    np.testing.assert_array_equal(first["b1"], other["b1"])  # its own seed, not the global one
    assert sorted(first["p"].tolist()) == list(range(10))
    assert first["i"].min() >= 0 and first["i"].max() < 5 and first["i"].shape == (6,)
    assert first["u"].shape == (4,) and 0 <= first["u"].min() and first["u"].max() < 1


def test_generator_draws_leave_the_global_stream_alone(converted):
    without = converted.replace("b1 = jax.random.normal(g(), (2, 3))", "")
    assert without != converted
    np.testing.assert_array_equal(run(converted, 0)["c"], run(without, 0)["c"])
    torch_without = SCRIPT.replace("b1 = torch.randn(2, 3, generator=g)", "")
    torch.manual_seed(0)  # the torch side too (the property the conversion keeps)
    np.testing.assert_array_equal(run(SCRIPT, 0)["c"], run(torch_without, 0)["c"])


LOADER = """\
import torch
from torch.utils.data import DataLoader, TensorDataset

g = torch.Generator()
g.manual_seed(0)
loader = DataLoader(TensorDataset(x), shuffle=True, generator=g)
loader2 = DataLoader(TensorDataset(x), shuffle=True, generator=torch.Generator().manual_seed(3))
h = torch.Generator().manual_seed(1)
y = torch.randn(3, generator=h)
"""


def test_a_dataloaders_generator_stays_pytorchs():
    """The DataLoader stays PyTorch (the data-pipeline policy): its generator must stay a
    torch.Generator (a key stream would break it), marked; the other one is converted."""
    result = rewrite_source(LOADER, "loader.py")
    new = result.new_source
    assert "g = torch.Generator()\ng.manual_seed(0)\n" in new
    assert "generator=torch.Generator().manual_seed(3), collate_fn=numpy_collate)" in new
    kept = [(f.line, f.code) for f in result.findings if not f.fixable and "torch.Generator" in f.message]
    assert kept == [(4, "PTJ401"), (7, "PTJ401")]
    assert "h = nnx.Rngs(1)" in new and "jax.random.normal(h(), (3,))" in new
    lint = sorted((f.line, f.code, f.fixable) for f in lint_source(LOADER, "loader.py") if f.code != "PTJ001")
    assert lint == sorted((f.line, f.code, f.fixable) for f in result.findings)
