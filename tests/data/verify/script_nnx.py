"""Converted script: the same top-level work, now with optax and tensorflow_datasets."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
import tensorflow_datasets as tfds
from flax import nnx

pair = lambda t: t if isinstance(t, tuple) else (t, t)
HIDDEN = 16
ACTIVATIONS = {"relu": jax.nn.relu, "silu": jax.nn.silu}
ACTIVATIONS["gelu"] = lambda x: jax.nn.gelu(x, approximate=False)


@dataclass
class Config:
    hidden: int = HIDDEN
    act: str = "silu"


parser = argparse.ArgumentParser(description="train")
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()


class PatchNet(nnx.Module):
    def __init__(self, cfg: Config = Config(), patch=4, *, rngs: nnx.Rngs):
        ph, pw = pair(patch)
        self.patch = (ph, pw)
        self.embed = nnx.Linear(ph * pw, cfg.hidden, rngs=rngs)
        self.act = ACTIVATIONS[cfg.act]
        self.out = nnx.Linear(cfg.hidden, 10, rngs=rngs)

    def __call__(self, x):
        b, c, height, width = x.shape
        ph, pw = self.patch
        x = x.reshape(b, c, height // ph, ph, width // pw, pw).transpose(0, 2, 4, 1, 3, 5)
        x = x.reshape(b, -1, c * ph * pw)
        h = self.act(self.embed(x)).mean(axis=1)
        return self.out(h)


train_set = tfds.load("mnist", split="train", as_supervised=True)
model = PatchNet(rngs=nnx.Rngs(0))
optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
for epoch in range(args.epochs):
    for x, y in tfds.as_numpy(train_set.batch(64)):
        pass
raise SystemExit("top-level training code ran")
