"""Helpers for data parallelism on JAX's own engine (sharding), written into converted files
(source text only).

`model = nn.DataParallel(net)` / `DistributedDataParallel(net, ...)` becomes
`model = data_parallel(net)`: the module itself, its state replicated on every device of
`data_mesh()` (a Mesh over all local devices with one axis, 'data'). The converted train step of
that model receives its batch through `shard_batch(...)`, which splits each array's first axis
over the 'data' axis; jax.jit propagates the shardings, so the step computes the gradient of the
whole batch with XLA summing the per-device parts (the all-reduce DDP does), and the replicated
parameters and optimizer state stay replicated. No pmap, no change to the step itself.

A batch whose size the device count does not divide (the last, smaller batch of an epoch) cannot
be split evenly, as torch's DataParallel would: it is placed whole on every device instead (the
same numbers, no speed-up for that batch) and a warning names the sizes, once per size.

Checked against torch on 4 CPU devices in tests/test_data_parallel.py.
"""

from __future__ import annotations

DATA_MESH = '''\
def data_mesh():
    """The device mesh of a data-parallel program: every device along one axis, 'data'
    (built once)."""
    mesh = getattr(data_mesh, "mesh", None)
    if mesh is None:
        mesh = data_mesh.mesh = jax.sharding.Mesh(jax.devices(), ("data",))
    return mesh
'''

DATA_PARALLEL = '''\
def data_parallel(model):
    """torch.nn.DataParallel(model) / DistributedDataParallel(model): the model itself, with its
    state (parameters, buffers) replicated on every device of data_mesh(). Train it with a jitted
    step on batches from shard_batch: jit splits the work over the devices and sums the
    gradients."""
    mesh = data_mesh()
    if mesh.devices.size > 1:  # one device: already there (a placement would cost a retrace)
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        nnx.update(model, jax.device_put(nnx.state(model), replicated))
    return model
'''

SHARD_BATCH = '''\
def shard_batch(*values):
    """Each array's first axis split over data_mesh()'s 'data' axis (one slice per device), for
    a jitted step to run data-parallel; other values (numbers, modules) as they are. A batch the
    device count does not divide is placed whole on every device (same numbers, no speed-up),
    with a warning naming the sizes: XLA cannot split it unevenly as torch's DataParallel does."""
    mesh = data_mesh()
    devices = mesh.devices.size
    if devices == 1:  # nothing to split: placing each batch would only cost time
        return values
    out = []
    for value in values:
        if isinstance(value, jax.Array) or (type(value).__module__ == "numpy"
                                            and hasattr(value, "ndim")):
            spec = jax.sharding.PartitionSpec()
            if value.ndim and value.shape[0] % devices == 0:
                spec = jax.sharding.PartitionSpec("data")
            elif value.ndim and value.shape[0] not in shard_batch.warned:
                import warnings

                shard_batch.warned.add(value.shape[0])
                warnings.warn(f"shard_batch: a batch of {value.shape[0]} does not split over "
                              f"{devices} devices; it is replicated (every device computes "
                              "all of it)", stacklevel=2)
            value = jax.device_put(value, jax.sharding.NamedSharding(mesh, spec))
        out.append(value)
    return tuple(out)


shard_batch.warned = set()
'''

# name -> (source, imports, requires)
PARALLEL_HELPERS = {
    "data_mesh": (DATA_MESH, ["import jax"], []),
    "data_parallel": (DATA_PARALLEL, ["import jax", "from flax import nnx"], ["data_mesh"]),
    "shard_batch": (SHARD_BATCH, ["import jax"], ["data_mesh"]),
}
