"""A torch model's module tree as plain data, for planning a weight transfer without it.

`describe_torch` walks `named_modules()` and records what transfer.plan_transfer needs from the
torch side: each module's path, the container its parent is (Sequential, ModuleList,
ModuleDict), its class names (for the tables and the user's weights map) and its own
parameters and buffers (name, shape, trainable, non-persistent, an id shared by tied weights).
The description pickles with numpy and builtins only, so verify's torch process can send it
to the JAX process (verify/isolate.py); nothing here imports torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class TorchTensor:
    key: str  # state_dict-style key, e.g. "features.0.weight"
    name: str  # its name in its module, e.g. "weight"
    shape: tuple
    is_param: bool
    requires_grad: bool
    tid: int  # id() in the torch process: a tied weight has one id under two keys
    non_persistent: bool = False
    floating: bool = True


@dataclass
class TorchModule:
    name: str  # "" for the root, else "features.0"
    part: str  # the last component of `name`
    index: int  # its position among the parent's children (the number for a Sequential child)
    container: str | None  # the parent's kind: "sequential", "list", "dict" or None
    qual: str | None  # "torch.nn.Linear" for torch's own layers, None for user classes
    base: str | None  # the first torch.nn class among a user class's bases ("torch.nn.LayerNorm")
    class_names: list[str] = field(default_factory=list)  # names a weights map may use for it
    tensors: list[TorchTensor] = field(default_factory=list)


def _container(parent) -> str | None:
    import torch

    if isinstance(parent, torch.nn.Sequential):
        return "sequential"
    if isinstance(parent, torch.nn.ModuleList):
        return "list"
    if isinstance(parent, torch.nn.ModuleDict):
        return "dict"
    return None


def describe_torch(torch_model) -> tuple[list[TorchModule], dict[int, object]]:
    """(the module tree as plain data, {tensor id: live tensor})."""
    modules: dict[str, object] = {}
    out: list[TorchModule] = []
    live: dict[int, object] = {}
    for name, module in torch_model.named_modules():
        cls = type(module)
        own = cls.__module__.startswith("torch.nn")
        base = next((c for c in cls.__mro__[1:] if c.__module__.startswith("torch.nn")), None)
        entry = TorchModule(
            name=name, part="", index=0, container=None,
            qual="torch.nn." + cls.__name__ if own else None,
            base=None if own or base is None else "torch.nn." + base.__name__,
            class_names=(["torch.nn." + cls.__name__] if own else []) + [cls.__qualname__, cls.__name__])
        if name:
            parent_name, _, part = name.rpartition(".")
            parent = modules[parent_name]
            entry.part = part
            entry.index = int(part) if part.isdigit() else list(parent._modules).index(part)
            entry.container = _container(parent)
        non_persistent = getattr(module, "_non_persistent_buffers_set", set())
        tensors = [(n, t, True) for n, t in module.named_parameters(recurse=False)]
        tensors += [(n, t, False) for n, t in module.named_buffers(recurse=False)]
        for tname, tensor, is_param in tensors:
            live[id(tensor)] = tensor
            entry.tensors.append(TorchTensor(
                f"{name}.{tname}" if name else tname, tname, tuple(tensor.shape), is_param,
                bool(is_param and tensor.requires_grad), id(tensor),
                not is_param and tname in non_persistent, bool(tensor.is_floating_point())))
        modules[name] = module
        out.append(entry)
    return out, live


def tensor_values(live: dict[int, object], modules: list[TorchModule]) -> dict[str, np.ndarray]:
    """{key: a numpy copy} of every tensor described (tied ones once, under their first key)."""
    values: dict[str, np.ndarray] = {}
    seen: set[int] = set()
    for module in modules:
        for t in module.tensors:
            if t.tid not in seen:
                seen.add(t.tid)
                values[t.key] = to_numpy(live[t.tid])
    return values


def to_numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()  # never alias torch memory: torch updates in place
