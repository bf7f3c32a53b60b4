"""Compare arrays: output leaves (tensor, tuple/list, dict) and gradients.

A comparison passes when ``max_abs_err <= atol + rtol * max|expected|``, where expected is the
torch value. The rtol term scales with the largest magnitude of the whole array rather than
elementwise, so entries that happen to be near zero do not need an absolute match tighter
than the float precision of the array's large entries. max_rel_err is reported on the same
scale: max_abs_err / max|expected|.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .report import Comparison, VerifyError


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, type)


def flatten_output(obj, name: str = "output") -> list[tuple[str, object]]:
    """[(name, leaf)] for a tensor/array, (nested) tuple/list, or dict output. None is skipped."""
    if obj is None:
        return []
    if _is_array(obj) or isinstance(obj, (bool, int, float, complex, np.number)):
        return [(name, obj)]
    if isinstance(obj, Mapping):
        out = []
        for key in obj:
            out += flatten_output(obj[key], f"{name}[{key!r}]")
        return out
    if isinstance(obj, (tuple, list)):
        out = []
        for i, item in enumerate(obj):
            out += flatten_output(item, f"{name}[{i}]")
        return out
    if hasattr(obj, "__dataclass_fields__"):
        out = []
        for key in obj.__dataclass_fields__:
            out += flatten_output(getattr(obj, key), f"{name}.{key}")
        return out
    raise VerifyError(f"{name}: cannot compare an output of type {type(obj).__name__}")


def errors(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float, float]:
    """(max_abs_err, max_rel_err, max|expected|). NaN vs NaN and equal infinities count as equal."""
    common = np.complex128 if np.iscomplexobj(actual) or np.iscomplexobj(expected) else np.float64
    a = np.asarray(actual).astype(common)
    e = np.asarray(expected).astype(common)
    if a.size == 0:
        return 0.0, 0.0, 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    diff = np.where(same, 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only, or inf - inf
    max_abs = float(diff.max())
    finite = np.abs(e[np.isfinite(e)])
    scale = float(finite.max()) if finite.size else 0.0
    if max_abs == 0.0:
        rel = 0.0
    elif scale > 0.0:
        rel = max_abs / scale
    else:
        rel = float("inf")
    return max_abs, rel, scale


def compare(name: str, kind: str, actual, expected, atol: float, rtol: float) -> Comparison:
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        raise VerifyError(f"{name}: shape differs: torch {tuple(e.shape)}, converted {tuple(a.shape)}")
    max_abs, rel, scale = errors(a, e)
    passed = bool(max_abs <= atol + rtol * scale)
    return Comparison(name=name, kind=kind, shape=tuple(e.shape), max_abs_err=max_abs, max_rel_err=rel, passed=passed)
