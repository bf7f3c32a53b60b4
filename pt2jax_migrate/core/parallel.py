"""Data parallelism (torch.nn.DataParallel, DistributedDataParallel and the process group they
run in), decided once for lint and rewrite (lint code PTJ403).

JAX's own engine for data parallelism is sharding: a `jax.sharding.Mesh` over the devices, the
batch split along its 'data' axis and the parameters replicated; a jitted step then computes the
gradient of the whole batch, XLA summing the per-device parts (the all-reduce DDP does). So:

* `model = nn.DataParallel(net)` / `model = DDP(net, device_ids=...)` -> `model = data_parallel(net)`
  (the model itself, its state replicated over the mesh) and the converted train step of that
  model gets its batch through `shard_batch(...)`. `model.module` is the model itself.
* The process group of a single-host program (one process that sees every local device) has a
  faithful meaning: `init_process_group(..., world_size=1)` and `destroy_process_group()` have
  nothing to do, `get_rank()` / `get_world_size()` are `jax.process_index()` /
  `jax.process_count()`, `torch.cuda.set_device(r)` goes (the mesh holds every device).
* Anything multi-process (a world size that is not the literal 1, collectives such as
  all_reduce, barrier) is left for a person: JAX's multi-host set-up is
  `jax.distributed.initialize(...)` on every host, with a mesh over all hosts' devices and each
  host feeding its part of the global batch, which a line-by-line rewrite cannot decide.

Framework-neutral: messages say what the default target writes.
"""

from __future__ import annotations

from .statements import ASSIGN, EXPR

CODE = "PTJ403"
DATA_PARALLEL = frozenset({"torch.nn.DataParallel", "torch.nn.parallel.DataParallel",
                           "torch.nn.parallel.data_parallel.DataParallel"})
DISTRIBUTED_DATA_PARALLEL = frozenset({"torch.nn.parallel.DistributedDataParallel",
                                       "torch.nn.parallel.distributed.DistributedDataParallel"})
WRAPPERS = DATA_PARALLEL | DISTRIBUTED_DATA_PARALLEL
INIT = "torch.distributed.init_process_group"
DESTROY = "torch.distributed.destroy_process_group"
RANK = "torch.distributed.get_rank"
WORLD_SIZE = "torch.distributed.get_world_size"
SET_DEVICE = "torch.cuda.set_device"
DISTRIBUTED_PREFIX = "torch.distributed."
DEVICE_MOVES = frozenset({"to", "cuda", "cpu"})
PROCESS_CALLS = frozenset({INIT, DESTROY, RANK, WORLD_SIZE, SET_DEVICE})

# wrapper keywords that only say where replicas run or how gradients travel: the numbers do not
# depend on them (dim is accepted only as 0, the batch axis)
_PLACEMENT = frozenset({"device_ids", "output_device", "dim"})
_DDP_TUNING = frozenset({"find_unused_parameters", "broadcast_buffers", "bucket_cap_mb", "static_graph",
                         "gradient_as_bucket_view", "check_reduction"})
_MULTI_HOST = ("a multi-process run (one process per device or per host) becomes one JAX process per host: "
               "call jax.distributed.initialize(coordinator_address, num_processes, process_id) first, "
               "build the mesh over jax.devices() of every host and feed each host its part of the global "
               "batch; port it by hand")


def wrapper_refusal(q: str, args: tuple[tuple[str, bool], ...], kwargs: tuple[tuple[str | None, str], ...],
                    statement: str) -> str | None:
    """Why `NAME = nn.DataParallel(module, ...)` is not converted (None: it is)."""

    keywords = {k: v for k, v in kwargs if k is not None}
    module = [text for text, starred in args[:1] if not starred] or ([keywords.pop("module")]
                                                                      if "module" in keywords else [])
    if statement != ASSIGN:
        return ("converted only as an assignment `model = wrapper(module, ...)` (optionally `.to(device)`): "
                "the model is then the module itself")
    if len(module) != 1 or len(args) > 1 or any(k is None for k, _ in kwargs):
        return "converted only with the module as its one positional argument"
    allowed = _PLACEMENT | (_DDP_TUNING if q in DISTRIBUTED_DATA_PARALLEL else frozenset())
    unknown = sorted(set(keywords) - allowed)
    if unknown:
        return f"the arguments {', '.join(unknown)} are not converted (they change what is computed or where)"
    if keywords.get("dim", "0") != "0":
        return "dim other than 0: the batch is split along its first axis only"
    return None


def wrapper_message(q: str) -> str:
    short = q.rsplit(".", 1)[1]
    return (f"{short}(module): the module itself, replicated over a device mesh; its train step runs on "
            "batches sharded along the mesh's 'data' axis (data_parallel / shard_batch)")


def process_refusal(q: str, args: tuple[tuple[str, bool], ...], kwargs: tuple[tuple[str | None, str], ...],
                    statement: str) -> str | None:
    """Why a process-group call is not converted (None: it is)."""

    keywords = {k: v for k, v in kwargs if k is not None}
    if q in (RANK, WORLD_SIZE) and (args or kwargs):
        return "of a process group other than the default one: port it by hand"
    if q in (INIT, DESTROY, SET_DEVICE) and statement != EXPR:
        return "converted only as a statement of its own"
    if q == INIT and keywords.get("world_size") != "1":
        return f"init_process_group without world_size=1: {_MULTI_HOST}"
    if q == INIT and keywords.get("rank", "0") != "0":
        return "rank other than 0 in a world of one process"
    return None


def process_message(q: str) -> str:
    return {
        INIT: "init_process_group(world_size=1): removed (one JAX process drives every local device)",
        DESTROY: "destroy_process_group(): removed (a single JAX process has no group to tear down)",
        RANK: "get_rank() -> jax.process_index()",
        WORLD_SIZE: "get_world_size() -> jax.process_count()",
        SET_DEVICE: "torch.cuda.set_device(): removed (JAX places arrays itself; a data-parallel mesh holds every "
                    "local device)",
    }[q]


# what a converted process-group call becomes (None: the statement is removed)
PROCESS_TARGETS = {INIT: None, DESTROY: None, SET_DEVICE: None, RANK: "jax.process_index()",
                   WORLD_SIZE: "jax.process_count()"}


def distributed_refusal(q: str) -> str:
    """Every other torch.distributed name."""
    return f"{q}: {_MULTI_HOST}"


MODULE_ATTRIBUTE = "module"


def module_attribute_message(name: str) -> str:
    return f"{name}.module -> {name} (the data-parallel wrapper is gone: the model is the module)"
