"""Keys for initial values verify overwrites (throwaway_key): a hash of a counter, no real PRNG.

verify builds the converted model only to learn its structure: plan/apply_transfer then write
every parameter and batch statistic from the torch model (and check that they did). But
building runs the model's initializers op by op, and each initializer compiles per shape: with
threefry keys the UNet fixture's build took 16.4 s of CPU, with XLA's RngBitGenerator
("unsafe_rbg") 2.8 s, and even that spends most of the cnn_classifier build compiling
rng_bit_generator programs. The generator here is a few integer operations on an iota (a
32-bit finaliser of a Weyl sequence): the programs are tiny, the values well spread (not
constant: a rejection-sampling initializer still ends), and nothing compared depends on them.
Never use it for randomness a comparison sees.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

_WEYL, _SPLIT, _FOLD = 0x9E3779B9, 0x3C6EF372, 0xBB67AE85  # odd constants (golden ratio, sqrt 2, sqrt 3)


def _mix(h):
    """lowbias32: a bijective finaliser of uint32 values."""
    import numpy as np

    h = h ^ (h >> 16)
    h = h * np.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * np.uint32(0x846CA68B)
    return h ^ (h >> 16)


def _bits32(key, n: int, salt: int = 0):
    import numpy as np
    from jax import lax

    counter = lax.iota(np.uint32, n) * np.uint32(_WEYL) + (key[0] ^ np.uint32(salt))
    return _mix(_mix(counter) ^ key[1])


def _seed(seed):
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    s = lax.convert_element_type(seed, np.uint32)
    return jnp.stack([_mix(s + np.uint32(_WEYL)), _mix(s ^ np.uint32(_SPLIT))])


def _random_bits(key, bit_width: int, shape):
    import numpy as np

    n = math.prod(shape)
    if bit_width == 64:  # asked for only with float64 enabled
        bits = _bits32(key, 2 * n).astype(np.uint64)
        return ((bits[:n] << np.uint64(32)) | bits[n:]).reshape(shape)
    return _bits32(key, n).astype({8: np.uint8, 16: np.uint16, 32: np.uint32}[bit_width]).reshape(shape)


def _split(key, shape):
    return _bits32(key, 2 * math.prod(shape), _SPLIT).reshape(*shape, 2)


def _fold_in(key, data):
    import numpy as np
    from jax import lax

    return _mix(key ^ _mix(lax.convert_element_type(data, np.uint32) + np.uint32(_FOLD)))


@lru_cache(maxsize=None)
def _impl() -> Any:
    import jax
    from jax.extend.random import define_prng_impl

    # each one program (JAX calls seed and fold_in outside jit: op by op, a compile per op)
    return define_prng_impl(key_shape=(2,), seed=jax.jit(_seed), split=jax.jit(_split, static_argnums=1),
                            random_bits=jax.jit(_random_bits, static_argnums=(1, 2)),
                            fold_in=jax.jit(_fold_in), name="pt2jax_throwaway", tag="p2jt")


def throwaway_key(seed: int) -> Any:
    """A typed key (as jax.random.key(seed) returns) of the generator above."""
    import jax

    return jax.random.key(seed, impl=_impl())
