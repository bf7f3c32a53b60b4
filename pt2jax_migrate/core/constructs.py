"""Methods and attributes that only torch tensors and modules have, as one table.

Read by lint (ast), rewrite (libcst) and the residue check alike, so the three agree on what
is PyTorch even when the object it is called on cannot be traced to a torch import
(`self.register_buffer(...)`, `x.chunk(3, dim=-1)`, `img.device`). A name here is one that
`jax.Array` and `flax.nnx.Module` do not have (or have with another meaning), and that
ordinary Python objects rarely have; methods that the mapping tables convert
(rules/tensor_methods.toml) are decided there first and never reach this table.

Each entry: name -> (why it cannot stay, what to write instead). Argument checks that tell
torch's signature from a str/list method of the same name are in `torch_only_method`.
"""

from __future__ import annotations

import ast
import re

_MODULE_STATE = "nnx modules keep parameters and state as attributes: use nnx.state(model, nnx.Param) / nnx.iter_graph"
_HOOKS = "flax has no module hooks: call the hook's code explicitly where it should run"
_BUFFER = ("a buffer becomes a plain array attribute (constant) or an nnx.Variable subclass "
           "(state that forward updates)")
_INPLACE = "jax arrays are immutable: rebind the result (x = ..., or x.at[idx].set(v))"
_DEVICE = "JAX places arrays itself; device/placement attributes are not available under jit"
_GRAD = "JAX has no .grad on arrays: gradients come from nnx.grad / jax.grad"

# hand-coded torch names, decided the same way by lint and rewrite
MODULE_BASES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
PARAMETER = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
NO_GRAD = frozenset({"torch.no_grad", "torch.inference_mode", "torch.autograd.grad_mode.no_grad",
                     "torch.autograd.no_grad", "torch.autograd.grad_mode.inference_mode"})
# TorchScript's markers on a function: eager PyTorch runs the function as written (the stubs an
# @_overload_method marks are replaced by the last definition of the name, as in eager PyTorch)
TORCHSCRIPT_DECORATORS = frozenset({"torch.jit.unused", "torch.jit.ignore", "torch.jit.export",
                                    "torch.jit._overload_method", "torch.jit._overload"})
CONTAINERS = frozenset({"torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict"})  # rules/layers.toml kind = "container"
# containers a class may subclass (`class ConvNormAct(nn.Sequential)`): the class subclasses the
# target's container, which keeps the layers in the same order (Sequential) or by the same keys
CONTAINER_BASES = {"torch.nn.Sequential": "sequential", "torch.nn.ModuleDict": "dict"}


def container_base_message(cls: str, qualname: str) -> str:
    kept = "in the same order" if CONTAINER_BASES[qualname] == "sequential" else "under the same keys"
    return (f"class {cls} subclasses {qualname}: it subclasses the converted container, which keeps "
            f"the layers {kept} (super().__init__(...) and add_module(...) included)")


def container_refusal(qualname: str, args: list[tuple[str, bool]], keywords: list[str]) -> str | None:
    """Why `nn.Sequential(...)` / `nn.ModuleList(...)` is not converted (None: it is).
    args: (source text, starred) per positional argument."""
    if keywords:
        return "containers with keyword arguments are not converted"
    if qualname.endswith("Sequential"):
        named = [text for text, _ in args if text.split("(")[0].endswith("OrderedDict")]
        if named and (len(args) != 1 or args[0][1]
                      or not (named_layers_literal(named[0]) or mapping_argument(named[0]))):
            return ("nn.Sequential(OrderedDict(...)) is converted only from one OrderedDict of (name, layer) "
                    "pairs (the layers keep their order; the names go)")
        return None  # nnx.Sequential(*layers) as well
    if qualname.endswith("ModuleDict"):
        if any(starred for _, starred in args) or len(args) > 1:
            return "nn.ModuleDict takes one mapping (or list of pairs) of modules"
        return None
    if any(starred for _, starred in args) or len(args) > 1:
        return "nn.ModuleList takes one iterable of modules"
    return None


_NAMED_LAYERS = re.compile(r"^(?:collections\.)?OrderedDict\(\s*\[\s*\(\s*(['\"]).*\]\s*\)$", re.DOTALL)


def mapping_argument(text: str) -> bool:
    """`OrderedDict(blocks)`: an OrderedDict built from one value (pairs made at run time), as
    Sequential's argument: its `.values()` are the layers in order."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return False
    return (isinstance(node, ast.Call) and ast.unparse(node.func) in ("OrderedDict", "collections.OrderedDict")
            and len(node.args) == 1 and not node.keywords and not isinstance(node.args[0], ast.Starred))


def named_layers_literal(text: str) -> bool:
    """`OrderedDict([("conv", ...), ("relu", ...)])` written out (not built by a comprehension)."""
    return _NAMED_LAYERS.match(text) is not None and re.search(r"\bfor\b", text) is None


def parameter_refusal(args: list[tuple[str, bool]], keywords: dict[str, str]) -> str | None:
    """Why `nn.Parameter(...)` is not converted to `nnx.Param(...)` (None: it is)."""
    if len(args) != 1 or args[0][1] or set(keywords) - {"requires_grad"}:
        return "nn.Parameter with these arguments is not converted"
    if keywords.get("requires_grad", "True") != "True":
        return "nn.Parameter(requires_grad=False) is a constant: keep a plain array (or an nnx.Variable)"
    return None


# method name -> reason (module API)
MODULE_METHODS: dict[str, str] = {
    "register_buffer": f"register_buffer(): {_BUFFER}",
    "register_parameter": "register_parameter(): assign an nnx.Param attribute",
    "register_module": "register_module(): assign the submodule as an attribute",
    "add_module": "add_module(): assign the submodule as an attribute (setattr)",
    "register_forward_hook": _HOOKS,
    "register_forward_pre_hook": _HOOKS,
    "register_full_backward_hook": _HOOKS,
    "register_full_backward_pre_hook": _HOOKS,
    "register_backward_hook": _HOOKS,
    "register_hook": _HOOKS,
    "register_load_state_dict_post_hook": _HOOKS,
    "register_state_dict_pre_hook": _HOOKS,
    "parameters": f"parameters(): {_MODULE_STATE}",
    "named_parameters": f"named_parameters(): {_MODULE_STATE}",
    "buffers": f"buffers(): {_MODULE_STATE}",
    "named_buffers": f"named_buffers(): {_MODULE_STATE}",
    "children": "children(): iterate submodules with nnx.iter_graph(module) or by attribute",
    "named_children": "named_children(): iterate submodules with nnx.iter_graph(module) or by attribute",
    "modules": "modules(): iterate submodules with nnx.iter_graph(module)",
    "named_modules": "named_modules(): iterate submodules with nnx.iter_graph(module)",
    "get_submodule": "get_submodule(): use attribute access",
    "get_parameter": "get_parameter(): use attribute access",
    "get_buffer": "get_buffer(): use attribute access",
    "state_dict": "state_dict(): use nnx.state(model)",
    "load_state_dict": "load_state_dict(): use nnx.update(model, state)",
    "zero_grad": "zero_grad(): JAX computes fresh gradients each step; nothing to reset",
    "share_memory": "share_memory(): no JAX counterpart",
    "to_empty": "to_empty(): no JAX counterpart",
    "half": "half(): cast parameters with jax.tree.map(lambda p: p.astype(jnp.float16), ...)",
    "bfloat16": "bfloat16(): cast with .astype(jnp.bfloat16)",
    "double": "double(): cast with .astype(jnp.float64) (needs jax_enable_x64)",
}

# method name -> reason (tensor API that jax.Array lacks)
TENSOR_METHODS: dict[str, str] = {
    "chunk": "chunk(): use jnp.array_split(x, n, axis=dim) (torch's chunk sizes differ when n does not divide)",
    "split": "split(sizes, dim): sizes that are not a literal may be str.split's; write dim= to have it converted "
             "(or use jnp.split(x, cumulative_indices, axis=dim))",
    "tensor_split": "tensor_split(): use jnp.array_split",
    "unbind": "unbind(dim): use [x[i] for i in range(n)] or jnp.moveaxis + iteration",
    "new_zeros": "new_zeros(): use jnp.zeros(shape, dtype=x.dtype)",
    "new_ones": "new_ones(): use jnp.ones(shape, dtype=x.dtype)",
    "new_full": "new_full(): use jnp.full(shape, v, dtype=x.dtype)",
    "new_empty": "new_empty(): use jnp.zeros(shape, dtype=x.dtype)",
    "new_tensor": "new_tensor(): use jnp.asarray(data, dtype=x.dtype)",
    "type": "type(dtype): use .astype(dtype)",
    "to": ".to(...): JAX places arrays itself; a dtype cast is .astype(dtype)",
    "cuda": ".cuda(): JAX places arrays itself",
    "cpu": ".cpu(): JAX places arrays itself (jax.device_get for host copies)",
    "clone": "clone(): jax arrays are immutable; use the array itself (or jnp.array(x) for a copy)",
    "expand": "expand(*sizes): use jnp.broadcast_to(x, shape)",
    "masked_select": "masked_select(): data-dependent shape; use jnp.where or x[mask] outside jit",
    "masked_scatter": "masked_scatter(): no jnp method; build with jnp.where",
    "index_select": "index_select(dim, idx): use jnp.take(x, idx, axis=dim)",
    "index_add": "index_add(): use x.at[idx].add(v)",
    "index_fill": "index_fill(): use x.at[idx].set(v)",
    "index_copy": "index_copy(): use x.at[idx].set(v)",
    "scatter": "scatter(): use x.at[...].set(...) (jnp.put_along_axis)",
    "scatter_add": "scatter_add(): use x.at[...].add(...)",
    "repeat_interleave": "repeat_interleave(): use jnp.repeat",
    "narrow": "narrow(dim, start, n): use jax.lax.dynamic_slice_in_dim or slicing",
    "movedim": "movedim(): use jnp.moveaxis",
    "unfold": "unfold(): no jnp method; build the windows by hand",
    "topk": "topk(): use jax.lax.top_k (last axis only)",
    "nelement": "nelement(): use x.size",
    "ndimension": "ndimension(): use x.ndim",
    "is_contiguous": "is_contiguous(): jax arrays have no strides",
    "get_device": "get_device(): JAX places arrays itself",
    "pin_memory": "pin_memory(): no JAX counterpart",
    "retain_grad": "retain_grad(): JAX has no autograd tape",
    "backward": "backward(): gradients come from nnx.value_and_grad / jax.grad",
    "int": "int(): use .astype(jnp.int32)",
    "bool": "bool(): use .astype(bool)",
    "byte": "byte(): use .astype(jnp.uint8)",
    "short": "short(): use .astype(jnp.int16)",
    "softplus": "softplus(): use jax.nn.softplus",
    "clamp_min": "clamp_min(): use jnp.maximum",
    "clamp_max": "clamp_max(): use jnp.minimum",
    "bernoulli": "bernoulli(): use jax.random.bernoulli with an explicit key",
    "multinomial": "multinomial(): use jax.random.categorical with an explicit key",
}

# Methods the tensor-method table converts that jax and numpy arrays do not have: when the table
# cannot take a call (`x.permute(*perm)`: starred arguments), it is still torch's and must be
# marked, or the converted file would crash on a jax array with nothing saying why.
TENSOR_METHODS.update({
    "permute": "permute(*dims) with arguments the table cannot bind: use jnp.transpose(x, dims)",
    "unsqueeze": "unsqueeze(dim) with arguments the table cannot bind: use jnp.expand_dims(x, dim)",
    "masked_fill": "masked_fill(mask, v) with arguments the table cannot bind: use jnp.where(mask, v, x)",
    "contiguous": "contiguous(): jax arrays have no strides; drop the call",
    "type_as": "type_as(y): use x.astype(y.dtype)",
    "expand_as": "expand_as(y): use jnp.broadcast_to(x, y.shape)",
    "view_as": "view_as(y): use x.reshape(y.shape)",
    "reshape_as": "reshape_as(y): use x.reshape(y.shape)",
    "numel": "numel(): use x.size",
})

# attribute name -> reason (reads)
ATTRIBUTES: dict[str, str] = {
    "device": f".device: {_DEVICE}",
    "is_cuda": f".is_cuda: {_DEVICE}",
    "requires_grad": ".requires_grad: write module.requires_grad_(False) to freeze (converted: its parameters stop training), or choose trainable state with nnx.Optimizer(..., wrt=...) filters",
    "grad": f".grad: {_GRAD}",
    "grad_fn": f".grad_fn: {_GRAD}",
    "is_leaf": f".is_leaf: {_GRAD}",
}

# receivers that are JAX/numpy/stdlib modules: their attributes are not torch's
_FOREIGN_ROOTS = frozenset({"jax", "jnp", "np", "numpy", "nnx", "optax", "flax", "math", "os", "re", "sys",
                            "operator", "functools", "itertools", "asyncio", "shutil", "string", "random"})
_STR_SPLIT_KEYWORDS = frozenset({"sep", "maxsplit"})
_INPLACE_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*_$")
# attribute reads on these receivers are a user's own settings (args.device), not a tensor's
_SETTINGS_ROOTS = frozenset({"self", "args", "opt", "opts", "cfg", "config", "conf", "hparams", "settings",
                             "FLAGS", "flags", "params"})


def _foreign(receiver: str) -> bool:
    return receiver.partition(".")[0] in _FOREIGN_ROOTS or receiver in ("<str>", "<const>")


def torch_only_method(method: str, arg_kinds: list[str], kwarg_names: list[str | None], receiver: str) -> str | None:
    """Why `receiver.method(args)` is PyTorch (None: it is not, or might not be).

    arg_kinds: 'str' for a string-literal argument, 'starred' for *args, 'other' otherwise;
    receiver: the dotted text of the receiver, '<str>' for a string literal, '<expr>' otherwise.
    """
    if _foreign(receiver):
        return None
    if method in MODULE_METHODS:
        if method == "parameters" and (arg_kinds or kwarg_names):
            return None  # a user's own parameters(x) is not nn.Module's
        return MODULE_METHODS[method]
    if method == "apply":
        # module.apply(fn): one positional function; Linen's model.apply(params, x) has two
        if len(arg_kinds) == 1 and arg_kinds[0] == "other" and not kwarg_names:
            return "apply(fn): walk the submodules with nnx.iter_graph(model) and set each weight (the layouts differ)"
        return None
    if receiver == "self":
        return None  # self is a module: self.norm(x) calls a submodule, not a tensor method
    reason = TENSOR_METHODS.get(method)
    if reason is None:
        # torch's in-place convention: add_, masked_fill_, kaiming_normal_ (not __dunder__, not _private)
        if _INPLACE_NAME.match(method):
            return f"{method}(): {_INPLACE}"
        return None
    if method == "split":
        # str.split(), str.split(",") and str.split(sep=...) are not torch's
        if not arg_kinds or "str" in arg_kinds or _STR_SPLIT_KEYWORDS & set(kwarg_names):
            return None
    if method in ("type", "to") and not arg_kinds and not kwarg_names:
        return None  # x.type() with no argument is the type string; `.to()` alone does nothing
    return reason


def torch_only_attribute(attr: str, receiver: str) -> str | None:
    """Why reading `receiver.attr` is PyTorch (None: it is not, or might not be)."""
    if _foreign(receiver) or receiver == "self" or (attr == "device" and receiver in _SETTINGS_ROOTS):
        return None
    return ATTRIBUTES.get(attr)


METHOD_NAMES = frozenset(MODULE_METHODS) | frozenset(TENSOR_METHODS) | {"apply"}


def may_be_torch_only_method(method: str) -> bool:
    """Cheap pre-filter for the front ends' walks (the full check needs the arguments)."""
    return method in METHOD_NAMES or bool(_INPLACE_NAME.match(method))
ATTRIBUTE_NAMES = frozenset(ATTRIBUTES)


# what torch consumes whole: `torch.optim.SGD(model.parameters(), lr)` is decided by the optimizer
CONSUMED_BY_TORCH_CALLS = frozenset({"parameters", "named_parameters", "buffers", "named_buffers", "modules",
                                     "children", "named_children", "named_modules"})
# decided by the front ends' own hand-coded constructs (training step, device moves, train/eval)
DECIDED_ELSEWHERE = frozenset({"zero_grad", "backward", "to", "cuda", "cpu", "train", "eval"})


def construct_code(name: str) -> str:
    """The lint code a torch-only method or attribute is reported under."""
    if name in ("device", "is_cuda", "get_device", "pin_memory"):
        return "PTJ302"
    if name in MODULE_METHODS or name in ("apply", "grad", "grad_fn", "is_leaf", "requires_grad"):
        return "PTJ901"
    return "PTJ105"
DEVICE_MOVES = frozenset({"to", "cuda", "cpu"})  # their arguments (x.to(y.device)) go with them


def is_dtype_text(text: str) -> bool:
    """`y.dtype` or a variable named dtype: a `.to(...)` argument that casts (-> .astype)."""
    return text == "dtype" or text.endswith(".dtype")


def isinstance_message(qualname: str) -> str:
    """`isinstance(m, nn.Linear)`: the check is what remains, not a layer to build."""
    return (f"isinstance(..., {qualname}): the type check remains (converted layers are flax classes); "
            "test for the flax class or port the code it guards")


def isinstance_type_nodes(args: list) -> list:
    """The type expressions of `isinstance(x, T)` / `isinstance(x, (A, B))`, given the call's
    positional argument values (ast or libcst nodes; tuples are told by their `elts`/`elements`)."""
    if len(args) != 2:
        return []
    types = args[1]
    elements = getattr(types, "elts", None) or getattr(types, "elements", None)
    if elements:
        # libcst wraps tuple items in Element (.value); ast's items are the expressions themselves
        return [e.value if type(e).__name__ in ("Element", "StarredElement") else e for e in elements]
    return [types]


def kept_layer(qualname: str) -> bool:
    """A torch layer class (`torch.nn.LSTM`, `einops.layers.torch.Rearrange`, a torchvision
    block): constructing one that stays PyTorch leaves its converted class incomplete."""
    if qualname in MODULE_BASES or qualname in PARAMETER:
        return False
    last = qualname.rpartition(".")[2]
    return qualname.startswith(("torch.nn.", "einops.layers.torch.", "torchvision.")) and last[:1].isupper()


def keeps_layers_message(class_name: str, qualnames: set[str]) -> str:
    """What the class line says when a converted class still builds torch layers."""
    names = ", ".join(sorted({q.rpartition(".")[2] for q in qualnames}))
    return (f"class {class_name} keeps PyTorch layers ({names}): it runs as a converted module only "
            "once they are ported (see the TODOs inside)")
