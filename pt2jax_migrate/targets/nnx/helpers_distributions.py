"""Helpers for `torch.distributions` Categorical, Normal and Bernoulli (source text only).

Each is built with a PRNG key (the rewrite passes the scope's stream, `key=rngs()`), so the
torch calls `.sample()`, `.sample((n,))`, `.rsample()` keep their spelling: the k-th draw of one
distribution object uses `fold_in(key, k)`. log_prob / entropy are torch's closed forms with its
clamping (probs -> logits), checked against torch in tests/test_distributions.py; the draws come
from JAX's generator (other numbers than torch's, the same distribution). Anything else torch's
classes have (cdf, icdf, expand, support, ...) raises NotImplementedError naming it.
"""

from __future__ import annotations

_BASE = '''\
class TorchDistribution:
    """What the converted distributions share: batch shape, keyed sampling, clear refusals."""

    def __init__(self, batch_shape, key):
        self.batch_shape = tuple(batch_shape)
        self._key = key
        self._draws = 0

    def _next_key(self):
        key = jax.random.fold_in(self._key, self._draws)
        self._draws += 1
        return key

    def _shape(self, sample_shape):
        sample_shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        return sample_shape + self.batch_shape

    def rsample(self, sample_shape=()):
        raise NotImplementedError(f"{type(self).__name__}.rsample: not reparameterizable "
                                  "(torch refuses it too)")

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotImplementedError(f"{type(self).__name__}.{name}: not converted (sample, rsample, "
                                  "log_prob, entropy, mean, variance, stddev, probs, logits are)")
'''

_CATEGORICAL = '''\
class TorchCategorical(TorchDistribution):
    """torch.distributions.Categorical(probs=... | logits=...): over the last axis."""

    def __init__(self, probs=None, logits=None, *, key):
        if (probs is None) == (logits is None):
            raise ValueError("Categorical: give exactly one of probs and logits")
        if probs is not None:
            probs = jnp.asarray(probs)
            self.probs = probs / probs.sum(-1, keepdims=True)
            eps = jnp.finfo(self.probs.dtype).eps
            self.logits = jnp.log(jnp.clip(self.probs, eps, 1 - eps))
        else:
            logits = jnp.asarray(logits)
            self.logits = logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)
            self.probs = jax.nn.softmax(logits, axis=-1)
        super().__init__(self.logits.shape[:-1], key)

    def sample(self, sample_shape=()):
        shape = self._shape(sample_shape)
        return jax.random.categorical(self._next_key(), self.logits, shape=shape)

    def log_prob(self, value):
        value = jnp.asarray(value).astype(jnp.int32)[..., None]
        value, log_pmf = jnp.broadcast_arrays(value, self.logits)
        return jnp.take_along_axis(log_pmf, value[..., :1], axis=-1)[..., 0]

    def entropy(self):
        logits = jnp.maximum(self.logits, jnp.finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)

    @property
    def mean(self):  # torch: undefined for a categorical, so NaN
        return jnp.full(self.batch_shape, jnp.nan, dtype=self.probs.dtype)

    @property
    def variance(self):
        return jnp.full(self.batch_shape, jnp.nan, dtype=self.probs.dtype)
'''

_NORMAL = '''\
class TorchNormal(TorchDistribution):
    """torch.distributions.Normal(loc, scale)."""

    def __init__(self, loc, scale, *, key):
        loc, scale = jnp.asarray(loc, dtype=float), jnp.asarray(scale, dtype=float)
        self.loc, self.scale = jnp.broadcast_arrays(loc, scale)
        super().__init__(self.loc.shape, key)

    def rsample(self, sample_shape=()):
        shape = self._shape(sample_shape)
        return self.loc + self.scale * jax.random.normal(self._next_key(), shape, self.loc.dtype)

    def sample(self, sample_shape=()):  # torch draws it without a gradient
        return jax.lax.stop_gradient(self.rsample(sample_shape))

    def log_prob(self, value):
        var = self.scale**2
        log_norm = math.log(math.sqrt(2 * math.pi))
        return -((value - self.loc) ** 2) / (2 * var) - jnp.log(self.scale) - log_norm

    def entropy(self):
        return 0.5 + 0.5 * math.log(2 * math.pi) + jnp.log(self.scale)

    @property
    def mean(self):
        return self.loc

    @property
    def stddev(self):
        return self.scale

    @property
    def variance(self):
        return self.scale**2
'''

_BERNOULLI = '''\
class TorchBernoulli(TorchDistribution):
    """torch.distributions.Bernoulli(probs=... | logits=...): samples are 0./1. floats."""

    def __init__(self, probs=None, logits=None, *, key):
        if (probs is None) == (logits is None):
            raise ValueError("Bernoulli: give exactly one of probs and logits")
        if probs is not None:
            self.probs = jnp.asarray(probs, dtype=float)
            eps = jnp.finfo(self.probs.dtype).eps
            clamped = jnp.clip(self.probs, eps, 1 - eps)
            self.logits = jnp.log(clamped) - jnp.log1p(-clamped)
        else:
            self.logits = jnp.asarray(logits, dtype=float)
            self.probs = jax.nn.sigmoid(self.logits)
        super().__init__(self.probs.shape, key)

    def sample(self, sample_shape=()):
        draws = jax.random.bernoulli(self._next_key(), self.probs, self._shape(sample_shape))
        return draws.astype(self.probs.dtype)

    def _bce(self, target):  # torch's binary_cross_entropy_with_logits, elementwise
        logits = self.logits
        return jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits)))

    def log_prob(self, value):
        return -self._bce(jnp.asarray(value, dtype=self.logits.dtype))

    def entropy(self):
        return self._bce(self.probs)

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        return self.probs * (1 - self.probs)
'''

# name -> (source, imports, requires)
DISTRIBUTION_HELPERS = {
    "TorchDistribution": (_BASE, ["import jax"], []),
    "TorchCategorical": (_CATEGORICAL, ["import jax", "import jax.numpy as jnp"], ["TorchDistribution"]),
    "TorchNormal": (_NORMAL, ["import math", "import jax", "import jax.numpy as jnp"], ["TorchDistribution"]),
    "TorchBernoulli": (_BERNOULLI, ["import jax", "import jax.numpy as jnp"], ["TorchDistribution"]),
}
