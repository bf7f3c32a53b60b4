"""Files and messages through the command line: one walker for lint and rewrite, --out
safety, errors counted in the summary (never "No PyTorch constructs found" / "No changes
needed" over a missing or broken file), rewrite --quiet."""

from __future__ import annotations

import os
import subprocess
import sys

import pt2jax_migrate

TORCH = "import torch\nx = torch.zeros(3)\n"
BROKEN = "import torch\nx = torch.zeros(\n"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_rewrite_honours_exclude_and_gitignore_as_lint_does(run, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.pt2jax]\nexclude = ["legacy/"]\n')
    (tmp_path / ".gitignore").write_text("generated.py\n")
    for name in ("src/model.py", "src/legacy/old.py", "src/generated.py"):
        write(tmp_path / name, TORCH)
    lint = run("lint", "src")
    rewrite = run("rewrite", "src")
    assert rewrite.exit_code == 0, rewrite.output
    linted = {line.split(":")[0] for line in lint.stdout.splitlines() if " PTJ" in line}
    assert linted == {os.path.join("src", "model.py")}
    assert rewrite.stdout.splitlines()[-1].startswith("Rewrote 1 file")
    assert "jnp.zeros" in (tmp_path / "src" / "model.py").read_text()
    assert (tmp_path / "src" / "legacy" / "old.py").read_text() == TORCH
    assert (tmp_path / "src" / "generated.py").read_text() == TORCH
    # --exclude on the command line, for both
    assert run("rewrite", "--check", "--exclude", "model.py", "src").stdout == "No changes needed in 0 files.\n"
    assert run("lint", "--exclude", "model.py", "src").stdout == "No PyTorch constructs found.\n"


def test_out_collision_names_both_inputs_and_writes_nothing(run, tmp_path):
    write(tmp_path / "a" / "model.py", TORCH)
    write(tmp_path / "b" / "model.py", TORCH)
    result = run("rewrite", "--out", "o", "a/model.py", "b/model.py")
    assert result.exit_code == 2
    assert os.path.join("a", "model.py") in result.output and os.path.join("b", "model.py") in result.output
    assert "would both be written to" in result.output
    assert not (tmp_path / "o").exists()


def test_out_inside_or_equal_to_an_input_folder_is_refused(run, tmp_path):
    write(tmp_path / "src" / "m.py", TORCH)
    for out in ("src", "src/jax"):
        result = run("rewrite", "--out", out, "src")
        assert result.exit_code == 2
        assert f"--out {out} is" in result.output and "input folder src" in result.output
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["m.py"]
    assert (tmp_path / "src" / "m.py").read_text() == TORCH


def test_missing_path_is_named_and_counted_by_lint_and_rewrite(run, tmp_path):
    lint = run("lint", "nope.py")
    assert lint.exit_code == 2
    assert "nope.py: no such file or directory" in lint.stderr
    assert "No PyTorch constructs found" not in lint.output
    assert lint.stdout.startswith("1 file could not be linted (see the errors)")
    for args in (("--check",), ()):
        rewrite = run("rewrite", *args, "nope.py")
        assert rewrite.exit_code == 2
        assert "nope.py: no such file or directory" in rewrite.stderr
        assert "No changes needed" not in rewrite.output
        assert rewrite.stdout == "No file converted: 1 file could not be converted (see the errors).\n"


def test_syntax_error_is_named_then_counted_in_the_summary(run, tmp_path):
    write(tmp_path / "bad.py", BROKEN)
    write(tmp_path / "plain.py", "import json\n")
    lint = run("lint", "bad.py", "plain.py")
    assert lint.exit_code == 2
    error_line = next(line for line in lint.stderr.splitlines() if line.startswith("bad.py:"))
    assert error_line.split(":")[1].isdigit()  # file:line
    assert "No PyTorch constructs found" not in lint.output
    assert lint.stdout == "1 file could not be linted (see the errors); no findings in the files that could be read.\n"
    rewrite = run("rewrite", "--check", "bad.py", "plain.py")
    assert rewrite.exit_code == 2 and error_line.split(" ")[0] in rewrite.stderr
    assert "No changes needed" not in rewrite.output
    assert rewrite.stdout == ("No changes in the 1 file converted; 1 file could not be converted "
                              "(see the errors).\n")
    # with findings elsewhere, the error count is added to the usual summary
    write(tmp_path / "m.py", TORCH)
    both = run("lint", "bad.py", "m.py")
    assert both.stdout.splitlines()[-1] == ("Found 2 findings in 1 file: 2 safe fixes, 0 unsafe fixes, 0 for a "
                                            "person; 1 file could not be linted (see the errors).")
    fixed = run("rewrite", "bad.py", "m.py")
    assert fixed.exit_code == 2 and fixed.stdout.splitlines()[-1] == (
        "Rewrote 1 file (1 change, 0 TODOs left for a person); 0 unchanged; 1 file could not be converted "
        "(see the errors).")
    assert (tmp_path / "bad.py").read_text() == BROKEN


def test_rewrite_quiet_prints_only_errors_and_the_summary(run, tmp_path):
    write(tmp_path / "m.py", TORCH)
    write(tmp_path / "bad.py", BROKEN)
    loud = run("rewrite", "--check", "m.py", "bad.py")
    quiet = run("rewrite", "--check", "--quiet", "m.py", "bad.py")
    assert "m.py:2:5 PTJ104" in loud.stdout
    assert quiet.exit_code == loud.exit_code == 2
    assert quiet.stdout.splitlines() == [loud.stdout.splitlines()[-1]]
    assert quiet.stderr == loud.stderr and quiet.stderr.startswith("bad.py:")
    clean = run("rewrite", "-q", "m.py")
    assert clean.exit_code == 0 and clean.stdout.splitlines() == [
        "Rewrote 1 file (1 change, 0 TODOs left for a person); 0 unchanged."]


def test_on_a_terminal_the_error_comes_before_the_summary_that_counts_it(tmp_path):
    write(tmp_path / "bad.py", BROKEN)
    write(tmp_path / "m.py", TORCH)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(pt2jax_migrate.__file__)))
    env = {**os.environ, "PYTHONPATH": package_root, "NO_COLOR": "1", "PT2JAX_CACHE_DIR": str(tmp_path / ".c")}
    for command in ("lint", "rewrite"):
        # -u: unbuffered, as a terminal shows the two streams in the order they are written
        proc = subprocess.run([sys.executable, "-u", "-m", "pt2jax_migrate.cli", command, "bad.py", "m.py"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = proc.stdout.splitlines()
        assert proc.returncode == 2
        error = next(i for i, line in enumerate(lines) if line.startswith("bad.py:2:"))
        assert error < len(lines) - 1 and "1 file could not be" in lines[-1], lines
