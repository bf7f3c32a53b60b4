"""`pt2jax weights` and `verify --weights`: a real torch state_dict, saved to disk, converted,
loaded back into the converted model with the README's snippets, and run against torch.

Every [tool.pt2jax.verify] fixture model is checked (its torch weights perturbed with verify's
seeded noise first, so a variable left at its initial value cannot pass); each goes through one
output format, every format at least twice. The fixture models `--target linen` converts whole
go through the same, into Linen variables (tests/test_weights_linen.py). Bad checkpoints,
prefixes, `verify --weights` and the writers: tests/test_weights_files.py.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from pt2jax_migrate.api import convert_weights
from pt2jax_migrate.targets import get_target
from pt2jax_migrate.verify import DEFAULT_TOLERANCES
from pt2jax_migrate.verify.compare import flatten_output
from pt2jax_migrate.verify.building import _accepts_keyword, _loaded, build_converted, build_transferred
from pt2jax_migrate.verify.specs import make_arrays, parse_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pt2jax"]["verify"]
FORMATS = ("orbax", "safetensors", "msgpack")
SUFFIX = {"orbax": "_ckpt", "safetensors": ".safetensors", "msgpack": ".msgpack"}
MLP_IN, MLP_OUT = str(ROOT / "fixtures/mlp_classifier.in.py"), str(ROOT / "fixtures/mlp_classifier.out.py")


def readme_snippets() -> dict[str, str]:
    """The README's loading snippets, by format (the first comment line names it: `orbax`, and
    `orbax (linen)` for a Linen model)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Converting checkpoints", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    out = {b.splitlines()[0].lstrip("# ").strip(): b for b in blocks}
    assert set(out) == {*FORMATS, *(f"{f} (linen)" for f in FORMATS)}, out.keys()
    return out


SNIPPETS = readme_snippets()


def load_back(fmt: str, path: str, factory, init: str):
    """Run the README snippet for `fmt`, MLP(...) standing for the model's constructor."""
    import flax
    import flax.serialization  # noqa: F401
    import orbax.checkpoint as ocp
    import safetensors.numpy

    readme_path = {"orbax": "/tmp/mlp_ckpt", "safetensors": "/tmp/mlp.safetensors", "msgpack": "/tmp/mlp.msgpack"}
    code = SNIPPETS[fmt].replace(readme_path[fmt], path)
    code = code.replace("MLP(rngs=", f"__factory__({init}{', ' if init else ''}rngs=")
    ns = {"os": os, "flax": flax, "safetensors": safetensors, "ocp": ocp, "nnx": nnx, "__factory__": factory}
    exec(compile(code, f"README snippet ({fmt})", "exec"), ns)
    return ns["model"]


def torch_state(original: str, converted: str, model: str, init: str, seed: int = 3):
    """The torch model with verify's seeded noise on every weight (BatchNorm statistics too)."""
    roots = {model}
    with _loaded(original, roots, "torch") as tf, _loaded(converted, roots, "nnx") as jf:
        torch_model, *_ = build_transferred(tf, jf, original, converted, model, init, seed, get_target("nnx"),
                                            weights_map=None, perturb=True, float64=False)
    return torch_model


def jax_inputs(inputs: list[str]) -> list:
    return [jnp.asarray(a.astype(np.int32) if a.dtype == np.int64 else a)
            for a in make_arrays([parse_spec(s) for s in inputs], 0)]


def assert_parity(torch_model, jax_model, inputs: list[str]) -> None:
    """`jax_model` (an NNX module, or any callable in inference mode) gives torch's outputs."""
    arrays = make_arrays([parse_spec(s) for s in inputs], 0)
    torch_model.eval()
    if hasattr(jax_model, "eval"):
        jax_model.eval()
    with torch.no_grad():
        t_out = flatten_output(torch_model(*[torch.from_numpy(a) for a in arrays]))
    j_out = dict(flatten_output(jax_model(*jax_inputs(inputs))))
    atol, rtol = DEFAULT_TOLERANCES["float32"][:2]
    assert [n for n, _ in t_out] and sorted(n for n, _ in t_out) == sorted(j_out)
    for name, t in t_out:
        expected = t.numpy()
        err = float(np.max(np.abs(np.asarray(j_out[name]) - expected)))
        assert err <= atol + rtol * float(np.max(np.abs(expected))), (name, err)


# the fixture models a target leaves TODOs in, and why: skipped here (not converted whole), and
# listed, so a model that stops converting whole fails instead of dropping out. One that starts
# converting whole is picked up by the loop without a change here.
NOT_WHOLE = {"linen": {"gpt_decoder": "GPT's _init_weights through apply(fn): PTJ901 under Linen",
                       "lstm_language_model": "nn.init.uniform_ on the embedding: PTJ901 under Linen"}}


def whole_models(target: str, folder: Path) -> tuple[list[tuple[int, str, dict, str, str]], dict[str, str]]:
    """([(index, stem, entry, original, converted)], {stem: why skipped}) over the
    [tool.pt2jax.verify] fixture models: each rewritten with --target `target` (in process) into
    `folder`, kept when the rewrite leaves no TODO(pt2jax) marker."""
    from pt2jax_migrate.output.counts import count_todo_markers
    from pt2jax_migrate.rewrite import rewrite_source

    models, skipped = [], {}
    for key, entry in FIXTURES.items():
        original = str(ROOT / key)
        stem = Path(key).name.removesuffix(".in.py")
        text = rewrite_source(Path(original).read_text(), original, target=target).new_source
        todos = count_todo_markers(text)
        if todos:
            skipped[stem] = f"{todos} TODO(pt2jax) markers; {NOT_WHOLE.get(target, {}).get(stem, 'not listed')}"
            continue
        converted = folder / f"{stem}_{target}.py"
        converted.write_text(text)
        models.append((len(models), stem, entry, original, str(converted)))
    unlisted = {s: why for s, why in skipped.items() if s not in NOT_WHOLE.get(target, {})}
    assert not unlisted, f"fixture models --target {target} no longer converts whole: {unlisted}"
    assert models and len(models) + len(skipped) == len(FIXTURES), (models, skipped)
    print(f"--target {target}: {len(models)} fixture models checked; skipped: {skipped or 'none'}")
    return models, skipped


def save_checkpoint(torch_model, folder: Path, stem: str, safetensors: bool) -> Path:
    """The torch model's state_dict as `stem`.pt (torch.save) or `stem`.safetensors."""
    if safetensors:
        from safetensors.torch import save_file

        path = folder / f"{stem}.safetensors"
        save_file({k: v.contiguous() for k, v in torch_model.state_dict().items()}, str(path))
    else:
        path = folder / f"{stem}.pt"
        torch.save(torch_model.state_dict(), path)
    return path


def each_model(models, check) -> None:
    """check(*model) for every model, every failure reported together (by model)."""
    failures = []
    for model in models:
        try:
            check(*model)
        except Exception as exc:  # noqa: BLE001 -- reported below, by model
            failures.append(f"{model[1]}: {type(exc).__name__}: {exc}"[:2000])
    assert not failures, "\n".join(failures)


def test_fixture_models_round_trip(tmp_path):
    """A torch checkpoint of each fixture model the NNX rewrite converts whole -> `pt2jax
    weights` (one output format each, every format at least twice; one checkpoint read as
    .safetensors) -> the README's snippet -> the torch outputs; every parameter is the
    checkpoint's, not the constructor's."""
    models, _ = whole_models("nnx", tmp_path)

    def check(index, stem, entry, original, converted):
        model, init = entry["model"], entry.get("init", "")
        fmt = FORMATS[index % len(FORMATS)]
        torch_model = torch_state(original, converted, model, init)
        ckpt = save_checkpoint(torch_model, tmp_path, stem, safetensors=index == 1)
        out = str(tmp_path / f"{stem}{SUFFIX[fmt]}")
        result = convert_weights(str(ckpt), module=f"{converted}:{model}", original=original, init=init, out=out)
        assert (result.target, result.format) == ("nnx", fmt) and os.path.exists(out) and result.tensors > 0
        assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no temp left beside it
        with _loaded(converted, {model}, "nnx") as jf:
            factory = jf.namespace[model]
            if not _accepts_keyword(factory, "rngs"):  # a factory building its model with its own rngs
                factory = (lambda f: lambda *a, rngs=None, **k: f(*a, **k))(factory)
            restored = load_back(fmt, out, factory, init)
            assert_parity(torch_model, restored, entry["inputs"])
            # the snippet really replaced the weights: every parameter differs from a fresh model's
            fresh = build_converted(jf, converted, model, init, 0, get_target("nnx"))
            fresh = dict(nnx.to_flat_state(nnx.state(fresh, nnx.Param)))
            loaded = dict(nnx.to_flat_state(nnx.state(restored, nnx.Param)))
            assert set(loaded) == set(fresh) and loaded
            for path, var in loaded.items():
                assert not np.array_equal(np.asarray(var[...]), np.asarray(fresh[path][...])), path

    each_model(models, check)
    assert len(models) >= 7  # the seven [tool.pt2jax.verify] models all convert whole under NNX
