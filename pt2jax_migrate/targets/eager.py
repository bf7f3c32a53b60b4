"""verify's eager gradient (eager_value_and_grad): the forward pass op by op, the backward compiled.

verify's eager run calls the converted model outside jit, as a user's eager call does: every
operation of the model's code runs (and, the first time, compiles) on its own, with concrete
values, so Python control flow on them works. The backward pass runs no code of the model (it
is JAX's transposes of the operations the forward pass recorded), yet op by op it compiled as
many programs again: ~45 on the cnn_classifier fixture, 2.7 s of a cold verify's 6 s eager run.
Here it is one compiled program (jax.jit of the vjp function, the forward's residuals its
arguments): the same operations on the same values, up to XLA's rounding within a fusion (one
float32 ulp on that fixture). A backward that cannot be traced (a custom_vjp rule that branches
on a value) runs op by op, as before. The jit check compiles forward and backward together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _pull(backward: Callable, cotangent: Any) -> Any:
    return backward(cotangent)


def eager_value_and_grad(fn: Callable, primal: Any) -> tuple[tuple[Any, Any], Any]:
    """jax.value_and_grad(fn, has_aux=True)(primal): ((value, aux), gradient), fn(primal) =
    (scalar value, aux) run eagerly, its gradient computed as one compiled program."""
    import jax
    import numpy as np

    value, backward, aux = jax.vjp(fn, primal, has_aux=True)
    if np.shape(value) != ():  # value_and_grad's checks, with its words
        raise TypeError("Gradient only defined for scalar-output functions. "
                        f"Output had shape: {np.shape(value)}.")
    if not jax.numpy.issubdtype(value.dtype, np.floating):
        raise TypeError(f"grad requires real-valued outputs (output dtype that is a sub-dtype of "
                        f"np.floating), but got {value.dtype.name}.")
    cotangent = np.ones((), value.dtype)  # a constant, not a jnp.ones_like op to compile
    try:
        (grads,) = jax.jit(_pull)(backward, cotangent)
    except Exception:  # a backward rule that only runs eagerly
        (grads,) = backward(cotangent)
    return (value, aux), grads
