"""`verify --train` over every training program in fixtures/programs/, nothing named: each program
is rewritten (as `pt2jax rewrite X.py --out DIR` does), then the original and the converted file
are compared for K optimizer steps of their own loops (verify/trainprogram.py), in one process.
Prints a table: program, verdict, max |loss diff|, max |param diff| (over the compared steps), and
the max |param diff| of the float64 rerun when one ran (a float32 failure).

    PYTHONPATH=. python benchmarks/verify_train_programs.py [--steps 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "fixtures" / "programs"


def verdict(report) -> str:
    if report.status == report.PASS:
        return "PASS"
    if report.status == report.ROUNDING:
        return "PASS (float32 rounding noise)"
    return "FAIL"


def max_diffs(report) -> tuple[float, float]:
    loss = max((abs(s.torch_loss - s.converted_loss) for s in report.steps
                if math.isfinite(s.torch_loss) and math.isfinite(s.converted_loss)), default=math.nan)
    param = max((c.max_abs_err for s in report.steps for c in s.comparisons if c.kind == "parameter"),
                default=math.nan)
    return loss, param


def run_all(out: Path, steps: int = 3, names: list[str] | None = None) -> list[dict]:
    """Rewrite and verify each program; one row per program (`report` None when it could not run)."""
    from pt2jax_migrate.rewrite import rewrite_source
    from pt2jax_migrate.verify import VerifyError
    from pt2jax_migrate.verify.plot import plot_path, write_loss_plot
    from pt2jax_migrate.verify.train import run_train_verify

    rows = []
    for path in sorted(PROGRAMS.glob("*.py")):
        if names and path.stem not in names:
            continue
        converted = out / path.name
        converted.write_text(rewrite_source(path.read_text(), str(path)).new_source)
        row = {"program": path.stem, "original": str(path), "converted": str(converted), "report": None,
               "error": None, "plot": None}
        try:
            report = run_train_verify(str(path), str(converted), steps=steps)
            plot = plot_path(str(converted), None)
            write_loss_plot(report, plot)
            report.plot = row["plot"] = str(plot)
            row["report"] = report
        except VerifyError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'program':<34} {'verdict':<30} {'max loss diff':>13} {'max param diff':>14} {'float64 rerun':>13}"]
    for row in rows:
        report = row["report"]
        if report is None:
            lines.append(f"{row['program']:<34} {'CANNOT DRIVE':<30} {'-':>13} {'-':>14}  {row['error']}")
            continue
        loss, param = max_diffs(report)
        rerun = "-" if report.float64 is None else f"{max_diffs(report.float64)[1]:.2g}"
        lines.append(f"{row['program']:<34} {verdict(report):<30} {loss:>13.2g} {param:>14.2g} {rerun:>13}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for the converted files and PNGs [a temp folder]")
    parser.add_argument("programs", nargs="*", help="program names (stems); default all")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="pt2jax-verify-train-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = run_all(out, args.steps, args.programs)
    print(table(rows))
    for row in rows:
        if row["report"] is not None and row["report"].status != row["report"].PASS:
            print(f"\n{row['program']}: {row['report'].summary()}")
    print(f"\nconverted files and loss PNGs in {out}")
    return 0 if all(r["report"] is not None and r["report"].passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
