"""api: lint_paths / rewrite_paths return plain data; --out safety is decided before anything is written."""

from __future__ import annotations

import os

import pytest

from pt2jax_migrate import api
from pt2jax_migrate.project import LintOptions

TORCH = "import torch\nx = torch.zeros(3)\n"
BROKEN = "import torch\nx = torch.zeros(\n"
PLAIN = "import json\n"


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "src"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "m.py").write_text(TORCH)
    (root / "plain.py").write_text(PLAIN)
    (root / "broken.py").write_text(BROKEN)
    return root


def test_rewrite_paths_reports_each_file_and_each_error(src):
    run = api.rewrite_paths([str(src), str(src / "missing.py")], write=False)
    assert sorted(os.path.relpath(f.path, src) for f in run.done) == [os.path.join("pkg", "m.py"), "plain.py"]
    assert [os.path.relpath(f.path, src) for f in run.changed] == [os.path.join("pkg", "m.py")]
    assert {e.path for e in run.errors} == {str(src / "broken.py"), str(src / "missing.py")}
    broken_error = next(e for e in run.errors if e.path == str(src / "broken.py"))
    assert broken_error.line in (2, 3)  # the line is named (where Python reports the unclosed call)
    assert [(f.path, f.code) for f in run.findings] == [(str(src / "pkg" / "m.py"), "PTJ104")]
    assert (src / "pkg" / "m.py").read_text() == TORCH  # write=False wrote nothing


def test_rewrite_paths_in_place_writes_only_what_changes(src):
    plain_mtime = os.stat(src / "plain.py").st_mtime_ns
    run = api.rewrite_paths([str(src)])
    assert [f.written for f in run.files if f.written] == [str(src / "pkg" / "m.py")]
    assert "jnp.zeros" in (src / "pkg" / "m.py").read_text()
    assert os.stat(src / "plain.py").st_mtime_ns == plain_mtime
    assert (src / "broken.py").read_text() == BROKEN


def test_rewrite_paths_out_keeps_the_layout(src, tmp_path):
    run = api.rewrite_paths([str(src)], out=str(tmp_path / "o"))
    assert sorted(os.path.relpath(f.written, tmp_path / "o") for f in run.files if f.written) == [
        os.path.join("pkg", "m.py"), "plain.py"]
    assert (src / "pkg" / "m.py").read_text() == TORCH


def test_two_inputs_on_one_output_path_are_refused_before_writing(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.py").write_text(TORCH)
    a, b = str(tmp_path / "a" / "model.py"), str(tmp_path / "b" / "model.py")
    with pytest.raises(api.RewriteRefused) as info:
        api.rewrite_paths([a, b], out=str(tmp_path / "o"))
    assert a in str(info.value) and b in str(info.value)
    assert not (tmp_path / "o").exists()
    # their common folder keeps them apart
    run = api.rewrite_paths([str(tmp_path)], out=str(tmp_path.parent / (tmp_path.name + "_out")))
    assert len([f for f in run.files if f.written]) == 2


@pytest.mark.parametrize("out", ["src", "src/pkg", "src/new"])
def test_out_inside_an_input_folder_is_refused(src, tmp_path, out):
    with pytest.raises(api.RewriteRefused, match="input folder"):
        api.rewrite_paths([str(src)], out=str(tmp_path / out))
    assert (src / "pkg" / "m.py").read_text() == TORCH and not (tmp_path / "src" / "new").exists()


def test_out_that_would_overwrite_an_input_file_is_refused(src):
    with pytest.raises(api.RewriteRefused, match="would overwrite the input"):
        api.rewrite_paths([str(src / "pkg" / "m.py")], out=str(src / "pkg"))
    assert (src / "pkg" / "m.py").read_text() == TORCH


def test_lint_paths_returns_files_findings_and_errors(src):
    run = api.lint_paths([str(src), str(src / "missing.py")], LintOptions.build())
    assert sorted(os.path.relpath(f.path, src) for f in run.files) == [os.path.join("pkg", "m.py"), "plain.py"]
    assert [f.code for f in run.findings] == ["PTJ001", "PTJ104"]
    assert {e.path for e in run.errors} == {str(src / "broken.py"), str(src / "missing.py")}
