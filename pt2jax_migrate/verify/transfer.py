"""Copy a torch model's parameters and buffers into the converted Flax NNX model.

The mapping is driven by rules/layers.toml: each layer entry's `weights` list says where each
torch tensor goes ({torch, to, transform?, positive?}; `to = ""` drops it). The module tree is
walked with torch's `named_modules()` and each module path is mapped to its nnx path:

* the target decides each step (Target.child_path / weight_path, targets/): for NNX a child
  of `nn.Sequential` gains a `layers` level (`features.0` -> `features.layers.0`), because
  nnx.Sequential keeps its children in `.layers`; a child of `nn.ModuleList` / `nn.ModuleDict`
  keeps its index / key (nnx.List / nnx.Dict); any other child keeps its attribute name.

A module whose class comes from torch.nn (`type(m).__module__` starts with "torch.nn") is
looked up as "torch.nn." + class name; its direct tensors must all be listed in that entry's
`weights`. A user-defined module's own `nn.Parameter`s and buffers map to variables of the same
name, copied as they are. Non-persistent buffers (not in the state_dict) are copied when the
converted model has a variable for them and skipped otherwise: the constructor recomputes them.

Nothing is written until the whole plan checks out: every torch tensor is either transferred or
dropped by the table, every target exists with the right shape (assigning a wrong shape to an
nnx variable broadcasts silently), trainable parameters land in nnx.Param and buffers do not,
and every nnx.Param/BatchStat of the converted model receives a value. Otherwise VerifyError
lists every problem.

Transforms are a small named registry. They must be linear re-arrangements (the same function
maps torch gradients onto nnx gradients); a new mapping is a TOML entry plus, if needed, one
`@register_transform("name")` function here and its name in rules_schema.WEIGHT_TRANSFORMS
(which the table schema checks names against without importing verify).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..rules_schema import WEIGHT_TRANSFORMS
from ..targets import Target, get_target
from .report import VerifyError
from .torchtree import TorchModule, TorchTensor, describe_torch, to_numpy

Transform = Callable[[np.ndarray], np.ndarray]
TRANSFORMS: dict[str, Transform] = {}


def register_transform(name: str) -> Callable[[Transform], Transform]:
    if name not in WEIGHT_TRANSFORMS:
        raise ValueError(f"weight transform {name!r} is not declared in rules_schema.WEIGHT_TRANSFORMS")

    def deco(fn: Transform) -> Transform:
        TRANSFORMS[name] = fn
        return fn

    return deco


@register_transform("copy")
def _copy(a: np.ndarray) -> np.ndarray:
    return a


@register_transform("transpose")
def _transpose(a: np.ndarray) -> np.ndarray:
    """Linear weight (out, in) -> nnx.Linear kernel (in, out)."""
    if a.ndim != 2:
        raise ValueError(f"'transpose' expects a 2-d weight, got shape {tuple(a.shape)}")
    return a.T


@register_transform("conv_transpose")
def _conv_transpose(a: np.ndarray) -> np.ndarray:
    """ConvTranspose weight (I, O, *k) -> nnx.ConvTranspose kernel (*k, O, I), transpose_kernel=True."""
    if a.ndim < 3:
        raise ValueError(f"'conv_transpose' expects a weight of at least 3 dims, got shape {tuple(a.shape)}")
    return np.transpose(a, (*range(2, a.ndim), 1, 0))


@register_transform("conv")
def _conv(a: np.ndarray) -> np.ndarray:
    """Conv weight (O, I/groups, *k) -> nnx.Conv kernel (*k, I/groups, O)."""
    if a.ndim < 3:
        raise ValueError(f"'conv' expects a weight of at least 3 dims, got shape {tuple(a.shape)}")
    return np.transpose(a, (*range(2, a.ndim), 1, 0))


@dataclass
class TransferEntry:
    """One torch tensor and where it goes (nnx_path None: dropped by the table)."""

    torch_key: str  # state_dict-style key, e.g. "features.0.weight"
    tensor: object  # the live torch Parameter / buffer (None when planned from another process)
    is_param: bool
    nnx_path: tuple | None
    transform: str = "copy"
    positive: bool = False  # a variance-like value: perturb by scaling, never by shifting
    source: str = ""  # "torch.nn.Linear" or "custom"
    tid: int = 0  # id() of the torch tensor in the process that holds it (tied weights share it)
    shape: tuple = ()
    requires_grad: bool = False
    floating: bool = True

    def convert(self, a: np.ndarray) -> np.ndarray:
        """Apply this entry's transform to a torch value (or to its gradient)."""
        return np.asarray(TRANSFORMS[self.transform](a))


def format_path(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def torch_class_name(module) -> str | None:
    """'torch.nn.Linear' for torch's own layers; None for user-defined modules."""
    cls = type(module)
    if cls.__module__.startswith("torch.nn"):
        return "torch.nn." + cls.__name__
    return None


def _layer_base_name(module: TorchModule, ruleset) -> str | None:
    """'torch.nn.LayerNorm' for a user class subclassing it (`class LayerNorm2d(nn.LayerNorm)`)
    when the table converts that layer as a base class (`subclass_base`): its weights map alike."""
    if module.base is None:
        return None
    rule = ruleset.layer_for_class(module.base)
    return module.base if rule is not None and rule.get("subclass_base") else None


def _weight_rule(table: dict[str, dict], tname: str) -> dict | None:
    """The `weights` entry for tensor `tname`: its exact name, else a `prefix*` pattern (for
    per-layer names such as LSTM's weight_ih_l0, weight_ih_l1_reverse); `to = "*"` keeps the name."""
    w = table.get(tname)
    if w is None:
        w = next((v for k, v in table.items() if k.endswith("*") and tname.startswith(k[:-1])), None)
    if w is not None and w.get("to") == "*":
        w = {**w, "to": tname}
    return w


def _module_prefixes(modules: list[TorchModule], target: Target) -> list[tuple[TorchModule, tuple]]:
    """[(torch module, converted path prefix)] in named_modules() order."""
    prefixes: dict[str, tuple] = {}
    out = []
    for module in modules:
        if module.name == "":
            prefix: tuple = ()
        else:
            parent_name = module.name.rpartition(".")[0]
            prefix = target.child_path(prefixes[parent_name], module.container, module.part, module.index)
        prefixes[module.name] = prefix
        out.append((module, prefix))
    return out


def _entry(key: str, tensor: TorchTensor, prefix: tuple, rule: dict, source: str, target: Target) -> TransferEntry:
    to = rule.get("to", "")
    path = target.weight_path(prefix, to) if to else None
    transform = rule.get("transform", "copy") or "copy"
    return _make_entry(tensor, path, transform, bool(rule.get("positive")), source)


def _make_entry(tensor: TorchTensor, path, transform: str, positive: bool, source: str) -> TransferEntry:
    return TransferEntry(tensor.key, None, tensor.is_param, path, transform, positive, source, tensor.tid,
                         tensor.shape, tensor.requires_grad, tensor.floating)


MAP_HINT = ("a layer the tables lack (or one finished by hand) can be mapped in [tool.pt2jax.weights] "
            "or --weights-map FILE, e.g. MyLayer = [{ torch = \"weight\", to = \"kernel\", "
            "transform = \"transpose\" }]")


def plan_transfer(torch_model, nnx_model, *, target: str | Target | None = None,
                  weights_map=None) -> list[TransferEntry]:
    """Map every torch tensor to its variable in the converted model and check the plan
    (raises VerifyError). `torch_model`: a torch module, or its torchtree.describe_torch
    description (the entries then hold no live tensor). The paths come from `target` (default:
    NNX); `weights_map` (weightmap.WeightMap) holds the user's mappings, which win over the tables."""
    live: dict[int, object] = {}
    if isinstance(torch_model, list):
        modules = torch_model
    else:
        modules, live = describe_torch(torch_model)
    entries = _plan(modules, nnx_model, get_target(target), weights_map)
    for e in entries:
        e.tensor = live.get(e.tid)
    return entries


def _plan(modules: list[TorchModule], nnx_model, target: Target, weights_map) -> list[TransferEntry]:
    from ..rules import load_rules

    ruleset = load_rules(target=target.table)
    flat = target.variables(nnx_model)
    entries: list[TransferEntry] = []
    problems: list[str] = []
    planned: set[int] = set()  # ids of tensors already mapped: a tied weight is one parameter
    for module, prefix in _module_prefixes(modules, target):
        tensors = module.tensors
        if not tensors:
            continue
        qual = module.qual or _layer_base_name(module, ruleset)
        table = None
        user_class = weights_map.for_class_names(module.class_names) if weights_map else None
        key_rules = {}
        if weights_map:
            for t in tensors:
                found = weights_map.for_key(t.key)
                if found is not None:
                    key_rules[t.name] = found
        if user_class is not None:
            table_name, table = f"the weights map's {user_class[0]!r}", user_class[1]
        elif qual is not None and len(key_rules) < len(tensors):
            rule = ruleset.layer_for_class(qual)
            weights = rule.get("weights") if rule is not None else None
            if weights is None:
                where = "rules/layers.toml has no entry" if rule is None else "its rules/layers.toml entry has no `weights`"
                keys = ", ".join(t.key for t in tensors if t.name not in key_rules)
                problems.append(f"{keys}: no weight mapping for {qual} ({where})")
                continue
            table_name, table = f"{qual}'s `weights` in rules/layers.toml", {w["torch"]: w for w in weights}
        for t in tensors:
            if t.tid in planned:
                # tied (`head.weight = embed.weight`): torch's state_dict repeats it, its
                # parameters() do not; the converted model shares one variable (a converted
                # model that unties it is caught below: its second variable receives nothing)
                continue
            planned.add(t.tid)
            if t.name in key_rules:
                pattern, rule = key_rules[t.name]
                entries.append(_entry(t.key, t, prefix, rule, f"weights map {pattern!r}", target))
                continue
            if table is None:  # user-defined module: same name, copied as is
                path = target.weight_path(prefix, t.name)
                if t.non_persistent and path not in flat:
                    continue  # recomputed by the converted constructor
                entries.append(_make_entry(t, path, "copy", False, "custom"))
                continue
            w = _weight_rule(table, t.name)
            if w is None:
                problems.append(f"{t.key}: {table_name} has no entry for '{t.name}'")
                continue
            transform = w.get("transform", "copy") or "copy"
            if transform not in TRANSFORMS:
                problems.append(f"{t.key}: unknown transform {transform!r} for {qual} (known: {', '.join(TRANSFORMS)})")
                continue
            source = "weights map" if user_class is not None else qual
            entries.append(_entry(t.key, t, prefix, w, source, target))

    written: dict[tuple, TransferEntry] = {}
    for e in entries:
        if e.nnx_path is None:
            continue
        var = flat.get(e.nnx_path)
        if var is None:  # a tied weight is listed once, maybe under its other owner's path
            e.nnx_path = target.shared_variable_path(nnx_model, e.nnx_path, flat) or e.nnx_path
            var = flat.get(e.nnx_path)
        where = format_path(e.nnx_path)
        if var is None:
            problems.append(f"{e.torch_key} -> {where}: the converted model has no such variable")
            continue
        try:
            value = e.convert(_shape_probe(e.shape))
        except ValueError as exc:
            problems.append(f"{e.torch_key} -> {where}: {exc}")
            continue
        if tuple(value.shape) != tuple(var.shape):
            problems.append(
                f"{e.torch_key} -> {where}: shape mismatch: torch {tuple(e.shape)}"
                f"{'' if e.transform == 'copy' else f' ({e.transform}: {tuple(value.shape)})'}"
                f", converted {tuple(var.shape)}"
            )
            continue
        if e.requires_grad and not target.is_trainable(var):
            problems.append(
                f"{e.torch_key} -> {where}: a trainable torch parameter, but {type(var).__name__} (not {target.parameter_class}) "
                "in the converted model (it would not be trained)"
            )
        elif not e.is_param and target.is_trainable(var):
            problems.append(
                f"{e.torch_key} -> {where}: a torch buffer, but an {target.parameter_class} in the converted model "
                "(an optimizer would train it)"
            )
        other = written.get(e.nnx_path)
        if other is not None and other.tid != e.tid:
            problems.append(f"{e.torch_key} and {other.torch_key} both map to {where}")
        written[e.nnx_path] = e
    for path, var in flat.items():
        if target.must_be_written(var) and path not in written:
            problems.append(
                f"{format_path(path)} ({type(var).__name__} {tuple(var.shape)}) in the converted model "
                "receives no torch tensor"
            )
    if problems:
        raise VerifyError("weight transfer failed:\n  - " + "\n  - ".join(problems) + "\n  " + MAP_HINT)
    return entries


def _shape_probe(shape: tuple) -> np.ndarray:
    """A zero-strided array of the shape: the transforms are re-arrangements, so the planned
    shape is known without copying (or even having: a meta tensor) the values."""
    return np.broadcast_to(np.zeros((), np.float32), tuple(shape))


def perturb(entries: list[TransferEntry], seed: int) -> None:
    """perturb_values on the entries' live torch tensors, written back in place."""
    import torch

    values = {e.torch_key: e.tensor.detach().cpu().double().numpy() for e in entries}
    new = perturb_values(entries, values, seed)
    with torch.no_grad():
        for e in entries:
            if e.torch_key in new:
                e.tensor.copy_(torch.from_numpy(new[e.torch_key]).to(dtype=e.tensor.dtype, device=e.tensor.device))


def perturb_values(entries: list[TransferEntry], values: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Seeded noise for every planned torch parameter and floating buffer: {key: new value}
    (in each value's dtype; `values` holds the torch values by key).

    Shifts by N(0, (0.5 * scale)^2), where scale is the tensor's RMS (or 1/sqrt(fan_in) for an
    all-zero weight, 0.1 for an all-zero vector), so zero/one-initialised layers become generic;
    `positive` entries (running_var) are multiplied by U(0.5, 1.5) instead, so they stay valid.
    """
    rng = np.random.default_rng([seed, 0x7E57])
    done: set[int] = set()
    new: dict[str, np.ndarray] = {}
    for e in entries:
        value = values[e.torch_key]
        if e.tid in done or not e.floating or value.size == 0:
            continue
        done.add(e.tid)
        a = value.astype(np.float64)
        if e.positive:
            a = a * rng.uniform(0.5, 1.5, a.shape)
        else:
            scale = float(np.sqrt(np.mean(a * a)))
            if scale == 0.0:
                fan_in = int(np.prod(a.shape[1:])) if a.ndim >= 2 else 0
                scale = 1.0 / np.sqrt(fan_in) if fan_in else 0.1
            a = a + rng.normal(0.0, 0.5 * scale, a.shape)
        new[e.torch_key] = a.astype(value.dtype)
    return new


def apply_transfer(entries: list[TransferEntry], nnx_model, *, dtype: str | None = None,
                   target: str | Target | None = None,
                   values: dict[str, np.ndarray] | None = None) -> list[tuple[str, tuple]]:
    """Write the planned values (`values`: {torch key: array}, else read from the entries' live
    tensors). dtype None keeps each variable's dtype; "float64" writes float64."""
    import jax.numpy as jnp

    target = get_target(target)
    flat = target.variables(nnx_model)
    done = []
    for e in entries:
        if e.nnx_path is None:
            continue
        var = flat[e.nnx_path]
        value = e.convert(values[e.torch_key] if values is not None else to_numpy(e.tensor))
        # checked in plan_transfer; checked again because a wrong shape would broadcast silently
        if tuple(value.shape) != tuple(var.shape):
            raise VerifyError(f"{e.torch_key} -> {format_path(e.nnx_path)}: shape {value.shape} != {var.shape}")
        if dtype == "float64" and np.issubdtype(value.dtype, np.floating):
            new = jnp.asarray(value, dtype=jnp.float64)
        else:
            new = jnp.asarray(value, dtype=var.dtype)
        target.set_value(var, new)
        done.append((e.torch_key, e.nnx_path))
    return done


def transfer_weights(torch_model, nnx_model, *, dtype: str | None = None,
                     target: str | Target | None = None, weights_map=None) -> list[tuple[str, tuple]]:
    """Copy every torch parameter and buffer into `nnx_model`, as rules/layers.toml says.

    Returns [(torch key, nnx path)] for every tensor copied. Raises VerifyError, before writing
    anything, if any torch tensor is neither mapped nor dropped, a target is missing or has the
    wrong shape or kind, or an nnx.Param/BatchStat would be left unwritten.
    """
    entries = plan_transfer(torch_model, nnx_model, target=target, weights_map=weights_map)
    return apply_transfer(entries, nnx_model, dtype=dtype, target=target)
