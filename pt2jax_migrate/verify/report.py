"""Plain data returned by `pt2jax verify` (no torch or jax imports here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# dtype -> (atol, rtol, grad_atol, grad_rtol); a comparison passes when
# max_abs_err <= atol + rtol * max|torch value|. Why these gradient values: see engine.py.
DEFAULT_TOLERANCES: dict[str, tuple[float, float, float, float]] = {
    "float32": (1e-5, 1e-4, 1e-6, 1e-4),
    "float64": (1e-10, 1e-10, 1e-10, 1e-9),
}


class VerifyError(Exception):
    """verify could not run: bad file, model, spec or weight mapping. The CLI exits 2.

    The message names the file (and the line, where there is one).
    """


@dataclass
class Comparison:
    """One compared array: an output leaf or the gradient of one torch parameter."""

    name: str  # "output", "output[0]", "output['logits']", "grad fc.weight"
    kind: str  # "output" | "gradient"
    shape: tuple
    max_abs_err: float
    max_rel_err: float  # max_abs_err / max|torch value| (the scale rtol multiplies)
    passed: bool

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "max_abs_err": _json_float(self.max_abs_err),
            "max_rel_err": _json_float(self.max_rel_err),
            "passed": self.passed,
        }


@dataclass
class VerifyReport:
    """The result of one verify run.

    A comparison passes when ``max_abs_err <= atol + rtol * max|torch value|`` (with grad_atol and
    grad_rtol for gradients); the report passes when every comparison does.
    """

    passed: bool
    model: str
    dtype: str
    atol: float
    rtol: float
    grad_atol: float
    grad_rtol: float
    comparisons: list[Comparison] = field(default_factory=list)
    original: str = ""
    converted: str = ""
    transferred: int = 0  # number of torch tensors copied into the converted model
    perturbed: bool = True

    @property
    def outputs(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.kind == "output"]

    @property
    def gradients(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.kind == "gradient"]

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.passed]

    def to_dict(self) -> dict:
        """JSON-ready. Non-finite errors (NaN/inf) become null; such comparisons always fail."""
        return {
            "passed": self.passed,
            "model": self.model,
            "dtype": self.dtype,
            "original": self.original,
            "converted": self.converted,
            "perturbed": self.perturbed,
            "transferred": self.transferred,
            "tolerances": {
                "atol": self.atol,
                "rtol": self.rtol,
                "grad_atol": self.grad_atol,
                "grad_rtol": self.grad_rtol,
                "rule": "max_abs_err <= atol + rtol * max|torch value|",
            },
            "outputs": [c.to_dict() for c in self.outputs],
            "gradients": [c.to_dict() for c in self.gradients],
        }


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
