"""benchmarks/bench_speed.py runs and prints its table (a smoke test on two fixtures: the
numbers themselves are the script's business, not the suite's)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_speed  # noqa: E402  (as test_bench_models imports bench_models)


def test_prints_every_row_with_its_ratio(capsys):
    files = [str(ROOT / "fixtures" / "cnn_classifier.in.py"), str(ROOT / "fixtures" / "mlp_classifier.in.py")]
    assert bench_speed.main([*files, "--jobs", "1", "--no-torchfix"]) == 0
    out = capsys.readouterr().out
    lines = sum(Path(f).read_text(encoding="utf-8").count("\n") + 1 for f in files)
    assert out.startswith(f"2 files, {lines} lines")
    for row, ratio in [("ast.parse + ast.walk (lint's floor)", ""), ("lint -j1 ", "x ast.parse+walk"),
                       ("lint -j1, warm cache (tree unchanged)", "x ast.parse+walk"),
                       ("rewrite -j1 ", "x libcst.parse_module")]:
        line = next(line for line in out.splitlines() if line.startswith(row))
        assert ratio in line
    assert "warm / cold lint (wall):" in out
    assert "lint -j1 / ast.parse+walk (CPU), median of 5 back-to-back pairs: " in out


def test_the_machine_ceiling_times_copies_of_the_floor():
    """The -jN ceiling row: N copies of the lint floor at once against one alone (a ratio of
    wall times, so only its range is the suite's business)."""
    bench_speed._SOURCES[:] = [(ROOT / "fixtures" / "cnn_classifier.in.py").read_text(encoding="utf-8")] * 40
    try:
        assert 0.3 < bench_speed.ceiling(2, 1) < 2.6
    finally:
        bench_speed._SOURCES.clear()
