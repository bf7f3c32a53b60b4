"""The data-pipeline boundary, framework-neutral: what becomes arrays and what stays torch.

Policy: `torch.utils.data` (and torchvision's datasets and transforms) may stay in a converted
program for data loading only. A kept DataLoader hands its batches over as numpy arrays (the
target's collate function converts each batch once, where it is formed), so the rest of the
program needs no torch. Each kept construct is reported as a note and carries a
`NOTE(pt2jax)` marker, which the residue check accepts for these names only.

Over arrays the program built itself, no torch is needed at all:
`DataLoader(TensorDataset(a, b), batch_size=..., shuffle=..., drop_last=...)` becomes the
target's array loader, the same batches in the same order; shuffled, its permutation comes
from an explicit key (a different order than torch's generator: an unsafe fix, like every
random draw).
"""

from __future__ import annotations

# names kept by the policy (a prefix of the qualified name)
DATA_PIPELINE = ("torch.utils.data", "torchvision.datasets", "torchvision.transforms")
_PIPELINE_PREFIXES = tuple(p + "." for p in DATA_PIPELINE)
TENSOR_DATASET = "torch.utils.data.TensorDataset"
DATA_LOADER = "torch.utils.data.DataLoader"
# DataLoader's parameters, in order; the array loader takes the first three and drop_last
LOADER_SIGNATURE = ("dataset", "batch_size", "shuffle", "sampler", "batch_sampler", "num_workers", "collate_fn",
                    "pin_memory", "drop_last", "timeout", "worker_init_fn", "multiprocessing_context",
                    "generator", "prefetch_factor", "persistent_workers", "pin_memory_device", "in_order")
ARRAY_LOADER_PARAMS = frozenset({"dataset", "batch_size", "shuffle", "drop_last"})
# options about workers and memory pinning: no effect on which batches come out
NO_EFFECT = frozenset({"num_workers", "pin_memory", "timeout", "prefetch_factor", "persistent_workers",
                       "pin_memory_device", "multiprocessing_context", "in_order"})

# the target's collate function a kept DataLoader is given (already converted when present)
ARRAY_COLLATE = "numpy_collate"

# verdict kinds
ARRAY_DATASET, ARRAY_LOADER, KEPT, MANUAL = "array_dataset", "array_loader", "kept", "manual"


def is_data_pipeline(qualname: str) -> bool:
    return qualname in DATA_PIPELINE or qualname.startswith(_PIPELINE_PREFIXES)


def kept_message(qualname: str) -> str:
    return f"{qualname} kept: torch.utils.data stays for data loading only (data-pipeline policy)"


def _bound(args: tuple[tuple[str, bool], ...], kwargs: tuple[tuple[str | None, str], ...]) -> dict[str, str] | None:
    """DataLoader's arguments by parameter name (None: *args/**kwargs or unknown names)."""
    if any(starred for _, starred in args) or len(args) > len(LOADER_SIGNATURE):
        return None
    bound = {LOADER_SIGNATURE[i]: text for i, (text, _) in enumerate(args)}
    for name, text in kwargs:
        if name is None or name not in LOADER_SIGNATURE or name in bound:
            return None
        bound[name] = text
    return bound


def data_verdict(qualname: str, args: tuple = (), kwargs: tuple = (), array_dataset: bool = False
                 ) -> tuple[str, str, str]:
    """(kind, message, safety) for a call of a data-pipeline name; `array_dataset`: the
    DataLoader's dataset is a TensorDataset built in this file."""
    if qualname == TENSOR_DATASET:
        return ARRAY_DATASET, f"{qualname}: the arrays themselves, indexed along their first axis", "safe"
    if qualname != DATA_LOADER:
        return KEPT, kept_message(qualname), ""
    bound = _bound(args, kwargs)
    if array_dataset and bound is not None and set(bound) <= ARRAY_LOADER_PARAMS | NO_EFFECT:
        shuffle = bound.get("shuffle", "False")
        if shuffle in ("False", "None"):
            return ARRAY_LOADER, f"{qualname} over a TensorDataset: the same batches of the arrays, in order", "safe"
        return (ARRAY_LOADER, f"{qualname} over a TensorDataset, shuffled: the permutation comes from an explicit "
                              "key (a different order than torch's generator)", "unsafe")
    if bound is not None and bound.get("collate_fn", ARRAY_COLLATE) != ARRAY_COLLATE:
        return MANUAL, (f"{qualname} with its own collate_fn: a batch is what that function returns; make it "
                        "return numpy arrays (then only the loader stays torch)"), "manual"
    shuffled = bound is not None and bound.get("shuffle", "False") not in ("False", "None")
    return KEPT, (f"{kept_message(qualname)}; its batches arrive as numpy arrays (collate_fn)"
                  + ("; its shuffle draws from torch's global generator, which the converted program no longer "
                     "seeds" if shuffled else "")), ""
