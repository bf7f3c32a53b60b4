"""What stopped the four model fixtures (LSTM LM, GPT decoder, ViT, U-Net), each fixed once and
proven here on a small model of its own."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

SKIP = {"PTJ001", "PTJ101", "PTJ303"}  # imports and the rewrite's bookkeeping on the class


def lint_agrees(source: str) -> None:
    lint = lint_source(source, "m.py")
    result = rewrite_source(source, "m.py")
    for fixable in (True, False):
        assert {(f.line, f.code) for f in lint if f.fixable == fixable and f.code not in SKIP} == \
            {(f.line, f.code) for f in result.findings if f.fixable == fixable and f.code not in SKIP}


def convert(tmp_path: Path, name: str, source: str) -> tuple[str, str, str]:
    original = tmp_path / f"{name}_torch.py"
    original.write_text(source)
    new = rewrite_source(source, str(original)).new_source
    converted = tmp_path / f"{name}_nnx.py"
    converted.write_text(new)
    return str(original), str(converted), new


def load(path: str):
    spec = importlib.util.spec_from_file_location(f"_blockers_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- init method run by __init__

INIT_METHOD = textwrap.dedent('''
    import torch.nn as nn


    class LM(nn.Module):
        def __init__(self, ntoken=30, ninp=8):
            super().__init__()
            self.encoder = nn.Embedding(ntoken, ninp)
            self.decoder = nn.Linear(ninp, ntoken)
            self.init_weights()

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.encoder.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)

        def forward(self, x):
            return self.decoder(self.encoder(x))
''')


def test_init_method_run_only_by_init_takes_rngs(tmp_path):
    """pytorch/examples' `self.init_weights()`: the random init is converted, with a key."""
    _, converted, out = convert(tmp_path, "initm", INIT_METHOD)
    for line in ("self.init_weights(rngs=rngs)",
                 "def init_weights(self, *, rngs: nnx.Rngs):",
                 "torch_init.uniform(self.encoder.embedding, -initrange, initrange, key=rngs())",
                 "torch_init.zeros(self.decoder.bias)"):
        assert line in out, line
    assert "TODO(pt2jax)" not in out and "import torch" not in out
    lint_agrees(INIT_METHOD)
    from flax import nnx

    model = load(converted).LM(rngs=nnx.Rngs(0))
    embedding = np.asarray(model.encoder.embedding[...])
    # U(-0.1, 0.1), not the N(0, 1) of the layer's own init
    assert np.abs(embedding).max() <= 0.1 and embedding.std() > 0.03
    assert not np.asarray(model.decoder.bias[...]).any()


def test_init_method_also_called_elsewhere_stays_a_todo():
    """Called from forward too: no key there, so its random init is left marked."""
    source = INIT_METHOD.replace("return self.decoder(self.encoder(x))",
                                 "self.init_weights()\n        return self.decoder(self.encoder(x))")
    result = rewrite_source(source, "m.py")
    assert "self.init_weights(rngs=rngs)" not in result.new_source
    todo = [f for f in result.findings if not f.fixable and f.code == "PTJ103"]
    assert todo and "a method only __init__ calls" in todo[0].message
    lint_agrees(source)


# ---------------------------------------------------------------- tied weight listed under the head's path

TIED_DECODER_FIRST = textwrap.dedent('''
    import torch
    import torch.nn as nn


    class LM(nn.Module):
        def __init__(self, ntoken=20, ninp=8):
            super().__init__()
            self.encoder = nn.Embedding(ntoken, ninp)
            self.decoder = nn.Linear(ninp, ntoken)
            self.decoder.weight = self.encoder.weight

        def forward(self, x):
            return torch.log_softmax(self.decoder(self.encoder(x)), dim=-1)
''')


def test_tied_weight_verifies_whichever_path_nnx_lists_it_under(tmp_path):
    """nnx lists a shared variable once, under the first path in its order (`decoder` before
    `encoder`): the transfer finds it by identity, and both uses' gradients are summed."""
    from pt2jax_migrate.verify import run_verify

    original, converted, out = convert(tmp_path, "tied", TIED_DECODER_FIRST)
    assert "self.decoder = TiedLinear(self.encoder, self.decoder.bias)" in out
    report = run_verify(original, converted, model="LM", inputs=["int64[2,5]:0..20"])
    assert report.passed, report.to_dict()
    names = {c.name for c in report.comparisons}
    assert "grad encoder.weight" in names and "grad decoder.bias" in names


# ---------------------------------------------------------------- a Parameter handed to einops

EINOPS_PARAM = textwrap.dedent('''
    import torch
    from torch import nn
    from einops import repeat


    class Tokens(nn.Module):
        def __init__(self, dim=8):
            super().__init__()
            self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            cls_tokens = repeat(self.cls_token, "1 1 d -> b 1 d", b=x.shape[0])
            return self.proj(torch.cat((cls_tokens, x), dim=1)) * self.cls_token
''')


def test_parameter_passed_to_einops_is_read_as_its_value(tmp_path):
    """einops picks its backend by type and knows no nnx.Param: it gets the value; jnp-level
    uses (`* self.cls_token`) are left as they are."""
    from pt2jax_migrate.verify import run_verify

    original, converted, out = convert(tmp_path, "einops_param", EINOPS_PARAM)
    assert 'repeat(self.cls_token[...], "1 1 d -> b 1 d", b=x.shape[0])' in out
    assert "* self.cls_token\n" in out
    lint_agrees(EINOPS_PARAM)
    report = run_verify(original, converted, model="Tokens", inputs=["float32[2,3,8]"])
    assert report.passed, report.to_dict()
    assert "grad cls_token" in {c.name for c in report.comparisons}


def test_einops_param_read_is_idempotent():
    once = rewrite_source(EINOPS_PARAM, "m.py").new_source
    assert rewrite_source(once, "m.py").new_source == once
    assert "[...][...]" not in once
