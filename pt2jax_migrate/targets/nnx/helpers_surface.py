"""Helpers for the long tail of PyTorch calls real models use (padding, pixel shuffle, topk,
split/chunk, meshgrid, multinomial), as source text written into converted files.

Like helpers.py, this module imports neither jax, flax nor torch. Numbers are checked against
real torch by the generated table tests and tests/test_helpers_surface.py.
"""

from __future__ import annotations

from ..base import Helper

__all__ = ["SURFACE_HELPERS"]

_TORCH_PAD = '''\
def torch_pad(x, pad, mode="constant", value=None):
    """torch.nn.functional.pad: `pad` holds (before, after) pairs from the LAST axis backwards.

    Modes: constant (negative widths crop, as in torch), reflect, replicate (jnp 'edge'),
    circular (jnp 'wrap').
    """
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad {pad} must hold (before, after) pairs for at most {x.ndim} axes")
    pairs = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        pairs[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        fill = jnp.asarray(0 if value is None else value, x.dtype)
        return jax.lax.pad(x, fill, [(low, high, 0) for low, high in pairs])
    jnp_modes = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    if mode not in jnp_modes:
        raise ValueError(f"pad mode {mode!r} is not supported")
    if min(pad) < 0:
        raise ValueError(f"negative padding is only supported in constant mode, got {pad}")
    return jnp.pad(x, pairs, mode=jnp_modes[mode])
'''

_PAD_LAST_AXES = '''\
def pad_last_axes(x, padding, n, mode="constant", value=0.0):
    """nn.ReflectionPad2d & co: an int pads both sides of the last n axes; a tuple is F.pad's."""
    if isinstance(padding, int):
        padding = (padding,) * (2 * n)
    return torch_pad(x, padding, mode, value)
'''

_PIXEL_SHUFFLE = '''\
def pixel_shuffle(x, upscale_factor):
    """torch.nn.functional.pixel_shuffle: (*, C * r * r, H, W) -> (*, C, H * r, W * r)."""
    r = upscale_factor
    *lead, c, h, w = x.shape
    n = len(lead)
    x = x.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.transpose(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)
'''

_PIXEL_UNSHUFFLE = '''\
def pixel_unshuffle(x, downscale_factor):
    """torch.nn.functional.pixel_unshuffle: (*, C, H * r, W * r) -> (*, C * r * r, H, W)."""
    r = downscale_factor
    *lead, c, h, w = x.shape
    n = len(lead)
    x = x.reshape(*lead, c, h // r, r, w // r, r)
    x = x.transpose(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)
'''

_TOPK = '''\
def topk(x, k, dim=-1, largest=True, sorted=True):
    """torch.topk: (values, indices) of the k largest (largest=False: smallest) along dim.

    Always in sorted order (torch's order for sorted=False is unspecified, so this is one of
    its valid answers). A plain tuple: use [0]/[1] for torch's .values/.indices.
    """
    moved = jnp.moveaxis(x, dim, -1)
    values, indices = jax.lax.top_k(moved if largest else -moved, k)
    if not largest:
        values = -values
    return jnp.moveaxis(values, -1, dim), jnp.moveaxis(indices, -1, dim)
'''

_TORCH_SPLIT = '''\
def torch_split(x, split_size_or_sections, dim=0):
    """torch.split: pieces of split_size along dim (the last may be smaller), or the listed sizes.

    (jnp.split takes a number of equal pieces or cut indices instead.)
    """
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [min(step, n - start) for start in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} do not add up to {n} (dim {dim})")
    pieces, start = [], 0
    for size in sizes:
        pieces.append(jax.lax.slice_in_dim(x, start, start + size, axis=dim % x.ndim))
        start += size
    return tuple(pieces)
'''

_TORCH_CHUNK = '''\
def torch_chunk(x, chunks, dim=0):
    """torch.chunk: pieces of ceil(n / chunks) along dim, so there may be fewer than `chunks`
    (5 rows in 4 chunks: 2, 2, 1). jnp.array_split would give 2, 1, 1, 1.
    """
    return torch_split(x, max(1, -(-x.shape[dim] // chunks)), dim)
'''

_TORCH_MESHGRID = '''\
def torch_meshgrid(*tensors, indexing="ij"):
    """torch.meshgrid: indexing='ij' by default (jnp.meshgrid defaults to 'xy'); one list of
    tensors is accepted as torch accepts it."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    return tuple(jnp.meshgrid(*tensors, indexing=indexing))
'''

_MULTINOMIAL = '''\
def multinomial(key, probs, num_samples, replacement=False):
    """torch.multinomial: indices drawn along the last axis with probability proportional to probs.

    Without replacement the Gumbel-top-k trick draws distinct indices with torch's distribution.
    The draws differ from torch's (JAX's own random streams); indices are int32.
    """
    logits = jnp.log(probs)
    if replacement:
        shape = (num_samples, *probs.shape[:-1])
        return jnp.moveaxis(jax.random.categorical(key, logits, axis=-1, shape=shape), 0, -1)
    gumbel = jax.random.gumbel(key, probs.shape, logits.dtype)
    return jax.lax.top_k(logits + gumbel, num_samples)[1]
'''

_TORCH_EXPAND = '''\
def torch_expand(x, *sizes):
    """Tensor.expand: a broadcast where -1 keeps the size of that axis (counted from the last);
    one list or tuple of sizes is accepted as torch accepts it."""
    if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)):
        sizes = tuple(sizes[0])
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    return jnp.broadcast_to(x, shape)
'''

_FUNCTIONAL_DROPOUT = '''\
def functional_dropout(x, p=0.5, training=True):
    """F.dropout where it draws nothing: p == 0 or not training return x, as torch does. With
    p > 0 in training JAX needs a PRNG key: a Dropout layer (nn.Dropout converts) draws one."""
    if p == 0 or not training:
        return x
    raise ValueError(f"F.dropout(p={p}) in training needs a PRNG key in JAX: "
                     "use a Dropout layer (nn.Dropout converts)")
'''

_TORCH_LAYER_NORM = '''\
def torch_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-05):
    """F.layer_norm: normalise over the last len(normalized_shape) axes (biased variance)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    axes = tuple(range(x.ndim - len(tuple(normalized_shape)), x.ndim))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias
'''

_JAX = ["import jax", "import jax.numpy as jnp"]

# Appended to helpers.HELPERS (after its own helpers), each after the helpers it requires.
SURFACE_HELPERS: tuple[Helper, ...] = (
    Helper("torch_pad", _TORCH_PAD, tuple(_JAX)),
    Helper("pad_last_axes", _PAD_LAST_AXES, (), ("torch_pad",)),
    Helper("pixel_shuffle", _PIXEL_SHUFFLE, ()),
    Helper("pixel_unshuffle", _PIXEL_UNSHUFFLE, ()),
    Helper("topk", _TOPK, tuple(_JAX)),
    Helper("torch_split", _TORCH_SPLIT, ("import jax",)),
    Helper("torch_chunk", _TORCH_CHUNK, (), ("torch_split",)),
    Helper("torch_meshgrid", _TORCH_MESHGRID, ("import jax.numpy as jnp",)),
    Helper("multinomial", _MULTINOMIAL, tuple(_JAX)),
    Helper("torch_expand", _TORCH_EXPAND, ("import jax.numpy as jnp",)),
    Helper("functional_dropout", _FUNCTIONAL_DROPOUT, ()),
    Helper("torch_layer_norm", _TORCH_LAYER_NORM, tuple(_JAX)),
)

_EMBED_PADDING_IDX = '''\
class EmbedPaddingIdx(nnx.Embed):
    """nn.Embedding(padding_idx=i): row i starts at zero and is never trained (its gradient
    is zero, as in PyTorch); it is returned as it stands for index i."""

    def __init__(self, num_embeddings, features, *, padding_idx, rngs, **kwargs):
        super().__init__(num_embeddings, features, rngs=rngs, **kwargs)
        self.padding_idx = padding_idx % num_embeddings  # torch accepts a negative index
        self.embedding[...] = self.embedding[...].at[self.padding_idx].set(0)

    def __call__(self, inputs):
        table = self.embedding[...]
        frozen = (jnp.arange(table.shape[0]) == self.padding_idx)[:, None]
        table = jnp.where(frozen, jax.lax.stop_gradient(table), table)
        return jnp.take(table, inputs, axis=0)
'''

SURFACE_HELPERS += (
    Helper("EmbedPaddingIdx", _EMBED_PADDING_IDX, ("import jax", "import jax.numpy as jnp", "from flax import nnx")),
)
