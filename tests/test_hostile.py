"""Odd and hostile input, each beside a good file, through the command line: one clear line
naming the bad file, exit 2, and the good file still done; encodings, BOMs and line endings
kept; writes that could lose files refused before anything is written."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import time

import pytest

GOOD = "import torch\n\nx = torch.zeros(3)\n"

MODULE_CRLF = (
    "import torch\r\n"
    "import torch.nn as nn\r\n"
    "\r\n"
    "\r\n"
    "class Net(nn.Module):\r\n"
    "    def __init__(self):\r\n"
    "        super().__init__()\r\n"
    "        self.fc = nn.Linear(2, 3)   \r\n"
    "\r\n"
    "    def forward(self, x):\r\n"
    "        seed = torch.manual_seed(0)\r\n"
    "        return torch.relu(self.fc(x))\r\n"
    "\r\n"
    "\r\n"
    "def moved(x):\r\n"
    "\treturn x.cuda()\t  \r\n"
)


def _good(folder):
    (folder / "good.py").write_text(GOOD)
    return folder / "good.py"


def _error_lines(result, name):
    return [line for line in result.output.splitlines() if name in line and ("error" in line or ": " in line)
            and "PTJ" not in line]


# ---------------------------------------------------------------- no input takes the run down


def test_deep_sum_and_long_chain_are_linted_with_the_other_files(run, tmp_path):
    (tmp_path / "deep_sum.py").write_text("import torch\nx = " + " + ".join(["torch.ones(1)"] * 1000) + "\n")
    (tmp_path / "chain.py").write_text("import torch\nx = torch.zeros(3)" + ".float()" * 500 + "\n")
    _good(tmp_path)
    result = run("lint", "--no-cache", "--exit-zero", "deep_sum.py", "chain.py", "good.py")
    assert result.exit_code == 0, result.output
    assert "RecursionError" not in result.output
    lines = result.output.splitlines()
    assert sum(line.startswith("deep_sum.py:2:") and "torch.ones" in line for line in lines) == 1000
    assert any(line.startswith("chain.py:2:") for line in lines)
    assert any(line.startswith("good.py:3:5 PTJ104") for line in lines)


def test_deep_sum_is_rewritten(run, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "deep_sum.py").write_text("import torch\nx = " + " + ".join(["torch.ones(1)"] * 400) + "\n")
    _good(tmp_path / "src")
    result = run("rewrite", "--out", "out", "src")
    assert result.exit_code == 0, result.output
    converted = (tmp_path / "out" / "deep_sum.py").read_text()
    assert converted.count("jnp.ones((1,))") == 400 and "torch" not in converted
    (tmp_path / "out" / "good.py").read_text()


def test_a_chain_too_deep_for_the_converted_form_is_one_error(run, tmp_path):
    (tmp_path / "chain.py").write_text("import torch\nx = torch.zeros(3)" + ".abs()" * 210 + "\n")
    _good(tmp_path)
    result = run("rewrite", "--out", "out", "chain.py", "good.py")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("chain.py:2:")]
    assert len(errors) == 1 and "too many nested parentheses" in errors[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "chain.py").exists()
    assert "jnp.zeros" in (tmp_path / "out" / "good.py").read_text()


@pytest.mark.parametrize("failure", [MemoryError, RecursionError, KeyError])
def test_any_failure_on_one_file_is_that_files_error_in_lint(run, tmp_path, monkeypatch, failure):
    import pt2jax_migrate.lint as lint_module

    real = lint_module.lint_source

    def breaks_on_bad(source, path="<string>", *args, **kwargs):
        if path.endswith("bad.py"):
            raise failure("boom")
        return real(source, path, *args, **kwargs)

    monkeypatch.setattr(lint_module, "lint_source", breaks_on_bad)
    (tmp_path / "bad.py").write_text(GOOD)
    _good(tmp_path)
    result = run("lint", "--no-cache", "--exit-zero", "-j", "1", "bad.py", "good.py")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("bad.py")]
    assert len(errors) == 1, result.output
    assert "good.py:3:5 PTJ104" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("failure", [MemoryError, RecursionError, ValueError])
def test_any_failure_on_one_file_is_that_files_error_in_rewrite(run, tmp_path, monkeypatch, failure):
    import pt2jax_migrate.rewrite as rewrite_package

    real = rewrite_package.rewrite_source

    def breaks_on_bad(source, path="<string>", **options):
        if path.endswith("bad.py"):
            raise failure("boom")
        return real(source, path, **options)

    monkeypatch.setattr(rewrite_package, "rewrite_source", breaks_on_bad)
    (tmp_path / "bad.py").write_text(GOOD)
    _good(tmp_path)
    result = run("rewrite", "-j", "1", "bad.py", "good.py")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("bad.py")]
    assert len(errors) == 1, result.output
    assert (tmp_path / "bad.py").read_text() == GOOD
    assert "jnp.zeros" in (tmp_path / "good.py").read_text()


# ------------------------------------------------------------------------------- encodings


def test_a_bom_is_read_and_written_back(run, tmp_path):
    bom = b"\xef\xbb\xbf" + GOOD.encode()
    (tmp_path / "bom.py").write_bytes(bom)
    linted = run("lint", "--no-cache", "bom.py")
    assert linted.exit_code == 1 and "bom.py:3:5 PTJ104" in linted.output, linted.output
    rewritten = run("rewrite", "bom.py")
    assert rewritten.exit_code == 0, rewritten.output
    data = (tmp_path / "bom.py").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\xef\xbb\xbf") == 1
    assert b"jnp.zeros((3,))" in data


def test_a_latin1_coding_cookie_is_read_and_written_back_in_latin1(run, tmp_path):
    source = "# -*- coding: latin-1 -*-\nimport torch\n\nname = 'café'\nx = torch.zeros(3)\n"
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    linted = run("lint", "--no-cache", "latin.py")
    assert linted.exit_code == 1 and "latin.py:5:5 PTJ104" in linted.output, linted.output
    rewritten = run("rewrite", "latin.py")
    assert rewritten.exit_code == 0, rewritten.output
    data = (tmp_path / "latin.py").read_bytes()
    assert b"'caf\xe9'" in data  # latin-1, not UTF-8's c3 a9
    assert b"jnp.zeros((3,))" in data
    assert data.decode("latin-1").startswith("# -*- coding: latin-1 -*-\n")


def test_crlf_tabs_and_trailing_whitespace_survive_a_rewrite(run, tmp_path):
    (tmp_path / "crlf.py").write_bytes(MODULE_CRLF.encode())
    result = run("rewrite", "crlf.py")
    assert result.exit_code == 0, result.output
    data = (tmp_path / "crlf.py").read_bytes()
    assert data != MODULE_CRLF.encode()
    assert b"def torch_bias_init" in data  # a helper with a multi-line docstring was added
    assert b"TODO(pt2jax)" in data
    lines = data.split(b"\n")
    assert all(line.endswith(b"\r") for line in lines[:-1]), [line for line in lines if not line.endswith(b"\r")]
    assert b"\treturn x\t  \r\n" in data
    assert b"rngs=rngs)   \r\n" in data
    assert run("rewrite", "crlf.py").exit_code == 0
    assert (tmp_path / "crlf.py").read_bytes() == data  # idempotent


# --------------------------------------------------------------------------------- writes


def test_two_inputs_with_one_output_path_are_refused_naming_both(run, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.py").write_text(GOOD)
    result = run("rewrite", "--out", "out", "a/model.py", "b/model.py")
    assert result.exit_code == 2
    assert "a/model.py" in result.output and "b/model.py" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", ["src", "src/sub", "."])
def test_out_overlapping_the_input_folder_is_refused(run, tmp_path, out):
    (tmp_path / "src").mkdir()
    _good(tmp_path / "src")
    result = run("rewrite", "--out", out, "src")
    assert result.exit_code == 2
    assert "--out" in result.output and "input" in result.output
    assert (tmp_path / "src" / "good.py").read_text() == GOOD
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["good.py"]


def test_stale_temp_files_of_an_interrupted_run_are_cleaned(run, tmp_path):
    _good(tmp_path)
    stale = tmp_path / ".good.py.k3j_x9a2.pt2jax-tmp"
    stale.write_text("half a file")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    young = tmp_path / ".good.py.zz81qq0a.pt2jax-tmp"  # another run writing right now: left alone
    young.write_text("being written")
    other = tmp_path / ".notes.tmp"  # not ours
    other.write_text("keep")
    result = run("rewrite", "good.py")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and young.exists() and other.exists()
    assert "removed a temp file" in result.output and stale.name in result.output


def test_a_file_over_the_size_limit_is_one_line_naming_the_limit(run, tmp_path):
    (tmp_path / "huge.py").write_text("import torch\n" + "x = torch.zeros(3)\n" * 200)
    _good(tmp_path)
    for command in (["lint", "--no-cache"], ["rewrite", "--out", "out"]):
        result = run(*command, "--max-file-size", "1k", "huge.py", "good.py")
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("huge.py")]
        assert len(errors) == 1 and "size limit of 0.001 MB" in errors[0], result.output
        assert "good.py" in result.output
    assert not (tmp_path / "out" / "huge.py").exists() and (tmp_path / "out" / "good.py").exists()
    # the limit is per run: the next run without the option uses the default again
    assert run("lint", "--no-cache", "huge.py").exit_code == 1


def test_a_folder_named_like_a_python_file_is_walked_not_read(run, tmp_path):
    (tmp_path / "src" / "pkg.py").mkdir(parents=True)
    (tmp_path / "src" / "pkg.py" / "inner.py").write_text(GOOD)
    _good(tmp_path / "src")
    linted = run("lint", "--no-cache", "src")
    assert linted.exit_code == 1, linted.output
    assert "src/pkg.py/inner.py:3:5 PTJ104" in linted.output
    rewritten = run("rewrite", "--out", "out", "src")
    assert rewritten.exit_code == 0, rewritten.output
    assert "jnp.zeros" in (tmp_path / "out" / "pkg.py" / "inner.py").read_text()


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_in_place_rewrite_refuses_uncommitted_and_untracked_files_unless_forced(run, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "clean.py").write_text(GOOD)
    (repo / "edited.py").write_text(GOOD)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "start")
    (repo / "edited.py").write_text(GOOD + "y = torch.ones(2)\n")
    (repo / "new.py").write_text(GOOD)
    (repo / "plain.py").write_text("print(1)\n")  # untracked but unchanged by the rewrite: no reason to refuse
    (repo / "staged.py").write_text(GOOD)  # staged, unchanged since: `git diff` shows the rewrite exactly
    _git(repo, "add", "staged.py")

    refused = run("rewrite", "repo")
    assert refused.exit_code == 2
    assert "repo/edited.py" in refused.output and "repo/new.py" in refused.output
    named = refused.output.split("git:")[-1].split(";")[0]
    assert "clean.py" not in named and "staged.py" not in named and "plain.py" not in named
    assert "--force" in refused.output
    assert (repo / "clean.py").read_text() == GOOD  # nothing written

    only_clean = run("rewrite", "repo/clean.py", "repo/staged.py")
    assert only_clean.exit_code == 0, only_clean.output
    assert "jnp.zeros" in (repo / "clean.py").read_text() and "jnp.zeros" in (repo / "staged.py").read_text()

    forced = run("rewrite", "--force", "repo")
    assert forced.exit_code == 0, forced.output
    assert "jnp.ones" in (repo / "edited.py").read_text() and "jnp.zeros" in (repo / "new.py").read_text()
    assert run("rewrite", "--check", "repo").exit_code == 0  # --check writes nothing: never refused


# ----------------------------------------------------------------------------------- -j N


def test_jobs_give_the_same_output_in_the_same_order(run, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for index in range(6):
        (src / f"m{index}.py").write_text(GOOD + f"y{index} = torch.ones({index + 1})\n")
    (src / "broken.py").write_text("import torch\nx = (\n")
    lint_one = run("lint", "--no-cache", "-j", "1", "src")
    lint_two = run("lint", "--no-cache", "-j", "2", "src")
    assert lint_one.exit_code == lint_two.exit_code == 2
    assert lint_one.output == lint_two.output
    one = run("rewrite", "-j", "1", "--out", "out_a", "src")
    two = run("rewrite", "-j", "2", "--out", "out_b", "src")
    assert one.exit_code == two.exit_code == 2
    assert one.output.replace("out_a", "out_b") == two.output
    for index in range(6):
        converted = (tmp_path / "out_b" / f"m{index}.py").read_text()
        assert converted == (tmp_path / "out_a" / f"m{index}.py").read_text()
        ast.parse(converted)
    assert not (tmp_path / "out_b" / "broken.py").exists()


def test_ctrl_c_during_a_parallel_rewrite_stops_cleanly_having_written_nothing(tmp_path):
    import signal
    import sys

    src = tmp_path / "src"
    src.mkdir()
    for index in range(400):
        (src / f"m{index:03}.py").write_bytes(MODULE_CRLF.encode())
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen([sys.executable, "-m", "pt2jax_migrate.cli", "rewrite", "-j", "2", "--out", "out", "src"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    workers: list[str] = []
    while time.time() < deadline and not workers:  # wait until the pool is at work (-j2: one worker and this)
        time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert b"Interrupted: nothing was written." in err and b"Traceback" not in err
    assert not (tmp_path / "out").exists()
    time.sleep(1)
    assert not [pid for pid in workers if _running(pid)]


def _running(pid: str) -> bool:
    """A process (a pool worker, forked or spawned) still there and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
