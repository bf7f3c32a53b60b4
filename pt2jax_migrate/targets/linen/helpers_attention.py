"""Linen helper texts for PyTorch's attention modules (MultiheadAttention, the Transformer
layers and stacks): the NNX target's helpers (targets/nnx/helpers_attention.py) as Linen
dataclasses, with PyTorch's parameter names and layouts (packed `in_proj_weight` (3E, E),
`out_proj`, `linear1`, `norm1`, ...), so verify's weight transfer is a copy. Dropout acts only
with `train=True` (an rng named 'dropout'). The framework-neutral pieces
(`scaled_dot_product_attention`, `transformer_activation`) are the NNX target's, shared.

Source text only (imports neither jax, flax nor torch); checked against real torch by the
generated parity tests of rules/layers.toml.
"""

from __future__ import annotations

from ..base import Helper
from ..shared_texts import mha_forward

__all__ = ["ATTENTION_HELPERS"]

_TORCH_MHA = '''\
class TorchMultiheadAttention(linen.Module):
    """torch.nn.MultiheadAttention with PyTorch's parameter names and layouts.

    in_proj_weight (3E, E) packs the query/key/value projections; out_proj is a Linear.
    Call it as in PyTorch: (query, key, value, key_padding_mask, need_weights, attn_mask,
    average_attn_weights, is_causal, *, train) -> (output, weights or None). Bool masks mark
    the positions that are masked out; float masks are added to the scores.
    """

    embed_dim: int
    num_heads: int
    dropout: float = 0.0
    bias: bool = True
    batch_first: bool = False

    def setup(self):
        e = self.embed_dim
        if e % self.num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        # PyTorch: xavier_uniform in_proj_weight, zero biases, out_proj weight as a Linear's
        xavier = linen.initializers.xavier_uniform()
        self.in_proj_weight = self.param("in_proj_weight", xavier, (3 * e, e))
        if self.bias:
            self.in_proj_bias = self.param("in_proj_bias", linen.initializers.zeros, (3 * e,))
        self.out_proj = linen.Dense(e, use_bias=self.bias, kernel_init=torch_kernel_init)
        self.drop = linen.Dropout(self.dropout)

    def __call__(self, query, key, value, key_padding_mask=None, need_weights=True,
                 attn_mask=None, average_attn_weights=True, is_causal=False, *,
                 train: bool = False):
''' + mha_forward(
    in_proj_weight="self.in_proj_weight", has_bias="self.bias", in_proj_bias="self.in_proj_bias",
    attention_dropout="self.drop({weights}, deterministic=not train)",
)

_LAYER_FIELDS = '''\
    d_model: int
    nhead: int
    dim_feedforward: int = 2048
    dropout: float = 0.1
    activation: object = "relu"
    layer_norm_eps: float = 1e-05
    batch_first: bool = False
    norm_first: bool = False
    bias: bool = True
'''

_LAYER_SETUP = '''\
    def setup(self):
        d, ff, bias = self.d_model, self.dim_feedforward, self.bias
        self.self_attn = TorchMultiheadAttention(
            d, self.nhead, self.dropout, bias, self.batch_first
        )
        self.linear1 = linen.Dense(ff, use_bias=bias, kernel_init=torch_kernel_init,
                                   bias_init=torch_bias_init(d))
        self.linear2 = linen.Dense(d, use_bias=bias, kernel_init=torch_kernel_init,
                                   bias_init=torch_bias_init(ff))
        norm = partial(linen.LayerNorm, epsilon=self.layer_norm_eps, use_bias=bias,
                       use_fast_variance=False)
        self.norm1, self.norm2 = norm(), norm()
        self.drop = linen.Dropout(self.dropout)  # each call draws its own mask
        self.act = transformer_activation(self.activation)
'''

_ENCODER_LAYER = '''\
class TorchTransformerEncoderLayer(linen.Module):
    """torch.nn.TransformerEncoderLayer with PyTorch's submodule names (self_attn, linear1,
    norm1, ...); dropout only with train=True."""

''' + _LAYER_FIELDS + '\n' + _LAYER_SETUP + '''
    def __call__(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False, *,
                 train: bool = False):
        def sa(x):
            x = self.self_attn(x, x, x, attn_mask=src_mask, key_padding_mask=src_key_padding_mask,
                               need_weights=False, is_causal=is_causal, train=train)[0]
            return self.drop(x, deterministic=not train)

        def ff(x):
            x = self.drop(self.act(self.linear1(x)), deterministic=not train)
            return self.drop(self.linear2(x), deterministic=not train)

        x = src
        if self.norm_first:
            x = x + sa(self.norm1(x))
            return x + ff(self.norm2(x))
        x = self.norm1(x + sa(x))
        return self.norm2(x + ff(x))
'''

_DECODER_LAYER = '''\
class TorchTransformerDecoderLayer(linen.Module):
    """torch.nn.TransformerDecoderLayer with PyTorch's submodule names (self_attn,
    multihead_attn, linear1, ...); dropout only with train=True."""

''' + _LAYER_FIELDS + '\n' + _LAYER_SETUP + '''\
        self.multihead_attn = TorchMultiheadAttention(
            d, self.nhead, self.dropout, bias, self.batch_first
        )
        self.norm3 = norm()

    def __call__(self, tgt, memory, tgt_mask=None, memory_mask=None,
                 tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False,
                 memory_is_causal=False, *, train: bool = False):
        def sa(x):
            x = self.self_attn(x, x, x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask,
                               need_weights=False, is_causal=tgt_is_causal, train=train)[0]
            return self.drop(x, deterministic=not train)

        def mha(x):
            x = self.multihead_attn(x, memory, memory, attn_mask=memory_mask,
                                    key_padding_mask=memory_key_padding_mask, need_weights=False,
                                    is_causal=memory_is_causal, train=train)[0]
            return self.drop(x, deterministic=not train)

        def ff(x):
            x = self.drop(self.act(self.linear1(x)), deterministic=not train)
            return self.drop(self.linear2(x), deterministic=not train)

        x = tgt
        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + mha(self.norm2(x))
            return x + ff(self.norm3(x))
        x = self.norm1(x + sa(x))
        x = self.norm2(x + mha(x))
        return self.norm3(x + ff(x))
'''


def _stack_head(kind: str) -> str:
    """TorchTransformerEncoder's / TorchTransformerDecoder's class head, fields and setup()."""
    return f'''\
class TorchTransformer{kind.title()}(linen.Module):
    """torch.nn.Transformer{kind.title()}: num_layers copies of {kind}_layer (each its own weights,
    as PyTorch's deepcopy: its own draw here), then the optional norm."""

    {kind}_layer: linen.Module
    num_layers: int
    norm: linen.Module | None = None

    def setup(self):
        layer = self.{kind}_layer  # built again from its fields: a copy per layer, owned here
        fields = {{k: getattr(layer, k) for k, f in layer.__dataclass_fields__.items()
                  if f.init and k not in ("parent", "name")}}
        self.layers = [type(layer)(**fields) for _ in range(self.num_layers)]
'''


_ENCODER = _stack_head("encoder") + '''
    def __call__(self, src, mask=None, src_key_padding_mask=None, is_causal=None, *,
                 train: bool = False):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal), train=train)
        return x if self.norm is None else self.norm(x)
'''

_DECODER = _stack_head("decoder") + '''
    def __call__(self, tgt, memory, tgt_mask=None, memory_mask=None,
                 tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=None,
                 memory_is_causal=False, *, train: bool = False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal,
                      train=train)
        return x if self.norm is None else self.norm(x)
'''

_LINEN = "from flax import linen"
_NEEDS = ("TorchMultiheadAttention", "torch_kernel_init", "torch_bias_init", "transformer_activation")

ATTENTION_HELPERS: tuple[Helper, ...] = (
    Helper("TorchMultiheadAttention", _TORCH_MHA, ("import math", "import jax", "import jax.numpy as jnp", _LINEN),
           ("torch_kernel_init",)),
    Helper("TorchTransformerEncoderLayer", _ENCODER_LAYER, ("from functools import partial", _LINEN), _NEEDS),
    Helper("TorchTransformerDecoderLayer", _DECODER_LAYER, ("from functools import partial", _LINEN), _NEEDS),
    Helper("TorchTransformerEncoder", _ENCODER, (_LINEN,)),
    Helper("TorchTransformerDecoder", _DECODER, (_LINEN,)),
)
