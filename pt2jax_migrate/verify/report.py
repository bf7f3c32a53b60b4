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
    mode: str = "eager"  # "eager" | "jit" (the converted model run under nnx.jit); to_dict groups by it

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "max_abs_err": _json_float(self.max_abs_err),
            "max_rel_err": _json_float(self.max_rel_err),
            "passed": self.passed,
        }


@dataclass
class JitFailure:
    """The converted model ran eagerly but not under `nnx.jit` (a Python `if` on a traced value,
    `int(tensor)`, a kept `x.device`, ...). `line` is the innermost statement of the converted
    file in the traceback (None when the failure never reached the file's code)."""

    stage: str  # "forward" | "gradient"
    path: str
    line: int | None
    statement: str  # the source text of that line
    error: str  # the exception's type name, e.g. TracerBoolConversionError
    message: str  # its first line

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def describe(self) -> str:
        stmt = f" `{self.statement}`" if self.statement else ""
        return f"{self.where}:{stmt} fails under jit ({self.stage}): {self.error}: {self.message}"

    def to_dict(self) -> dict:
        return {"stage": self.stage, "path": self.path, "line": self.line, "statement": self.statement,
                "error": self.error, "message": self.message}


# VerifyReport.status values
PASS, ROUNDING, MISMATCH, JIT_FAILURE = "pass", "float32 rounding noise", "mismatch", "jit failure"


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
    # the values of `status` (also module constants), for renderers that may not import this module
    PASS, ROUNDING, MISMATCH, JIT_FAILURE = PASS, ROUNDING, MISMATCH, JIT_FAILURE
    comparisons: list[Comparison] = field(default_factory=list)
    original: str = ""
    converted: str = ""
    transferred: int = 0  # number of torch tensors copied into the converted model
    perturbed: bool = True
    weights: str | None = None  # `verify --weights`: the checkpoint the torch model was loaded from
    jit: bool = False  # whether the converted model was also run under nnx.jit
    jit_comparisons: list[Comparison] = field(default_factory=list)  # same checks, jitted
    jit_error: JitFailure | None = None
    # When a float32 comparison failed, both sides rerun in float64 (default float64 tolerances):
    float64: VerifyReport | None = None
    float64_error: str | None = None  # why the float64 rerun could not run
    timings: dict = field(default_factory=dict)  # seconds per phase and side (imports, build, jit)

    @property
    def numeric_failures(self) -> list[Comparison]:
        """Every eager and jitted comparison out of tolerance (in this report's dtype)."""
        return [c for c in (*self.comparisons, *self.jit_comparisons) if not c.passed]

    @property
    def rounding_noise(self) -> bool:
        """float32 failed only by rounding: the float64 rerun of the same model passes."""
        return bool(self.numeric_failures) and self.float64 is not None and not self.float64.numeric_failures

    @property
    def status(self) -> str:
        if self.jit_error is not None:
            return JIT_FAILURE
        if not self.numeric_failures:
            return PASS
        return ROUNDING if self.rounding_noise else MISMATCH

    @property
    def outputs(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.kind == "output"]

    @property
    def gradients(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.kind == "gradient"]

    @property
    def failures(self) -> list[Comparison]:
        """The comparisons that make the report fail (none when float64 shows them to be float32
        rounding noise)."""
        return [] if self.rounding_noise else self.numeric_failures

    @property
    def all_comparisons(self) -> list[Comparison]:
        return [*self.comparisons, *self.jit_comparisons]

    def to_dict(self) -> dict:
        """JSON-ready. Non-finite errors (NaN/inf) become null; such comparisons always fail."""
        return {
            "passed": self.passed,
            "status": self.status,
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
            "jit": {
                "ran": self.jit,
                "error": self.jit_error.to_dict() if self.jit_error else None,
                "outputs": [c.to_dict() for c in self.jit_comparisons if c.kind == "output"],
                "gradients": [c.to_dict() for c in self.jit_comparisons if c.kind == "gradient"],
            },
            "float64_check": None if self.float64 is None and self.float64_error is None else {
                "passed": self.float64 is not None and not self.float64.numeric_failures,
                "error": self.float64_error,
                "tolerances": None if self.float64 is None else {
                    "atol": self.float64.atol, "rtol": self.float64.rtol,
                    "grad_atol": self.float64.grad_atol, "grad_rtol": self.float64.grad_rtol},
                "comparisons": [] if self.float64 is None else
                [{**c.to_dict(), "mode": c.mode} for c in self.float64.all_comparisons],
            },
        }


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
