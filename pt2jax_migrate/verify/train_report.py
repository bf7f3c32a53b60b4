"""Plain data returned by `pt2jax verify --train` (no torch or jax imports here).

A TrainReport holds, per optimizer step, both sides' losses and one TrainComparison per
compared quantity: the loss, each parameter's gradient, each parameter after the step, each
parameter's update (after minus before: a learning rate or weight decay off by a little moves
the update long before it moves the parameter beyond tolerance) and each buffer (BatchNorm
running statistics) after the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .report import MISMATCH, PASS, ROUNDING, VerifyError

# the kinds of compared quantities, in the order a step's comparisons are listed
KINDS = ("loss", "gradient", "parameter", "update", "buffer")
# a float64 error at most SHRINK times its float32 error scales with the precision: rounding
SHRINK = 1e-6


@dataclass
class TrainComparison:
    """One compared array at one step; passes when max_abs_err <= allowed."""

    name: str  # "loss", "grad fc1.weight", "param fc1.weight", "update fc1.weight", "buffer bn.running_mean"
    kind: str  # one of KINDS
    shape: tuple
    max_abs_err: float
    max_rel_err: float  # max_abs_err / max|torch value|
    allowed: float  # the tolerance this comparison had (atol + rtol * max|torch value|, see train.py)
    passed: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape),
                "max_abs_err": _json_float(self.max_abs_err), "max_rel_err": _json_float(self.max_rel_err),
                "allowed": _json_float(self.allowed), "passed": self.passed}

    def describe(self) -> str:
        return (f"{self.name}: max abs err {self.max_abs_err:.3g} > allowed {self.allowed:.3g} "
                f"(rel {self.max_rel_err:.3g})")


@dataclass
class TrainStepResult:
    step: int  # 1-based
    torch_loss: float
    converted_loss: float
    comparisons: list[TrainComparison] = field(default_factory=list)
    optimizer: str = ""  # the optimizer this step stepped (a script's own loop: its variable name)

    @property
    def failures(self) -> list[TrainComparison]:
        return [c for c in self.comparisons if not c.passed]

    def worst(self, kind: str) -> TrainComparison | None:
        """The comparison of `kind` closest to (or furthest past) its tolerance."""
        found = [c for c in self.comparisons if c.kind == kind]
        return max(found, key=lambda c: c.max_abs_err / c.allowed if c.allowed > 0 else math.inf, default=None)

    def to_dict(self) -> dict:
        return {"step": self.step, "optimizer": self.optimizer or None, "torch_loss": _json_float(self.torch_loss),
                "converted_loss": _json_float(self.converted_loss), "passed": not self.failures,
                "comparisons": [c.to_dict() for c in self.comparisons]}


@dataclass
class TrainReport:
    """The result of one `verify --train` run (`float64`: the rerun after a float32 failure)."""

    passed: bool
    model: str
    setup: str  # how the step was named, e.g. "the script's training step (a.py:41-45) / train_step"
    optimizer: str  # the optimizer set-up, e.g. "build_optimizer(model)"
    original: str
    converted: str
    dtype: str
    batch: list[str]  # "xb=float32[64,20]" per batch argument
    steps: list[TrainStepResult] = field(default_factory=list)
    tolerances: dict = field(default_factory=dict)
    seed: int = 0
    perturbed: bool = True
    dropout: tuple[int, int] = (0, 0)  # dropout layers disabled (torch, converted)
    notes: list[str] = field(default_factory=list)
    float64: TrainReport | None = None
    float64_error: str | None = None
    plot: str | None = None  # the PNG written, when one was
    plot_error: str | None = None  # why the PNG was not written
    program: bool = False  # the scripts' own set-up, loops and data (trainprogram.py), nothing named
    timings: dict = field(default_factory=dict)  # seconds per phase (an isolated run: imports, the run)

    PASS, ROUNDING, MISMATCH = PASS, ROUNDING, MISMATCH

    @property
    def numeric_failures(self) -> list[tuple[int, TrainComparison]]:
        return [(s.step, c) for s in self.steps for c in s.failures]

    @property
    def rounding_noise(self) -> bool:
        """float32 failures that the float64 rerun shows to be rounding: it passes, or each comparison
        it still fails is at least 1/SHRINK times closer than in float32 (rounding error scales
        with the precision, eps64/eps32 = 2**-29; a difference in meaning stays the same size).
        Adam on a gradient that is 0 in exact arithmetic (a bias just before a BatchNorm) divides
        the rounding noise of the gradient by sqrt(v) + eps: the update is lr * noise / (|noise| +
        eps), up to lr, in float32 and ~lr * 1e-7 in float64 -- outside both tolerances, shrinking
        by ~1e7."""
        if not self.numeric_failures or self.float64 is None:
            return False
        if not self.float64.numeric_failures:
            return True
        float32 = {(s.step, c.name): c.max_abs_err for s in self.steps for c in s.comparisons}
        return all(c.max_abs_err <= SHRINK * float32.get((step, c.name), 0.0)
                   for step, c in self.float64.numeric_failures)

    @property
    def status(self) -> str:
        if not self.numeric_failures:
            return PASS
        return ROUNDING if self.rounding_noise else MISMATCH

    @property
    def first_divergence(self) -> tuple[int, TrainComparison] | None:
        """The earliest (step, comparison) out of tolerance: from the float64 rerun when it ran
        and failed too (float32 may show rounding first), else from this run."""
        if self.rounding_noise:
            return None
        source = self.float64 if self.float64 is not None and self.float64.numeric_failures else self
        failures = source.numeric_failures
        return failures[0] if failures else None

    def worst(self) -> TrainComparison | None:
        """The comparison of any step using the largest fraction of its tolerance."""
        found = [c for s in self.steps for c in s.comparisons]
        return max(found, key=_used, default=None)

    @property
    def torch_losses(self) -> list[float]:
        return [s.torch_loss for s in self.steps]

    @property
    def converted_losses(self) -> list[float]:
        return [s.converted_loss for s in self.steps]

    def summary(self) -> str:
        n = sum(len(s.comparisons) for s in self.steps)
        if self.status == PASS:
            return f"PASS: {len(self.steps)} steps, {n} comparisons within tolerance ({self.dtype})"
        if self.status == ROUNDING:
            worst32, worst64 = self.worst(), self.float64.worst()
            figures = ""
            if worst32 is not None and worst64 is not None:
                figures = (f" (worst float32: {worst32.describe()}; the same in float64: "
                           f"{_figure(self.float64, worst32.name, worst32.kind)})")
            agree = ("all float64 comparisons agree" if not self.float64.numeric_failures else
                     f"in float64 every difference is at least {1 / SHRINK:.0e} times smaller (it scales with the "
                     "precision)")
            return (f"PASS (float32 rounding noise): {len(self.numeric_failures)} float32 comparisons out of "
                    f"tolerance, {agree}{figures}")
        first = self.first_divergence
        where = "" if first is None else f"; first divergence at step {first[0]}: {first[1].describe()}"
        rerun = ""
        if self.float64 is not None:
            rerun = " (float64 rerun differs too)"
        elif self.float64_error:
            rerun = f" (float64 rerun could not run: {self.float64_error})"
        return f"FAIL: {len(self.numeric_failures)} comparisons out of tolerance{rerun}{where}"

    def to_dict(self) -> dict:
        first = self.first_divergence
        return {
            "passed": self.passed,
            "status": self.status,
            "model": self.model,
            "setup": self.setup,
            "optimizer": self.optimizer,
            "original": self.original,
            "converted": self.converted,
            "dtype": self.dtype,
            "seed": self.seed,
            "perturbed": self.perturbed,
            "batch": list(self.batch),
            "dropout_disabled": {"torch": self.dropout[0], "converted": self.dropout[1]},
            "notes": list(self.notes),
            "tolerances": dict(self.tolerances),
            "losses": {"torch": [_json_float(v) for v in self.torch_losses],
                       "converted": [_json_float(v) for v in self.converted_losses]},
            "first_divergence": None if first is None else {"step": first[0], **first[1].to_dict()},
            "steps": [s.to_dict() for s in self.steps],
            "float64_check": None if self.float64 is None and self.float64_error is None else {
                "passed": self.float64 is not None and not self.float64.numeric_failures,
                "error": self.float64_error,
                "losses": None if self.float64 is None else {
                    "torch": [_json_float(v) for v in self.float64.torch_losses],
                    "converted": [_json_float(v) for v in self.float64.converted_losses]},
                "steps": [] if self.float64 is None else [s.to_dict() for s in self.float64.steps],
            },
            "plot": self.plot,
            "plot_error": self.plot_error,
            "program": self.program,
        }


def _used(c: TrainComparison) -> float:
    return c.max_abs_err / c.allowed if c.allowed > 0 else (0.0 if c.max_abs_err == 0 else math.inf)


def _figure(report: TrainReport, name: str, kind: str) -> str:
    """`name`'s worst comparison over the steps of `report`, as 'max abs err E <= allowed A'."""
    found = [c for s in report.steps for c in s.comparisons if c.name == name and c.kind == kind]
    c = max(found, key=_used, default=None)
    if c is None:
        return "not compared"
    return f"max abs err {c.max_abs_err:.3g} {'<=' if c.passed else '>'} allowed {c.allowed:.3g}"


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def compare(name: str, kind: str, actual, expected, atol: float, rtol: float) -> TrainComparison:
    """One training comparison: the difference against atol + rtol * the values' scale."""
    import numpy as np

    from .compare import errors

    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        if a.size == e.size == 1:
            a, e = a.reshape(()), e.reshape(())
        else:
            raise VerifyError(f"{name}: shape differs: torch {tuple(e.shape)}, converted {tuple(a.shape)}")
    max_abs, rel, scale = errors(a, e)
    allowed = atol + rtol * scale
    return TrainComparison(name, kind, tuple(e.shape), max_abs, rel, allowed, bool(max_abs <= allowed))


def tolerance_table(atol: float, rtol: float, grad_atol: float, grad_rtol: float) -> dict:
    """The tolerances a training report states, with the rule they are applied by."""
    return {"atol": atol, "rtol": rtol, "grad_atol": grad_atol, "grad_rtol": grad_rtol,
            "rule": "max_abs_err <= atol + rtol * max|torch value| (gradients and updates: grad_atol, "
                    "grad_rtol; updates also + 4 * eps * max|torch parameter|)"}
