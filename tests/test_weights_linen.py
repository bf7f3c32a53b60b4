"""`pt2jax weights` into Linen variables: a real torch state_dict of each fixture model the
Linen rewrite converts whole, converted (the Linen file detected), loaded back with the README's
Linen snippets and run against torch; the bad-checkpoint cases as for NNX (tests/test_weights.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pt2jax_migrate.api import convert_weights
from pt2jax_migrate.verify.building import _loaded
from test_weights import (FIXTURES, FORMATS, MLP_IN, SNIPPETS, SUFFIX, assert_parity, each_model, jax_inputs,
                          save_checkpoint, torch_state, whole_models)

REGRESSOR_IN = str(Path(MLP_IN).with_name("regression_script.in.py"))


def linen_file(folder: Path, original: str) -> str:
    """`original` rewritten with --target linen (in process), written into `folder`."""
    from pt2jax_migrate.rewrite import rewrite_source

    path = folder / f"{Path(original).name.removesuffix('.in.py')}_linen.py"
    path.write_text(rewrite_source(Path(original).read_text(), original, target="linen").new_source)
    return str(path)


def load_back_linen(fmt: str, path: str, factory, init: str, x):
    """Run the README's Linen snippet for `fmt`: (module, variables)."""
    import flax
    import flax.serialization  # noqa: F401
    import flax.traverse_util  # noqa: F401
    import jax
    import orbax.checkpoint as ocp
    import safetensors.numpy

    readme_path = {"orbax": "/tmp/mlp_linen_ckpt", "safetensors": "/tmp/mlp_linen.safetensors",
                   "msgpack": "/tmp/mlp_linen.msgpack"}
    code = SNIPPETS[f"{fmt} (linen)"].replace(readme_path[fmt], path).replace("MLP()", f"__factory__({init})")
    ns = {"os": os, "flax": flax, "jax": jax, "safetensors": safetensors, "ocp": ocp, "x": x, "__factory__": factory}
    exec(compile(code, f"README snippet ({fmt}, linen)", "exec"), ns)
    return ns["model"], ns["variables"]


def test_linen_fixture_models_round_trip(tmp_path):
    """A torch checkpoint of each fixture model the Linen rewrite converts whole -> `pt2jax
    weights` (the Linen file detected) -> the README snippet -> model.apply gives torch's
    outputs; every parameter is the checkpoint's, not model.init's. The MLP also through
    verify --weights."""
    import jax
    from flax import traverse_util

    from pt2jax_migrate.verify import run_verify

    models, _ = whole_models("linen", tmp_path)

    def check(index, stem, entry, original, converted):
        model, init = entry["model"], entry.get("init", "")
        torch_model = torch_state(original, original.replace(".in.py", ".out.py"), model, init)
        fmt = FORMATS[index % len(FORMATS)]
        ckpt = save_checkpoint(torch_model, tmp_path, stem, safetensors=index == 2)
        out = str(tmp_path / f"{stem}{SUFFIX[fmt]}")
        result = convert_weights(str(ckpt), module=f"{converted}:{model}", original=original, init=init, out=out,
                                 inputs=entry["inputs"])
        assert (result.target, result.format) == ("linen", fmt) and result.tensors > 0, result
        xs = jax_inputs(entry["inputs"])
        with _loaded(converted, {model}, "linen") as jf:
            module, variables = load_back_linen(fmt, out, jf.namespace[model], init, xs[0])
            assert "params" in variables and set(variables) <= {"params", "batch_stats", "buffers"}
            has_stats = any(k.endswith("running_mean") for k in torch_model.state_dict())
            assert ("batch_stats" in variables) == has_stats, sorted(variables)
            assert_parity(torch_model, lambda *a: module.apply(variables, *a), entry["inputs"])
            fresh = traverse_util.flatten_dict(module.init(jax.random.key(0), *xs)["params"])
            loaded = traverse_util.flatten_dict(variables["params"])
            assert set(loaded) == set(fresh) and result.variables == len(traverse_util.flatten_dict(variables))
            for path, value in loaded.items():
                assert not np.array_equal(np.asarray(value), np.asarray(fresh[path])), path
        if stem == "mlp_classifier":
            report = run_verify(original, converted, model=model, init=init, inputs=entry["inputs"],
                                weights=str(ckpt), jit=False)
            assert report.passed and report.transferred > 0, report.to_dict()

    each_model(models, check)
    assert {"mlp_classifier", "cnn_classifier", "regression_script", "unet", "vit_einops"} <= {m[1] for m in models}


def linen_cli(run, converted, original, model, ckpt, out, *extra):
    return run("weights", ckpt, "--module", f"{converted}:{model}", "--original", original, "--out", out, *extra)


def test_linen_bad_checkpoints(run, tmp_path):
    """Missing, unexpected and misshapen keys, a --prefix strip that matches nothing, and a Linen
    model without --input: exit 2, the reason, nothing written, an old output untouched."""
    converted = linen_file(tmp_path, MLP_IN)
    mlp_state = torch_state(MLP_IN, MLP_IN.replace(".in.py", ".out.py"), "MLP", "").state_dict()
    state = dict(mlp_state)
    del state["fc2.bias"]
    cases = [(state, (), "missing key 'fc2.bias' (shape (64,))"),
             ({**mlp_state, "extra.weight": torch.zeros(3)}, (), "unexpected key 'extra.weight'"),
             ({**mlp_state, "fc1.weight": torch.zeros(64, 21)}, (),
              "'fc1.weight': shape mismatch: checkpoint (64, 21), model (64, 20)"),
             ({f"module.{k}": v for k, v in mlp_state.items()}, ("--prefix", "strip:encoder."),
              "no checkpoint key starts with 'encoder.'"),
             ({f"backbone.{k}": v for k, v in mlp_state.items()}, (), "--prefix strip:backbone."),
             (mlp_state, None, "give example inputs with --input SPEC")]
    before = sorted(os.listdir(tmp_path))
    out = tmp_path / "out.msgpack"
    out.write_bytes(b"previous")
    for data, extra, message in cases:
        torch.save(data, tmp_path / "bad.pt")
        extra = () if extra is None else ("--input", "float32[1,20]", *extra)
        result = linen_cli(run, converted, MLP_IN, "MLP", tmp_path / "bad.pt", out, *extra)
        assert result.exit_code == 2 and message in result.output, result.output
        assert out.read_bytes() == b"previous"
        assert sorted(p for p in os.listdir(tmp_path) if p != ".cache") == sorted([*before, "out.msgpack", "bad.pt"])
    result = linen_cli(run, converted, MLP_IN, "MLP", tmp_path / "bad.pt", tmp_path / "good.safetensors",
                       "--input", "float32[1,20]", "--target", "linen")
    assert result.exit_code == 0 and "8 tensors -> MLP (linen)" in result.output, result.output
    from safetensors.numpy import load_file

    flat = load_file(str(tmp_path / "good.safetensors"))
    np.testing.assert_array_equal(flat["params.fc1.kernel"], mlp_state["fc1.weight"].numpy().T)
    assert all(k.startswith("params.") for k in flat)


def test_linen_prefixes(run, tmp_path):
    """DataParallel's `module.` stripped (with a note) or by --prefix strip:module.; a checkpoint
    of the model's `net` submodule (keys without `net.`) read with --prefix add:net., and
    refused with that hint without it."""
    from flax.serialization import msgpack_restore

    entry = FIXTURES["fixtures/regression_script.in.py"]
    converted = linen_file(tmp_path, REGRESSOR_IN)
    state = torch_state(REGRESSOR_IN, REGRESSOR_IN.replace(".in.py", ".out.py"), "Regressor", "3").state_dict()

    def cli(data, out, *extra):
        torch.save(data, tmp_path / "in.pt")
        return linen_cli(run, converted, REGRESSOR_IN, "Regressor", tmp_path / "in.pt", tmp_path / out,
                         "--init", "3", "--input", entry["inputs"][0], *extra)

    def kernel(out):
        return msgpack_restore((tmp_path / out).read_bytes())["params"]["net"]["layers_0"]["kernel"]

    result = cli({f"module.{k}": v for k, v in state.items()}, "dp.msgpack")
    assert result.exit_code == 0, result.output
    assert "every checkpoint key starts with 'module.' (nn.DataParallel): stripped it" in result.output
    np.testing.assert_array_equal(kernel("dp.msgpack"), state["net.0.weight"].numpy().T)
    result = cli({f"module.{k}": v for k, v in state.items()}, "strip.msgpack", "--prefix", "strip:module.")
    assert result.exit_code == 0 and "note:" not in result.output, result.output
    np.testing.assert_array_equal(kernel("strip.msgpack"), state["net.0.weight"].numpy().T)
    inner = {k.removeprefix("net."): v for k, v in state.items()}
    result = cli(inner, "add.msgpack", "--prefix", "add:net.")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(kernel("add.msgpack"), state["net.0.weight"].numpy().T)
    result = cli(inner, "none.msgpack")
    assert result.exit_code == 2 and "the model's keys all start with 'net.': --prefix add:net." in result.output
    assert not (tmp_path / "none.msgpack").exists()
