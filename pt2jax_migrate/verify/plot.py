"""The two loss curves of `verify --train` as a PNG (matplotlib, the `verify` extra).

matplotlib is imported here only, when a plot is written, and drawn through its Agg canvas
(`Figure` + `FigureCanvasAgg`) rather than pyplot: no display is needed and the process-wide
pyplot backend is left alone.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from .report import VerifyError

PLOT_SUFFIX = ".train-loss.png"


def plot_path(converted: str, plot: str | None) -> Path:
    """Where the PNG goes: `plot` itself, or inside it when it is a folder (an existing one, or a
    path ending in a separator); by default beside the converted file,
    `<converted stem>.train-loss.png`."""
    name = Path(converted).stem + PLOT_SUFFIX
    if not plot:
        return Path(converted).with_name(name)
    path = Path(plot)
    if path.is_dir() or plot.endswith(("/", "\\")):
        return path / name
    return path


def write_loss_plot(report, path: str | Path) -> int:
    """Draw the torch and converted losses per step into `path`; returns the number of curves.
    Raises VerifyError when matplotlib is missing or the file cannot be written."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise VerifyError(f"writing the loss plot needs matplotlib (pip install 'pt2jax[verify]'): {exc}") from exc

    steps = [s.step for s in report.steps]
    fig = Figure(figsize=(6.4, 5.2), dpi=100)
    FigureCanvasAgg(fig)
    ax, gap_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot(steps, report.torch_losses, "o-", color="tab:red", linewidth=2.5,
            label=f"PyTorch ({Path(report.original).name})")
    ax.plot(steps, report.converted_losses, "x--", color="tab:blue", linewidth=1.5, markersize=9,
            label=f"converted ({Path(report.converted).name})")
    gap = max((abs(a - b) for a, b in zip(report.torch_losses, report.converted_losses)), default=0.0)
    title = f"verify --train {report.model}: {report.status}, max |loss difference| {gap:.2g}"
    first = report.first_divergence
    if first is not None:
        title += f"\nfirst divergence: step {first[0]}, {first[1].name}"
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(f"loss ({report.dtype})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    # the difference on its own scale: curves 1e-7 apart look identical above
    gaps = [abs(a - b) for a, b in zip(report.torch_losses, report.converted_losses)]
    gap_ax.bar(steps, gaps, color="tab:gray")
    gap_ax.set_ylabel("|difference|")
    gap_ax.set_xlabel("optimizer step")
    gap_ax.set_xticks(steps)
    gap_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    gap_ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(path)
    try:  # written whole or not at all
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(buffer.getvalue())
        os.replace(partial, path)
    except OSError as exc:
        raise VerifyError(f"{path}: cannot write the loss plot: {exc}") from exc
    return len(ax.get_lines())
