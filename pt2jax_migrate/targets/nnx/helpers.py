"""Helper code that the rewrite writes into files converted to Flax NNX.

Where a PyTorch behaviour has no one-call JAX equivalent, the converted file gets a small,
readable definition (once per file) instead of an import: converted code never imports pt2jax.
This module holds those definitions as source text only; it imports neither jax, flax nor torch.

Every helper keeps PyTorch's channels-first layout (N, C, *spatial). The numbers are checked
against real torch in tests/test_helpers_parity.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..base import Helper, closure_of
from .helpers_attention import ATTENTION_HELPERS
from .helpers_recurrent import RECURRENT_HELPERS
from .helpers_structure import STRUCTURE_HELPERS
from .helpers_surface import SURFACE_HELPERS
from .helpers_schedule import SCHEDULE_HELPERS
from .helpers_init import MODULE_APPLY, SUBMODULES, TORCH_INIT
from .helpers_optim import OPTIM_HELPERS
from .helpers_speed import SPEED_HELPERS
from .helpers_checkpoint import CHECKPOINT_HELPERS
from .helpers_distributions import DISTRIBUTION_HELPERS
from .helpers_data import DATA_HELPERS
from .helpers_parallel import PARALLEL_HELPERS

__all__ = ["ALLOWED_IMPORTS", "HELPERS", "Helper", "helper_closure", "helper_imports"]

# The only import lines a helper may ask for, in the order they are written out.
ALLOWED_IMPORTS: tuple[str, ...] = (
    "import math",
    "import jax",
    "import jax.numpy as jnp",
    "from flax import nnx",
    "import optax",
    "import numpy as np",
)


_NTUPLE = '''\
def ntuple(value, n):
    """Expand an int (or None) to an n-tuple, as PyTorch does for kernel sizes and strides.

    An int kernel_size means 1-D to flax's Conv, so a 2-D size must be spelled out.
    """
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * n
'''

_IDENTITY = '''\
def identity(x):
    """torch.nn.Identity: return the input unchanged."""
    return x
'''

_TORCH_ASSERT = '''\
def torch_assert(condition, message):
    """torch._assert: raise AssertionError(message) when the condition is false."""
    if not condition:
        raise AssertionError(message)
'''

_TORCH_KERNEL_INIT = '''\
# PyTorch's default init for Linear and Conv weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
# Flax defaults to lecun_normal; variance_scaling(1/3, uniform) draws from the same range as torch.
torch_kernel_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
'''

_TORCH_BIAS_INIT = '''\
def torch_bias_init(fan_in):
    """PyTorch's default bias init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (flax uses zeros).

    A flax initializer only sees the bias shape, so fan_in is captured here.
    """
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
'''

_TORCH_EMBEDDING_INIT = '''\
# PyTorch initialises nn.Embedding with N(0, 1); flax's default has std 1/sqrt(features).
torch_embedding_init = nnx.initializers.normal(stddev=1.0)
'''

_CONV_NCHW = '''\
class ConvNCHW(nnx.Conv):
    """nnx.Conv on PyTorch's channels-first layout (N, C, *spatial).

    Flax convolves channels-last, so the channel axis is moved last and back again.
    Parameters are unchanged: kernel (*kernel_size, in // groups, out) and bias.
    """

    # torch's names for the configuration (init code reads `m.out_channels`)
    in_channels = property(lambda self: self.in_features)
    out_channels = property(lambda self: self.out_features)
    groups = property(lambda self: self.feature_group_count)

    def __call__(self, x):
        channel_axis = x.ndim - len(self.kernel_size) - 1  # also works without a batch axis
        y = super().__call__(jnp.moveaxis(x, channel_axis, -1))
        return jnp.moveaxis(y, -1, channel_axis)

    @property
    def in_channels(self):  # torch's names for the layer's in_features / out_features
        return self.in_features

    @property
    def out_channels(self):
        return self.out_features
'''

_CONV_TRANSPOSE_NCHW = '''\
class ConvTransposeNCHW(nnx.ConvTranspose):
    """nnx.ConvTranspose on PyTorch's channels-first layout (N, C, *spatial).

    Built with transpose_kernel=True, so the kernel is (*kernel_size, out, in): PyTorch's
    (in, out, *kernel_size) weight moved, with no spatial flip.
    """

    in_channels = property(lambda self: self.in_features)  # torch's names, as ConvNCHW's
    out_channels = property(lambda self: self.out_features)

    def __call__(self, x):
        channel_axis = x.ndim - len(self.kernel_size) - 1
        y = super().__call__(jnp.moveaxis(x, channel_axis, -1))
        return jnp.moveaxis(y, -1, channel_axis)

    @property
    def in_channels(self):  # torch's names for the layer's in_features / out_features
        return self.in_features

    @property
    def out_channels(self):
        return self.out_features
'''

_CONV_TRANSPOSE_PADDING = '''\
def conv_transpose_padding(kernel_size, padding, output_padding, dilation, n):
    """PyTorch's ConvTranspose padding as explicit (low, high) pairs for flax's ConvTranspose.

    Per dim: (d * (k - 1) - p, d * (k - 1) - p + output_padding); flax's 'SAME' differs.
    """
    k, p, op, d = (ntuple(v, n) for v in (kernel_size, padding, output_padding, dilation))
    return tuple((d[i] * (k[i] - 1) - p[i], d[i] * (k[i] - 1) - p[i] + op[i]) for i in range(n))
'''

_GROUP_NORM_NCHW = '''\
class GroupNormNCHW(nnx.GroupNorm):
    """nnx.GroupNorm on PyTorch's channels-first layout (N, C, *spatial).

    Flax normalises groups of the last axis, so channels are moved last and back again.
    """

    def __call__(self, x):
        return jnp.moveaxis(super().__call__(jnp.moveaxis(x, 1, -1)), -1, 1)
'''

_UPSAMPLE_NEAREST = '''\
def upsample_nearest(x, scale_factor):
    """PyTorch's mode='nearest' upsampling by whole factors on channels-first input.

    out[i] = in[i // factor] on each spatial axis: a repeat, exact for whole factors.
    """
    factors = ntuple(scale_factor, x.ndim - 2)
    for axis, factor in enumerate(factors, start=2):
        if int(factor) != factor:
            raise ValueError(f"nearest upsampling by a non-whole factor {factor} is not supported")
        x = jnp.repeat(x, int(factor), axis=axis)
    return x
'''

_TORCH_BATCH_NORM = '''\
class TorchBatchNorm(nnx.BatchNorm):
    """nnx.BatchNorm whose running variance is updated as in PyTorch.

    The output is nnx.BatchNorm's. In training, PyTorch averages the unbiased batch variance
    (times n / (n - 1), n = values per channel) into running_var; flax averages the biased one.
    """

    def __call__(self, x, use_running_average=None):
        if use_running_average is None:
            use_running_average = self.use_running_average
        if use_running_average:
            return super().__call__(x, use_running_average=True)
        old_var = self.var[...]
        y = super().__call__(x, use_running_average=False)
        axis = self.axis % x.ndim
        reduction_axes = tuple(i for i in range(x.ndim) if i != axis)
        n = x.size // x.shape[axis]
        if n < 2:
            raise ValueError("BatchNorm needs more than 1 value per channel when training")
        batch_var = jnp.var(x.astype(old_var.dtype), axis=reduction_axes)
        new_var = self.momentum * old_var + (1 - self.momentum) * batch_var * (n / (n - 1))
        self.var[...] = jax.lax.stop_gradient(new_var)
        return y
'''

_POOL_PADS = '''\
def pool_pads(size, kernel_size, stride, padding, dilation, ceil_mode):
    """(low, high) padding of each pooled axis, as PyTorch pools: ceil_mode=True adds on the
    high side what a last, partial window needs (a window must start inside the input or the
    low padding)."""
    pads = []
    for n, k, s, p, d in zip(size, kernel_size, stride, padding, dilation):
        span = n + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + p:
            out -= 1
        pads.append((p, p + max(0, (out - 1) * s + d * (k - 1) + 1 - (n + 2 * p))))
    return tuple(pads)
'''

_MAX_POOL = '''\
def max_pool{nd}d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """torch.nn.functional.max_pool{nd}d on channels-first input (padding counts as -inf)."""
    kernel_size = ntuple(kernel_size, {nd})
    stride = kernel_size if stride is None else ntuple(stride, {nd})
    padding = ntuple(padding, {nd})
    dilation = ntuple(dilation, {nd})
    lead = (1,) * (x.ndim - {nd})  # batch and channel axes are not pooled
    window = lead + kernel_size
    strides = lead + stride
    spatial = pool_pads(x.shape[-{nd}:], kernel_size, stride, padding, dilation, ceil_mode)
    pads = ((0, 0),) * len(lead) + spatial
    return jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max, window, strides, pads, window_dilation=lead + dilation
    )
'''

_AVG_POOL = '''\
def avg_pool{nd}d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """torch.nn.functional.avg_pool{nd}d on channels-first input.

    The divisor counts the zero padding (unless count_include_pad=False) but never the part
    of a ceil_mode window that hangs past it, as in PyTorch.
    """
    kernel_size = ntuple(kernel_size, {nd})
    stride = kernel_size if stride is None else ntuple(stride, {nd})
    padding = ntuple(padding, {nd})
    lead = (1,) * (x.ndim - {nd})  # batch and channel axes are not pooled
    window = lead + kernel_size
    strides = lead + stride
    unpooled = ((0, 0),) * len(lead)
    spatial = pool_pads(x.shape[-{nd}:], kernel_size, stride, padding, (1,) * {nd}, ceil_mode)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, unpooled + spatial)
    ones = jnp.ones(lead + x.shape[-{nd}:], x.dtype)
    if count_include_pad:  # padding counts; the ceil_mode overhang does not
        ones = jnp.pad(ones, unpooled + tuple((p, p) for p in padding), constant_values=1)
        spatial = tuple((0, high - low) for low, high in spatial)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, unpooled + spatial)
    return total / count
'''

_ADAPTIVE_AVG_POOL2D = '''\
def adaptive_avg_pool2d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool2d on channels-first input.

    Output bin i along an axis of length n averages [floor(i*n/out), ceil((i+1)*n/out)).
    Bins may overlap, so this loops over them (static shapes); a mean over a rectangle
    is a mean of row means, so each axis is pooled in turn. None keeps the input size.
    """
    for axis, out in zip((-2, -1), ntuple(output_size, 2)):
        n = x.shape[axis]
        out = n if out is None else out
        bins = [
            jax.lax.slice_in_dim(
                x, (i * n) // out, math.ceil((i + 1) * n / out), axis=axis % x.ndim
            ).mean(axis=axis)
            for i in range(out)
        ]
        x = jnp.stack(bins, axis=axis)
    return x
'''


def _helper(name: str, source: str, imports: Iterable[str], requires: Iterable[str] = ()) -> Helper:
    return Helper(name=name, source=source, imports=tuple(imports), requires=tuple(requires))


# Ordered so that every helper comes after the helpers it requires; helper_closure keeps this order.
def _register(*groups: Iterable[Helper]) -> dict[str, Helper]:
    """One name, one helper: each area's module adds its own, and two areas choosing the same
    name would otherwise replace one helper with the other in every converted file."""
    registry: dict[str, Helper] = {}
    for group in groups:
        for helper in group:
            if helper.name in registry:
                raise ValueError(f"two pt2jax helpers are named {helper.name!r}")
            registry[helper.name] = helper
    return registry


HELPERS: dict[str, Helper] = _register(
    (
        _helper("ntuple", _NTUPLE, ()),
        _helper("identity", _IDENTITY, ()),
        _helper("torch_assert", _TORCH_ASSERT, ()),
        _helper("torch_kernel_init", _TORCH_KERNEL_INIT, ["from flax import nnx"]),
        _helper("torch_bias_init", _TORCH_BIAS_INIT, ["import math", "import jax", "import jax.numpy as jnp"]),
        _helper("torch_embedding_init", _TORCH_EMBEDDING_INIT, ["from flax import nnx"]),
        _helper("ConvNCHW", _CONV_NCHW, ["import jax.numpy as jnp", "from flax import nnx"]),
        _helper("ConvTransposeNCHW", _CONV_TRANSPOSE_NCHW, ["import jax.numpy as jnp", "from flax import nnx"]),
        _helper("conv_transpose_padding", _CONV_TRANSPOSE_PADDING, (), ["ntuple"]),
        _helper("GroupNormNCHW", _GROUP_NORM_NCHW, ["import jax.numpy as jnp", "from flax import nnx"]),
        _helper("upsample_nearest", _UPSAMPLE_NEAREST, ["import jax.numpy as jnp"], ["ntuple"]),
        _helper("TorchBatchNorm", _TORCH_BATCH_NORM, ["import jax", "import jax.numpy as jnp", "from flax import nnx"]),
        _helper("pool_pads", _POOL_PADS, ()),
        _helper("max_pool1d", _MAX_POOL.format(nd=1), ["import jax", "import jax.numpy as jnp"], ["ntuple", "pool_pads"]),
        _helper("max_pool2d", _MAX_POOL.format(nd=2), ["import jax", "import jax.numpy as jnp"], ["ntuple", "pool_pads"]),
        _helper("avg_pool1d", _AVG_POOL.format(nd=1), ["import jax", "import jax.numpy as jnp"], ["ntuple", "pool_pads"]),
        _helper("avg_pool2d", _AVG_POOL.format(nd=2), ["import jax", "import jax.numpy as jnp"], ["ntuple", "pool_pads"]),
        _helper(
            "adaptive_avg_pool2d",
            _ADAPTIVE_AVG_POOL2D,
            ["import math", "import jax", "import jax.numpy as jnp"],
            ["ntuple"],
        ),
        *ATTENTION_HELPERS,
        *RECURRENT_HELPERS,
        *SURFACE_HELPERS,
        *SPEED_HELPERS,
        _helper("torch_init", TORCH_INIT, ["import math", "import jax", "import jax.numpy as jnp"]),
        _helper("module_apply", MODULE_APPLY, ["from flax import nnx"]),
        _helper("submodules", SUBMODULES, ["from flax import nnx"]),
        *OPTIM_HELPERS,
    ),
    (_helper(name, source, imports) for name, (source, imports) in STRUCTURE_HELPERS.items()),
    (_helper(name, *spec) for name, spec in CHECKPOINT_HELPERS.items()),
    (_helper(name, *spec) for name, spec in SCHEDULE_HELPERS.items()),
    (_helper(name, *spec) for name, spec in DISTRIBUTION_HELPERS.items()),
    (_helper(name, source, imports) for name, (source, imports) in DATA_HELPERS.items()),
    (_helper(name, *spec) for name, spec in PARALLEL_HELPERS.items()),
)


def helper_closure(names: Iterable[str]) -> list[Helper]:
    """The named helpers plus everything they require, dependencies first.

    The order is HELPERS' order, so it does not depend on the order (or type) of `names`.
    Raises KeyError for an unknown name.
    """
    return closure_of(HELPERS, names)


def helper_imports(helpers: Iterable[Helper]) -> list[str]:
    """The import lines the given helpers need, deduplicated, in ALLOWED_IMPORTS order."""
    needed = {line for h in helpers for line in h.imports}
    return [line for line in ALLOWED_IMPORTS if line in needed]
