"""Attention conversions beyond the table examples: masks (bool and float, attention and key
padding), batch_first, need_weights, norm_first, activations, unbatched input and the
Transformer stacks. Each case is a torch module that is rewritten by the real engine and then
compared by `verify` against real torch (outputs and parameter gradients, transferred weights).
Also: what is refused says why, lint and rewrite decide alike, and the converted modules run
under nnx.jit.
"""

from __future__ import annotations

import textwrap

import pytest

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"

# masks built in forward from shapes only, so both sides see the same ones:
# CAUSAL marks future positions (MultiheadAttention: True = masked out), KEEP marks the past
# (scaled_dot_product_attention: True = takes part), PAD masks key 5 of sample 0, keys 3-5 of 1
CAUSAL = "torch.triu(torch.ones(5, 5), 1) > 0"
KEEP = "torch.tril(torch.ones(5, 5)) > 0"
PAD6 = "torch.arange(6)[None, :] + torch.arange(2)[:, None] * 2 >= 5"
PAD5 = "torch.arange(5)[None, :] + torch.arange(2)[:, None] * 2 >= 4"

# (id, constructor, forward body (x = first input, m = second), input specs)
CASES = [
    ("mha-seq-first-bool-masks-per-head-weights",
     "nn.MultiheadAttention(8, 2)",
     f"return self.layer(x, m, m, key_padding_mask={PAD6}, attn_mask=torch.triu(torch.ones(5, 6), 2) > 0,"
     " average_attn_weights=False)",
     ["float32[5,2,8]", "float32[6,2,8]"]),
    ("mha-batch-first-float-mask-no-weights",
     "nn.MultiheadAttention(8, 4, batch_first=True)",
     "return self.layer(x, x, x, attn_mask=m, need_weights=False)",
     ["float32[2,5,8]", "float32[5,5]"]),
    ("mha-3d-float-mask-no-bias",
     "nn.MultiheadAttention(8, 2, bias=False, batch_first=True)",
     "return self.layer(x, x * 2.0, x, attn_mask=m)",
     ["float32[2,5,8]", "float32[4,5,5]"]),
    ("mha-float-key-padding-causal",
     "nn.MultiheadAttention(8, 2, batch_first=True)",
     f"return self.layer(x, x, x, key_padding_mask=m, attn_mask={CAUSAL}, is_causal=True)[0]",
     ["float32[2,5,8]", "float32[2,5]"]),
    ("mha-unbatched",
     "nn.MultiheadAttention(8, 2, dropout=0.1)",
     "return self.layer(x, m, m)",
     ["float32[5,8]", "float32[6,8]"]),
    ("sdpa-bool-mask-scale",
     "nn.Linear(4, 4)",  # parameters in front, so gradients flow through the attention
     f"return F.scaled_dot_product_attention(self.layer(x), x * 0.5, -x, attn_mask={KEEP}, scale=0.3)",
     ["float32[2,3,5,4]"]),
    ("sdpa-float-mask-3d",
     "nn.Linear(4, 4)",
     "return F.scaled_dot_product_attention(x, m, self.layer(m) * 2.0, (m @ x.transpose(1, 2)).transpose(1, 2))",
     ["float32[3,5,4]", "float32[3,6,4]"]),
    ("encoder-layer-norm-first-gelu-masks",
     "nn.TransformerEncoderLayer(8, 2, 16, activation='gelu', batch_first=True, norm_first=True)",
     f"return self.layer(x, src_mask={CAUSAL}, src_key_padding_mask={PAD5})",
     ["float32[2,5,8]"]),
    ("encoder-layer-relu-no-bias-float-mask",
     "nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.2, bias=False, layer_norm_eps=1e-3)",
     "return self.layer(x, src_mask=m)",
     ["float32[5,2,8]", "float32[5,5]"]),
    ("encoder-stack-causal",
     "nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 3)",
     f"return self.layer(x, mask={CAUSAL}, is_causal=True)",
     ["float32[5,2,8]"]),
    ("decoder-layer-masks",
     "nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)",
     f"return self.layer(x, m, tgt_mask={CAUSAL}, tgt_key_padding_mask={PAD5}, memory_key_padding_mask={PAD6})",
     ["float32[2,5,8]", "float32[2,6,8]"]),
    ("decoder-stack-norm-first-norm",
     "nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, norm_first=True), 2, norm=nn.LayerNorm(8))",
     f"return self.layer(x, m, tgt_mask={CAUSAL}, memory_mask=torch.triu(torch.ones(5, 6), 3) > 0)",
     ["float32[5,2,8]", "float32[6,2,8]"]),
]


def _source(constructor: str, body: str, inputs: list[str]) -> str:
    args = ", ".join(["x", "m"][: len(inputs)])
    return HEADER + textwrap.dedent(f"""\
        class Example(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = {constructor}

            def forward(self, {args}):
                {body}
        """)


def _rewrite(tmp_path, source: str):
    original, converted = tmp_path / "attn_torch.py", tmp_path / "attn_jax.py"
    original.write_text(source)
    result = rewrite_source(source, str(original))
    assert not [f for f in result.findings if not f.fixable], result.findings
    assert "import torch" not in result.new_source
    converted.write_text(result.new_source)
    return original, converted


@pytest.mark.parametrize(("constructor", "body", "inputs"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_attention_parity(constructor, body, inputs, tmp_path):
    from pt2jax_migrate.verify import run_verify

    original, converted = _rewrite(tmp_path, _source(constructor, body, inputs))
    report = run_verify(str(original), str(converted), model="Example", inputs=inputs)
    assert report.passed, report.to_dict()
    assert report.outputs and report.gradients and report.transferred > 0, report.to_dict()


@pytest.mark.parametrize(("code", "reason"), [
    ("nn.MultiheadAttention(8, 2, add_bias_kv=True)", "add_bias_kv"),
    ("nn.MultiheadAttention(8, 2, add_zero_attn=True)", "add_zero_attn"),
    ("nn.MultiheadAttention(8, 2, kdim=4, vdim=4)", "kdim"),
    ("F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)", "dropout_p"),
    ("F.scaled_dot_product_attention(q, k, v, enable_gqa=True)", "grouped-query"),
])
def test_unsupported_forms_are_refused_with_a_reason(code, reason):
    source = HEADER + f"q = k = v = None\nlayer = {code}\n"
    line = source.count("\n")
    linted = [f for f in lint_source(source, "a.py") if f.line == line]
    assert linted and all(not f.fixable for f in linted), linted
    assert any(reason in f.message for f in linted), linted
    result = rewrite_source(source, "a.py")
    todo_lines = [text for text in result.new_source.splitlines() if "TODO(pt2jax)" in text]
    assert any(reason in text for text in todo_lines), result.new_source
    rewritten = [f for f in result.findings if f.line == line and f.code in {f.code for f in linted}]
    assert [(f.code, f.fixable) for f in rewritten] == [(f.code, f.fixable) for f in linted]


def test_allowed_defaults_convert():
    """torch's own defaults written out (dropout_p=0.0, kdim=None, ...) are not refusals."""
    source = HEADER + ("q = k = v = None\n"
                       "a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, enable_gqa=False)\n"
                       "b = nn.MultiheadAttention(8, 2, add_bias_kv=False, kdim=None, vdim=None)\n")
    assert all(f.fixable for f in lint_source(source, "a.py"))
    new = rewrite_source(source, "a.py").new_source
    assert "a = scaled_dot_product_attention(q, k, v)" in new
    assert "TorchMultiheadAttention(8, 2, rngs=" in new


def test_converted_stack_runs_under_jit_with_independent_layers(tmp_path):
    """The converted encoder runs under nnx.jit with masks, and its layers are copies, not one
    shared layer (torch deep-copies the layer it is given)."""
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from pt2jax_migrate.verify.loader import load_slice

    source = _source("nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2)",
                     f"return self.layer(x, mask={CAUSAL}, src_key_padding_mask={PAD5})", ["float32[2,5,8]"])
    _, converted = _rewrite(tmp_path, source)
    model = load_slice(str(converted), {"Example"}).namespace["Example"](rngs=nnx.Rngs(0))
    model.eval()
    first, second = model.layer.layers[0], model.layer.layers[1]
    assert first is not second
    np.testing.assert_array_equal(first.linear1.kernel[...], second.linear1.kernel[...])  # deep copies
    second.linear1.kernel[...] = second.linear1.kernel[...] + 1.0
    assert not np.array_equal(first.linear1.kernel[...], second.linear1.kernel[...])
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 8)), jnp.float32)
    eager = model(x)
    jitted = nnx.jit(lambda m, x: m(x))(model, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-5)
