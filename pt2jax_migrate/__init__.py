"""pt2jax: lint, rewrite and verify PyTorch code moving to JAX (Flax NNX + Optax).

Layers: cli (click) -> engine (lint, rewrite: pure functions over source text) ->
output (pt2jax_migrate.output: every format behind one registry). Only pt2jax_migrate.verify
imports torch or jax.
"""

__version__ = "0.1.0"
