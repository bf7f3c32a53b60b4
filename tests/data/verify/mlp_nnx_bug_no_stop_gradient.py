import jax
import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
    def __init__(self, in_dim=6, hidden=(8, 8), out_dim=3, *, rngs: nnx.Rngs):
        dims = [in_dim, *hidden]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
        self.gate = nnx.Linear(dims[-1], out_dim, rngs=rngs)
        self.head = nnx.Linear(dims[-1], out_dim, rngs=rngs)
        self.temperature = nnx.Param(jnp.ones(out_dim))
        self.center = nnx.BatchStat(jnp.zeros(in_dim))

    def __call__(self, x):
        h = x - self.center[...]
        for layer in self.layers:
            h = jnp.tanh(layer(h))
        gate = jax.nn.sigmoid(self.gate(h))  # BUG: the .detach() (stop_gradient) was dropped
        return self.head(h) * gate * self.temperature[...]
