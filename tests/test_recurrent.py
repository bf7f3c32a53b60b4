"""Recurrent layers (nn.LSTM/GRU/RNN and their cells): configurations beyond the one `example`
per table entry that tests/test_rules_generated.py runs.

Each case is a small torch module, rewritten by the real engine and run through `pt2jax verify`
against real torch: every output leaf (output, h_n, c_n) and the gradient of every parameter
(perturbed weights) must match. The cases cover stacked and bidirectional layers, time-major
and batch-first input, unbatched input, initial states passed in forward, bias=False, relu
RNNs, and between-layer dropout (off in eval mode, as in torch).
"""

from __future__ import annotations

import textwrap

import pytest

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

HEADER = "import torch\nimport torch.nn as nn\n\n\n"


def module_source(layer: str, args: str, call: str) -> str:
    return HEADER + textwrap.dedent(f"""\
        class Example(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = {layer}

            def forward(self, {args}):
                return {call}
        """)


# (id, layer constructor, forward arguments, forward body, input specs)
CASES = [
    ("lstm-2layer-bidir-timemajor-state", "nn.LSTM(3, 5, num_layers=2, bidirectional=True)",
     "x, h0, c0", "self.layer(x, (h0, c0))", ["float32[6,2,3]", "float32[4,2,5]", "float32[4,2,5]"]),
    ("lstm-batchfirst-bidir-nobias", "nn.LSTM(3, 5, bias=False, batch_first=True, bidirectional=True)",
     "x", "self.layer(x)", ["float32[2,6,3]"]),
    ("lstm-unbatched-state", "nn.LSTM(3, 5, 2)", "x, h0, c0", "self.layer(x, (h0, c0))",
     ["float32[6,3]", "float32[2,5]", "float32[2,5]"]),
    ("gru-2layer-bidir-batchfirst-state", "nn.GRU(3, 5, num_layers=2, batch_first=True, bidirectional=True)",
     "x, h0", "self.layer(x, h0)", ["float32[2,6,3]", "float32[4,2,5]"]),
    ("gru-dropout-eval", "nn.GRU(3, 5, num_layers=3, dropout=0.4)", "x", "self.layer(x)", ["float32[6,2,3]"]),
    ("rnn-tanh-2layer-bidir-nobias", "nn.RNN(3, 5, 2, bias=False, bidirectional=True)", "x", "self.layer(x)",
     ["float32[6,2,3]"]),
    ("rnn-relu-state", "nn.RNN(3, 5, nonlinearity='relu')", "x, h0", "self.layer(x, h0)",
     ["float32[6,2,3]", "float32[1,2,5]"]),
    ("lstmcell-state", "nn.LSTMCell(3, 5)", "x, h, c", "self.layer(x, (h, c))",
     ["float32[2,3]", "float32[2,5]", "float32[2,5]"]),
    ("lstmcell-unbatched", "nn.LSTMCell(3, 5, bias=False)", "x", "self.layer(x)", ["float32[3]"]),
    ("grucell-state", "nn.GRUCell(3, 5)", "x, h", "self.layer(x, h)", ["float32[2,3]", "float32[2,5]"]),
    ("grucell-unbatched-state", "nn.GRUCell(3, 5)", "x, h", "self.layer(x, h)", ["float32[3]", "float32[5]"]),
    ("rnncell-relu-nobias", "nn.RNNCell(3, 5, bias=False, nonlinearity='relu')", "x", "self.layer(x)",
     ["float32[2,3]"]),
]


def _convert(tmp_path, source: str):
    result = rewrite_source(source, "example.py")
    assert [f for f in result.findings if not f.fixable] == [], result.findings
    original, converted = tmp_path / "example_torch.py", tmp_path / "example_jax.py"
    original.write_text(source)
    converted.write_text(result.new_source)
    return original, converted, result.new_source


@pytest.mark.parametrize(("layer", "args", "call", "inputs"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_recurrent_parity_with_torch(tmp_path, layer, args, call, inputs):
    import torch

    from pt2jax_migrate.verify import run_verify

    original, converted, new_source = _convert(tmp_path, module_source(layer, args, call))
    assert "jax.lax.scan" in new_source or "Cell(" in layer  # time steps are scanned, not unrolled
    report = run_verify(str(original), str(converted), model="Example", inputs=inputs)
    assert report.passed, report.to_dict()
    # every torch parameter's gradient was compared, and every output leaf
    torch_layer = eval(layer, {"nn": torch.nn})
    compared = {c.name for c in report.comparisons}
    assert {f"grad layer.{name}" for name, _ in torch_layer.named_parameters()} <= compared, compared
    lstm = "LSTM" in layer
    expected_leaves = 1 if "Cell" in layer and not lstm else 2 if "Cell" in layer or not lstm else 3
    assert len([c for c in report.comparisons if c.kind == "output"]) == expected_leaves, compared


def test_float64_parity_is_exact_to_rounding(tmp_path):
    from pt2jax_migrate.verify import run_verify

    source = module_source("nn.LSTM(3, 4, num_layers=2, bidirectional=True)", "x", "self.layer(x)")
    original, converted, _ = _convert(tmp_path, source)
    report = run_verify(str(original), str(converted), model="Example", inputs=["float32[5,2,3]"], dtype="float64")
    assert report.passed, report.to_dict()


def test_wrong_gate_order_is_caught(tmp_path):
    """The parity check can fail: a converted GRU whose n-gate adds b_hn outside r * (...)
    (flax's nnx.GRUCell layout) does not match torch."""
    from pt2jax_migrate.verify import run_verify

    source = module_source("nn.GRU(3, 5)", "x", "self.layer(x)")
    original, converted, new_source = _convert(tmp_path, source)
    wrong = "n = jnp.tanh(i_n + r * (h_n - b_hh[2 * h_n.shape[-1]:]) + b_hh[2 * h_n.shape[-1]:])"
    broken = new_source.replace("n = jnp.tanh(i_n + r * h_n)", wrong)
    assert broken != new_source
    converted.write_text(broken)
    report = run_verify(str(original), str(converted), model="Example", inputs=["float32[6,2,3]"])
    assert not report.passed


def test_proj_size_and_dtype_are_refused_by_lint_and_rewrite():
    source = module_source("nn.LSTM(3, 5, proj_size=2)", "x", "self.layer(x)")
    line = source.splitlines().index("        self.layer = nn.LSTM(3, 5, proj_size=2)") + 1
    lint = [f for f in lint_source(source, "m.py") if f.line == line and f.code == "PTJ102"]
    assert lint and not any(f.fixable for f in lint), lint
    result = rewrite_source(source, "m.py")
    assert "TODO(pt2jax): PTJ102" in result.new_source and "nn.LSTM(3, 5, proj_size=2)" in result.new_source
    assert "TorchLSTM(" not in result.new_source.split("class Example")[-1]


def test_forward_call_and_tuple_unpacking_are_kept():
    """The helper takes torch's call signature, so the call site is unchanged."""
    source = HEADER + textwrap.dedent("""\
        class Tagger(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(8, 16, batch_first=True, bidirectional=True)
                self.head = nn.Linear(32, 4)

            def forward(self, x, h0, c0):
                out, (h, c) = self.lstm(x, (h0, c0))
                return self.head(out)
        """)
    line = 8
    assert [f.fixable for f in lint_source(source, "m.py") if f.line == line and f.code == "PTJ102"] == [True]
    new = rewrite_source(source, "m.py").new_source
    assert "self.lstm = TorchLSTM(8, 16, batch_first=True, bidirectional=True, rngs=rngs)" in new
    assert "out, (h, c) = self.lstm(x, (h0, c0))" in new
    assert "import torch" not in new and "nn.LSTM" not in new.split("class Tagger")[-1]
    assert rewrite_source(new, "m.py").new_source == new


def _helper_namespace(*names):
    from pt2jax_migrate.targets.nnx.helpers import helper_closure, helper_imports

    helpers = helper_closure(names)
    namespace: dict = {}
    exec("\n".join(helper_imports(helpers)) + "\n" + "\n\n".join(h.source for h in helpers), namespace)
    return namespace


def test_dropout_between_layers_acts_in_train_mode_only():
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    gru = _helper_namespace("TorchGRU")["TorchGRU"](3, 5, num_layers=2, dropout=0.5, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((6, 2, 3)), jnp.float32)
    gru.eval()
    first, _ = gru(x)
    again, _ = gru(x)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    gru.train()
    dropped, _ = gru(x)
    assert not np.allclose(np.asarray(first), np.asarray(dropped))
    single = _helper_namespace("TorchGRU")["TorchGRU"](3, 5, dropout=0.5, rngs=nnx.Rngs(0))
    assert single.dropout is None  # torch applies it between layers only: one layer, no dropout


def test_flatten_parameters_is_a_no_op_and_bad_nonlinearity_raises():
    from flax import nnx

    namespace = _helper_namespace("TorchLSTM", "TorchRNN")
    lstm = namespace["TorchLSTM"](3, 5, rngs=nnx.Rngs(0))
    assert lstm.flatten_parameters() is None
    with pytest.raises(KeyError):
        namespace["TorchRNN"](3, 5, nonlinearity="sigmoid", rngs=nnx.Rngs(0))


def test_parameters_are_named_and_shaped_as_torch():
    import torch
    from flax import nnx

    namespace = _helper_namespace("TorchLSTM", "TorchGRUCell")
    rngs = nnx.Rngs(0)
    pairs = [
        (torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True),
         namespace["TorchLSTM"](3, 5, 2, bidirectional=True, rngs=rngs)),
        (torch.nn.GRUCell(3, 5, bias=False), namespace["TorchGRUCell"](3, 5, bias=False, rngs=rngs)),
    ]
    for torch_layer, nnx_layer in pairs:
        want = {name: tuple(p.shape) for name, p in torch_layer.named_parameters()}
        got = {".".join(map(str, path)): tuple(v[...].shape)
               for path, v in nnx.to_flat_state(nnx.state(nnx_layer, nnx.Param))}
        assert got == want
        bound = 1 / 5 ** 0.5  # torch's U(-1/sqrt(hidden), 1/sqrt(hidden)) for every tensor
        for _, v in nnx.to_flat_state(nnx.state(nnx_layer, nnx.Param)):
            assert float(abs(v[...]).max()) <= bound and float(abs(v[...]).max()) > bound / 2
