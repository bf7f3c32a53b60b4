"""`pt2jax weights`: a PyTorch state_dict converted into the converted model's state, and
`verify --weights`: parity with those weights.

The mapping is verify's (transfer.plan_transfer over rules/layers.toml, [tool.pt2jax.weights]
and --weights-map): the original torch model is built -- on torch's meta device when its
constructor allows, so it holds no values -- only to walk its module tree; the converted model
is built as verify builds it; then each checkpoint tensor is read, transformed and written into
its variable one at a time.

Memory. A `.pt`/`.pth` is opened with `torch.load(weights_only=True, mmap=True)` (a legacy,
non-zip file without mmap) and a `.safetensors` with `safe_open`, so tensors are read from
the file as they are converted, and the file's pages are dropped as they are done with
(verify/memory.py); the converted model is the one full copy in memory. safetensors and
msgpack are written array by array; Orbax's StandardCheckpointer copies every array to host
memory first (2x). benchmarks/bench_weights.py measures it (README, "Converting checkpoints").

Checks, all before anything is written (VerifyError lists every problem; the CLI exits 2):
the file is a state_dict (str -> tensor), every key the model expects is there, no key is
left over, every shape matches. A uniform `module.` (nn.DataParallel) or `_orig_mod.`
(torch.compile) prefix the model lacks is stripped, and said so; `--prefix strip:P` /
`--prefix add:P` rename the keys explicitly. Output is written atomically (a temp file or
folder beside it, then renamed): a failure leaves no output and an old one untouched.

Formats: `orbax` (a folder; ocp.StandardCheckpointer of the target's saved state), `safetensors`
(flat keys: the state's paths joined by '.'), `msgpack` (the bytes of
flax.serialization.msgpack_serialize of the pure state dict, written array by array). The
saved state is the target's (Target.saved_state): NNX, every
variable but the RNG state; Linen, the variables {'params': ..., 'batch_stats': ...} that
model.init made on example inputs (--input), the checkpoint written into them. Loading back:
README, "Converting checkpoints".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .report import VerifyError

FORMATS = ("orbax", "safetensors", "msgpack")
from .checkpoint import open_matched, parse_prefix, tensor_array  # noqa: E402


@dataclass
class WeightsResult:
    """What `pt2jax weights` did."""

    checkpoint: str
    out: str
    format: str
    target: str
    model: str
    tensors: int  # checkpoint tensors written into the converted model
    variables: int  # variables in the written state
    bytes_written: int
    notes: list[str] = field(default_factory=list)


def format_for(out: str, fmt: str | None) -> str:
    """`fmt`, or the one `out`'s suffix says (.safetensors, .msgpack; anything else: orbax)."""
    if fmt:
        if fmt not in FORMATS:
            raise VerifyError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    lower = out.lower()
    if lower.endswith(".safetensors"):
        return "safetensors"
    if lower.endswith((".msgpack", ".mpk")):
        return "msgpack"
    return "orbax"


# ------------------------------------------------------------------------------ converting


def build_skeleton(torch_file, original: str, model: str, init: str):
    """The original torch model built on the meta device (no values), for its module tree and
    key names; built for real when the constructor cannot run on meta (`.item()` on a tensor)."""
    import torch

    from .building import _build

    try:
        with torch.device("meta"):
            torch_model = _build(torch_file, model, init)
    except VerifyError:
        torch_model = _build(torch_file, model, init)  # the real error, if it is one
    if not isinstance(torch_model, torch.nn.Module):
        raise VerifyError(f"{original}: {model}({init}) is a {type(torch_model).__name__}, not a torch.nn.Module")
    return torch_model


def convert_checkpoint(checkpoint: str, *, original: str, converted: str, model: str, init: str = "",
                       out: str, target=None, fmt: str | None = None, prefixes: Sequence[str] = (),
                       weights_map=None, inputs: Sequence[str] = ()) -> WeightsResult:
    """Convert the torch state_dict `checkpoint` into `model` of `converted` and write it to
    `out` (see the module docstring). `target`: None reads it off the file as verify does (Linen
    if it imports flax.linen); a Linen model's variables come from `model.init(key, *inputs)`
    (`inputs`: verify's --input specs). Raises VerifyError, having written nothing, on any problem."""
    from ..model import SourceError
    from ..targets import UnknownTarget, get_target
    from .building import _check_model_name, _loaded, build_converted, detect_target
    from .loader import expression_names
    from .transfer import format_path, plan_transfer
    from .weightmap import WeightMap

    from .memory import return_freed_memory

    fmt = format_for(out, fmt)
    return_freed_memory()
    try:
        target = get_target(detect_target(converted) if target is None else target)
    except UnknownTarget as exc:
        raise VerifyError(str(exc)) from None
    if type(target).saved_state is _base_saved_state():
        raise VerifyError(f"pt2jax weights does not support the {target.name} target yet")
    for p in prefixes:
        parse_prefix(p)
    if weights_map is not None and not isinstance(weights_map, WeightMap):
        weights_map = WeightMap.from_table(weights_map, "weights map")
    _check_model_name(model)
    roots = {model.split(".")[0]} | expression_names(init, what="--init", call_args=True)

    import jax.numpy as jnp

    with _loaded(original, roots, "torch") as torch_file, _loaded(converted, roots, target.name) as jax_file:
        torch_model = build_skeleton(torch_file, original, model, init)
        source, key_map, notes = open_matched(checkpoint, torch_model, prefixes)
        with source:
            jax_model = _materialized(target, build_converted(jax_file, converted, model, init, 0, target),
                                      inputs, converted, model)
            try:
                entries = plan_transfer(torch_model, jax_model, target=target, weights_map=weights_map)
            except VerifyError as exc:
                raise VerifyError(f"{converted}: {exc}") from exc
            flat = target.variables(jax_model)
            written = 0
            cast: dict[tuple[str, str], int] = {}
            for e in entries:
                if e.nnx_path is None or e.torch_key not in key_map:
                    continue  # dropped by the table; a non-persistent buffer the constructor recomputes
                var = flat[e.nnx_path]
                value = e.convert(tensor_array(source.tensor(key_map[e.torch_key])))
                if tuple(value.shape) != tuple(var.shape):  # checked by the plan; never broadcast
                    raise VerifyError(f"{e.torch_key} -> {format_path(e.nnx_path)}: shape {value.shape} != {var.shape}")
                new = jnp.asarray(value, dtype=var.dtype)
                if np.dtype(value.dtype) != np.dtype(new.dtype):
                    pair = (str(value.dtype), str(new.dtype))
                    cast[pair] = cast.get(pair, 0) + 1
                target.set_value(var, new)
                new.block_until_ready()  # the copy is done before the next one starts (no queue of them)
                written += 1
                source.release(new.nbytes)
                del value, new
            source.release(0, every=0)
        notes += [f"{n} tensor{'s' if n != 1 else ''} cast from {a} to {b} (the converted model's dtype)"
                  for (a, b), n in cast.items()]
        state = target.saved_state(jax_model)
        try:
            size, count = _write(target, state, out, fmt)
        except OSError as exc:
            raise VerifyError(f"{out}: cannot write: {exc.strerror or exc}") from None
        except SourceError as exc:  # fsio's atomic writer
            raise VerifyError(str(exc)) from None
    return WeightsResult(checkpoint, out, fmt, target.name, model, written, count, size, notes)


def _materialized(target, built, inputs: Sequence[str], converted: str, model: str):
    """The built model ready to hold weights: a Linen module's variables from model.init(key,
    *inputs) (Target.materialize); an NNX module as it is (its constructor made them)."""
    from ..targets.base import Target

    if type(target).materialize is Target.materialize:
        return built
    if not inputs:
        raise VerifyError(f"{converted}: {model} is a {target.name} module: its variables come from "
                          "model.init(key, *inputs); give example inputs with --input SPEC (as for verify, "
                          "e.g. --input 'float32[1,20]')")
    import jax.numpy as jnp

    from .building import _where
    from .specs import make_arrays, parse_spec

    arrays = make_arrays([parse_spec(s) for s in inputs], 0)
    xs = [jnp.asarray(a.astype(np.int32) if a.dtype == np.int64 else a) for a in arrays]
    try:
        return target.materialize(built, xs, 0)
    except Exception as exc:
        raise VerifyError(f"{_where(converted, exc)}: initialising {model} failed: {type(exc).__name__}: {exc}") from exc


def _base_saved_state():
    from ..targets.base import Target

    return Target.saved_state


# ------------------------------------------------------------------------------ writing


def _write(target, state, out: str, fmt: str) -> tuple[int, int]:
    """Write `state` to `out` atomically; (bytes written, variables written)."""
    from ..fsio import TEMP_SUFFIX

    flat = target.flat_state(state)
    count = len(flat)
    dest = os.path.realpath(out)
    folder = os.path.dirname(dest) or "."
    os.makedirs(folder, exist_ok=True)
    temp = tempfile.mkdtemp(dir=folder, prefix=f".{os.path.basename(dest)}.", suffix=TEMP_SUFFIX)
    try:
        if fmt == "safetensors":
            staged = os.path.join(temp, "weights.safetensors")
            _save_safetensors(flat, staged)
            os.chmod(staged, 0o666 & ~_umask())
        elif fmt == "msgpack":
            del flat
            staged = os.path.join(temp, "weights.msgpack")
            with open(staged, "wb") as handle:
                target.write_msgpack(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(staged, 0o666 & ~_umask())
        else:
            import orbax.checkpoint as ocp

            del flat
            staged = os.path.join(temp, "checkpoint")
            checkpointer = ocp.StandardCheckpointer()
            checkpointer.save(staged, state)
            checkpointer.wait_until_finished()
        size = _size(staged)
        _replace(staged, dest, temp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return size, count


_SAFETENSORS_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                       "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32",
                       "uint16": "U16", "uint8": "U8", "bool": "BOOL"}


def _save_safetensors(flat: Mapping[str, object], path: str) -> None:
    """The safetensors file format written array by array (safetensors.numpy.save_file copies
    every array into one bytes object first): an 8-byte little-endian header length, the JSON
    header (padded to 8 bytes), then each array's bytes in order. Read back with safetensors."""
    import json

    header: dict[str, object] = {"__metadata__": {"format": "pt2jax"}}
    arrays = []
    offset = 0
    for key in sorted(flat):
        a = np.asarray(flat[key])
        code = _SAFETENSORS_DTYPES.get(a.dtype.name)
        if code is None:
            raise VerifyError(f"{key}: safetensors has no dtype for {a.dtype.name}")
        header[key] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    data = json.dumps(header, separators=(",", ":")).encode()
    data += b" " * (-len(data) % 8)
    with open(path, "wb") as handle:
        handle.write(len(data).to_bytes(8, "little"))
        handle.write(data)
        for a in arrays:
            handle.write(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)  # little-endian hosts
        handle.flush()
        os.fsync(handle.fileno())


def _umask() -> int:
    from ..fsio import _umask as umask

    return umask()


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def _replace(staged: str, dest: str, temp: str) -> None:
    """Move `staged` to `dest`; an existing `dest` (file or folder) is set aside in `temp`
    first and removed only once the new one is in place."""
    if os.path.isdir(dest) and not os.path.islink(dest):
        aside = os.path.join(temp, "previous")
        os.rename(dest, aside)
        try:
            os.rename(staged, dest)
        except BaseException:
            os.rename(aside, dest)
            raise
    else:
        os.replace(staged, dest)  # a file (or nothing) at dest; a folder over a file fails: reported
