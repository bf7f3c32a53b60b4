"""Helpers for converted checkpoints: `torch.save` / `torch.load` -> Orbax, `state_dict()` /
`load_state_dict()` on converted modules and optimizers. Source text only (no jax here).

Policy (documented in the rewrite's messages and the README):
- `torch.save(obj, "ckpt.pt")` writes an Orbax checkpoint *directory* at that path, made
  absolute (Orbax wants absolute directories); the name is kept as written, so code that builds
  or tests the path (`os.path.exists(path)`) keeps working. An existing checkpoint there is
  replaced, as torch.save replaces the file; a directory that is not an Orbax checkpoint is never
  deleted (IsADirectoryError instead).
- Arrays (and the numbers beside them in a list) go through Orbax's StandardSave; entries of a
  dict that hold no array (an epoch, a loss float, a name, None) through a JSON item, so they
  come back as the same Python values. Tuples come back as lists and dict keys as strings.
- `state_dict(obj)` is torch's flat dict of dotted names -> arrays: an nnx module's parameters,
  BatchNorm statistics and buffers, or an nnx.Optimizer's step count and moments (the RNG
  streams are left out, as torch leaves them out). JAX arrays are immutable, so it is a
  snapshot (torch's aliases the live tensors). An optax schedule (a converted lr scheduler)
  has none of its own: it is a function of the optimizer's step count, so it saves `{}`.
- `load_state_dict(obj, state)` writes those values back (cast to the current dtypes); strict
  like torch: missing or unexpected names raise, shapes must match. The optimizer's
  hyper-parameters are the converted optimizer's own (torch restores its param_groups' lr).
- `torch.load(..., map_location=..., weights_only=...)`: JAX puts arrays on its default device
  and nothing is unpickled, so both are dropped.
"""

from __future__ import annotations

from ..shared_texts import SIZE_MISMATCH_CHECK, strict_keys_check

STATE_DICT = '''\
def state_dict(obj):
    """torch's module/optimizer .state_dict(): {dotted name: array}, the RNG streams left out."""
    if not isinstance(obj, (nnx.Module, nnx.Optimizer)):
        own = getattr(obj, "state_dict", None)  # a helper with torch's own (lr scheduler)
        if callable(own):
            return own()
        if callable(obj):  # an optax schedule (a converted lr scheduler): a function of the
            return {}  # optimizer's step count, which the optimizer's state_dict carries
        raise TypeError(f"state_dict(): {type(obj).__name__} is not a converted module/optimizer")
    flat = nnx.to_flat_state(nnx.state(obj, nnx.Not(nnx.RngState)))
    return {".".join(str(k) for k in path): variable.get_value() for path, variable in flat}
'''

LOAD_STATE_DICT = '''\
def load_state_dict(obj, state, strict=True):
    """torch's module/optimizer .load_state_dict(state): the values of state_dict(obj)'s names
    (a flat dotted dict, or the nested one an Orbax checkpoint holds) written into obj."""
    import collections

    if not isinstance(obj, (nnx.Module, nnx.Optimizer)):
        own = getattr(obj, "load_state_dict", None)  # a helper with torch's own (lr scheduler)
        if callable(own):
            return own(state)
        if callable(obj) and not state:  # an optax schedule: its state is the optimizer's step
            return None
        raise TypeError(f"load_state_dict(): {type(obj).__name__} is not a converted "
                        "module/optimizer")

    def flat(tree, prefix=""):
        for key, value in tree.items():
            name = f"{prefix}{key}"
            if isinstance(value, nnx.Variable):
                yield name, value.get_value()
            elif hasattr(value, "items"):
                yield from flat(value, name + ".")
            else:
                yield name, value

    current = nnx.state(obj, nnx.Not(nnx.RngState))
    paths = {".".join(str(k) for k in path): (path, variable)
             for path, variable in nnx.to_flat_state(current)}
    given = dict(flat(state))
''' + strict_keys_check("paths") + '''\
    new = {}
    for name, (path, variable) in paths.items():
        if name in given:
            old = variable.get_value()
''' + SIZE_MISMATCH_CHECK + '''\
            new[path] = value
    nnx.replace_by_pure_dict(current, nnx.traversals.unflatten_mapping(new))
    nnx.update(obj, current)
    keys = collections.namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")
    return keys(missing, unexpected)
'''

_CHECKPOINT_DIR = '''\
def checkpoint_dir(f):
    """The absolute directory an Orbax checkpoint for torch's file `f` lives in (its own name)."""
    import os

    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"a checkpoint is an Orbax directory: give a path, not {type(f).__name__}")
    return os.path.abspath(os.fspath(f))
'''

SAVE_CHECKPOINT = '''\
def save_checkpoint(obj, f):
    """torch.save(obj, f) as an Orbax checkpoint directory at f (see load_checkpoint)."""
    import os

    import numpy
    import orbax.checkpoint as ocp

    def has_array(value):
        if isinstance(value, (jax.Array, numpy.ndarray, numpy.generic)):
            return True
        if isinstance(value, dict):
            return any(has_array(v) for v in value.values())
        return isinstance(value, (list, tuple)) and any(has_array(v) for v in value)

    def plain(value, where):  # what JSON keeps as it is
        whole(value)
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(v, where) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v, where) for k, v in value.items()}
        raise TypeError(f"save_checkpoint: {'/'.join(where)} is a {type(value).__name__}; a "
                        "checkpoint holds arrays, numbers, strings, None, and dicts/lists of them")

    def whole(value):
        if isinstance(value, (nnx.Module, nnx.Optimizer)):
            raise TypeError("save_checkpoint: a whole module/optimizer is not saved (torch "
                            "pickles it): save its state_dict(), load it into a new one")

    def split(value, where, extra):  # the arrays for Orbax; array-free dict entries go to `extra`
        whole(value)
        if isinstance(value, dict):
            arrays = {}
            for key, item in value.items():
                if has_array(item):
                    arrays[str(key)] = split(item, [*where, str(key)], extra)
                else:
                    extra.append([[*where, str(key)], plain(item, [*where, str(key)])])
            return arrays
        if isinstance(value, (list, tuple)):
            return [split(item, [*where, str(i)], extra) for i, item in enumerate(value)]
        if isinstance(value, (jax.Array, numpy.ndarray, numpy.generic)):
            return value
        if isinstance(value, (bool, int, float)):
            return value
        raise TypeError(f"save_checkpoint: {'/'.join(where)} is a {type(value).__name__} inside "
                        "a list of arrays; a checkpoint holds arrays, numbers, dicts, lists")

    path = checkpoint_dir(f)
    extra = []
    arrays = split({"obj": obj}, [], extra)
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "_CHECKPOINT_METADATA")):
        raise IsADirectoryError(f"{path} is a directory but no Orbax checkpoint: not overwritten")
    if os.path.isfile(path) or os.path.islink(path):
        os.remove(path)  # torch.save replaces the file there
    items = {"extra": ocp.args.JsonSave({"entries": extra})}
    if arrays:
        items["arrays"] = ocp.args.StandardSave(arrays)
    checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    checkpointer.save(path, ocp.args.Composite(**items), force=True)
'''

LOAD_CHECKPOINT = '''\
def load_checkpoint(f):
    """torch.load(f): what save_checkpoint(obj, f) wrote (arrays on JAX's default device)."""
    import os

    import orbax.checkpoint as ocp

    path = checkpoint_dir(f)
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise ValueError(f"{path} is a file, not an Orbax checkpoint directory (a PyTorch "
                             "pickle?): save it again from the converted program")
        raise FileNotFoundError(path)
    items = {"extra": ocp.args.JsonRestore()}
    if os.path.isdir(os.path.join(path, "arrays")):
        items["arrays"] = ocp.args.StandardRestore()
    checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    restored = checkpointer.restore(path, ocp.args.Composite(**items))
    tree = restored["arrays"] if "arrays" in items else {}
    for where, value in restored["extra"]["entries"]:
        node = tree
        for key in where[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[int(key)]
        if isinstance(node, dict):
            node[where[-1]] = value
    return tree.get("obj")
'''

# name -> (source, imports, requires). The standard-library, numpy and orbax imports are made
# inside the helpers (helpers.ALLOWED_IMPORTS lists only jax/flax lines); orbax lazily, so only a
# program that checkpoints pays for importing it.
CHECKPOINT_HELPERS = {
    "checkpoint_dir": (_CHECKPOINT_DIR, [], []),
    "state_dict": (STATE_DICT, ["from flax import nnx"], []),
    "load_state_dict": (LOAD_STATE_DICT, ["import jax.numpy as jnp", "from flax import nnx"], []),
    "save_checkpoint": (SAVE_CHECKPOINT, ["import jax", "from flax import nnx"], ["checkpoint_dir"]),
    "load_checkpoint": (LOAD_CHECKPOINT, [], ["checkpoint_dir"]),
}
