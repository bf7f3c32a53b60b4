import functools

import jax
import jax.numpy as jnp
from flax import nnx


class ConvNCHW(nnx.Conv):
    def __call__(self, x):
        channel_axis = x.ndim - len(self.kernel_size) - 1
        y = super().__call__(jnp.moveaxis(x, channel_axis, -1))
        return jnp.moveaxis(y, -1, channel_axis)


class TokenNet(nnx.Module):
    def __init__(self, vocab=20, dim=8, classes=4, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab, dim, rngs=rngs)
        self.norm = nnx.LayerNorm(dim, epsilon=1e-5, use_fast_variance=False, rngs=rngs)
        self.act = jax.nn.gelu  # BUG: jax defaults to the tanh approximation
        self.mix = ConvNCHW(dim, dim, kernel_size=(3,), padding=((1, 1),), rngs=rngs)
        self.proj = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, tokens):
        h = self.act(self.norm(self.embed(tokens)))  # (B, T, D)
        m = self.mix(h.transpose(0, 2, 1))
        logits = self.proj(m.mean(axis=2))
        return {"logits": logits, "features": (h, m.max(axis=2))}
