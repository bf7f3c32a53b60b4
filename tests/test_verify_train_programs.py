"""`verify --train` with nothing named (the two file paths only) on every training program in
fixtures/programs/: each is rewritten, then its own set-up, loop and data are run on both sides
for 3 optimizer steps (verify/trainprogram.py). One test, one process, every program."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pt2jax_migrate.rewrite import rewrite_source
from pt2jax_migrate.verify import VerifyError, run_train_verify
from pt2jax_migrate.verify.plot import plot_path, write_loss_plot

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "fixtures" / "programs").glob("*.py"))
STEPS = 3

# Adam (or BatchNorm right after) on a bias whose gradient is ~0 in exact arithmetic: the update
# amplifies float32 rounding of the gradient; the float64 rerun shows it (fixtures/programs/README.md)
ROUNDING_NOISE = {"custom_init_weights", "checkpoint_resume"}
# the model is built inside main() (the `__main__` guard calls it): nothing at module level to give
# both sides the same weights; verify says so (with --model/--step it can be named)
CANNOT_DRIVE = {"data_parallel_ddp": "no model is built at module level before the training loop"}


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return False
    width, height = struct.unpack(">II", data[16:24])
    return width > 100 and height > 100 and data[-8:-4] == b"IEND"


@pytest.mark.corpus
def test_every_program_trains_like_its_conversion(tmp_path):
    assert len(PROGRAMS) >= 14
    verdicts = {}
    for path in PROGRAMS:
        converted = tmp_path / path.name
        converted.write_text(rewrite_source(path.read_text(), str(path)).new_source)
        if path.stem in CANNOT_DRIVE:
            with pytest.raises(VerifyError, match=CANNOT_DRIVE[path.stem]):
                run_train_verify(str(path), str(converted), steps=STEPS)
            continue
        try:
            report = run_train_verify(str(path), str(converted), steps=STEPS)
        except VerifyError as exc:  # pragma: no cover - the message is the failure
            pytest.fail(f"{path.name}: verify --train could not drive it: {exc}")
        verdicts[path.stem] = report.status
        assert report.passed, f"{path.name}: {report.summary()}"
        assert report.program and len(report.steps) == STEPS, path.name
        if path.stem in ROUNDING_NOISE and report.status == report.ROUNDING:
            # both figures: the float32 failure and the same comparison, far smaller, in float64
            assert report.float64 is not None and "the same in float64: max abs err" in report.summary()
        else:
            assert report.status == report.PASS, f"{path.name}: {report.summary()}"
        kinds = {c.kind for s in report.steps for c in s.comparisons}
        assert {"loss", "gradient", "parameter", "update"} <= kinds, path.name
        png = plot_path(str(converted), None)
        write_loss_plot(report, png)
        assert is_png(png), path.name

        if path.stem == "gan_two_optimizers":  # two optimizers, each step names the one it stepped
            assert [s.optimizer for s in report.steps] == ["opt_d", "opt_g", "opt_d"]
            assert any("G." in c.name for c in report.steps[1].comparisons if c.kind == "gradient")
            assert not any("G." in c.name for c in report.steps[0].comparisons if c.kind == "gradient")
        if path.stem == "grad_accumulation_logging":  # one step = 4 micro-batches, losses summed
            assert any("4 backward passes" in note for note in report.notes)
        if path.stem in ("cnn_bn_dropout_onecycle", "custom_init_weights", "checkpoint_resume"):
            assert "buffer" in kinds, path.name  # BatchNorm running statistics compared
    assert verdicts.keys() == {p.stem for p in PROGRAMS} - set(CANNOT_DRIVE)
