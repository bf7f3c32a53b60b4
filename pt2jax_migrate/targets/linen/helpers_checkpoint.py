"""Checkpoints for the Linen target: `state_dict()` / `load_state_dict()` of the LinenModel and
LinenOptimizer handles (helpers_train.py), and `torch.save` as the NNX target's Orbax directory.

Policy (as for NNX, targets/nnx/helpers_checkpoint.py; `torch.load` is its load_checkpoint):
- `state_dict(model)` is a flat dict of dotted names -> arrays: the model's variables by
  collection ("params.fc1.kernel", "batch_stats.bn.mean"); `state_dict(optimizer)` the arrays of
  its optax state by their tree path ("0.count", "0.mu.fc1.kernel", the lr a scheduler sets). A
  snapshot (JAX arrays are immutable); a converted lr scheduler keeps its own.
- `load_state_dict(obj, state)` writes them back, strict like torch (missing or unexpected names
  raise, shapes must match, values cast to the current dtypes). A fresh model has no variables
  before its first call (module.init needs an input): the values are taken as its variables
  then, and checked against what module.init makes at that first call; an optimizer loaded
  before its model has variables is loaded when its state is made.
Source text only (no imports here).
"""

from __future__ import annotations

from ..base import Helper
from ..shared_texts import SIZE_MISMATCH_CHECK, strict_keys_check
from ..nnx.helpers_checkpoint import SAVE_CHECKPOINT

__all__ = ["CHECKPOINT_HELPERS"]

_NAMED_ARRAYS = '''\
def named_arrays(tree):
    """{dotted name: array} of a pytree: nested dicts by key ({"params": {"fc1": {"kernel": k}}}
    -> "params.fc1.kernel"), optax states by field and index ("0.mu.fc1.kernel")."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]

    def part(key):
        return str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))))

    return {".".join(part(key) for key in path): leaf for path, leaf in flat}


def load_named(obj, current, state, strict):
    """torch's load_state_dict checks: `state` (flat dotted, or the nested dict a checkpoint
    holds) onto the {name: array} `current`; the new {name: array} and IncompatibleKeys."""
    import collections

    given = named_arrays(dict(state))
''' + strict_keys_check("current") + '''\
    new = dict(current)
    for name, old in current.items():
        if name in given:
''' + SIZE_MISMATCH_CHECK + '''\
            new[name] = value
    keys = collections.namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")
    return new, keys(missing, unexpected)


def nested_names(flat):
    """{"params.fc1.kernel": k} -> {"params": {"fc1": {"kernel": k}}}."""
    tree = {}
    for name, value in flat.items():
        *path, last = name.split(".")
        node = tree
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return tree
'''

_STATE_DICT = '''\
def state_dict(obj):
    """torch's .state_dict() of a LinenModel (its variables), a LinenOptimizer (its optax state)
    or a converted lr scheduler: {dotted name: array}; an optax schedule has none of its own."""
    own = getattr(type(obj), "state_dict", None)  # a helper with torch's own (lr scheduler)
    if own is not None:
        return own(obj)
    if isinstance(obj, LinenModel):
        if obj.variables is None:
            raise ValueError("state_dict(): call the model first (its first call makes its "
                             "variables)")
        return named_arrays(obj.variables)
    if isinstance(obj, LinenOptimizer):
        return named_arrays(obj.init())
    if callable(obj) and not isinstance(obj, linen.Module):  # an optax schedule: a function of
        return {}  # the optimizer's step count, which the optimizer's state_dict carries
    raise TypeError(f"state_dict(): {type(obj).__name__} is not a converted model/optimizer "
                    "(a Linen module's variables are its LinenModel's)")
'''

_LOAD_STATE_DICT = '''\
def load_state_dict(obj, state, strict=True):
    """torch's .load_state_dict(state) on what state_dict(obj) returns the names of. A model
    before its first call takes the values as its variables, checked at that call."""
    own = getattr(type(obj), "load_state_dict", None)  # a helper with torch's own (lr scheduler)
    if own is not None:
        return own(obj, state)
    if isinstance(obj, LinenModel):
        if obj.variables is None or obj.loaded is not None:  # checked once module.init has run
            obj.variables = nested_names(named_arrays(dict(state)))
            obj.loaded = lambda model: load_state_dict(model, state, strict)
            return None
        new, keys = load_named(obj, named_arrays(obj.variables), state, strict)
        obj.variables = nested_names(new)
        return keys
    if isinstance(obj, LinenOptimizer):
        if obj.state is None and obj.model.variables is None:  # loaded when its state is made
            obj.loaded = lambda optimizer: load_state_dict(optimizer, state, strict)
            return None
        leaves, treedef = jax.tree_util.tree_flatten(obj.init())
        new, keys = load_named(obj, named_arrays(obj.state), state, strict)
        obj.state = jax.tree.unflatten(treedef, list(new.values()))
        return keys
    if callable(obj) and not isinstance(obj, linen.Module) and not state:  # an optax schedule
        return None
    raise TypeError(f"load_state_dict(): {type(obj).__name__} is not a converted "
                    "model/optimizer (a Linen module's variables are its LinenModel's)")
'''

_WHOLE = "isinstance(value, (nnx.Module, nnx.Optimizer))"
if _WHOLE not in SAVE_CHECKPOINT:  # pragma: no cover - the NNX text changed
    raise ValueError("save_checkpoint: the NNX text no longer checks for whole modules")
# torch.save of a whole model/optimizer pickles it: here it is refused with the same message (the
# handles by name: a file saving only arrays gets no LinenModel definition for it)
_SAVE_CHECKPOINT = SAVE_CHECKPOINT.replace(
    _WHOLE, "isinstance(value, linen.Module) or type(value).__name__ in LINEN_HANDLES").replace(
    "def save_checkpoint(", "LINEN_HANDLES = (\"LinenModel\", \"LinenOptimizer\")\n\n\n"
    "def save_checkpoint(")

_LINEN = "from flax import linen"
CHECKPOINT_HELPERS = (
    Helper("named_arrays", _NAMED_ARRAYS, ("import jax", "import jax.numpy as jnp")),
    Helper("state_dict", _STATE_DICT, (_LINEN,), ("named_arrays", "LinenModel", "LinenOptimizer")),
    Helper("load_state_dict", _LOAD_STATE_DICT, ("import jax", _LINEN),
           ("named_arrays", "LinenModel", "LinenOptimizer")),
    Helper("save_checkpoint", _SAVE_CHECKPOINT, ("import jax", _LINEN), ("checkpoint_dir",)),
)
