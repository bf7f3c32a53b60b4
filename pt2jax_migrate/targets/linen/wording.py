"""The shared advice texts (core/constructs.py, the rules tables' refusals) name NNX's API; what
a Linen user is told instead (Target.reword, applied by lint and rewrite to every finding and
TODO). tests/test_linen_wording.py holds lint and rewrite under --target linen to texts that do
not name NNX.
"""

from __future__ import annotations

_VARIABLES = "the variables dict module.init returns (variables['params'], 'batch_stats')"

# (NNX phrase, Linen phrase), the longer phrases first where one contains another
WORDING: tuple[tuple[str, str], ...] = (
    ("nnx modules keep parameters and state as attributes: use nnx.state(model, nnx.Param) / nnx.iter_graph",
     f"Linen modules keep parameters and state in {_VARIABLES}: read it "
     "(flax.traverse_util.flatten_dict names every leaf)"),
    ("nnx modules keep their state as nnx.State: use nnx.state(model) / nnx.update(model, state) "
     "(and nnx.state(model, nnx.Param) for parameters)",
     f"Linen modules keep their state in {_VARIABLES}: read and replace that dict"),
    ("or an nnx.Variable subclass (state that forward updates)",
     "or a self.variable('buffers', name, init) (state that forward updates: apply(..., mutable=))"),
    ("register_parameter(): assign an nnx.Param attribute", "register_parameter(): use self.param(name, init_fn)"),
    ("iterate submodules with nnx.iter_graph(module) or by attribute", "iterate submodules by attribute"),
    ("iterate submodules with nnx.iter_graph(module)", "iterate submodules by attribute"),
    ("state_dict(): use nnx.state(model)", f"state_dict(): use {_VARIABLES}"),
    ("load_state_dict(): use nnx.update(model, state)", "load_state_dict(): pass the loaded variables to module.apply"),
    ("nnx.value_and_grad / jax.grad", "jax.value_and_grad / jax.grad over the params"),
    ("nnx.grad / jax.grad", "jax.grad over the params"),
    ("jax.grad / nnx.grad", "jax.grad"),
    ("or choose trainable state with nnx.Optimizer(..., wrt=...) filters",
     "or leave params out of training with optax.masked / optax.multi_transform"),
    ("keep a plain array (or an nnx.Variable)", "keep a plain array (or a self.variable)"),
    ("walk the submodules with nnx.iter_graph(model) and set each weight",
     "walk the variables dict (flax.traverse_util.flatten_dict) and set each weight"),
)
