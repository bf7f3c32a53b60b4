"""Flax Linen (with Optax): the second target.

A converted module is a Linen dataclass: the torch `__init__`'s parameters become typed fields
(defaults kept), its body becomes `setup()` (submodules built there, as torch builds them in
__init__: no @compact merging), `forward` becomes `__call__(..., *, train: bool = False)` and
`train` reaches the Dropout (deterministic=not train), BatchNorm (use_running_average=not train)
and converted submodules it calls. nn.Parameter becomes `self.param(name, init)`; BatchNorm's
statistics live in the 'batch_stats' collection, buffers in 'buffers'. The class restructuring
is module.py's (fields and setup(): init_to_setup.py; lists / dicts of submodules and
attributes built in a local: containers.py, module_structure.py); the helper definitions are
helpers*.py's.

Training code (training.py, helpers_train.py): `model = Net()` becomes a LinenModel handle (the
module and its variables, from module.init on the first call), an optimizer a LinenOptimizer
(tx, opt_state = tx.init(params)), a training step one jitted function of a TrainState with
jax.value_and_grad over params, tx.update and optax.apply_updates. Gradient accumulation,
parameter groups, freezing, data parallel and checkpoints as for NNX (training.py,
helpers_params.py, helpers_checkpoint.py).

Torch init code (nn.init, apply(fn), weight.copy_/fill_ under no_grad) in __init__ becomes the
class's `init_parameters`, run under module.init (module.py, init_hook.py, helpers_init.py); in a
script it runs on the LinenModel's variables. `self.training` in forward is `train`.

Not converted yet (left as counted TODOs): other uses of a converted class outside modules,
self.training outside forward, buffer updates in forward, a layer's parameter read outside
init code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..base import Target
from ..throwaway import throwaway_key
from .helpers import ALLOWED_IMPORTS, HELPERS
from .training import LinenTraining
from .wording import WORDING

__all__ = ["LinenTarget", "LinenModel"]

# torch layers' attributes as the bound Linen layer gives them (init code reads them): Dense keeps
# `features`; ConvNCHW `features`, `kernel_size` (a tuple), `feature_group_count` and the kernel
# (*kernel_size, in // groups, out); TorchBatchNorm its statistics (num_features); Embed both sizes
_KERNEL = 'linen_param({m}, "kernel").get_value().shape'
_CONV = {"out_channels": "{m}.features", "kernel_size": "tuple({m}.kernel_size)",
         "groups": "{m}.feature_group_count",
         "in_channels": f"{_KERNEL}[-2] * {{m}}.feature_group_count"}
_NORM = {"num_features": 'linen_param({m}, "mean").get_value().shape[0]', "eps": "{m}.epsilon"}
LAYER_ATTRIBUTES = {
    "torch.nn.Linear": {"out_features": "{m}.features", "in_features": f"{_KERNEL}[0]"},
    **{f"torch.nn.Conv{d}d": _CONV for d in (1, 2, 3)},
    **{f"torch.nn.BatchNorm{d}d": _NORM for d in (1, 2, 3)},
    "torch.nn.Embedding": {"num_embeddings": "{m}.num_embeddings", "embedding_dim": "{m}.features"},
}


class LinenTarget(LinenTraining, Target):
    name = "linen"
    table = "linen"
    module_base = "linen.Module"
    parameter_class = "self.param"
    sequential_class = "Sequential"  # the helper: TrainSequential(layers=(...)) threading `train`
    sequential_base = None  # a subclass of nn.Sequential is not converted
    # a list / dict of submodules assigned in setup() (linen names them `<attr>_<index or key>`);
    # one filled after its assignment is built as a local and assigned at the end (module.py)
    module_list_class = "list"
    module_dict_class = "dict"
    # gradient accumulation over micro-batches: training.LinenTraining
    # data parallel: data_parallel(LinenModel(...)) replicates the variables once made (helpers_params)
    modules_take_rngs = False  # a Linen module is built without randomness: init(key, x) draws it
    # nn.init and apply(fn) in __init__ run after module.init, in the class's `init_parameters`
    # method (module.py; LinenModel runs it); a layer's parameter read outside init code: not yet
    converts_inits = True
    converts_layer_reads = False
    layer_attributes = LAYER_ATTRIBUTES
    modules_helper = "linen_submodules"
    # buffers are 'buffers' variables (updates in forward: not yet, Linen needs mutable=); add_module
    # on the module itself or a ModuleDict (not on a Sequential: its layers are a frozen tuple);
    # a Linear tied to an Embedding reads the Embed's table (TiedDense)
    # self.training in forward: __call__'s `train` (elsewhere a Linen module has no mode)
    structure_kinds = frozenset({"index_assign", "buffer", "add_module:", "add_module:dict", "weight_tie",
                                 "training:forward", "freeze_loop"})
    rngs_name = "rngs"
    converted_imports = {
        "functools": "import functools",  # the init hook's decorator (torch_initialised) wraps __call__
        "inspect": "import inspect",  # the Sequential helper asks which layers take `train`
        "math": "import math",
        "partial": "from functools import partial",
        "Any": "from typing import Any",
        "jax": "import jax",
        "jnp": "import jax.numpy as jnp",
        "np": "import numpy as np",
        "optax": "import optax",
        "flax": "import flax",
        "linen": "from flax import linen",
        "einops": "import einops",
    }
    helpers = HELPERS
    import_order = ALLOWED_IMPORTS
    wording = WORDING  # the shared advice texts as a Linen user reads them
    gradient_step = "jax.value_and_grad over model.apply in @linen_train_step"
    train_step_helpers = ("linen_train_step",)

    # ---------------------------------------------------------------- text (no flax import)

    def rngs_expr(self, seed: str = "0") -> str:
        return f"KeyStream({seed})"  # the helper: a key stream (data, sampling, init code)

    def init_param(self) -> str:
        return "*, rngs: KeyStream"  # an init function drawing random numbers (module_apply's fn)

    def key_expr(self, rngs: str) -> str:
        return f"{rngs}()"

    def render_layer(self, callable_: str, arguments: list[str], rngs: str) -> str:
        return f"{callable_}({', '.join(arguments)})"  # parameters are drawn by model.init

    def render_buffer(self, attribute: str, value: str) -> tuple[str, set[str]]:
        # a variable of the 'buffers' collection (verify / checkpoints write it); its value is read
        name = attribute.split(".", 1)[1]
        return f'{attribute} = self.variable("buffers", "{name}", lambda: {value}).value', set()

    def render_add_module(self, container: str, name: str | None, module: str,
                          owner: str = "self") -> tuple[str, set[str]] | None:
        if container == "dict":  # a dict filled in setup (module.py assigns it once it is complete)
            return f"{owner}[{name}] = {module}", set()
        if container == "":
            return f"setattr({owner}, {name}, {module})", set()
        return None  # a Sequential's layers are a tuple once assigned (structure_kinds says so)

    def render_weight_tie(self, head: str, embedding: str) -> tuple[str, set[str]]:
        # the head is built in a local (containers.deferred): Linen assigns a submodule once
        return f"{head} = TiedDense({embedding}, use_bias={head}.use_bias)", {"TiedDense"}

    def render_parameter(self, value: str) -> str:
        # placed by the class pass (module.py) as self.param("<attribute>", lambda key: value)
        from .init_to_setup import PARAM_MARKER

        return f"{PARAM_MARKER}({value})"

    def render_init_receiver(self, receiver: str) -> tuple[str, set[str]]:
        # a variable of the bound module (its init code runs in `init_parameters`, or on a
        # LinenModel's variables): `linen_param(m, "kernel")`, None where it has none
        owner, _, name = receiver.rpartition(".")
        return f'linen_param({owner}, "{name}")', {"linen_param"}

    def render_training(self, flag: str) -> str:
        return "train"  # forward's (module.py gives __call__ the `train` argument)

    def render_instance_init(self, model: str, init: str) -> str:
        # on the LinenModel's variables, with `model` the bound module (once they exist)
        return f"{model}.update_variables(lambda {model}: {init})"

    def render_layer_attribute(self, owner: str, layers: tuple[str, ...],
                               attribute: str) -> tuple[str, set[str]] | None:
        texts = {LAYER_ATTRIBUTES.get(q, {}).get(attribute) for q in layers}
        text = texts.pop() if len(texts) == 1 else None  # core.decide.decide_layer_attribute's check
        return (text.format(m=owner), {"linen_param"} if "linen_param" in text else set()) if text else None

    def finish_module(self, transformer, module):
        """`model = Net(...)` outside modules -> `model = LinenModel(Net(...), key)`."""
        from ...names import module_aliases
        from .facts import linen_classes
        from .wrap import wrap_constructions

        module, _ = wrap_constructions(module, set(transformer.converted_classes),
                                       linen_classes(transformer.tree, module_aliases(transformer.tree)))
        code = module.code
        transformer.helpers.update(name for name in ("LinenModel", "LinenOptimizer") if f"{name}(" in code)
        if re.search(r"\bKeyStream\b", code):  # rngs_expr / init_param: the key stream helper
            transformer.helpers.add("KeyStream")
        return module

    def module_sites(self, tree: Any, init_calls: Callable[[], Any] | None = None) -> dict[int, list]:
        from .facts import module_sites

        return module_sites(tree, init_calls)

    def finish_class(self, transformer, original, updated):
        from .module import finish_class

        return finish_class(self, transformer, original, updated)

    def child_path(self, prefix: tuple, container: str | None, part: str, index: int) -> tuple:
        if container == "sequential":  # TrainSequential(layers=(...)): linen names them layers_<i>
            return (*prefix, f"layers_{index}")
        if container in ("list", "dict") and prefix:  # a list / dict in setup: `<attr>_<index or key>`
            return (*prefix[:-1], f"{prefix[-1]}_{part}")
        return super().child_path(prefix, container, part, index)

    # ---------------------------------------------------------------- runtime (verify only)

    def build_keyword(self, seed: int, *, throwaway: bool = False) -> tuple[str, Any, str]:
        return "", None, ""  # a Linen module is built without randomness

    def wrote(self, text: str) -> bool:
        return "from flax import linen" in text

    def is_model(self, obj: Any) -> bool:
        from flax import linen

        return isinstance(obj, (linen.Module, LinenModel))

    def materialize(self, model: Any, inputs: list, seed: int, *, throwaway: bool = False) -> Any:
        """The module with its variables: `model.init(key, *inputs)` (in eval mode)."""
        import jax

        if isinstance(model, LinenModel):
            return model
        key = throwaway_key(seed) if throwaway else jax.random.key(seed)
        variables = model.init(key, *inputs, **_train_keyword(model, False))
        return LinenModel(model, _plain(variables))

    def variables(self, model: Any) -> dict[tuple, Any]:
        from flax import traverse_util

        out = {}
        for collection, tree in model.variables.items():
            for path in traverse_util.flatten_dict(tree):
                if path in out:
                    raise ValueError(f"{'/'.join(path)} is in two collections")
                out[path] = _Cell(model, collection, path)
        return out

    def is_trainable(self, variable: Any) -> bool:
        return variable.collection == "params"

    def must_be_written(self, variable: Any) -> bool:
        return variable.collection in ("params", "batch_stats")

    def set_value(self, variable: Any, value: Any) -> None:
        variable.set(value)

    # `pt2jax weights`: the Linen variables ({'params': ..., 'batch_stats': ...}, nested dicts)
    def saved_state(self, model: Any) -> Any:
        return _plain(model.variables)

    def msgpack_tree(self, state: Any) -> Any:
        return state

    def flat_state(self, state: Any) -> dict[str, Any]:
        from flax import traverse_util

        return traverse_util.flatten_dict(state, sep=".")  # "params.fc1.kernel"

    def eval_mode(self, model: Any) -> None:
        model.train = False

    def value_and_grad(self, fn: Callable, model: Any) -> tuple[Any, dict[tuple, Any]]:
        from flax import traverse_util

        from ..eager import eager_value_and_grad

        def loss(params):
            return fn(model.with_params(params))

        value, grads = eager_value_and_grad(loss, model.variables["params"])
        return value, traverse_util.flatten_dict(grads)

    def jit_call(self, fn: Callable, model: Any, *args: Any) -> Any:
        import jax

        @jax.jit
        def run(variables, *xs):
            return fn(model.with_variables(variables), *xs)

        return run(model.variables, *args)

    def jit_value_and_grad(self, fn: Callable, model: Any, *args: Any) -> tuple[Any, dict[tuple, Any]]:
        import jax
        from flax import traverse_util

        @jax.jit
        def step(variables, *xs):
            def loss(params):
                return fn(model.with_variables({**variables, "params": params}), *xs)

            return jax.value_and_grad(loss, has_aux=True)(variables["params"])

        value, grads = step(model.variables, *args)
        return value, traverse_util.flatten_dict(grads)


def _plain(tree):
    """Nested plain dicts (flax may hand back FrozenDicts)."""
    if hasattr(tree, "items"):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def _train_keyword(module, train: bool) -> dict:
    import inspect

    try:
        params = inspect.signature(module.__call__).parameters
    except (TypeError, ValueError):
        return {}
    return {"train": train} if "train" in params else {}


class LinenModel:
    """verify's handle on a converted Linen model: the module and its variables, called like a
    torch model (`m(x)` is `module.apply(variables, x, train=m.train)`)."""

    def __init__(self, module, variables: dict, train: bool = False):
        self.module = module
        self.variables = variables
        self.train = train

    def with_params(self, params) -> "LinenModel":
        return LinenModel(self.module, {**self.variables, "params": params}, self.train)

    def with_variables(self, variables) -> "LinenModel":
        return LinenModel(self.module, variables, self.train)

    def __call__(self, *args):
        return self.module.apply(self.variables, *args, **_train_keyword(self.module, self.train))


class _Cell:
    """One variable of a LinenModel, addressed by collection and path."""

    def __init__(self, model: LinenModel, collection: str, path: tuple):
        self.model, self.collection, self.path = model, collection, path

    def _get(self):
        node = self.model.variables[self.collection]
        for part in self.path:
            node = node[part]
        return node

    @property
    def shape(self):
        return tuple(self._get().shape)

    @property
    def dtype(self):
        return self._get().dtype

    def set(self, value) -> None:
        node = self.model.variables[self.collection]
        for part in self.path[:-1]:
            node = node[part]
        node[self.path[-1]] = value
