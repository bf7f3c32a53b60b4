"""Helper code that the rewrite writes into files converted to Flax Linen.

The framework-neutral helpers (plain jax/jnp functions: pools, pads, ntuple ...) are the NNX
target's own definitions, shared; the ones built on a module API are written here for Linen
(`from flax import linen`, bound as `linen` so it never clashes with a `torch.nn as nn` that a
TODO keeps). Source text only: imports neither jax, flax nor torch. Checked against real torch
in tests/test_linen.py.
"""

from __future__ import annotations

from ..base import Helper, closure_of
from ..nnx.helpers import HELPERS as NNX_HELPERS
from .helpers_checkpoint import CHECKPOINT_HELPERS
from .helpers_params import PARAM_HELPERS, VIEW_HELPERS
from .helpers_train import TRAIN_HELPERS
from .helpers_attention import ATTENTION_HELPERS
from .helpers_init import INIT_HELPERS
from .helpers_layers import LAYER_HELPERS

__all__ = ["ALLOWED_IMPORTS", "HELPERS"]

LINEN_IMPORT = "from flax import linen"
ALLOWED_IMPORTS: tuple[str, ...] = (
    "import functools",
    "import inspect",
    "import math",
    "from typing import Any",
    "from functools import partial",
    "import jax",
    "import jax.numpy as jnp",
    "import flax",
    LINEN_IMPORT,
    "import optax",
    "import numpy as np",
)

_TORCH_BATCH_NORM = '''\
class TorchBatchNorm(linen.Module):
    """PyTorch's BatchNorm on any axis (channels on axis 1 by default), running statistics in
    the 'batch_stats' collection (mean, var), scale and bias in 'params'.

    Training normalises with the biased batch variance and averages the unbiased one
    (times n / (n - 1), n = values per channel) into var, as PyTorch does; momentum is flax's
    (the weight of the old statistics: 1 - torch's momentum).
    """

    use_running_average: bool | None = None
    axis: int = 1
    momentum: float = 0.9
    epsilon: float = 1e-05
    use_bias: bool = True
    use_scale: bool = True

    @linen.compact
    def __call__(self, x, use_running_average=None):
        use_running_average = linen.merge_param("use_running_average", self.use_running_average,
                                                use_running_average)
        axis = self.axis % x.ndim
        features = x.shape[axis]
        reduction_axes = tuple(i for i in range(x.ndim) if i != axis)
        shape = [1] * x.ndim
        shape[axis] = features
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        if use_running_average:
            mean, var = running_mean.value, running_var.value
        else:
            n = x.size // features
            if n < 2:
                raise ValueError("BatchNorm needs more than 1 value per channel when training")
            mean = jnp.mean(x, axis=reduction_axes)
            var = jnp.mean(jnp.square(x - mean.reshape(shape)), axis=reduction_axes)
            if not self.is_initializing():
                running_mean.value = jax.lax.stop_gradient(
                    self.momentum * running_mean.value + (1 - self.momentum) * mean)
                running_var.value = jax.lax.stop_gradient(
                    self.momentum * running_var.value + (1 - self.momentum) * var * (n / (n - 1)))
        y = (x - mean.reshape(shape)) * jax.lax.rsqrt(var.reshape(shape) + self.epsilon)
        if self.use_scale:
            y = y * self.param("scale", linen.initializers.ones, (features,)).reshape(shape)
        if self.use_bias:
            y = y + self.param("bias", linen.initializers.zeros, (features,)).reshape(shape)
        return y
'''

_SEQUENTIAL = '''\
class TrainSequential(linen.Module):
    """torch.nn.Sequential: the layers run in order, each on the previous one's output.

    linen.Sequential hands its call's keywords to the first layer only; this one hands the
    `train` flag to every layer that takes it (Dropout and BatchNorm as deterministic /
    use_running_average, converted modules as train=).
    """

    layers: tuple

    def __call__(self, x, train: bool = False):
        for layer in self.layers:
            if isinstance(layer, linen.Dropout):
                x = layer(x, deterministic=not train)
            elif isinstance(layer, TorchBatchNorm):
                x = layer(x, use_running_average=not train)
            elif isinstance(layer, linen.Module) and takes_train(layer):
                x = layer(x, train=train)
            else:
                x = layer(x)
        return x


def takes_train(layer):
    """Whether the layer takes `train` at call time (a converted module, a Torch* layer)."""
    return "train" in inspect.signature(layer.__call__).parameters


def Sequential(*layers):
    """nn.Sequential(a, b, c) -> the module running a, b, c in order (TrainSequential)."""
    return TrainSequential(layers=layers)
'''

_NORMALIZED_AXES = '''\
def normalized_axes(normalized_shape):
    """nn.LayerNorm's normalized_shape (an int or a shape) -> the trailing axes flax normalises."""
    if isinstance(normalized_shape, int):
        return -1
    return tuple(range(-len(normalized_shape), 0))
'''

# NNX helpers whose text holds for Linen with the module API named `linen` (initialisers, and
# layers that only wrap a flax layer's __call__): one text serves both targets
SAME_TEXT = ("torch_kernel_init", "torch_embedding_init", "ConvNCHW", "ConvTransposeNCHW", "GroupNormNCHW")


def for_linen(helper: Helper) -> Helper:
    """An NNX helper's text with the module API named for Linen (`nnx.` -> `linen.`)."""
    imports = tuple(LINEN_IMPORT if line == "from flax import nnx" else line for line in helper.imports)
    return Helper(helper.name, helper.source.replace("nnx.", "linen."), imports, helper.requires)


_LINEN_HELPERS = (
    *(for_linen(NNX_HELPERS[name]) for name in SAME_TEXT),
    Helper("TorchBatchNorm", _TORCH_BATCH_NORM, ("import jax", "import jax.numpy as jnp", LINEN_IMPORT)),
    Helper("Sequential", _SEQUENTIAL, ("import inspect", LINEN_IMPORT), ("TorchBatchNorm",)),
    Helper("normalized_axes", _NORMALIZED_AXES, ()),
    *LAYER_HELPERS,
    *ATTENTION_HELPERS,
    *INIT_HELPERS,
)


def _framework_neutral(helpers: dict[str, Helper]) -> dict[str, Helper]:
    """The NNX helpers whose code (with everything it requires) uses no module API."""
    return {name: h for name, h in helpers.items()
            if not any("flax" in line for dep in closure_of(helpers, [name]) for line in dep.imports)}


def _registry() -> dict[str, Helper]:
    registry = _framework_neutral(NNX_HELPERS)
    # dependencies first (closure_of keeps this order)
    for helper in (*_LINEN_HELPERS, *VIEW_HELPERS, *TRAIN_HELPERS, *PARAM_HELPERS, *CHECKPOINT_HELPERS):
        if helper.name in registry:
            raise ValueError(f"two pt2jax helpers are named {helper.name!r}")
        registry[helper.name] = helper
    return registry


HELPERS: dict[str, Helper] = _registry()
