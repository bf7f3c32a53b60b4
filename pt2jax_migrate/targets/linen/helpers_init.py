"""Helpers for torch parameter initialisation in files converted to Linen.

A Linen module's parameters exist only once its call under `module.init` has built them, so
what a torch `__init__` did to its built parameters (`nn.init.*`, `self.apply(self._init_weights)`,
`weight.copy_` under no_grad) is the converted class's `init_parameters(self, rngs)` method
(targets/linen/module.py moves it there from setup()), run by `@torch_initialised` on
`__call__` at the end of the call when `self.is_initializing()`: any `module.init` (LinenModel's,
verify's, the user's) gives the torch-initialised variables. `model.apply(init_fn)` on a
LinenModel runs on its variables through `module.apply(variables, method=..., mutable=True)`.
The init code itself is the NNX target's (`torch_init.K(param, ...)`, one text:
targets/nnx/helpers_init.py) on `linen_param(m, "kernel")`, a bound module's variable seen as a
parameter (get_value/set_value). Source text only.
"""

from __future__ import annotations

from ..base import Helper

__all__ = ["INIT_HELPERS"]

_LINEN_PARAM = '''\
class LinenParam:
    """A variable of a bound Linen module, read and written as torch_init writes a parameter."""

    def __init__(self, module, collection, name):
        self.module, self.collection, self.name = module, collection, name

    def get_value(self):
        return self.module.get_variable(self.collection, self.name)

    def set_value(self, value):
        self.module.put_variable(self.collection, self.name, value)


def linen_param(module, name):
    """`m.weight` of torch init code: the bound module's variable `name` (None if it has none,
    as torch's `m.bias` of a layer built with bias=False is None)."""
    for collection in ("params", "batch_stats", "buffers"):
        if module.has_variable(collection, name):
            return LinenParam(module, collection, name)
    return None
'''

_SUBMODULES = '''\
def linen_submodules(module):
    """torch's Module.modules() on a bound Linen module, children before their parent (in the
    order setup() built them): what Module.apply visits."""
    module._try_setup()
    out = []

    def visit(value):
        if isinstance(value, linen.Module):
            out.extend(linen_submodules(value))
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif hasattr(value, "values") and not isinstance(value, type):
            for item in value.values():
                visit(item)

    for name, value in vars(module).items():
        if name not in ("parent", "scope", "name") and not name.startswith("_"):
            visit(value)
    return [*out, module]
'''

_MODULE_APPLY = '''\
def module_apply(module, fn, **kwargs):
    """torch's Module.apply: fn on every submodule, children before their parent. On a bound
    module (in `init_parameters`) fn writes its variables; on a LinenModel it runs on the
    model's variables (once its first call has made them)."""
    if hasattr(module, "update_variables"):  # a LinenModel
        return module.update_variables(lambda bound: module_apply(bound, fn, **kwargs))
    for submodule in linen_submodules(module):
        fn(submodule, **kwargs)
    return module
'''

_TORCH_INITIALISED = '''\
def torch_initialised(call):
    """__call__ of a module whose torch __init__ changed its parameters once built: when
    module.init runs it, the module's `init_parameters` changes them as torch did, after the
    call has built them (a submodule's before its parent's, as torch builds them)."""
    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        out = call(self, *args, **kwargs)
        if self.is_initializing():
            self.init_parameters(KeyStream(key=self.make_rng("params")))
        return out

    return wrapper
'''

_KEY_STREAM = '''\
class KeyStream:
    """Explicit randomness where torch drew from a generator (torch.manual_seed(s), a
    torch.Generator, init code): each call returns a fresh JAX key (not torch's numbers)."""

    def __init__(self, seed=0, *, key=None):
        self.key = jax.random.key(seed) if key is None else key
        self.count = 0

    def __call__(self):
        self.count += 1
        return jax.random.fold_in(self.key, self.count - 1)
'''

_LINEN = "from flax import linen"
INIT_HELPERS = (
    Helper("KeyStream", _KEY_STREAM, ("import jax",)),
    Helper("linen_param", _LINEN_PARAM, ()),
    Helper("linen_submodules", _SUBMODULES, (_LINEN,)),
    Helper("module_apply", _MODULE_APPLY, (), ("linen_submodules",)),
    Helper("torch_initialised", _TORCH_INITIALISED, ("import functools",), ("KeyStream",)),
)
