"""Training code for the Linen target: the text of the jitted train step and the model handle.

The planner (trainstep.py) and the rewrite's block pass (rewrite/trainsteps.py) decide what a
training step is, as for NNX; this module writes it the Linen way (helpers_train.py):

    model = LinenModel(Net(...), jax.random.key(0))     # variables from module.init, lazily
    optimizer = LinenOptimizer(model, optax.adam(...))  # tx and opt_state = tx.init(params)

    @linen_train_step
    def train_step(state, xb, yb):
        def loss_fn(params):
            model = state.bind(params)  # module.apply(..., mutable=['batch_stats'], rngs=...)
            ...forward and loss as in torch...
            return loss, model.updates
        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        tx_updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, tx_updates)
        return state.replace(params=params, opt_state=opt_state, **updates), loss

A converted class built outside a converted class by `NAME = Net(...)` (wrap_constructions) is
the handle; any other use of the class outside modules is left as a TODO (facts.module_sites).
"""

from __future__ import annotations

import re


__all__ = ["LinenTraining", "train_step_text"]



def _free_name(base: str, text: str) -> str:
    name = base
    while re.search(rf"\b{name}\b", text):
        name += "_"
    return name


def train_step_text(*, name: str, loss_fn: str, model: str, optimizer: str, params: list[str],
                    body: str, loss: str, aux: list[str]) -> str:
    state = _free_name("state", body + "".join(params))
    weights = _free_name("params", body + "".join(params))
    ret = f"({', '.join([loss, *aux])})" if aux else loss
    # aux: values code after the step reads
    inner, got = _loss_fn(loss_fn=loss_fn, model=model, state=state, weights=weights, body=body,
                          loss=loss, aux=aux)
    return (
        "@linen_train_step\n"
        f"def {name}({', '.join([state, *params])}):\n"
        f"{inner}"
        f"    {got}, grads = jax.value_and_grad({loss_fn}, has_aux=True)({state}.params)\n"
        f"    tx_updates, opt_state = {state}.tx.update(grads, {state}.opt_state, {state}.params)\n"
        f"    {weights} = optax.apply_updates({state}.params, tx_updates)\n"
        f"    return {state}.replace(params={weights}, opt_state=opt_state, **updates), {ret}\n"
    )


def _loss_fn(*, loss_fn: str, model: str, state: str, weights: str, body: str, loss: str,
             aux: list[str]) -> tuple[str, str]:
    """The inner loss function over params and the value_and_grad line's left side."""
    kept = f"({', '.join(aux)},), " if aux else ""
    inner = f"({loss}, ({kept}{model}.updates))" if aux else f"({loss}, {model}.updates)"
    got = f"({loss}, ({kept}updates))" if aux else f"({loss}, updates)"
    return (f"    def {loss_fn}({weights}):\n"
            f"        {model} = {state}.bind({weights})\n"
            f"{body}"
            f"        return {inner[1:-1]}\n"), got


class LinenTraining:
    """The Linen target's training text: optimizers (LinenOptimizer; over parameter groups built
    once the model has its params), the jitted train step (train_step_text), and gradient
    accumulation over micro-batches (rewrite/accumulation.py): PyTorch adds each backward()'s
    gradients into .grad; here a jitted step returns the loss and the gradients summed so far
    (a params-shaped pytree the loop carries; None, as torch's .grad, until the first backward
    and after zero_grad), and `if COND: opt.step()` applies them with tx.update in a second
    jitted step. Both run under linen_train_step (the step that only computes gradients is
    given no optimizer: its batch statistics still come back)."""

    accumulate_passes = ("None",)  # the optimizer linen_train_step takes: none for the gradient step

    def render_optimizer(self, model: str, transformation: str) -> str:
        if "torch_param_groups(" in transformation:  # the groups select among the params: the
            # transformation is built when the model has them (the optimizer's state is made)
            return f"LinenOptimizer({model}, lambda {model}: {transformation})"
        return f"LinenOptimizer({model}, {transformation})"  # tx, and opt_state = tx.init(params)

    def render_parameters(self, owner: str) -> str:
        return f"linen_parameters({owner})"  # a LinenModel's or submodule's (model.head)

    def train_step(self, **kwargs) -> str:
        return train_step_text(**kwargs)

    def update_text(self, optimizer: str, model: str) -> str:
        return f"tx.update(grads, opt_state, params) + optax.apply_updates ({optimizer}'s state)"

    def accumulate_step(self, *, name: str, loss_fn: str, model: str, grads: str, params: list[str],
                        body: str, loss: str, aux: list[str]) -> str:
        state = _free_name("state", body + grads + "".join(params))
        weights = _free_name("params", body + grads + "".join(params))
        inner, got = _loss_fn(loss_fn=loss_fn, model=model, state=state, weights=weights, body=body,
                              loss=loss, aux=aux)
        outputs = ", ".join([loss, *aux])
        return (
            "@linen_train_step\n"
            f"def {name}({', '.join([state, grads, *params])}):\n"
            f"{inner}"
            f"    {got}, batch_grads = jax.value_and_grad({loss_fn}, has_aux=True)({state}.params)\n"
            f"    if {grads} is not None:  # torch adds into .grad\n"
            f"        batch_grads = jax.tree.map(jnp.add, {grads}, batch_grads)\n"
            f"    return {state}.replace(**updates), ({outputs}, batch_grads)\n"
        )

    def apply_grads(self, *, name: str, model: str, optimizer: str) -> str:
        return (
            "@linen_train_step\n"
            f"def {name}(state, grads):\n"
            "    tx_updates, opt_state = state.tx.update(grads, state.opt_state, state.params)\n"
            "    params = optax.apply_updates(state.params, tx_updates)\n"
            "    return state.replace(params=params, opt_state=opt_state), None\n"
        )

    def zero_grads(self, grads: str) -> str:
        return f"{grads} = None\n"  # torch's zero_grad(set_to_none=True)

    def grads_init(self, model: str, grads: str) -> str:
        return f"{grads} = None\n"  # PyTorch's .grad starts empty
