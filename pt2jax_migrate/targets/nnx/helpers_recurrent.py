"""Helper code for PyTorch's recurrent layers (nn.LSTM/GRU/RNN and their cells) in Flax NNX.

Flax's own cells (nnx.LSTMCell, nnx.GRUCell, nnx.SimpleCell) split their gates into separate
Linear layers, put a single bias where PyTorch has two (b_ih and b_hh) and, for the GRU, place
the hidden bias of the n-gate differently. These helpers instead hold PyTorch's parameters under
PyTorch's names and layouts (`weight_ih_l0` (gates * hidden, input), `bias_hh_l1_reverse`, ...),
so torch weights copy across unchanged, and compute PyTorch's equations: LSTM gates i, f, g, o;
GRU gates r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). Time steps run in
`jax.lax.scan` (never unrolled in Python); only the (static) layers and directions are looped.

Source text only (imports neither jax, flax nor torch); numbers are checked against real torch
in tests/test_recurrent.py and by the generated parity tests of rules/layers.toml.
"""

from __future__ import annotations

from ..base import Helper
from ..shared_texts import recurrent_cell_call, recurrent_layers_loop

__all__ = ["RECURRENT_HELPERS"]

_IMPORTS = ("import math", "import jax", "import jax.numpy as jnp", "from flax import nnx")

_TORCH_RECURRENT_STEP = '''\
def torch_recurrent_step(mode, x, state, w_ih, w_hh, b_ih, b_hh):
    """One time step of a PyTorch recurrent cell, with torch's gate order and its two biases.

    mode: "LSTM" (gates i, f, g, o; state (h, c)), "GRU" (gates r, z, n; b_hn stays inside
    r * (...)), "RNN_TANH" or "RNN_RELU" (state h). The biases are None when bias=False.
    """
    h = state[0] if mode == "LSTM" else state
    gi = x @ w_ih.T
    gh = h @ w_hh.T
    if b_ih is not None:
        gi = gi + b_ih
        gh = gh + b_hh
    if mode == "LSTM":
        i, f, g, o = jnp.split(gi + gh, 4, axis=-1)
        c = jax.nn.sigmoid(f) * state[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c
    if mode == "GRU":
        i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
        r = jax.nn.sigmoid(i_r + h_r)
        z = jax.nn.sigmoid(i_z + h_z)
        n = jnp.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h
    return jnp.tanh(gi + gh) if mode == "RNN_TANH" else jax.nn.relu(gi + gh)
'''

_TORCH_RECURRENT_PARAMS = '''\
def torch_recurrent_params(module, rngs, suffix, input_size, hidden_size, gates, bias):
    """Create PyTorch's weight_ih/weight_hh/bias_ih/bias_hh + suffix on `module`, in torch's
    layout, drawn as torch does: U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for all."""
    bound = 1 / math.sqrt(hidden_size)
    rows = gates * hidden_size
    shapes = {"weight_ih": (rows, input_size), "weight_hh": (rows, hidden_size)}
    if bias:
        shapes.update(bias_ih=(rows,), bias_hh=(rows,))
    for name, shape in shapes.items():
        value = jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound)
        setattr(module, name + suffix, nnx.Param(value))
'''

_TORCH_RECURRENT = '''\
class TorchRecurrent(nnx.Module):
    """PyTorch's multi-layer nn.LSTM / nn.GRU / nn.RNN over a whole sequence (see TorchLSTM).

    Parameters keep torch's names: weight_ih_l{layer}{suffix}, weight_hh_..., bias_ih_...,
    bias_hh_... with suffix "" or "_reverse". Called as torch: (input, hx=None) ->
    (output, h_n), or (output, (h_n, c_n)) for the LSTM; input (L, N, H_in), (N, L, H_in) with
    batch_first=True, or unbatched (L, H_in). `dropout` is applied to each layer's output but
    the last, only in train mode (nnx.Dropout; model.eval() turns it off).
    """

    def __init__(self, mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                 bidirectional, *, rngs):
        self.mode = mode
        self.input_size = input_size  # torch's attribute names, for code that reads them
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.bidirectional = bidirectional
        self.directions = 2 if bidirectional else 1
        gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.directions
            for suffix in ("", "_reverse")[: self.directions]:
                torch_recurrent_params(
                    self, rngs, f"_l{layer}{suffix}", layer_input, hidden_size, gates, bias
                )
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 and num_layers > 1 else None

    def __call__(self, input, hx=None):
        lstm = self.mode == "LSTM"
        batched = input.ndim == 3
        x = input if batched else input[:, None]
        if batched and self.batch_first:
            x = jnp.swapaxes(x, 0, 1)  # scan runs over the leading (time) axis
        shape = (self.num_layers * self.directions, x.shape[1], self.hidden_size)
''' + recurrent_layers_loop(
    directions="self.directions", first_directions="[: self.directions]",
    weight='getattr(self, f"{name}_l{layer}{suffix}")[...]', mode="self.mode",
    dropout_test="self.dropout is not None", dropout="self.dropout(x)",
)

_LAYER = '''\
class Torch{name}(TorchRecurrent):
    """torch.nn.{name}, a stacked {what}: torch's gates, biases and parameter names."""

    def __init__(self, input_size, hidden_size, num_layers=1, {extra}bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, rngs):
        {mode_line}
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, rngs=rngs)
'''

_TORCH_RECURRENT_CELL = '''\
class TorchRecurrentCell(nnx.Module):
    """One step of PyTorch's nn.LSTMCell / nn.GRUCell / nn.RNNCell (see TorchLSTMCell).

    Parameters keep torch's names and layouts (weight_ih, weight_hh, bias_ih, bias_hh). Called
    as torch: (input, hx=None) with input (N, H_in) or unbatched (H_in,); returns h, or (h, c)
    for the LSTM cell (hx is then a pair too).
    """

    def __init__(self, mode, input_size, hidden_size, bias, *, rngs):
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
        torch_recurrent_params(self, rngs, "", input_size, hidden_size, gates, bias)

    def __call__(self, input, hx=None):
        lstm = self.mode == "LSTM"
''' + recurrent_cell_call(
    weights=("        weights = [self.weight_ih[...], self.weight_hh[...]]\n"
             "        weights += [self.bias_ih[...], self.bias_hh[...]] if self.bias else [None, None]\n"),
    mode="self.mode",
)

_CELL = '''\
class Torch{name}Cell(TorchRecurrentCell):
    """torch.nn.{name}Cell, one {what} step: torch's gates, biases and parameter names."""

    def __init__(self, input_size, hidden_size, bias=True, {extra}*, rngs):
        {mode_line}
        super().__init__(mode, input_size, hidden_size, bias, rngs=rngs)
'''

# torch raises for any other nonlinearity; so does this lookup (KeyError)
_RNN_MODE = 'mode = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}[nonlinearity]'


_REQUIRES = ("torch_recurrent_step", "torch_recurrent_params")


def _recurrent_helpers() -> list[Helper]:
    helpers = [
        Helper("torch_recurrent_step", _TORCH_RECURRENT_STEP, ("import jax", "import jax.numpy as jnp")),
        Helper("torch_recurrent_params", _TORCH_RECURRENT_PARAMS, _IMPORTS),
        Helper("TorchRecurrent", _TORCH_RECURRENT, _IMPORTS[1:], _REQUIRES),
        Helper("TorchRecurrentCell", _TORCH_RECURRENT_CELL, _IMPORTS[2:], _REQUIRES),
    ]
    kinds = (
        ("LSTM", "LSTM", 'mode = "LSTM"', ""),
        ("GRU", "GRU", 'mode = "GRU"', ""),
        ("RNN", "Elman RNN", _RNN_MODE, 'nonlinearity="tanh", '),
    )
    for name, what, mode, extra in kinds:
        layer = _LAYER.format(name=name, what=what, mode_line=mode, extra=extra)
        cell = _CELL.format(name=name, what=what, mode_line=mode, extra=extra)
        helpers.append(Helper(f"Torch{name}", layer, (), ("TorchRecurrent",)))
        helpers.append(Helper(f"Torch{name}Cell", cell, (), ("TorchRecurrentCell",)))
    return helpers


# Dependencies first (helper_closure keeps this order).
RECURRENT_HELPERS: tuple[Helper, ...] = tuple(_recurrent_helpers())
