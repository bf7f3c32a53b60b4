"""Linen helper texts for layers whose NNX helper is built on an nnx.Module with an __init__
(a Linen module is a dataclass whose parameters are drawn in setup / compact): padding_idx
embeddings, a Linear tied to an Embedding, PyTorch's recurrent layers and cells.

Source text only (imports neither jax, flax nor torch). The recurrent step itself
(`torch_recurrent_step`: torch's gate order, two biases) is the NNX target's framework-neutral
helper, shared. Checked against real torch by the generated parity tests (rules/layers.toml).
"""

from __future__ import annotations

from ..base import Helper
from ..shared_texts import recurrent_cell_call, recurrent_layers_loop

__all__ = ["LAYER_HELPERS"]

_LINEN = "from flax import linen"

_EMBED_PADDING_IDX = '''\
class EmbedPaddingIdx(linen.Embed):
    """nn.Embedding(padding_idx=i): row i starts at zero and is never trained (its gradient
    is zero, as in PyTorch); it is returned as it stands for index i."""

    padding_idx: int = 0

    def setup(self):
        index = self.padding_idx % self.num_embeddings  # torch accepts a negative index
        init = self.embedding_init

        def embedding_init(key, shape, dtype=jnp.float32):
            return init(key, shape, dtype).at[index].set(0)

        shape = (self.num_embeddings, self.features)
        self.embedding = self.param("embedding", embedding_init, shape, self.param_dtype)

    def __call__(self, inputs):
        table = self.embedding
        frozen = (jnp.arange(table.shape[0]) == self.padding_idx % self.num_embeddings)[:, None]
        table = jnp.where(frozen, jax.lax.stop_gradient(table), table)
        return jnp.take(table, inputs, axis=0)
'''

_TIED_DENSE = '''\
class TiedDense(linen.Module):
    """A Linear layer whose weight is an Embedding's table (torch: `head.weight = embed.weight`):
    `x @ table.T` through the shared linen.Embed's attend, plus the Linear's own bias.

    Both uses read the one parameter, so its gradient sums both, as torch's does.
    """

    embed: linen.Module  # shared, not copied: the tie is kept
    use_bias: bool = True

    @linen.compact
    def __call__(self, x):
        y = self.embed.attend(x)
        if self.use_bias:  # PyTorch's Linear bias init: U(-1/sqrt(in), 1/sqrt(in))
            bias_init = torch_bias_init(self.embed.features)
            y = y + self.param("bias", bias_init, (self.embed.num_embeddings,))
        return y
'''

_RECURRENT_PARAMS = '''\
def torch_recurrent_params(module, suffix, input_size, hidden_size, gates, bias):
    """PyTorch's weight_ih/weight_hh/bias_ih/bias_hh + suffix as params of `module` (in setup),
    in torch's layout, drawn as torch does: U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
    bound = 1 / math.sqrt(hidden_size)
    rows = gates * hidden_size
    shapes = {"weight_ih": (rows, input_size), "weight_hh": (rows, hidden_size)}
    if bias:
        shapes.update(bias_ih=(rows,), bias_hh=(rows,))

    def init(key, shape):
        return jax.random.uniform(key, shape, jnp.float32, -bound, bound)

    return {name + suffix: module.param(name + suffix, init, shape)
            for name, shape in shapes.items()}
'''

_RECURRENT_MODE = '''\
def torch_recurrent_mode(mode, nonlinearity):
    """"LSTM", "GRU", or the Elman RNN's "RNN_TANH" / "RNN_RELU" (torch raises on others)."""
    if mode != "RNN":
        return mode
    return {"tanh": "RNN_TANH", "relu": "RNN_RELU"}[nonlinearity]
'''

_TORCH_RECURRENT = '''\
class TorchRecurrent(linen.Module):
    """PyTorch's multi-layer nn.LSTM / nn.GRU / nn.RNN over a whole sequence (see TorchLSTM).

    Parameters keep torch's names: weight_ih_l{layer}{suffix}, weight_hh_..., bias_ih_...,
    bias_hh_... with suffix "" or "_reverse". Called as torch: (input, hx=None) ->
    (output, h_n), or (output, (h_n, c_n)) for the LSTM; input (L, N, H_in), (N, L, H_in) with
    batch_first=True, or unbatched (L, H_in). `dropout` acts on each layer's output but the
    last, only with train=True (an rng named 'dropout').
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    nonlinearity: str = "tanh"
    mode: str = "RNN"

    def setup(self):
        gates = {"LSTM": 4, "GRU": 3}.get(self.mode, 1)
        directions = 2 if self.bidirectional else 1
        params = {}
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                params.update(torch_recurrent_params(
                    self, f"_l{layer}{suffix}", layer_input, self.hidden_size, gates, self.bias
                ))
        self.weights = params
        self.drop = linen.Dropout(self.dropout)

    def __call__(self, input, hx=None, *, train: bool = False):
        mode = torch_recurrent_mode(self.mode, self.nonlinearity)
        lstm = mode == "LSTM"
        directions = 2 if self.bidirectional else 1
        batched = input.ndim == 3
        x = input if batched else input[:, None]
        if batched and self.batch_first:
            x = jnp.swapaxes(x, 0, 1)  # scan runs over the leading (time) axis
        shape = (self.num_layers * directions, x.shape[1], self.hidden_size)
''' + recurrent_layers_loop(
    directions="directions", first_directions="[:directions]",
    weight='self.weights[f"{name}_l{layer}{suffix}"]', mode="mode", dropout_test="self.dropout > 0", dropout="self.drop(x, deterministic=not train)",
)

_TORCH_RECURRENT_CELL = '''\
class TorchRecurrentCell(linen.Module):
    """One step of PyTorch's nn.LSTMCell / nn.GRUCell / nn.RNNCell (see TorchLSTMCell).

    Parameters keep torch's names and layouts (weight_ih, weight_hh, bias_ih, bias_hh). Called
    as torch: (input, hx=None) with input (N, H_in) or unbatched (H_in,); returns h, or (h, c)
    for the LSTM cell (hx is then a pair too).
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    nonlinearity: str = "tanh"
    mode: str = "RNN"

    def setup(self):
        gates = {"LSTM": 4, "GRU": 3}.get(self.mode, 1)
        self.weights = torch_recurrent_params(
            self, "", self.input_size, self.hidden_size, gates, self.bias
        )

    def __call__(self, input, hx=None):
        mode = torch_recurrent_mode(self.mode, self.nonlinearity)
        lstm = mode == "LSTM"
''' + recurrent_cell_call(
    weights=('        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")\n'
             "        weights = [self.weights[name] if name in self.weights else None for name in names]\n"),
    mode="mode",
)

_KIND = '''\
class Torch{name}{cell}(TorchRecurrent{cell}):
    """torch.nn.{name}{cell}: torch's gates, biases and parameter names."""

    mode: str = "{name}"
'''


def _layer_helpers() -> tuple[Helper, ...]:
    imports = ("import math", "import jax", "import jax.numpy as jnp", _LINEN)
    out = [
        Helper("EmbedPaddingIdx", _EMBED_PADDING_IDX, imports[1:]),
        Helper("TiedDense", _TIED_DENSE, (_LINEN,), ("torch_bias_init",)),
        Helper("torch_recurrent_params", _RECURRENT_PARAMS, imports[:3]),
        Helper("torch_recurrent_mode", _RECURRENT_MODE, ()),
    ]
    requires = ("torch_recurrent_step", "torch_recurrent_params", "torch_recurrent_mode")
    out.append(Helper("TorchRecurrent", _TORCH_RECURRENT, imports[1:], requires))
    out.append(Helper("TorchRecurrentCell", _TORCH_RECURRENT_CELL, ("import jax.numpy as jnp", _LINEN), requires))
    for name in ("LSTM", "GRU", "RNN"):
        for cell in ("", "Cell"):
            out.append(Helper(f"Torch{name}{cell}", _KIND.format(name=name, cell=cell), (),
                              (f"TorchRecurrent{cell}",)))
    return tuple(out)


LAYER_HELPERS = _layer_helpers()
