"""A LinenModel's parameters as torch code outside the model reaches them: `model.body` (a
submodule's slice of the variables), `named_parameters()` for parameter groups, freezing
(`requires_grad_(False)`, `for p in model.body.parameters(): p.requires_grad = False`), and their
placement for data parallel (replicated over the mesh NNX's data_mesh/shard_batch use).

A Linen module holds no variables and has none before the model's first call (module.init), so
what torch does at once is recorded and done when the variables exist: an optimizer over
parameter groups is built by `LinenOptimizer(model, lambda model: torch_param_groups(...))` when
its state is made (the selections read the params tree then); a frozen submodule is a path
prefix the optimizer gives neither gradient nor update (torch skips a parameter without .grad),
applied in every step, so freezing works before or after the optimizer is built.
Source text only (no imports here).
"""

from __future__ import annotations

from ..base import Helper
from ..shared_texts import GROUPS_MULTI_TRANSFORM

__all__ = ["PARAM_HELPERS", "VIEW_HELPERS"]

_SUBMODULE = '''\
class LinenSubmodule:
    """`model.body` outside the model: the submodule's part of a LinenModel's variables, by its
    path in the params tree (for freeze, parameter groups, and reading its arrays)."""

    def __init__(self, model, path):
        self.model, self.path = model, path

    def __getattr__(self, name):  # model.body.bias: the array; model.encoder.layer: a submodule
        if name.startswith("_"):
            raise AttributeError(name)
        path = (*self.path, name)
        if self.model.variables is not None:
            node = self.model.variables["params"]
            for key in path:
                node = node.get(key) if hasattr(node, "get") else None
            if node is not None and not hasattr(node, "items"):
                return node
        return LinenSubmodule(self.model, path)


class LinenModelParam:
    """One parameter of a LinenModel as a torch parameter loop sees it: its path in the params
    tree, its array (ndim, shape, size) and requires_grad (False once frozen)."""

    def __init__(self, model, path):
        self.model, self.path = model, path

    @property
    def value(self):
        node = self.model.variables["params"]
        for key in self.path:
            node = node[key]
        return node

    ndim = property(lambda self: self.value.ndim)
    shape = property(lambda self: self.value.shape)
    size = property(lambda self: self.value.size)
    dtype = property(lambda self: self.value.dtype)

    @property
    def requires_grad(self):
        return not any(self.path[:len(p)] == p for p in self.model.frozen or ())
'''

_NAMED_PARAMETERS = '''\
def torch_named_parameters(module):
    """module.named_parameters() of a LinenModel or a submodule of one (model.body): (dotted
    name, LinenModelParam) pairs in the params tree's order, flax's kernel/scale/embedding called
    `weight` as in torch, so that filters such as `"bias" in name` pick the same parameters."""
    model, prefix = module, ()
    if isinstance(module, LinenSubmodule):
        model, prefix = module.model, module.path
    if model.variables is None:
        raise ValueError("named_parameters(): call the model first (its first call makes its "
                         "variables)")
    torch_names = {"kernel": "weight", "scale": "weight", "embedding": "weight"}
    node = model.variables["params"]
    for key in prefix:
        node = node[key]
    named = []
    for path, _ in jax.tree_util.tree_flatten_with_path(node)[0]:
        *head, last = (str(key.key) for key in path)
        named.append((".".join([*head, torch_names.get(last, last)]),
                      LinenModelParam(model, (*prefix, *(key.key for key in path)))))
    return named


def linen_parameters(module):
    """module.parameters() of a LinenModel or a submodule of one: its LinenParams."""
    return [param for _, param in torch_named_parameters(module)]
'''

_PARAM_GROUPS = '''\
def torch_param_groups(model, selections, transforms):
    """torch.optim parameter groups as optax.multi_transform over a LinenModel's params: the
    parameters in selections[i] (LinenParams) get transforms[i]; a parameter in no group is
    left unchanged, as torch leaves one its optimizer was not given."""
    group = {}
    for i, selection in enumerate(selections):
        for param in selection:
            group.setdefault(param.path, f"group{i}")

    def label_of(path, _):
        return group.get(tuple(key.key for key in path), "not_optimized")

''' + GROUPS_MULTI_TRANSFORM

_FREEZE = '''\
def freeze(x):
    """x.requires_grad_(False) on a LinenModel or a submodule of one (model.body): its
    parameters stop training; the optimizer gives them neither gradient nor update (torch skips
    a parameter without .grad). An array is returned as it is: JAX differentiates only what it
    is asked to."""
    if isinstance(x, (LinenModel, LinenSubmodule)):
        model, path = (x.model, x.path) if isinstance(x, LinenSubmodule) else (x, ())
        model.frozen = FrozenPaths({*(model.frozen or ()), path})
    return x


class FrozenPaths(frozenset):
    """The frozen path prefixes of a LinenModel's params; `transformation(tx)` is tx with their
    gradients and updates zeroed (same state as tx: schedulers and checkpoints see tx's)."""

    def transformation(self, tx):
        cached = getattr(self, "cached", None)
        if cached is not None and cached[0] is tx:
            return cached[1]  # the same object every step: a jitted step compiles once

        def mask(tree):
            def keep(path, leaf):
                path = tuple(key.key for key in path)
                frozen = any(path[:len(prefix)] == prefix for prefix in self)
                return jnp.zeros_like(leaf) if frozen else leaf
            return jax.tree_util.tree_map_with_path(keep, tree)

        def update(grads, state, params=None):
            updates, state = tx.update(mask(grads), state, params)
            return mask(updates), state

        self.cached = (tx, optax.GradientTransformation(tx.init, update))
        return self.cached[1]
'''

_DATA_PARALLEL = '''\
def data_parallel(model):
    """torch.nn.DataParallel(model) / DistributedDataParallel(model) of a LinenModel: the model
    itself, its variables replicated on every device of data_mesh() (once made, at its first
    call). Train it with a jitted step on batches from shard_batch: jit splits the work over
    the devices and sums the gradients."""
    mesh = data_mesh()
    if mesh.devices.size > 1:  # one device: already there (a placement would cost a retrace)
        model.placement = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        if model.variables is not None:
            model.variables = jax.device_put(model.variables, model.placement)
    return model
'''

_IMPORTS = ("import jax", "import optax")
VIEW_HELPERS = (Helper("LinenSubmodule", _SUBMODULE, ()),)  # LinenModel requires it
PARAM_HELPERS = (
    Helper("torch_named_parameters", _NAMED_PARAMETERS, ("import jax",), ("LinenSubmodule",)),
    # its selections: linen_parameters(model.head) or torch_named_parameters(model) comprehensions
    Helper("torch_param_groups", _PARAM_GROUPS, _IMPORTS, ("torch_named_parameters",)),
    Helper("freeze", _FREEZE, ("import jax", "import jax.numpy as jnp", "import optax"),
           ("LinenModel", "LinenSubmodule")),
    Helper("data_parallel", _DATA_PARALLEL, ("import jax",), ("data_mesh", "LinenModel")),
)
