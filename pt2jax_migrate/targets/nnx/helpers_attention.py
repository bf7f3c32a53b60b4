"""Attention helpers written into files converted to Flax NNX (source text only).

PyTorch's attention modules keep their own parameter names and layouts here (a packed
`in_proj_weight` (3E, E), `out_proj`, `linear1`, `norm1`, ...), so verify's weight transfer is
a copy and a torch checkpoint maps name for name. Masks follow PyTorch: for
scaled_dot_product_attention a bool mask marks the positions that TAKE part; for
MultiheadAttention and the Transformer layers a bool mask marks the positions that are
MASKED OUT; float masks are added to the scores in both. Numbers are checked against real
torch in tests/test_attention.py and the generated parity tests.
"""

from __future__ import annotations

from ..base import Helper
from ..shared_texts import mha_forward

_SDPA = '''\
def scaled_dot_product_attention(query, key, value, attn_mask=None, is_causal=False, scale=None):
    """torch.nn.functional.scaled_dot_product_attention (no dropout) on (..., L, E) inputs.

    A bool attn_mask keeps the True positions; a float one is added to the scores.
    """
    if is_causal and attn_mask is not None:
        raise ValueError("attn_mask and is_causal=True cannot both be given (as in PyTorch)")
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = jnp.einsum("...le,...se->...ls", query, key) * scale
    if is_causal:
        attn_mask = jnp.tril(jnp.ones((query.shape[-2], key.shape[-2]), dtype=bool))
    if attn_mask is not None:
        if attn_mask.dtype == jnp.bool_:
            scores = jnp.where(attn_mask, scores, -jnp.inf)
        else:
            scores = scores + attn_mask
    return jnp.einsum("...ls,...se->...le", jax.nn.softmax(scores, axis=-1), value)
'''

_TORCH_MHA = '''\
class TorchMultiheadAttention(nnx.Module):
    """torch.nn.MultiheadAttention with PyTorch's parameter names and layouts.

    in_proj_weight (3E, E) packs the query/key/value projections; out_proj is a Linear.
    Call it as in PyTorch: (query, key, value, key_padding_mask, need_weights, attn_mask,
    average_attn_weights, is_causal) -> (output, weights or None). Bool masks mark the
    positions that are masked out; float masks are added to the scores.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, *, rngs):
        if embed_dim % num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        self.embed_dim, self.num_heads, self.batch_first = embed_dim, num_heads, batch_first
        # PyTorch: xavier_uniform in_proj_weight, zero biases, out_proj weight as a Linear's
        packed = nnx.initializers.xavier_uniform()(rngs.params(), (3 * embed_dim, embed_dim))
        self.in_proj_weight = nnx.Param(packed)
        self.in_proj_bias = nnx.Param(jnp.zeros((3 * embed_dim,))) if bias else None
        self.out_proj = nnx.Linear(
            embed_dim, embed_dim, use_bias=bias, kernel_init=torch_kernel_init,
            bias_init=nnx.initializers.zeros, rngs=rngs,
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, query, key, value, key_padding_mask=None, need_weights=True,
                 attn_mask=None, average_attn_weights=True, is_causal=False):
''' + mha_forward(
    in_proj_weight="self.in_proj_weight[...]", has_bias="self.in_proj_bias is not None",
    in_proj_bias="self.in_proj_bias[...]", attention_dropout="self.dropout({weights})",
)

_TRANSFORMER_ACTIVATION = '''\
def transformer_activation(activation):
    """A Transformer layer's activation: 'relu', 'gelu' (exact, as PyTorch) or a callable."""
    if callable(activation):
        return activation
    if activation == "relu":
        return jax.nn.relu
    if activation == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    raise ValueError(f"activation should be relu/gelu, not {activation}")
'''

# the Transformer layers' shared __init__ pieces: the signature and self-attention, the
# feed-forward Linears
_LAYER_INIT = '''\
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-05, batch_first=False, norm_first=False, bias=True, *,
                 rngs):
        self.self_attn = TorchMultiheadAttention(
            d_model, nhead, dropout, bias, batch_first, rngs=rngs
        )
'''

_FEEDFORWARD_INIT = '''\
        self.linear1 = nnx.Linear(
            d_model, dim_feedforward, use_bias=bias, kernel_init=torch_kernel_init,
            bias_init=torch_bias_init(d_model), rngs=rngs,
        )
        self.linear2 = nnx.Linear(
            dim_feedforward, d_model, use_bias=bias, kernel_init=torch_kernel_init,
            bias_init=torch_bias_init(dim_feedforward), rngs=rngs,
        )
'''

_TORCH_ENCODER_LAYER = '''\
class TorchTransformerEncoderLayer(nnx.Module):
    """torch.nn.TransformerEncoderLayer with PyTorch's submodule names (self_attn, linear1,
    norm1, ...)."""

''' + _LAYER_INIT + _FEEDFORWARD_INIT + '''\
        self.norm1, self.norm2 = (
            nnx.LayerNorm(
                d_model, epsilon=layer_norm_eps, use_bias=bias, use_fast_variance=False, rngs=rngs
            )
            for _ in range(2)
        )
        self.dropout, self.dropout1, self.dropout2 = (
            nnx.Dropout(dropout, rngs=rngs) for _ in range(3)
        )
        self.activation = transformer_activation(activation)
        self.norm_first = norm_first

    def __call__(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.dropout(self.activation(self.linear1(x)))
        return self.dropout2(self.linear2(x))
'''

_TORCH_DECODER_LAYER = '''\
class TorchTransformerDecoderLayer(nnx.Module):
    """torch.nn.TransformerDecoderLayer with PyTorch's submodule names (self_attn,
    multihead_attn, linear1, ...)."""

''' + _LAYER_INIT + '''\
        self.multihead_attn = TorchMultiheadAttention(
            d_model, nhead, dropout, bias, batch_first, rngs=rngs
        )
''' + _FEEDFORWARD_INIT + '''\
        self.norm1, self.norm2, self.norm3 = (
            nnx.LayerNorm(
                d_model, epsilon=layer_norm_eps, use_bias=bias, use_fast_variance=False, rngs=rngs
            )
            for _ in range(3)
        )
        self.dropout, self.dropout1, self.dropout2, self.dropout3 = (
            nnx.Dropout(dropout, rngs=rngs) for _ in range(4)
        )
        self.activation = transformer_activation(activation)
        self.norm_first = norm_first

    def __call__(self, tgt, memory, tgt_mask=None, memory_mask=None,
                 tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False,
                 memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(
                self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal
            )
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(
            x, memory, memory_mask, memory_key_padding_mask, memory_is_causal
        ))
        return self.norm3(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=is_causal)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        x = self.dropout(self.activation(self.linear1(x)))
        return self.dropout3(self.linear2(x))
'''

_TORCH_ENCODER = '''\
class TorchTransformerEncoder(nnx.Module):
    """torch.nn.TransformerEncoder: num_layers copies of encoder_layer (same initial weights,
    trained independently, as PyTorch's deepcopy), then the optional norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, *, rngs=None):
        del rngs  # the layer comes built
        self.layers = nnx.List([nnx.clone(encoder_layer) for _ in range(num_layers)])
        self.norm = norm

    def __call__(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)
'''

_TORCH_DECODER = '''\
class TorchTransformerDecoder(nnx.Module):
    """torch.nn.TransformerDecoder: num_layers copies of decoder_layer (same initial weights,
    trained independently, as PyTorch's deepcopy), then the optional norm."""

    def __init__(self, decoder_layer, num_layers, norm=None, *, rngs=None):
        del rngs  # the layer comes built
        self.layers = nnx.List([nnx.clone(decoder_layer) for _ in range(num_layers)])
        self.norm = norm

    def __call__(self, tgt, memory, tgt_mask=None, memory_mask=None,
                 tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=None,
                 memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)
'''

_NNX = "from flax import nnx"
_JAX = ("import math", "import jax", "import jax.numpy as jnp")
_LAYER_NEEDS = ("TorchMultiheadAttention", "torch_kernel_init", "torch_bias_init", "transformer_activation")

# helpers.py appends these to HELPERS in this order (each after what it requires)
ATTENTION_HELPERS: tuple[Helper, ...] = (
    Helper("scaled_dot_product_attention", _SDPA, _JAX, ()),
    Helper("TorchMultiheadAttention", _TORCH_MHA, (*_JAX, _NNX), ("torch_kernel_init",)),
    Helper("transformer_activation", _TRANSFORMER_ACTIVATION, ("import jax",), ()),
    Helper("TorchTransformerEncoderLayer", _TORCH_ENCODER_LAYER, (_NNX,), _LAYER_NEEDS),
    Helper("TorchTransformerDecoderLayer", _TORCH_DECODER_LAYER, (_NNX,), _LAYER_NEEDS),
    Helper("TorchTransformerEncoder", _TORCH_ENCODER, (_NNX,), ()),
    Helper("TorchTransformerDecoder", _TORCH_DECODER, (_NNX,), ()),
)
