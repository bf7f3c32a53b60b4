"""The decorator converted training steps run under, as source text written into converted files.

`@nnx.jit` splits every model and optimizer argument into a graph definition and state on each
call, and merges them back: for the small steps of many training scripts that walk costs more
than the step's arithmetic (measured: 0.90x PyTorch eager on CPU, 0.35x on a tiny regression).
`jit_train_step` does that split once per (model, optimizer, train/eval mode) and afterwards
sends only the arrays through `jax.jit` (benchmarks/bench_train.py measures both).

Like helpers.py, this module imports neither jax, flax nor torch; tests/test_train_speed.py
runs the helper and checks it against the plain `nnx.jit` step.
"""

from __future__ import annotations

from ..base import Helper

__all__ = ["SPEED_HELPERS"]

_JIT_TRAIN_STEP = '''\
def jit_train_step(step):
    """nnx.jit for a training step, without walking the models on every call.

    The graph-node arguments (models, optimizers, Rngs) are split once; each call then sends
    only their arrays through jax.jit and writes the results back into the same Variables, so
    the objects stay current and can be used between steps. They are split again when other
    objects are passed or when train()/eval() switched a Dropout or BatchNorm: those flags are
    static, and each mode compiles once. Call the step's `.reset()` after any other change to
    a module's attributes or submodules.
    """
    compiled = {}  # (positions, graphdef, treedef) -> the jitted step on arrays
    # (positions, graphdef, treedef) -> per Variable, whether every trace of the step returns its
    # value untouched (a learning rate a scheduler holds, frozen parameters): such a value is not
    # written back, so its array stays the one the caller holds (and reads without a device sync)
    forwarded = {}
    # (positions, ids of the graph nodes) -> (nodes, jitted, variables, flags, modes, forwards)
    splits = {}
    modes = ("deterministic", "use_running_average")  # what Module.train() / .eval() set

    def split(args, positions):
        nodes = tuple(args[i] for i in positions)
        graphdef, state = nnx.split(nodes)
        variables = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, nnx.Variable))
        treedef = jax.tree.structure(state)
        flags = [(m, name) for _, m in nnx.iter_graph(nodes) if isinstance(m, nnx.Module)
                 for name in modes if name in vars(m)]
        # each Variable's value goes through jax.jit as it is: an array, or a pytree of them
        # (optax.multi_transform keeps an empty MaskedNode for a parameter outside a group)
        if treedef.num_leaves != len(jax.tree.leaves([v.get_raw_value() for v in variables])):
            return nodes, None, variables, flags, [getattr(m, name) for m, name in flags], None
        key = (positions, graphdef, treedef)
        # filled while tracing; the entry holds the list itself (hashing a graphdef per call costs)
        forwards = forwarded.setdefault(key, [])
        if key not in compiled:
            def on_arrays(values, rest, kwargs):
                state = jax.tree.unflatten(treedef, jax.tree.leaves(values))
                merged = nnx.merge(graphdef, state)
                full = list(rest)
                for i, node in zip(positions, merged):
                    full.insert(i, node)
                out = step(*full, **kwargs)
                new_state = nnx.state(merged)
                if jax.tree.structure(new_state) != treedef:
                    raise ValueError(
                        f"{step.__name__} changed the structure of its models or optimizers")
                new_variables = jax.tree.leaves(
                    new_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
                new_values = [v.get_raw_value() for v in new_variables]
                # the same tracer, or a value with no arrays (MaskedNode) of the same structure
                same = [new is old or not jax.tree.leaves(old)
                        and jax.tree.structure(new) == jax.tree.structure(old)
                        for new, old in zip(new_values, values)]
                forwards[:] = [a and b for a, b in zip(forwards, same)] if forwards else same
                return out, new_values

            compiled[key] = jax.jit(on_arrays)
        current = [getattr(m, name) for m, name in flags]
        return nodes, compiled[key], variables, flags, current, forwards

    def call(*args, **kwargs):
        positions = tuple(i for i, a in enumerate(args)
                          if isinstance(a, (nnx.Pytree, nnx.Variable)))
        key = (positions, *[id(args[i]) for i in positions])
        entry = splits.get(key)
        if (entry is None or any(node is not args[i] for node, i in zip(entry[0], positions))
                or [getattr(m, name) for m, name in entry[3]] != entry[4]):
            splits.pop(key, None)
            if len(splits) >= 8:  # keep the latest few (model, optimizer) pairs alive only
                splits.pop(next(iter(splits)))
            entry = splits[key] = split(args, positions)
        jitted, variables = entry[1], entry[2]
        if jitted is None:
            return fallback(*args, **kwargs)
        rest = [a for i, a in enumerate(args) if i not in positions]
        out, values = jitted([v.get_raw_value() for v in variables], rest, kwargs)
        for variable, value, same in zip(variables, values, entry[5]):
            if not same:
                variable.set_raw_value(value)
        return out

    fallback = nnx.jit(step)
    call.reset = splits.clear
    call.__name__, call.__qualname__ = step.__name__, step.__qualname__
    call.__doc__, call.__wrapped__ = step.__doc__, step
    return call
'''

SPEED_HELPERS = (
    Helper(name="jit_train_step", source=_JIT_TRAIN_STEP, imports=("import jax", "from flax import nnx")),
)
