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
STRUCTURE_HELPERS = {
    "Buffer": (BUFFER, ["from flax import nnx"]),
    "TiedLinear": (TIED_LINEAR, ["from flax import nnx"]),
}
