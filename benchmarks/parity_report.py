"""Measure verify's parity errors on every fixture (float32 and float64) and print a table.

    python benchmarks/parity_report.py

Reads the fixtures and their models from [tool.pt2jax.verify] in pyproject.toml.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from pt2jax_migrate.verify import run_verify

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    entries = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pt2jax"]["verify"]
    print(f"{'fixture':<36} {'dtype':<8} {'out max abs':>12} {'out max rel':>12} {'grad max abs':>13} {'grad max rel':>13}  result")
    failed = False
    for key, entry in sorted(entries.items()):
        original = ROOT / key
        converted = original.with_name(original.name.replace(".in.py", ".out.py"))
        for dtype in ("float32", "float64"):
            report = run_verify(str(original), str(converted), model=entry["model"], init=entry.get("init", ""),
                                inputs=entry["inputs"], dtype=dtype)
            outs = [c for c in report.comparisons if c.kind == "output"]
            grads = [c for c in report.comparisons if c.kind == "gradient"]
            worst = lambda cs, attr: max((getattr(c, attr) for c in cs), default=0.0)  # noqa: E731
            print(f"{original.name:<36} {dtype:<8} {worst(outs, 'max_abs_err'):>12.2e} {worst(outs, 'max_rel_err'):>12.2e} "
                  f"{worst(grads, 'max_abs_err'):>13.2e} {worst(grads, 'max_rel_err'):>13.2e}  "
                  f"{'pass' if report.passed else 'FAIL'} ({len(grads)} gradients)")
            failed |= not report.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
