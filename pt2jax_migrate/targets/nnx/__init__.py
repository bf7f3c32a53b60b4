"""Flax NNX (with Optax): the first target, and the default one.

Modules subclass nnx.Module and take `*, rngs: nnx.Rngs`; layers with parameters are built
with `rngs=`; an optimizer is an nnx.Optimizer over nnx.Param; a training step is a
`@jit_train_step` function (nnx.jit without the per-call graph walk, helpers_speed.py) around
`nnx.value_and_grad`. nnx.Sequential keeps its children in `.layers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base import Target
from ..throwaway import throwaway_key
from .helpers import ALLOWED_IMPORTS, HELPERS

__all__ = ["NNXTarget"]


def _step_head(*, name: str, header: list[str], loss_fn: str, model: str, body: str, loss: str,
               aux: list[str], grads: str) -> str:
    """A jitted step's definition up to its loss and gradients: `loss_fn` (the forward `body`,
    returning the loss, and the `aux` values when there are any) and nnx.value_and_grad of it
    into `loss`, `aux` and `grads`."""
    if aux:
        aux_tuple = ", ".join(aux) + ("," if len(aux) == 1 else "")
        ret_inner = f"        return {loss}, ({aux_tuple})\n"
        grad_line = f"    ({loss}, ({aux_tuple})), {grads} = nnx.value_and_grad({loss_fn}, has_aux=True)({model})\n"
    else:
        ret_inner = f"        return {loss}\n"
        grad_line = f"    {loss}, {grads} = nnx.value_and_grad({loss_fn})({model})\n"
    return (
        "@jit_train_step\n"
        f"def {name}({', '.join(header)}):\n"
        f"    def {loss_fn}({model}):\n"
        f"{body}{ret_inner}"
        f"{grad_line}"
    )


class NNXTarget(Target):
    name = "nnx"
    table = "nnx"
    module_base = "nnx.Module"
    parameter_class = "nnx.Param"
    sequential_class = "nnx.Sequential"
    named_sequential_class = "NamedSequential"
    module_list_class = "nnx.List"
    module_dict_class = "nnx.Dict"
    rngs_name = "rngs"
    converted_imports = {
        "math": "import math",
        "partial": "from functools import partial",
        "jax": "import jax",
        "jnp": "import jax.numpy as jnp",
        "np": "import numpy as np",
        "optax": "import optax",
        "nnx": "from flax import nnx",
        "einops": "import einops",  # converted einops.layers.torch layers call einops' functions
    }
    helpers = HELPERS
    import_order = ALLOWED_IMPORTS
    gradient_step = "nnx.value_and_grad in @jit_train_step"
    train_step_helpers = ("jit_train_step",)

    # ---------------------------------------------------------------- text (no flax import)

    def rngs_expr(self, seed: str = "0") -> str:
        return f"nnx.Rngs({seed})"

    def init_param(self) -> str:
        return "*, rngs: nnx.Rngs"

    def key_expr(self, rngs: str) -> str:
        return f"{rngs}()"

    def render_layer(self, callable_: str, arguments: list[str], rngs: str) -> str:
        return f"{callable_}({', '.join([*arguments, f'rngs={rngs}'])})"

    def render_buffer(self, attribute: str, value: str) -> tuple[str, set[str]]:
        return f"{attribute} = Buffer({value})", {"Buffer"}  # helpers_structure: a non-trainable Variable

    def render_buffer_update(self, attribute: str, op: str, value: str) -> tuple[str, set[str]]:
        return f"{attribute}[...] {op} {value}", set()  # Variables refuse `+=` on themselves

    def render_optional_child(self, value: str) -> str:
        return f"nnx.data({value})"  # nnx makes a None attribute static: a module assigned later is refused

    def render_weight_tie(self, head: str, embedding: str) -> tuple[str, set[str]]:
        return f"{head} = TiedLinear({embedding}, {head}.bias)", {"TiedLinear"}

    def render_add_module(self, container: str, name: str | None, module: str,
                          owner: str = "self") -> tuple[str, set[str]]:
        if container == "sequential":  # nnx.Sequential runs .layers in order
            return f"{owner}.layers.append({module})", set()
        if container == "named":  # a local NamedSequential (sequential_facts): its own add_module
            return f"{owner}.append_named({name}, {module})", {"NamedSequential"}
        if container == "dict":  # nnx.Dict: keys are attributes, iterated in insertion order
            return f"{owner}[{name}] = {module}", set()
        return f"setattr({owner}, {name}, {module})", set()

    def render_optimizer(self, model: str, transformation: str) -> str:
        return f"nnx.Optimizer({model}, {transformation}, wrt=nnx.Param)"

    def render_parameters(self, owner: str) -> str:
        return f"nnx.state({owner}, nnx.Param)"

    def train_step(self, *, name: str, loss_fn: str, model: str, optimizer: str, params: list[str],
                   body: str, loss: str, aux: list[str]) -> str:
        ret = f"    return {', '.join([loss, *aux])}\n"
        return (_step_head(name=name, header=[model, optimizer, *params], loss_fn=loss_fn, model=model,
                           body=body, loss=loss, aux=aux, grads="grads")
                + f"    {optimizer}.update({model}, grads)\n{ret}")

    # gradient accumulation over micro-batches (rewrite/trainsteps.AccumulationMixin): the
    # gradients PyTorch adds into .grad are a pytree the loop carries

    def accumulate_step(self, *, name: str, loss_fn: str, model: str, grads: str, params: list[str],
                        body: str, loss: str, aux: list[str]) -> str:
        """A jitted step that returns the loss (and aux) and `grads` plus this batch's gradients;
        under jit_train_step (the model split once, as the plain step), `grads` an argument."""
        outputs = ", ".join([loss, *aux])
        return (_step_head(name=name, header=[model, grads, *params], loss_fn=loss_fn, model=model,
                           body=body, loss=loss, aux=aux, grads="batch_grads")
                + f"    return {outputs}, jax.tree.map(jnp.add, {grads}, batch_grads)\n")

    def apply_grads(self, *, name: str, model: str, optimizer: str) -> str:
        return (
            "@jit_train_step\n"
            f"def {name}({model}, {optimizer}, grads):\n"
            f"    {optimizer}.update({model}, grads)\n"
        )

    def zero_grads(self, grads: str) -> str:
        return f"{grads} = jax.tree.map(jnp.zeros_like, {grads})\n"

    def grads_init(self, model: str, grads: str) -> str:
        """Before the loop: PyTorch's .grad starts empty (zero)."""
        return f"{grads} = jax.tree.map(jnp.zeros_like, nnx.state({model}, nnx.Param))\n"

    def child_path(self, prefix: tuple, container: str | None, part: str, index: int) -> tuple:
        if container == "sequential":  # nnx.Sequential keeps its children in `.layers`
            return (*prefix, "layers", index)
        return super().child_path(prefix, container, part, index)

    # ---------------------------------------------------------------- runtime (verify only)

    def build_keyword(self, seed: int, *, throwaway: bool = False) -> tuple[str, Any, str]:
        from flax import nnx

        rngs = nnx.Rngs(throwaway_key(seed) if throwaway else seed)
        return "rngs", rngs, f"rngs={self.rngs_expr(str(seed))}"

    def build_compiled(self, make: Callable[[Any], Any], value: Any) -> Any | None:
        import jax
        import numpy as np
        from flax import nnx

        def written(_, variable):
            return self.must_be_written(variable)

        static = {}

        def traced(rngs):
            built = make(rngs)
            # a Python number or numpy array in a Variable would come out as a jax array
            if not isinstance(built, nnx.Module) or not all(
                    isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(nnx.state(built))):
                raise TypeError("not a module holding traced arrays only")
            # verify writes every parameter and batch statistic (plan_transfer checks it): the
            # program computes the rest only (RNG keys and counts, other Variables), so the
            # initializers' operations are dropped before compiling
            static["graphdef"], overwritten, kept = nnx.split(built, written, ...)
            static["shapes"] = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), overwritten)
            return kept

        try:
            with jax.checking_leaks():  # an array kept in a plain attribute leaks its tracer
                kept = nnx.jit(traced)(value)
        except Exception:
            return None
        # zeros of each overwritten variable's shape and dtype, copied in (no program to compile)
        zeros = jax.tree.map(lambda s: jax.device_put(np.zeros(s.shape, s.dtype)), static["shapes"])
        return nnx.merge(static["graphdef"], zeros, kept)

    def is_model(self, obj: Any) -> bool:
        from flax import nnx

        return isinstance(obj, nnx.Module)

    def variables(self, model: Any) -> dict[tuple, Any]:
        from flax import nnx

        return dict(nnx.to_flat_state(nnx.state(model)))

    def is_trainable(self, variable: Any) -> bool:
        from flax import nnx

        return isinstance(variable, nnx.Param)

    def must_be_written(self, variable: Any) -> bool:
        from flax import nnx

        return isinstance(variable, (nnx.Param, nnx.BatchStat))

    def set_value(self, variable: Any, value: Any) -> None:
        variable.set_value(value)  # replaces the array (and its dtype); `var[...] = x` would keep float32

    def eval_mode(self, model: Any) -> None:
        model.eval()

    def detached(self, model: Any) -> Any:
        from flax import nnx

        # the same arrays in new Variables and Modules: nnx transforms split and update the
        # graph they are given, so two threads must not share one
        return nnx.clone(model)

    def value_and_grad(self, fn: Callable, model: Any) -> tuple[Any, dict[tuple, Any]]:
        from flax import nnx

        from ..eager import eager_value_and_grad

        # as nnx.value_and_grad (with respect to nnx.Param), on a copy (merge makes new Variables)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        value, grads = eager_value_and_grad(lambda p: fn(nnx.merge(graphdef, p, rest)), params)
        return value, {path: g[...] for path, g in nnx.to_flat_state(grads)}

    def jit_call(self, fn: Callable, model: Any, *args: Any) -> Any:
        from flax import nnx

        return nnx.jit(fn)(model, *args)

    def training(self) -> Any:
        from .training import NNXTraining

        return NNXTraining()

    def saved_state(self, model: Any) -> Any:
        from flax import nnx

        # RNG keys and counts are not weights (and typed key arrays do not serialize): a
        # restored model keeps the ones its constructor drew
        return nnx.state(model, nnx.Not(nnx.RngState))

    def msgpack_tree(self, state: Any) -> Any:
        from flax import nnx

        return nnx.to_pure_dict(state)

    def flat_state(self, state: Any) -> dict[str, Any]:
        from flax import nnx

        return {".".join(str(p) for p in path): var[...] for path, var in nnx.to_flat_state(state)}

    def jit_value_and_grad(self, fn: Callable, model: Any, *args: Any) -> tuple[Any, dict[tuple, Any]]:
        from flax import nnx

        @nnx.jit
        def step(m, *xs):
            return nnx.value_and_grad(fn, has_aux=True)(m, *xs)  # with respect to the model only

        value, grads = step(model, *args)
        return value, {path: g[...] for path, g in nnx.to_flat_state(grads)}
