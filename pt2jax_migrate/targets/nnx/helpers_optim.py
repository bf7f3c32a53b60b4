"""PyTorch's optimizers as optax GradientTransformations, written into converted files.

rules/optimizers.toml maps the common forms to optax's own transforms (where those are
exactly torch's); an argument optax has no equivalent for (SGD dampening, Adam amsgrad,
maximize, Adagrad lr_decay, NAdam's momentum schedule, RAdam's rectification) selects the
entry's `algorithm`: one of these functions, taking torch's arguments with torch's defaults and
running torch's update rule (torch/optim/*.py, the single-tensor path) step for step.

Source text only (no jax/optax import here); tests/test_optimizers.py checks every one
against real torch over several steps and argument combinations.
"""

from __future__ import annotations

from ..base import Helper
from ..shared_texts import GROUPS_MULTI_TRANSFORM

__all__ = ["OPTIM_HELPERS"]

_TORCH_OPTIMIZER = '''\
def torch_optimizer(lr, slots, update_leaf):
    """An optax GradientTransformation running a PyTorch optimizer's per-parameter update.

    slots: name -> init(param) of each per-parameter state (one tree per name, as optax keeps
    its moments); update_leaf(grad, param, state, step, lr) -> (the change to the parameter,
    new state), state a dict of the slots, step counting from 1 as torch's does.
    lr may be an optax schedule: it is called with the number of steps already taken.
    """
    names = list(slots)

    def init(params):
        state = {name: jax.tree.map(make, params) for name, make in slots.items()}
        state["count"] = jnp.zeros([], jnp.int32)
        return state

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("this optimizer needs the parameters (optimizer.update passes them)")
        step = state["count"] + 1
        rate = lr(state["count"]) if callable(lr) else lr

        def one(g, p, *values):
            change, new = update_leaf(g, p, dict(zip(names, values)), step, rate)
            return (change, *(new[name] for name in names))

        out = jax.tree.map(one, grads, params, *(state[name] for name in names))
        updates = jax.tree.map(lambda g, o: o[0], grads, out)
        new_state = {name: jax.tree.map(lambda g, o, i=i: o[i + 1], grads, out)
                     for i, name in enumerate(names)}
        new_state["count"] = step
        return updates, new_state

    return optax.GradientTransformation(init, update)
'''

_TORCH_SGD = '''\
def torch_sgd(lr=0.001, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
              maximize=False):
    """torch.optim.SGD: the momentum buffer starts as the first gradient, later gradients are
    added scaled by (1 - dampening); optax.sgd has no dampening."""
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def update(g, p, state, step, lr):
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * p
        buf = state["momentum_buffer"]
        if momentum != 0:
            buf = jnp.where(step == 1, g, momentum * buf + (1 - dampening) * g)
            g = g + momentum * buf if nesterov else buf
        return -lr * g, {"momentum_buffer": buf}

    return torch_optimizer(lr, {"momentum_buffer": jnp.zeros_like}, update)
'''

# the start of an Adam-family update: weight decay into the gradient, or decoupled (`decay`)
_UPDATE_WITH_DECAY = '''\
    def update(g, p, state, step, lr):
        g = -g if maximize else g
        decay = jnp.zeros_like(p)
        if weight_decay != 0:
            if decoupled_weight_decay:
                decay = -lr * weight_decay * p
            else:
                g = g + weight_decay * p
'''

_TORCH_ADAM = '''\
def torch_adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, amsgrad=False, *,
               maximize=False, decoupled_weight_decay=False):
    """torch.optim.Adam (decoupled_weight_decay=True: AdamW). amsgrad keeps the running
    maximum of the raw second moment and bias-corrects it afterwards; optax.amsgrad takes the
    maximum of the bias-corrected moment, which differs."""
    b1, b2 = betas
    slots = {"exp_avg": jnp.zeros_like, "exp_avg_sq": jnp.zeros_like}
    if amsgrad:
        slots["max_exp_avg_sq"] = jnp.zeros_like

''' + _UPDATE_WITH_DECAY + '''\
        m = state["exp_avg"] + (1 - b1) * (g - state["exp_avg"])
        v = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
        new = {"exp_avg": m, "exp_avg_sq": v}
        bias_correction1 = 1 - b1 ** step
        bias_correction2_sqrt = jnp.sqrt(1 - b2 ** step)
        if amsgrad:
            v = new["max_exp_avg_sq"] = jnp.maximum(state["max_exp_avg_sq"], v)
        denom = jnp.sqrt(v) / bias_correction2_sqrt + eps
        return decay - (lr / bias_correction1) * m / denom, new

    return torch_optimizer(lr, slots, update)
'''

_TORCH_ADAMW = '''\
def torch_adamw(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=False, *,
                maximize=False):
    """torch.optim.AdamW: Adam with decoupled decay (p *= 1 - lr * weight_decay)."""
    return torch_adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                      decoupled_weight_decay=True)
'''

_TORCH_RMSPROP = '''\
def torch_rmsprop(lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0, momentum=0, centered=False, *,
                  maximize=False):
    """torch.optim.RMSprop: eps added outside the square root; the momentum buffer holds
    grad / avg and the learning rate scales it afterwards."""
    slots = {"square_avg": jnp.zeros_like, "grad_avg": jnp.zeros_like,
             "momentum_buffer": jnp.zeros_like}

    def update(g, p, state, step, lr):
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * p
        new = dict(state)
        square_avg = new["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
        if centered:
            grad_avg = new["grad_avg"] = state["grad_avg"] + (1 - alpha) * (g - state["grad_avg"])
            avg = jnp.sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = jnp.sqrt(square_avg) + eps
        if momentum > 0:
            buf = new["momentum_buffer"] = momentum * state["momentum_buffer"] + g / avg
            return -lr * buf, new
        return -lr * g / avg, new

    return torch_optimizer(lr, slots, update)
'''

_TORCH_ADAGRAD = '''\
def torch_adagrad(lr=0.01, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                  maximize=False):
    """torch.optim.Adagrad: eps added outside the square root, the step size decays as
    lr / (1 + (step - 1) * lr_decay); optax.adagrad puts eps inside and has no lr_decay."""

    def update(g, p, state, step, lr):
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * p
        clr = lr / (1 + (step - 1) * lr_decay)
        state_sum = state["sum"] + g * g
        return -clr * g / (jnp.sqrt(state_sum) + eps), {"sum": state_sum}

    slots = {"sum": lambda p: jnp.full_like(p, initial_accumulator_value)}
    return torch_optimizer(lr, slots, update)
'''

_TORCH_ADADELTA = '''\
def torch_adadelta(lr=1.0, rho=0.9, eps=1e-06, weight_decay=0, *, maximize=False):
    """torch.optim.Adadelta (lr multiplies the delta, as optax.adadelta's learning_rate)."""

    def update(g, p, state, step, lr):
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * p
        square_avg = rho * state["square_avg"] + (1 - rho) * g * g
        delta = jnp.sqrt(state["acc_delta"] + eps) / jnp.sqrt(square_avg + eps) * g
        acc_delta = rho * state["acc_delta"] + (1 - rho) * delta * delta
        return -lr * delta, {"square_avg": square_avg, "acc_delta": acc_delta}

    return torch_optimizer(lr, {"square_avg": jnp.zeros_like, "acc_delta": jnp.zeros_like}, update)
'''

_TORCH_ADAMAX = '''\
def torch_adamax(lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, *, maximize=False):
    """torch.optim.Adamax: u = max(b2 * u, |g| + eps), step lr / (1 - b1 ** step)."""
    b1, b2 = betas

    def update(g, p, state, step, lr):
        g = -g if maximize else g
        if weight_decay != 0:
            g = g + weight_decay * p
        m = state["exp_avg"] + (1 - b1) * (g - state["exp_avg"])
        u = jnp.maximum(b2 * state["exp_inf"], jnp.abs(g) + eps)
        return -(lr / (1 - b1 ** step)) * m / u, {"exp_avg": m, "exp_inf": u}

    return torch_optimizer(lr, {"exp_avg": jnp.zeros_like, "exp_inf": jnp.zeros_like}, update)
'''

_TORCH_NADAM = '''\
def torch_nadam(lr=0.002, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, momentum_decay=0.004,
                decoupled_weight_decay=False, *, maximize=False):
    """torch.optim.NAdam: the momentum coefficient follows
    mu_t = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay)) and the step uses the running
    product of mu_t; optax.nadam uses a constant b1."""
    b1, b2 = betas
    slots = {"exp_avg": jnp.zeros_like, "exp_avg_sq": jnp.zeros_like,
             "mu_product": lambda p: jnp.ones([], p.dtype)}

''' + _UPDATE_WITH_DECAY + '''\
        mu = b1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        mu_product = state["mu_product"] * mu
        m = state["exp_avg"] + (1 - b1) * (g - state["exp_avg"])
        v = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
        denom = jnp.sqrt(v / (1 - b2 ** step)) + eps
        change = (-lr * (1.0 - mu) / (1.0 - mu_product)) * g / denom
        change = change + (-lr * mu_next / (1.0 - mu_product * mu_next)) * m / denom
        return decay + change, {"exp_avg": m, "exp_avg_sq": v, "mu_product": mu_product}

    return torch_optimizer(lr, slots, update)
'''

_TORCH_RADAM = '''\
def torch_radam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0,
                decoupled_weight_decay=False, *, maximize=False):
    """torch.optim.RAdam: rectified while rho_t > 5 (strictly), with eps added to sqrt(v)
    before the bias correction; optax.radam adds eps after it and rectifies at rho_t >= 5."""
    b1, b2 = betas
    rho_inf = 2 / (1 - b2) - 1
    log_b2 = math.log(b2)

''' + _UPDATE_WITH_DECAY + '''\
        m = state["exp_avg"] + (1 - b1) * (g - state["exp_avg"])
        v = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
        # b2 ** step from log(b2) taken in double precision: float32(b2) ** step would shift
        # rho_t (a difference of two numbers near 2 / (1 - b2)) by several percent
        b2_power = jnp.exp(step * log_b2)
        bias_correction2 = -jnp.expm1(step * log_b2)
        m_hat = m / (1 - b1 ** step)
        rho_t = rho_inf - 2 * step * b2_power / bias_correction2
        rect = jnp.sqrt(jnp.maximum((rho_t - 4) * (rho_t - 2) * rho_inf, 0.0)
                        / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        adaptive = jnp.sqrt(bias_correction2) / (jnp.sqrt(v) + eps)
        change = jnp.where(rho_t > 5.0, m_hat * lr * adaptive * rect, m_hat * lr)
        return decay - change, {"exp_avg": m, "exp_avg_sq": v}

    return torch_optimizer(lr, {"exp_avg": jnp.zeros_like, "exp_avg_sq": jnp.zeros_like}, update)
'''

_PARAM_GROUPS = '''\
def torch_param_groups(model, selections, transforms):
    """torch.optim parameter groups as optax.multi_transform: the parameters in selections[i]
    (an nnx.State or a list of nnx.Param) get transforms[i]; a parameter in no group is left
    unchanged, as torch leaves one its optimizer was not given."""
    group = {}
    for i, selection in enumerate(selections):
        for variable in jax.tree.leaves(selection, is_leaf=lambda x: isinstance(x, nnx.Variable)):
            group.setdefault(id(variable), f"group{i}")
    labels = {tuple(path): group.get(id(variable), "not_optimized")
              for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param))}

    def label_of(path, _):
        keys = (getattr(k, "key", getattr(k, "idx", None)) for k in path
                if not isinstance(k, jax.tree_util.GetAttrKey))  # Variable.value at init
        return labels[tuple(keys)]

''' + GROUPS_MULTI_TRANSFORM

_TORCH_NAMED_PARAMETERS = '''\
def torch_named_parameters(module):
    """module.named_parameters(): (dotted name, nnx.Param) pairs of a converted module.

    Names follow the converted attribute paths (an nnx.Sequential adds `.layers`), with flax's
    kernel/scale/embedding called `weight` as in torch, so that filters such as
    `"bias" in name` or `"norm" in name` pick the same parameters.
    """
    torch_names = {"kernel": "weight", "scale": "weight", "embedding": "weight"}
    named = []
    for path, variable in nnx.to_flat_state(nnx.state(module, nnx.Param)):
        *prefix, last = (str(key) for key in path)
        named.append((".".join([*prefix, torch_names.get(last, last)]), variable))
    return named
'''

_FROZEN_PARAM = '''\
class FrozenParam(nnx.Variable):
    """A parameter with requires_grad=False: not an nnx.Param, so nnx.grad (whose default is
    nnx.Param) gives it no gradient and nnx.Optimizer(..., wrt=nnx.Param) never updates it."""
'''

_FREEZE = '''\
def freeze(x):
    """x.requires_grad_(False). A module's parameters become FrozenParam (they stop training,
    as torch skips parameters without a gradient; build the optimizer afterwards, as in
    torch). An array is returned as it is: JAX differentiates only what it is asked to."""
    if isinstance(x, nnx.Module):
        for _, module in nnx.iter_graph(x):
            if isinstance(module, nnx.Module):
                for name, value in list(vars(module).items()):
                    if type(value) is nnx.Param:
                        setattr(module, name, FrozenParam(value[...]))
    return x
'''

_IMPORTS = ("import jax", "import jax.numpy as jnp", "import optax")

# Dependencies first (helper_closure keeps this order).
OPTIM_HELPERS: tuple[Helper, ...] = (
    Helper("torch_optimizer", _TORCH_OPTIMIZER, _IMPORTS),
    Helper("torch_sgd", _TORCH_SGD, ("import jax.numpy as jnp",), ("torch_optimizer",)),
    Helper("torch_adam", _TORCH_ADAM, ("import jax.numpy as jnp",), ("torch_optimizer",)),
    Helper("torch_adamw", _TORCH_ADAMW, (), ("torch_adam",)),
    Helper("torch_rmsprop", _TORCH_RMSPROP, ("import jax.numpy as jnp",), ("torch_optimizer",)),
    Helper("torch_adagrad", _TORCH_ADAGRAD, ("import jax.numpy as jnp",), ("torch_optimizer",)),
    Helper("torch_adadelta", _TORCH_ADADELTA, ("import jax.numpy as jnp",), ("torch_optimizer",)),
    Helper("torch_adamax", _TORCH_ADAMAX, ("import jax.numpy as jnp",), ("torch_optimizer",)),
    Helper("torch_nadam", _TORCH_NADAM, ("import jax.numpy as jnp",), ("torch_optimizer",)),
    Helper("torch_radam", _TORCH_RADAM, ("import math", "import jax.numpy as jnp"),
           ("torch_optimizer",)),
    Helper("torch_param_groups", _PARAM_GROUPS, ("import jax", "import optax", "from flax import nnx")),
    Helper("torch_named_parameters", _TORCH_NAMED_PARAMETERS, ("from flax import nnx",)),
    Helper("FrozenParam", _FROZEN_PARAM, ("from flax import nnx",)),
    Helper("freeze", _FREEZE, ("from flax import nnx",), ("FrozenParam",)),
)
