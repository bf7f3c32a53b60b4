"""What `pt2jax verify --train` needs to drive converted NNX training code (flax imported lazily).

The converted step is the script's own (`@nnx.jit def train_step(model, optimizer, ...)`, or
however a later rewrite calls it), so verify does not re-implement it: it observes it. The
gradients are recorded where every NNX step hands them over, `optimizer.update(model, grads)`:
the optimizer's optax transformation is wrapped so that its `update` first sends the incoming
gradients to the host (`jax.debug.callback`, which works eagerly and under jit) and then does
exactly what it did before. The optimizer state keeps its structure, and a transformation that is
a helper object (the rewrite's `with_learning_rate`, which `param_groups` looks for) keeps its type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class NNXTraining:
    """The NNX side of a training comparison (one instance per run)."""

    def is_optimizer(self, obj: Any) -> bool:
        from flax import nnx

        return isinstance(obj, nnx.Optimizer)

    def train_mode(self, model: Any) -> None:
        model.train()

    def disable_dropout(self, model: Any) -> int:
        """Set every nnx.Dropout's rate to 0 (its masks come from JAX keys, torch's from torch's
        generator: the two can never draw the same mask). Returns how many there were."""
        from flax import nnx

        count = 0
        for _, module in nnx.iter_modules(model):
            if isinstance(module, nnx.Dropout):
                module.rate = 0.0
                count += 1
        return count

    def record_gradients(self, optimizer: Any, sink: Callable[[dict[tuple, np.ndarray]], None]) -> None:
        """Call `sink({path: gradient})` each time `optimizer.update(model, grads)` runs."""
        import jax
        import optax
        from flax import nnx

        inner = optimizer.tx

        def deliver(grads) -> None:
            sink({tuple(path): np.asarray(g) for path, g in nnx.to_flat_state(grads)})

        def update(updates, state, params=None, **extra):
            jax.debug.callback(deliver, updates)
            return inner.update(updates, state, params, **extra)

        if isinstance(inner, tuple):  # an optax GradientTransformation (a NamedTuple)
            optimizer.tx = optax.GradientTransformationExtraArgs(inner.init, update)
        else:  # a helper object holding init/update (with_learning_rate): same type, same attributes
            import copy

            wrapped = copy.copy(inner)
            wrapped.update = update
            optimizer.tx = wrapped

    def loss_step(self, loss_fn: Callable) -> Callable:
        """A jitted step for a user's `loss_fn(model, *batch)`: value_and_grad, then update."""
        from flax import nnx

        @nnx.jit
        def step(model, optimizer, *batch):
            loss, grads = nnx.value_and_grad(loss_fn)(model, *batch)
            optimizer.update(model, grads)
            return loss

        return step

    def values(self, model: Any) -> dict[tuple, np.ndarray]:
        """path -> a host copy of every array variable of the model."""
        from flax import nnx

        out = {}
        for path, var in nnx.to_flat_state(nnx.state(model)):
            value = var[...] if hasattr(var, "__getitem__") else var
            try:
                out[tuple(path)] = np.array(value)
            except TypeError:  # PRNG keys and other non-numeric state
                continue
        return out

    def synchronize(self) -> None:
        """Wait for pending host callbacks (the recorded gradients)."""
        import jax

        jax.effects_barrier()

    def float64_state(self, optimizer: Any) -> None:
        """Make the optimizer's floating state float64 (verify's float64 rerun: a script builds its
        optimizer before verify writes float64 weights into the model, so its moments are float32)."""
        import jax
        import jax.numpy as jnp
        from flax import nnx

        def cast(x):
            return x.astype(jnp.float64) if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating) else x

        nnx.update(optimizer, jax.tree.map(cast, nnx.state(optimizer)))

    def is_tracer(self, value: Any) -> bool:
        import jax

        return isinstance(value, jax.core.Tracer)
