"""Tests generated from the `example` of every entry in rules/*.toml (Fixit-style).

For each example the suite builds a tiny PyTorch module around it, rewrites it with the real
engine, and then
  1. rewrite test: the example's construct is reported as converted (right code, no TODO), the
     output parses and no longer imports torch, and rewriting the output again changes nothing;
  2. parity test: `pt2jax verify` runs the torch original and the converted module on the same
     (perturbed) weights and inputs and compares outputs and parameter gradients; examples
     marked `train = true` also compare a train-mode call and the state it updates.
Optimizer examples run three optimizer steps on both sides from the same weights instead.
Every example also runs through lint: the entry's code is reported on it, fixable exactly as
the table says (status, safety). Entries may carry `valid` snippets, code on which lint must
report nothing with the entry's code (a `str.split`, `math.exp`, an already-converted line).
A new mapping therefore needs only a TOML entry with an example to be tested both ways.
"""

from __future__ import annotations

import ast
import textwrap

import pytest

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source
from pt2jax_migrate.rules import load_rules

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def _examples():
    out = []
    for rule in load_rules().entries:
        example = rule.example
        if example is None or example.get("skip"):
            continue
        out.append(pytest.param(rule, id=f"{rule.kind}-{rule.label}"))
    return out


EXAMPLES = _examples()


def torch_source(rule) -> str:
    example = rule.example
    expr = example["torch"]
    if rule.kind == "optimizer":
        body = f"""
        class Example(nn.Module):
            def __init__(self):
                super().__init__()
                self.first = nn.Linear(4, 5)
                self.second = nn.Linear(5, 3)

            def forward(self, x):
                return self.second(torch.tanh(self.first(x)))


        def make_optimizer(model):
            return {expr}
        """
    elif rule.kind == "layer":
        body = f"""
        class Example(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = {expr}

            def forward(self, x):
                return {example.get("forward", "self.layer(x)")}
        """
    else:
        args = "x, t" if "target" in example else "x"
        body = f"""
        class Example(nn.Module):
            def forward(self, {args}):
                return {expr}
        """
    einops_layers = "from einops.layers.torch import Rearrange, Reduce\n"
    header = HEADER.replace("\n\n\n", "\n" + einops_layers + "\n\n") if "Rearrange(" in expr or "Reduce(" in expr else HEADER
    return header + textwrap.dedent(body).lstrip()


def test_every_mapping_has_an_example_or_a_reason():
    """Entries without an example must say why (skip = reason) or be engine-handled ones."""
    # engine-handled entries have their own tests (test_rewrite.py); random sampling cannot be
    # compared value for value (JAX's streams differ from torch's by design)
    engine_handled = {"torch.nn.ModuleList", "torch.nn.ModuleDict", "torch.manual_seed", "to", "numpy", "max"}
    missing = [
        r.label for r in load_rules().entries
        if r.example is None and r.label not in engine_handled and r.status == "exact" and r.get("needs_key") is None
    ]
    assert not missing, f"mappings without an example: {missing}"


@pytest.mark.parametrize("rule", EXAMPLES)
def test_example_rewrite(rule):
    source = torch_source(rule)
    result = rewrite_source(source, "example.py")
    todos = [f for f in result.findings if not f.fixable]
    assert not todos, todos
    line = _example_line(source, rule)
    codes_on_line = {f.code for f in result.findings if f.line == line}
    assert rule.code in codes_on_line, (rule.code, result.findings)
    tree = ast.parse(result.new_source)
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in imports, result.new_source
    assert rewrite_source(result.new_source, "example.py").new_source == result.new_source
    expected = rule.example.get("jax")
    if expected is not None:
        assert expected in result.new_source, result.new_source


def _example_line(source: str, rule) -> int:
    return next(i for i, text in enumerate(source.splitlines(), 1) if rule.example["torch"] in text)


@pytest.mark.parametrize("rule", [pytest.param(r, id=f"{r.kind}-{r.label}") for r in load_rules().entries
                                  if r.example is not None])
def test_example_lint(rule):
    """Lint reports the entry's code on its example, fixable (and safe/unsafe) as the table says."""
    source = torch_source(rule)
    line = _example_line(source, rule)
    found = [f for f in lint_source(source, "example.py") if f.line == line and f.code == rule.code
             and (rule.kind != "method" or any(f.message.startswith(f".{name}(") for name in rule.names))]
    assert found, (rule.code, lint_source(source, "example.py"))
    fixable = rule.status != "refused"
    fix = rule.get("safety", "safe") if fixable else "manual"
    assert [(f.fixable, f.fix) for f in found] == [(fixable, fix)] * len(found), found


PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
VALID = [pytest.param(rule, snippet, id=f"{rule.kind}-{rule.label}-{i}")
         for rule in load_rules().entries for i, snippet in enumerate(rule.get("valid", []))]


def test_tables_carry_valid_examples():
    assert len(VALID) >= 10  # the `valid` key is read (a misspelt key would be a load error)


@pytest.mark.parametrize(("rule", "snippet"), VALID)
def test_valid_snippet_has_no_finding(rule, snippet):
    """A negative example: lint reports nothing with the entry's code on the snippet's lines."""
    first = PRELUDE.count("\n") + 1
    lines = range(first, first + snippet.count("\n") + 1)
    findings = lint_source(PRELUDE + snippet + "\n", "valid.py")
    assert not [f for f in findings if f.code == rule.code and f.line in lines], findings


def _write_pair(tmp_path, rule):
    source = torch_source(rule)
    original = tmp_path / "example_torch.py"
    converted = tmp_path / "example_jax.py"
    original.write_text(source)
    converted.write_text(rewrite_source(source, str(original)).new_source)
    return original, converted


@pytest.mark.parametrize("rule", [p for p in EXAMPLES if p.values[0].kind != "optimizer"])
def test_example_parity(rule, tmp_path):
    from pt2jax_migrate.verify import run_verify

    if rule.names[0].startswith("einops."):
        pytest.importorskip("einops")
    original, converted = _write_pair(tmp_path, rule)
    inputs = [rule.example["input"]] + ([rule.example["target"]] if "target" in rule.example else [])
    report = run_verify(str(original), str(converted), model="Example", inputs=inputs)
    assert report.passed, report.to_dict()
    if rule.example.get("train"):
        _train_mode_parity(original, converted, inputs)


def _train_mode_parity(original, converted, inputs):
    """A train-mode call: same output and same updated state (e.g. BatchNorm running stats)."""
    import jax.numpy as jnp
    import numpy as np
    import torch
    from flax import nnx

    from pt2jax_migrate.verify import transfer_weights
    from pt2jax_migrate.verify.loader import load_slice
    from pt2jax_migrate.verify.specs import make_arrays, parse_spec

    torch_cls = load_slice(str(original), {"Example"}).namespace["Example"]
    jax_cls = load_slice(str(converted), {"Example"}).namespace["Example"]
    torch_model, jax_model = torch_cls(), jax_cls(rngs=nnx.Rngs(0))
    transfer_weights(torch_model, jax_model)
    torch_model.train()
    jax_model.train()
    arrays = make_arrays([parse_spec(s) for s in inputs], seed=3)
    for _ in range(2):
        want = torch_model(*[torch.tensor(a) for a in arrays]).detach().numpy()
        got = np.asarray(jax_model(*[jnp.asarray(a) for a in arrays]))
        assert np.max(np.abs(want - got)) <= 1e-5
    reference = jax_cls(rngs=nnx.Rngs(1))
    transfer_weights(torch_model, reference)
    expected = dict(nnx.to_flat_state(nnx.state(reference)))
    actual = dict(nnx.to_flat_state(nnx.state(jax_model)))
    for path, variable in expected.items():
        if isinstance(variable, (nnx.Param, nnx.BatchStat)):
            err = np.max(np.abs(np.asarray(variable[...]) - np.asarray(actual[path][...])))
            assert err <= 1e-5, (path, err)


@pytest.mark.parametrize("rule", [p for p in EXAMPLES if p.values[0].kind == "optimizer"])
def test_optimizer_example_parity(rule, tmp_path):
    """Three optimizer steps from the same weights on the same data give the same weights."""
    import jax.numpy as jnp
    import numpy as np
    import torch
    from flax import nnx

    from pt2jax_migrate.verify import transfer_weights
    from pt2jax_migrate.verify.loader import load_slice

    original, converted = _write_pair(tmp_path, rule)
    torch_ns = load_slice(str(original), {"Example", "make_optimizer"}).namespace
    jax_ns = load_slice(str(converted), {"Example", "make_optimizer"}).namespace
    torch.manual_seed(0)
    torch_model = torch_ns["Example"]()
    jax_model = jax_ns["Example"](rngs=nnx.Rngs(0))
    transfer_weights(torch_model, jax_model)
    torch_opt = torch_ns["make_optimizer"](torch_model)
    jax_opt = jax_ns["make_optimizer"](jax_model)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)

    def jax_loss(model):
        return ((model(jnp.asarray(x)) - jnp.asarray(t)) ** 2).mean()

    for step in range(3):
        torch_opt.zero_grad()
        ((torch_model(torch.tensor(x)) - torch.tensor(t)) ** 2).mean().backward()
        torch_opt.step()
        _, grads = nnx.value_and_grad(jax_loss)(jax_model)
        jax_opt.update(jax_model, grads)
        reference = jax_ns["Example"](rngs=nnx.Rngs(1))
        transfer_weights(torch_model, reference)
        expected = dict(nnx.to_flat_state(nnx.state(reference, nnx.Param)))
        actual = dict(nnx.to_flat_state(nnx.state(jax_model, nnx.Param)))
        for path, variable in expected.items():
            err = float(np.max(np.abs(np.asarray(variable[...]) - np.asarray(actual[path][...]))))
            assert err <= 2e-6, f"step {step + 1} {path}: {err:.3g}"


# --------------------------------------------------------------------------- per target: Linen
# The same examples for `--target linen`. An entry converts for Linen through its own
# [x.linen] sub-table (modules, containers) or the nnx one it shares (framework-neutral text,
# rules_schema.SHARES_SIDES); either way lint and rewrite must say so, and the entries with
# their own Linen rendering are run against real torch. An entry without a Linen mapping must
# be a counted TODO in both front ends, never converted.

LINEN = load_rules(target="linen")


def _linen_own(rule) -> bool:
    return "linen" in rule.sides and rule.sides["linen"] is not rule.sides.get("nnx")


LINEN_CONVERTED = [pytest.param(r, id=f"{r.kind}-{r.label}") for r in LINEN.entries
                   if r.example is not None and not r.example.get("skip") and r.status != "refused"
                   and r.supports() and r.kind != "optimizer"]
LINEN_OWN = [p for p in LINEN_CONVERTED if _linen_own(p.values[0])]
LINEN_UNMAPPED = [pytest.param(r, id=f"{r.kind}-{r.label}") for r in LINEN.entries
                  if r.example is not None and r.status != "refused" and not r.supports()]


def _linen_refusal(rule) -> str | None:
    """Why the example's own call is not converted for Linen (None: it is)."""
    from pt2jax_migrate.core.calls import arguments_from_text
    from pt2jax_migrate.mapping import check_rule

    shorts = {n.rsplit(".", 1)[-1] for n in rule.names}
    call = next((c for c in ast.walk(ast.parse(rule.example["torch"], mode="eval")) if isinstance(c, ast.Call)
                 and ast.unparse(c.func).rsplit(".", 1)[-1] in shorts), None)
    if call is None or rule.kind == "method":
        return None
    args = tuple((ast.unparse(a), False) for a in call.args)
    kwargs = tuple((k.arg, ast.unparse(k.value)) for k in call.keywords)
    del arguments_from_text
    short = ast.unparse(call.func).rsplit(".", 1)[-1]
    name = next((n for n in rule.names if n.rsplit(".", 1)[-1] == short), rule.names[0])
    return check_rule(rule, name, args, kwargs)


def _about(finding, rule) -> bool:
    """The finding is about this entry (an example line may hold other entries' calls too)."""
    if rule.kind == "method":
        return any(finding.message.startswith(f".{name}(") for name in rule.names)
    return any(finding.message.startswith(name) for name in rule.names)


def test_linen_covers_the_module_layers():
    own = {p.values[0].label for p in LINEN_OWN}
    assert {"torch.nn.Linear", "torch.nn.Conv2d", "torch.nn.BatchNorm1d", "torch.nn.LayerNorm",
            "torch.nn.Dropout", "torch.nn.Sequential"} <= own
    # framework-neutral entries are shared, not copied: the same table object as nnx's
    relu = LINEN.by_name["torch.nn.ReLU"]
    assert relu.supports() and relu.side() is relu.sides["nnx"]
    # a helper built on nnx.Module has its own Linen text under the same name: its own sub-table
    lstm = LINEN.by_name["torch.nn.LSTM"]
    assert lstm.supports() and lstm.side() is not lstm.sides["nnx"]
    assert {"torch.nn.LSTM", "torch.nn.GRUCell", "torch.nn.GroupNorm", "torch.nn.ConvTranspose1d",
            "torch.nn.MultiheadAttention", "torch.nn.TransformerEncoder"} <= own
    # every module entry with an NNX mapping has a Linen one
    assert not [r.label for r in LINEN.entries if r.kind == "layer" and "nnx" in r.sides and not r.supports()]


@pytest.mark.parametrize("rule", LINEN_CONVERTED)
def test_linen_example_rewrite_and_lint(rule):
    source = torch_source(rule)
    line = _example_line(source, rule)
    result = rewrite_source(source, "example.py", target="linen")
    lint = [f for f in lint_source(source, "example.py", target="linen") if f.line == line and f.code == rule.code
            and _about(f, rule)]
    refusal = _linen_refusal(rule)
    if refusal is not None:  # an argument the Linen side does not map (Embedding's padding_idx)
        assert [f.fixable for f in lint] == [False] * len(lint) and lint
        assert any(f.line == line and not f.fixable and refusal in f.message for f in result.findings)
        assert "# TODO(pt2jax): " in result.new_source
        return
    assert lint and all(f.fixable and f.fix == rule.get("safety", "safe") for f in lint), lint
    assert not [f for f in result.findings if not f.fixable], result.findings
    assert rule.code in {f.code for f in result.findings if f.line == line and f.fixable}
    tree = ast.parse(result.new_source)
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in imports, result.new_source
    assert "class Example(linen.Module):" in result.new_source and "nnx.Module" not in result.new_source
    assert rewrite_source(result.new_source, "example.py", target="linen").new_source == result.new_source


@pytest.mark.parametrize("rule", LINEN_UNMAPPED)
def test_linen_unmapped_entry_is_a_todo_in_lint_and_rewrite(rule):
    source = torch_source(rule)
    line = _example_line(source, rule)
    lint = [f for f in lint_source(source, "example.py", target="linen") if f.line == line and f.code == rule.code
            and _about(f, rule)]
    assert lint and not any(f.fixable for f in lint), lint
    result = rewrite_source(source, "example.py", target="linen")
    assert any(f.line == line and f.code == rule.code and not f.fixable and _about(f, rule) for f in result.findings)
    assert f"# TODO(pt2jax): {rule.code}" in result.new_source


@pytest.mark.parametrize("rule", LINEN_OWN)
def test_linen_example_parity(rule, tmp_path):
    """The entries with their own Linen rendering against real torch (verify: model.init, the
    weights through the same tables, outputs and gradients eager and under jax.jit)."""
    from pt2jax_migrate.verify import run_verify

    if _linen_refusal(rule) is not None:
        pytest.skip("the example's arguments are refused for linen (test_linen_example_rewrite_and_lint)")
    source = torch_source(rule)
    original, converted = tmp_path / "example_torch.py", tmp_path / "example_jax.py"
    original.write_text(source)
    converted.write_text(rewrite_source(source, str(original), target="linen").new_source)
    inputs = [rule.example["input"]] + ([rule.example["target"]] if "target" in rule.example else [])
    report = run_verify(str(original), str(converted), model="Example", inputs=inputs)
    assert report.passed and report.jit, report.to_dict()
    if rule.example.get("train"):
        _linen_train_mode_parity(original, converted, inputs)


def _linen_train_mode_parity(original, converted, inputs):
    """Train mode: the same output and the same updated statistics ('batch_stats') as torch."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from pt2jax_migrate.targets import get_target
    from pt2jax_migrate.verify import transfer_weights
    from pt2jax_migrate.verify.loader import load_slice
    from pt2jax_migrate.verify.specs import make_arrays, parse_spec

    target = get_target("linen")
    torch_model = load_slice(str(original), {"Example"}).namespace["Example"]()
    module = load_slice(str(converted), {"Example"}).namespace["Example"]()
    arrays = make_arrays([parse_spec(s) for s in inputs], seed=3)
    model = target.materialize(module, [jnp.asarray(a) for a in arrays], 0)
    transfer_weights(torch_model, model, target=target)
    torch_model.train()
    variables = model.variables
    for _ in range(2):
        want = torch_model(*[torch.tensor(a) for a in arrays]).detach().numpy()
        got, updates = jax.jit(lambda v, *xs: module.apply(v, *xs, train=True, mutable=["batch_stats"]))(
            variables, *[jnp.asarray(a) for a in arrays])
        variables = {**variables, **updates}
        assert np.max(np.abs(want - np.asarray(got))) <= 1e-5
    reference = target.materialize(module, [jnp.asarray(a) for a in arrays], 1)
    transfer_weights(torch_model, reference, target=target)
    from flax import traverse_util

    for collection in ("params", "batch_stats"):
        expected = traverse_util.flatten_dict(reference.variables[collection])
        actual = traverse_util.flatten_dict(variables[collection])
        for path, value in expected.items():
            err = np.max(np.abs(np.asarray(value) - np.asarray(actual[path])))
            assert err <= 1e-5, (collection, path, err)
