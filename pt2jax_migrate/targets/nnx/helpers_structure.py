"""Helper code for module structure (buffers, weight tying), written into converted files.

Source text only (no flax import here); the numbers are checked against torch in
tests/test_structure.py.
"""

from __future__ import annotations

BUFFER = '''\
class Buffer(nnx.Variable):
    """A torch buffer (register_buffer): module state that is not trained.

    nnx.Optimizer(model, tx, wrt=nnx.Param) does not update it and gradients skip it;
    update it explicitly in forward with `self.name[...] = new_value`.
    """
'''

TIED_LINEAR = '''\
class TiedLinear(nnx.Module):
    """A Linear layer whose weight is an Embedding's table (torch: `head.weight = embed.weight`).

    Both uses read the one nnx.Param, so its gradient sums both, as torch's does.
    """

    def __init__(self, embed, bias):
        self.embed = embed  # shared, not copied: the tie is kept
        self.bias = bias  # the Linear's own bias (an nnx.Param, or None)

    def __call__(self, x):
        y = x @ self.embed.embedding[...].T
        return y if self.bias is None else y + self.bias[...]
'''

# name -> (source, imports); helpers.py turns these into Helper entries
TORCH_LAYER_NORM_BASE = '''\
class TorchLayerNorm(nnx.LayerNorm):
    """nn.LayerNorm as a base class (`class LayerNorm2d(nn.LayerNorm)`): torch's constructor and
    attribute names (.weight, .bias, .eps, .normalized_shape) over nnx.LayerNorm (.scale, .bias,
    .epsilon), so a subclass's forward reads what it reads in torch."""

    def __init__(self, normalized_shape, eps=1e-05, elementwise_affine=True, bias=True,
                 device=None, dtype=None, *, rngs):
        shape = normalized_shape
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(shape) != 1:
            raise ValueError(f"normalized_shape {shape}: one trailing axis is converted")
        super().__init__(shape[0], epsilon=eps, use_scale=elementwise_affine,
                         use_bias=elementwise_affine and bias, use_fast_variance=False, rngs=rngs)
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine

    @property
    def weight(self):
        return self.scale
'''

NAMED_SEQUENTIAL = '''\
class NamedSequential(nnx.Sequential):
    """nn.Sequential(OrderedDict(...)), or one filled by add_module: the layers run in order and
    are read by name too (`self.heads.head`, `hasattr(self.heads, "pre_logits")`), as in torch."""

    def __init__(self, named=None):
        super().__init__(*(named or {}).values())
        self.layer_names = tuple(named or ())

    def append_named(self, name, module):  # `seq = nn.Sequential(); seq.add_module(name, layer)`
        self.layers.append(module)
        self.layer_names = (*self.layer_names, name)

    def __getattr__(self, name):
        names = self.__dict__.get("layer_names", ())
        if name in names:
            return self.layers[names.index(name)]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
'''

STRUCTURE_HELPERS = {
    "Buffer": (BUFFER, ["from flax import nnx"]),
    "TiedLinear": (TIED_LINEAR, ["from flax import nnx"]),
    "TorchLayerNorm": (TORCH_LAYER_NORM_BASE, ["from flax import nnx"]),
    "NamedSequential": (NAMED_SEQUENTIAL, ["from flax import nnx"]),
}
