"""Input specs: `float32[2,1,28,28]`, `float32[4,3]:0..1`, `int64[4,16]:0..100`.

* a float spec without a range draws from the standard normal; with `:lo..hi`, uniformly in [lo, hi);
* an integer spec needs a range and draws integers in [lo, hi);
* `bool[...]` draws fair coin flips.

All inputs come from one numpy Generator seeded once, so both sides get the same arrays.
Values are drawn in float64 and then cast, so float32 and float64 runs see the same numbers.
(numpy only; no torch or jax here.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .report import VerifyError

FLOAT_DTYPES = ("float16", "float32", "float64")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8")
DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SPEC = re.compile(
    rf"^\s*(?P<dtype>[a-z0-9]+)\s*\[(?P<shape>[^\]]*)\]\s*(?::\s*(?P<lo>{_NUM})\s*\.\.\s*(?P<hi>{_NUM}))?\s*$"
)


@dataclass(frozen=True)
class InputSpec:
    text: str
    dtype: str
    shape: tuple[int, ...]
    low: float | None = None
    high: float | None = None

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES


def parse_spec(text: str) -> InputSpec:
    def bad(why: str) -> VerifyError:
        return VerifyError(
            f"bad input spec {text!r}: {why} (expected e.g. float32[2,1,28,28], float32[4,3]:0..1, int64[4,16]:0..100)"
        )

    m = _SPEC.match(text or "")
    if not m:
        raise bad("cannot parse")
    dtype = m["dtype"]
    if dtype not in DTYPES:
        raise bad(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    shape_text = m["shape"].strip()
    dims: list[int] = []
    if shape_text:
        for part in shape_text.split(","):
            part = part.strip()
            if not part.isdigit():
                raise bad(f"dimension {part!r} is not a non-negative integer")
            dims.append(int(part))
    low = high = None
    if m["lo"] is not None:
        low, high = float(m["lo"]), float(m["hi"])
        if not low < high:
            raise bad(f"empty range {m['lo']}..{m['hi']}")
        if dtype == "bool":
            raise bad("bool inputs take no range")
        if dtype in INT_DTYPES:
            if low != int(low) or high != int(high):
                raise bad("an integer range needs integer bounds")
            info = np.iinfo(dtype)
            if low < info.min or high - 1 > info.max:
                raise bad(f"range does not fit in {dtype}")
    elif dtype in INT_DTYPES:
        raise bad("an integer input needs a range, e.g. int64[4,16]:0..100")
    return InputSpec(text=text, dtype=dtype, shape=tuple(dims), low=low, high=high)


def make_arrays(specs: list[InputSpec], seed: int, *, float64: bool = False) -> list[np.ndarray]:
    """One numpy array per spec, from one Generator. `float64` promotes float inputs to float64."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        if spec.dtype == "bool":
            a = rng.integers(0, 2, spec.shape).astype(bool)
        elif spec.dtype in INT_DTYPES:
            a = rng.integers(int(spec.low), int(spec.high), spec.shape).astype(spec.dtype)
        else:
            if spec.low is None:
                a = rng.standard_normal(spec.shape)
            else:
                a = rng.uniform(spec.low, spec.high, spec.shape)
            a = a.astype("float64" if float64 else spec.dtype)
        arrays.append(a)
    return arrays
