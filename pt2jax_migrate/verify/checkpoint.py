"""Reading a PyTorch state_dict from disk (`.pt`/`.pth` with torch.load(weights_only=True),
`.safetensors` lazily), matching its keys to a torch model's (prefixes such as DataParallel's
`module.`) and loading it: what `pt2jax weights` and `verify --weights` share. Imports no other
verify stage, so the engine and the weights command can both use it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .report import VerifyError

AUTO_PREFIXES = ("module.", "_orig_mod.")  # nn.DataParallel / DistributedDataParallel, torch.compile
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # {"state_dict": {...}, "epoch": 3}
_SHOWN = 12  # problems listed per kind


class CheckpointSource:
    """A state_dict on disk, read lazily: keys, shapes, and one tensor at a time."""

    def __init__(self, path: str):
        self.path = path
        self.notes: list[str] = []
        self._safe = None
        self._dict: Mapping | None = None
        self._unreleased = 0  # bytes read since the file's pages were last dropped
        if not os.path.exists(path):
            raise VerifyError(f"{path}: no such file")
        if os.path.isdir(path):
            raise VerifyError(f"{path}: a folder, not a checkpoint file (.pt, .pth or .safetensors)")
        if path.lower().endswith(".safetensors"):
            self._open_safetensors()
        else:
            self._open_torch()

    def _open_safetensors(self) -> None:
        try:
            from safetensors import safe_open
        except ImportError:
            raise VerifyError(f"{self.path}: reading .safetensors needs the safetensors package "
                              "(pip install safetensors)") from None
        try:
            self._safe = safe_open(self.path, framework="pt")
            self.keys = list(self._safe.keys())
        except Exception as exc:  # SafetensorError, OSError
            raise VerifyError(f"{self.path}: not a readable .safetensors file: {_first_line(exc)}") from None

    def _open_torch(self) -> None:
        import torch

        def load(mmap: bool):
            return torch.load(self.path, map_location="cpu", weights_only=True, mmap=mmap)

        try:
            try:
                data = load(True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):  # a legacy (non-zip) file cannot be mapped
                    raise
                data = load(False)
        except Exception as exc:  # UnpicklingError (not weights-only data), RuntimeError (corrupt), EOFError
            raise VerifyError(
                f"{self.path}: torch.load(weights_only=True) cannot read it: {type(exc).__name__}: "
                f"{_first_line(exc)} (a corrupt file, or not a state_dict: save model.state_dict())"
            ) from None
        if isinstance(data, Mapping) and not _is_state_dict(data):
            inner = next((k for k in WRAPPER_KEYS if isinstance(data.get(k), Mapping) and _is_state_dict(data[k])), None)
            if inner is not None:
                self.notes.append(f"the state_dict is the checkpoint's {inner!r} entry")
                data = data[inner]
        if not isinstance(data, Mapping) or not _is_state_dict(data):
            raise VerifyError(f"{self.path}: not a state_dict (str -> tensor): {_describe(data)}")
        self._dict = data
        self.keys = list(data)

    def shape(self, key: str) -> tuple:
        if self._safe is not None:
            return tuple(self._safe.get_slice(key).get_shape())
        return tuple(self._dict[key].shape)

    def dtype(self, key: str) -> str:
        if self._safe is not None:
            return str(self._safe.get_slice(key).get_dtype())
        return str(self._dict[key].dtype).removeprefix("torch.")

    def tensor(self, key: str):
        """The torch tensor stored under `key` (read from the file now)."""
        if self._safe is not None:
            return self._safe.get_tensor(key)
        return self._dict[key]

    def release(self, nbytes: int, *, every: int = 16 << 20) -> None:
        """`nbytes` more of the file were read and converted: once `every` bytes add up, drop
        the file's resident pages (memory.drop_mapped_pages; tensors still held read them in again)."""
        self._unreleased += nbytes
        if self._unreleased >= every:
            from .memory import drop_mapped_pages

            drop_mapped_pages(self.path)
            self._unreleased = 0

    def close(self) -> None:
        self._safe = None
        self._dict = None

    def __enter__(self) -> CheckpointSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _is_state_dict(data: Mapping) -> bool:
    import torch

    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())


def _describe(data) -> str:
    import torch

    if isinstance(data, Mapping):
        bad = next(((k, v) for k, v in data.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
        if bad is not None:
            return f"a dict whose entry {bad[0]!r} is a {type(bad[1]).__name__}, not a tensor"
    if isinstance(data, torch.Tensor):
        return f"a single tensor of shape {tuple(data.shape)}"
    return f"a {type(data).__name__}"


# ------------------------------------------------------------------------------ keys


def parse_prefix(text: str) -> tuple[str, str]:
    """`strip:module.` -> ("strip", "module."), `add:encoder.` -> ("add", "encoder.")."""
    action, sep, prefix = (text or "").partition(":")
    if not sep or action not in ("strip", "add") or not prefix:
        raise VerifyError(f"--prefix {text!r}: expected strip:PREFIX or add:PREFIX, e.g. strip:module.")
    return action, prefix


def match_keys(source_keys: Sequence[str], expected: Mapping[str, tuple], prefixes: Iterable[str] = (),
               *, where: str) -> tuple[dict[str, str], list[str]]:
    """({model key: checkpoint key}, notes), after the `--prefix` renames (or the automatic
    strip of a uniform AUTO_PREFIXES prefix). `expected` is the model's key -> shape; shapes
    are checked by the caller. Raises VerifyError listing missing and unexpected keys."""
    notes: list[str] = []
    renamed = {k: k for k in source_keys}
    rules = [parse_prefix(p) for p in prefixes]
    for action, prefix in rules:
        if action == "strip":
            hits = sum(new.startswith(prefix) for new in renamed)
            if not hits:
                raise VerifyError(f"{where}: --prefix strip:{prefix}: no checkpoint key starts with {prefix!r}")
            renamed = {(new[len(prefix):] if new.startswith(prefix) else new): old for new, old in renamed.items()}
        else:
            renamed = {prefix + new: old for new, old in renamed.items()}
    if not rules and renamed:
        for prefix in AUTO_PREFIXES:
            if all(k.startswith(prefix) for k in renamed) and not all(k.startswith(prefix) for k in expected):
                renamed = {new[len(prefix):]: old for new, old in renamed.items()}
                notes.append(f"every checkpoint key starts with {prefix!r} "
                             f"({'nn.DataParallel' if prefix == 'module.' else 'torch.compile'}): stripped it")
    missing = [k for k in expected if k not in renamed]
    unexpected = [renamed[k] for k in renamed if k not in expected]
    if missing or unexpected:
        problems = [f"missing key {k!r} (shape {tuple(expected[k])}): the model has it, the checkpoint does not"
                    for k in missing[:_SHOWN]]
        if len(missing) > _SHOWN:
            problems.append(f"... and {len(missing) - _SHOWN} more missing keys")
        problems += [f"unexpected key {k!r}: the checkpoint has it, the model does not" for k in unexpected[:_SHOWN]]
        if len(unexpected) > _SHOWN:
            problems.append(f"... and {len(unexpected) - _SHOWN} more unexpected keys")
        hint = _prefix_hint(list(renamed), expected)
        raise VerifyError(f"{where}: the checkpoint does not match the model:\n  - " + "\n  - ".join(problems)
                          + (f"\n  {hint}" if hint else ""))
    return {new: old for new, old in renamed.items()}, notes


def _prefix_hint(keys: list[str], expected: Mapping) -> str:
    """A --prefix that would make the keys match, if one obvious one does."""
    if not keys or not expected:
        return ""
    first = keys[0].split(".")[0] + "."
    if all(k.startswith(first) for k in keys) and {k[len(first):] for k in keys} == set(expected):
        return f"(every checkpoint key starts with {first!r}: --prefix strip:{first})"
    head = next(iter(expected)).split(".")[0] + "."
    if all(k.startswith(head) for k in expected) and {head + k for k in keys} == set(expected):
        return f"(the model's keys all start with {head!r}: --prefix add:{head})"
    return ""


def check_shapes(source: CheckpointSource, key_map: Mapping[str, str], expected: Mapping[str, tuple],
                 *, where: str) -> None:
    problems = []
    for key, shape in expected.items():
        got = source.shape(key_map[key])
        if tuple(got) != tuple(shape):
            problems.append(f"{key_map[key]!r}: shape mismatch: checkpoint {tuple(got)}, model {tuple(shape)}")
    if problems:
        shown = problems[:_SHOWN] + ([f"... and {len(problems) - _SHOWN} more"] if len(problems) > _SHOWN else [])
        raise VerifyError(f"{where}: the checkpoint does not match the model:\n  - " + "\n  - ".join(shown))


def model_keys(torch_model) -> dict[str, tuple]:
    """The torch model's state_dict keys -> shapes (no values read: works on the meta device)."""
    return {k: tuple(v.shape) for k, v in torch_model.state_dict(keep_vars=True).items()}


def open_matched(path: str, torch_model, prefixes: Iterable[str] = ()) -> tuple[CheckpointSource, dict[str, str], list[str]]:
    """The checkpoint at `path`, checked against `torch_model`: (source, {model key: checkpoint
    key}, notes). Raises VerifyError (the source closed) when it does not fit."""
    source = CheckpointSource(path)
    try:
        key_map, notes = match_keys(source.keys, model_keys(torch_model), prefixes, where=path)
        check_shapes(source, key_map, model_keys(torch_model), where=path)
    except BaseException:
        source.close()
        raise
    return source, key_map, source.notes + notes


def load_into_torch(path: str, torch_model, prefixes: Iterable[str] = ()) -> list[str]:
    """`verify --weights`: the checkpoint's tensors into the (real) torch model, strictly."""
    import torch

    source, key_map, notes = open_matched(path, torch_model, prefixes)
    try:
        state = {key: source.tensor(old) for key, old in key_map.items()}
        with torch.no_grad():
            torch_model.load_state_dict(state, strict=True)
    finally:
        source.close()
    return notes


def tensor_array(tensor) -> np.ndarray:
    """A torch tensor's values as numpy (a view where it can be; bfloat16 widened to float32)."""
    import torch

    t = tensor.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.cpu().numpy()


