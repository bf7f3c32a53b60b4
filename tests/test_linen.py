"""`--target linen`: module classes as Flax Linen dataclasses (targets/linen/).

Per table entry the Linen side is tested in test_rules_generated.py; here: the fixture models
(lint and rewrite agree, the models pass verify against real torch), the class shape (fields,
setup, `train` threading, nn.Parameter, attribute/field clashes) and what is refused.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "fixtures").glob("*.in.py"))
VERIFY = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pt2jax"]["verify"]
# the fixture models Linen converts whole (partial_migration keeps TODOs on purpose, under both targets)
CONVERTED = ["mlp_classifier", "cnn_classifier", "regression_script", "unet", "vit_einops", "gpt_decoder",
             "lstm_language_model"]
KEEPS_TORCH: dict[str, str] = {}


def linen(source: str, path: str = "m.py"):
    return rewrite_source(source, path, target="linen")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_lint_and_rewrite_agree(path):
    """lint --target linen marks exactly what rewrite --target linen changes and leaves."""
    source = path.read_text()
    lint = lint_source(source, str(path), target="linen")
    result = linen(source, str(path))

    def keyed(findings, fixable, skip):
        return {(f.line, f.code) for f in findings if f.fixable == fixable and f.code not in skip}

    assert keyed(lint, True, {"PTJ001", "PTJ101"}) == keyed(result.findings, True, {"PTJ101"})
    notes = {(f.line, f.code) for f in lint if f.code == "PTJ303" and f.severity == "info"}  # train()/eval()
    assert keyed(lint, False, {"PTJ001"}) - notes == keyed(result.findings, False, set())
    ast.parse(result.new_source)
    assert linen(result.new_source, str(path)).new_source == result.new_source  # idempotent
    stem = path.name.removesuffix(".in.py")
    if stem in KEEPS_TORCH:
        assert f"# TODO(pt2jax): {KEEPS_TORCH[stem]}" in result.new_source
    if stem in KEEPS_TORCH or stem in CONVERTED:
        assert "keeps PyTorch layers" not in result.new_source  # every layer has a Linen mapping


def _verify_entry(stem: str) -> tuple[str, dict]:
    return next((key, entry) for key, entry in VERIFY.items() if Path(key).name == f"{stem}.in.py")


def test_every_converted_fixture_has_a_verify_entry():
    assert all(_verify_entry(stem) for stem in CONVERTED)


@pytest.mark.parametrize("stem", CONVERTED)  # one test a model: xdist shares them out
def test_fixture_models_pass_verify(tmp_path, stem):
    """Every fixture model Linen converts whole passes verify (model.init, the tables' weight
    transfer into params/batch_stats, outputs and gradients eager and under jax.jit)."""
    from pt2jax_migrate.verify import run_verify

    key, entry = _verify_entry(stem)
    original = ROOT / key
    converted = tmp_path / f"{stem}_linen.py"
    converted.write_text(linen(original.read_text(), str(original)).new_source)
    jit = stem == "mlp_classifier"  # one model also under jax.jit; the rest eager (suite time)
    report = run_verify(str(original), str(converted), model=entry["model"], init=entry.get("init", ""),
                        inputs=entry["inputs"], jit=jit)
    assert report.passed and report.jit == jit and report.transferred > 0, (key, report.to_dict())


MLP = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, p: float = 0.1, scale=2):
        super().__init__()
        self.dim = dim
        self.scale = scale * 1.0
        self.fc = nn.Linear(dim, dim)
        self.bn = nn.BatchNorm1d(dim)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        return self.drop(F.relu(self.bn(self.fc(x)))) * self.scale


class Net(nn.Module):
    def __init__(self, dim=8, vocab=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.Sequential(Block(dim), nn.Dropout(0.2), Block(dim, p=0.3))
        self.norm = nn.LayerNorm((2, dim))
        self.gain = nn.Parameter(torch.ones(dim))
        self.noise = nn.Parameter(torch.randn(2, dim) * 0.1)
        self.head = Block(dim)

    def forward(self, tokens):
        x = self.embed(tokens)
        x = self.blocks(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        return self.head(self.norm(x + self.noise).reshape(-1, x.shape[-1]) * self.gain)
'''


def test_class_shape():
    text = linen(MLP).new_source
    assert "class Block(linen.Module):\n    dim: Any\n    p: float = 0.1\n    scale: int = 2\n" in text
    assert "        dim, p, scale = self.dim, self.p, self.scale\n" in text  # the body reads the fields as locals
    assert "self.dim = dim" not in text  # the field holds it already
    # an attribute named like a field (frozen in Linen) is renamed, everywhere in the class
    assert "self.scale_ = scale * 1.0" in text and "* self.scale_" in text
    assert "self.fc = linen.Dense(dim, kernel_init=torch_kernel_init, bias_init=torch_bias_init(dim))" in text
    assert "self.bn = TorchBatchNorm(axis=1, momentum=0.9, epsilon=1e-05)" in text
    assert "def __call__(self, x, *, train: bool = False):" in text
    assert ("self.drop(jax.nn.relu(self.bn(self.fc(x), use_running_average=not train)), "
            "deterministic=not train)") in text
    assert "self.blocks = Sequential(Block(dim), linen.Dropout(0.2), Block(dim, p=0.3))" in text
    assert "self.blocks(x.reshape(-1, x.shape[-1]), train=train)" in text
    assert "self.head(self.norm(x + self.noise).reshape(-1, x.shape[-1]) * self.gain, train=train)" in text
    assert 'self.gain = self.param("gain", lambda _key: jnp.ones((dim,)))' in text
    assert 'self.noise = self.param("noise", lambda key: jax.random.normal(key, (2, dim)) * 0.1)' in text
    assert "reduction_axes=normalized_axes((2, dim)), feature_axes=normalized_axes((2, dim))" in text
    assert "reduction_axes=(-2, -1)" in linen(MLP.replace("nn.LayerNorm((2, dim))", "nn.LayerNorm((2, 8))")).new_source
    assert "rngs" not in text.split("class Block")[1]  # Linen modules are built without randomness


def test_class_parity_with_parameters_and_train_threading(tmp_path):
    from pt2jax_migrate.verify import run_verify

    original, converted = tmp_path / "net_torch.py", tmp_path / "net_linen.py"
    original.write_text(MLP)
    converted.write_text(linen(MLP).new_source)
    # eager only (the jit run is the fixtures' and the table entries' check): keeps the suite fast
    report = run_verify(str(original), str(converted), model="Net", inputs=["int64[3,2]:0..10"], jit=False)
    assert report.passed, report.to_dict()
    assert report.transferred == 23  # embedding, 3 blocks x (fc 2 + bn 4), norm 2, gain, noise


def test_train_flag_reaches_dropout_in_sequential(tmp_path):
    """train=True drops (keys from the 'dropout' stream); train=False is deterministic."""
    import jax
    import jax.numpy as jnp

    from pt2jax_migrate.verify.loader import load_slice

    converted = tmp_path / "net_linen.py"
    converted.write_text(linen(MLP).new_source)
    net = load_slice(str(converted), {"Net"}).namespace["Net"]()
    tokens = jnp.zeros((3, 2), jnp.int32)
    variables = net.init(jax.random.key(0), tokens)
    assert set(variables) == {"params", "batch_stats"}
    eval_a = net.apply(variables, tokens)
    eval_b = net.apply(variables, tokens, train=False)
    assert jnp.array_equal(eval_a, eval_b)
    train, _ = net.apply(variables, tokens, train=True, rngs={"dropout": jax.random.key(1)},
                         mutable=["batch_stats"])
    assert not jnp.allclose(train, eval_a)


@pytest.mark.parametrize("source, message", [
    ("class M(nn.Module):\n    def __init__(self, *sizes):\n        super().__init__()\n"
     "        self.fc = nn.Linear(sizes[0], 2)\n", "__init__ takes *args/**kwargs"),
    ("class M(nn.Module):\n    def __init__(self, name):\n        super().__init__()\n"
     "        self.fc = nn.Linear(2, 2)\n", "named `name` or `parent`"),
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.fc = nn.Linear(2, 2)\n\n    def forward(self, x):\n        return self.flip(x)\n\n"
     "    def flip(self, x):\n        return x if self.training else -x\n\n    def other(self, x):\n"
     "        return self.flip(x)\n", "not a method only forward calls"),  # only forward's: `train`
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.drop = nn.Dropout(0.1)\n\n    def forward(self, x):\n        return self.go(x)\n\n"
     "    def go(self, x):\n        return self.drop(x)\n\n\nprint(M().go)\n", "self.drop takes `train`"),
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.drop = nn.Dropout(0.1)\n\n    def forward(self, x):\n        f = self.drop\n        return f(x)\n",
     "is not called directly"),
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.ws = [nn.Parameter(torch.zeros(2))]\n", "nn.Parameter not assigned"),
    ("class M(nn.Module):\n    pass\n\n\nprint(M())\n", "builds a Linen module"),
    ("class A(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n        self.fc = nn.Linear(d, d)\n\n\n"
     "class B(A):\n    def __init__(self, d):\n        super().__init__(d)\n        self.g = nn.Linear(d, 1)\n",
     "extends a converted class with its own __init__"),
    ("class S(nn.Sequential):\n    def __init__(self):\n        super().__init__(nn.Linear(2, 2))\n",
     "subclasses torch.nn.Sequential: not converted for target linen"),
    ("class M(nn.Module):\n    def __init__(self, deep):\n        super().__init__()\n        if deep:\n"
     "            self.layers = nn.ModuleList()\n        self.layers.append(nn.Linear(2, 2))\n",
     "changed after an assignment inside a block"),
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.seq = nn.Sequential(nn.Linear(2, 2))\n        self.seq.append(nn.ReLU())\n",
     "the Linen Sequential's layers are a tuple"),
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.register_buffer('n', torch.zeros(()))\n\n    def forward(self, x):\n        self.n += 1\n"
     "        return x\n", "not converted for target linen"),
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.drops = nn.ModuleList([nn.Dropout(0.1), nn.Dropout(0.2)])\n\n    def forward(self, x):\n"
     "        return [d(x) for d in self.drops]\n", "passed on only where forward calls one"),
    ("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.mixed = nn.ModuleList([nn.Dropout(0.1), nn.BatchNorm1d(2)])\n\n    def forward(self, x):\n"
     "        for m in self.mixed:\n            x = m(x)\n        return x\n", "take `train` differently"),
])
def test_refused_constructs_are_todos_in_lint_and_rewrite(source, message):
    source = "import torch\nimport torch.nn as nn\n\n\n" + source
    result = linen(source)
    todos = [f for f in result.findings if not f.fixable and message in f.message]
    assert todos, result.findings
    assert "# TODO(pt2jax): " in result.new_source
    lint = [f for f in lint_source(source, "m.py", target="linen") if not f.fixable and message in f.message]
    assert {(f.line, f.code) for f in lint} == {(f.line, f.code) for f in todos}
    # the same source for the default target: none of Linen's refusals
    assert not [f for f in rewrite_source(source, "m.py").findings if "Linen" in f.message]


def test_forward_with_kwargs_still_takes_train():
    source = ("import torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.drop = nn.Dropout(0.5)\n\n    def forward(self, x, *args, **kwargs):\n"
              "        return self.drop(x)\n")
    text = linen(source).new_source
    assert "def __call__(self, x, *args, train: bool = False, **kwargs):" in text
    assert "self.drop(x, deterministic=not train)" in text


def test_training_code_converts():
    """The training half (targets/linen/training.py; programs: test_linen_programs.py)."""
    text = linen((ROOT / "fixtures" / "mlp_classifier.in.py").read_text()).new_source
    assert "LinenOptimizer(model, optax.adamw(" in text and "model = LinenModel(MLP(" in text
    assert "@linen_train_step" in text and "loss.backward()" not in text and "optimizer.step()" not in text
    assert "nnx.Optimizer" not in text and "nnx.Module" not in text and "TODO(pt2jax)" not in text


def test_cli_rewrite_and_verify_linen(tmp_path):
    from click.testing import CliRunner

    from pt2jax_migrate.cli import main

    out = tmp_path / "out"
    runner = CliRunner()
    fixture = ROOT / "fixtures" / "mlp_classifier.in.py"
    rewrite = runner.invoke(main, ["rewrite", "--target", "linen", str(fixture), "--out", str(out), "-q"])
    assert rewrite.exit_code == 0, rewrite.output
    converted = out / "mlp_classifier.in.py"
    assert "class MLP(linen.Module):" in converted.read_text()
    verify = runner.invoke(main, ["verify", str(fixture), str(converted), "--model", "MLP", "--input", "float32[8,20]"])
    assert verify.exit_code == 0 and "PASS" in verify.output, verify.output
    lint = runner.invoke(main, ["lint", "--no-cache", "--target", "linen", str(fixture)])
    assert "PTJ201 torch.optim.AdamW optimizer [fixable]" in lint.output


def test_lint_cache_keeps_the_targets_apart(tmp_path, monkeypatch):
    from pt2jax_migrate.api import lint_paths
    from pt2jax_migrate.lint import LintCache
    from pt2jax_migrate.project import LintOptions

    monkeypatch.setenv("PT2JAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    LintCache.fingerprint.cache_clear()
    (tmp_path / "m.py").write_text("import torch\nimport torch.nn as nn\n\n\nclass M(nn.Module):\n    pass\n\n\nprint(M())\n")

    def messages(target):
        report = lint_paths(["m.py"], LintOptions(target=target), cache=True)
        return [f.message for file in report.files for f in file.findings]

    nnx, linen_first, linen_cached = messages("nnx"), messages("linen"), messages("linen")
    assert not any("Linen" in m for m in nnx)
    assert any("builds a Linen module" in m for m in linen_first) and linen_cached == linen_first
    assert messages("nnx") == nnx
