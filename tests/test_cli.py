"""The pt2jax command line, driven through click's runner (and one real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pt2jax_migrate.rules import load_rules

MLP = '''import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return torch.relu(self.fc(x))
'''

PARTIAL = '''import torch


def spectrum(x):
    return torch.fft.rfft(x)
'''

PLAIN = "import json\r\n\r\nprint(json.dumps({'a': 1}))\r\n"


@pytest.fixture
def project(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mlp.py").write_text(MLP)
    (src / "partial.py").write_text(PARTIAL)
    (src / "plain.py").write_bytes(PLAIN.encode())
    return src


# ------------------------------------------------------------------------- lint


def test_lint_exit_codes_and_text_format(run, project):
    clean = run("lint", project / "plain.py")
    assert clean.exit_code == 0
    assert clean.stdout == "No PyTorch constructs found.\n"

    found = run("lint", project)
    assert found.exit_code == 1
    lines = found.stdout.splitlines()
    assert f"{project / 'pkg' / 'mlp.py'}:8:19 PTJ102 torch.nn.Linear layer construction [fixable]" in lines
    assert f"{project / 'partial.py'}:5:12 PTJ901 torch.fft.rfft has no automatic conversion; port it by hand" in lines
    assert lines[-1] == "Found 7 findings in 2 files: 5 safe fixes, 0 unsafe fixes, 1 for a person, 1 note."
    assert "\x1b[" not in found.stdout  # no colour when not on a terminal


def test_lint_json(run, project):
    result = run("lint", "--format", "json", project / "pkg" / "mlp.py")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert {d["code"] for d in data} == {"PTJ001", "PTJ101", "PTJ102", "PTJ103"}
    first = data[0]
    assert set(first) == {"path", "line", "col", "code", "message", "fixable", "severity", "fix"}
    assert first["line"] == 1 and first["col"] == 1 and first["fixable"] is True


def test_lint_errors_exit_2_and_other_files_are_still_linted(run, project, tmp_path):
    (tmp_path / "broken.py").write_text("import torch\n\ndef f(:\n    pass\n")
    (tmp_path / "latin1.py").write_bytes(b"import torch\nx = 'caf\xe9'\n")
    result = run("lint", tmp_path / "broken.py", tmp_path / "latin1.py", tmp_path / "missing.py", project / "partial.py")
    assert result.exit_code == 2
    assert f"{tmp_path / 'broken.py'}:3: syntax error" in result.stderr
    assert f"{tmp_path / 'latin1.py'}:2: not valid UTF-8" in result.stderr
    assert f"{tmp_path / 'missing.py'}: no such file or directory" in result.stderr
    assert "PTJ901" in result.stdout  # partial.py was linted all the same


def test_lint_usage_errors(run):
    assert run("lint").exit_code == 2
    assert run("lint", "--format", "xml", ".").exit_code == 2


def test_lint_cache_and_no_cache(run, project, tmp_path):
    first = run("lint", project)
    assert list((tmp_path / ".cache").glob("lint-*.pickle"))
    assert run("lint", project).stdout == first.stdout
    assert run("lint", "--no-cache", project).stdout == first.stdout


# ------------------------------------------------------------------------- rewrite


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rewrite_diff_prints_and_writes_nothing(run, project):
    before = snapshot(project)
    result = run("rewrite", "--diff", project)
    assert result.exit_code == 0
    assert f"--- {project / 'pkg' / 'mlp.py'}\n+++ {project / 'pkg' / 'mlp.py'}\n" in result.stdout
    assert "-class MLP(nn.Module):" in result.stdout and "+class MLP(nnx.Module):" in result.stdout
    assert "2 files would be rewritten (6 changes, 1 TODO left for a person); 1 unchanged." in result.stdout
    assert snapshot(project) == before


def test_rewrite_diff_uses_git_prefixes_for_relative_paths(run, project, monkeypatch):
    monkeypatch.chdir(project)
    result = run("rewrite", "--diff", "--check", "partial.py")
    assert result.exit_code == 1
    assert result.stdout.startswith("--- a/partial.py\n+++ b/partial.py\n@@ ")
    assert "+    # TODO(pt2jax): PTJ901" in result.stdout


def test_rewrite_check(run, project):
    before = snapshot(project)
    result = run("rewrite", "--check", project)
    assert result.exit_code == 1
    assert "PTJ102" in result.stdout and "would be rewritten" in result.stdout
    assert snapshot(project) == before
    clean = run("rewrite", "--check", project / "plain.py")
    assert clean.exit_code == 0 and "No changes needed in 1 file." in clean.stdout


def test_rewrite_in_place_is_atomic_idempotent_and_leaves_torch_free_files_alone(run, project):
    plain_stat = os.stat(project / "plain.py")
    result = run("rewrite", project)
    assert result.exit_code == 0, result.stdout + result.stderr
    converted = (project / "pkg" / "mlp.py").read_text()
    assert "class MLP(nnx.Module):" in converted and "import torch\n" not in converted
    assert "TODO(pt2jax)" in (project / "partial.py").read_text()
    assert (project / "plain.py").read_bytes() == PLAIN.encode()
    assert os.stat(project / "plain.py").st_mtime_ns == plain_stat.st_mtime_ns
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{project / 'pkg' / 'mlp.py'}:") and " PTJ102 " in line for line in lines)
    assert lines[-1].startswith("Rewrote 2 files")
    assert not [p for p in project.rglob("*") if "tmp" in p.name]
    # running it again changes nothing
    before = snapshot(project)
    again = run("rewrite", "--check", project)
    assert "would be rewritten" not in again.stdout
    assert snapshot(project) == before


def test_rewrite_out_keeps_the_layout_and_never_touches_inputs(run, project, tmp_path):
    before = snapshot(project)
    result = run("rewrite", "--out", tmp_path / "jax_src", project)
    assert result.exit_code == 0, result.stderr
    out = snapshot(tmp_path / "jax_src")
    # pkg/mlp.py needs helpers: a folder rewrite imports them from one module beside it
    assert set(out) == {os.path.join("pkg", "mlp.py"), os.path.join("pkg", "_pt2jax_helpers.py"), "partial.py",
                        "plain.py"}
    assert b"nnx.Module" in out[os.path.join("pkg", "mlp.py")]
    assert b"\nfrom _pt2jax_helpers import " in out[os.path.join("pkg", "mlp.py")]
    assert out["plain.py"] == PLAIN.encode()
    assert snapshot(project) == before
    # a file argument lands at its own name
    single = run("rewrite", "--out", tmp_path / "one", project / "pkg" / "mlp.py")
    assert single.exit_code == 0 and (tmp_path / "one" / "mlp.py").is_file()


def test_rewrite_unparsable_file_exits_2_and_is_not_written(run, project, tmp_path):
    broken = project / "broken.py"
    broken.write_text("import torch\nx = torch.zeros(\n")
    result = run("rewrite", project)
    assert result.exit_code == 2
    assert f"{broken}:2:" in result.stderr
    assert broken.read_text() == "import torch\nx = torch.zeros(\n"
    assert "nnx.Module" in (project / "pkg" / "mlp.py").read_text()  # the others were converted


def test_rewrite_usage_errors(run, project, tmp_path):
    assert run("rewrite", "--out", tmp_path / "o", "--diff", project).exit_code == 2
    assert run("rewrite", "--model", "MLP", project).exit_code == 2
    assert run("rewrite", "--target", "haiku", project).exit_code == 2
    missing = run("rewrite", tmp_path / "nope.py")
    assert missing.exit_code == 2 and "nope.py: no such file or directory" in missing.stderr


# ------------------------------------------------------------------------- rules, help


def test_rules_lists_every_code(run):
    result = run("rules")
    assert result.exit_code == 0
    for code, rule in load_rules().lint_rules.items():
        assert code in result.stdout and rule.name in result.stdout


def test_rule_explains_one_code_in_fixed_sections(run):
    result = run("rule", "ptj102")
    assert result.exit_code == 0
    out = result.stdout
    positions = [out.index(title) for title in
                 ("What it detects", "Why it matters in JAX", "Example", "JAX equivalent", "Fix safety")]
    assert positions == sorted(positions)
    assert "nn.Conv2d(1, 8, 3, padding=1)" in out and "torch.nn.Linear" in out
    assert "safe (numerically identical)" in out and "unsafe" not in out
    # a code with unsafe constructs names them under "Fix safety"
    mixed = run("rule", "PTJ104").stdout
    safety = mixed[mixed.index("Fix safety"):mixed.index("Covers")]
    for name in ("torch.randn", "torch.rand", "torch.randint", "torch.tensor", "torch.long", "torch.int64"):
        assert name in safety
    assert "torch.zeros" not in safety
    unused = run("rule", "PTJ910")
    assert unused.exit_code == 0 and "unused-noqa" in unused.stdout
    unknown = run("rule", "PTJ999")
    assert unknown.exit_code == 2 and "unknown rule code" in unknown.stderr


def test_rule_docs_in_the_linen_form(run):
    """`pt2jax rule CODE --target linen` shows the rule's Linen form where it differs ([rule.linen]
    in rules/lint.toml), the shared text elsewhere; the default stays NNX's."""
    linen = run("rule", "PTJ101", "--target", "linen")
    assert linen.exit_code == 0
    equivalent = linen.stdout[linen.stdout.index("JAX equivalent"):linen.stdout.index("Fix safety")]
    assert "class Net(linen.Module):" in equivalent and "def setup(self)" in equivalent
    assert "nnx" not in linen.stdout and "class Net(nn.Module):" in linen.stdout  # the torch example as is
    default = run("rule", "PTJ101").stdout
    assert "class Net(nnx.Module):" in default and "linen" not in default
    assert run("rule", "PTJ302", "--target", "linen").stdout == run("rule", "PTJ302").stdout  # no Linen form
    for code, rule in load_rules().lint_rules.items():  # no Linen doc names the NNX API
        assert not any("nnx" in text for text in rule.doc("linen").values()), code
    assert run("rule", "PTJ101", "--target", "haiku").exit_code == 2


@pytest.mark.parametrize("command", [[], ["lint"], ["rewrite"], ["verify"], ["rules"], ["rule"]])
def test_help_has_examples(run, command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.stdout
    if command != ["rules"]:
        assert "Example" in result.stdout or "Typical session" in result.stdout


def test_console_script_runs_without_torch(tmp_path):
    script = Path(sys.executable).with_name("pt2jax")
    (tmp_path / "m.py").write_text(MLP)
    proc = subprocess.run([str(script), "lint", "--no-cache", str(tmp_path / "m.py")], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "PTJ101" in proc.stdout
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "pt2jax" in version.stdout


# ------------------------------------------------------------------------- verify (real torch + jax)

WRONG = '''import jax
from flax import nnx


class MLP(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.fc = nnx.Linear(6, 3, rngs=rngs)

    def __call__(self, x):
        return jax.nn.sigmoid(self.fc(x))
'''


def test_verify_command_pass_mismatch_and_error(run, tmp_path):
    original = tmp_path / "mlp.py"
    original.write_text(MLP)
    converted = tmp_path / "jax_mlp.py"
    assert run("rewrite", "--out", tmp_path / "out", original).exit_code == 0
    converted.write_text((tmp_path / "out" / "mlp.py").read_text())

    ok = run("verify", original, converted, "--model", "MLP", "--input", "float32[4,6]")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "PASS" in ok.stdout

    as_json = run("verify", original, converted, "--model", "MLP", "--input", "float32[4,6]", "--format", "json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["passed"] is True

    (tmp_path / "wrong.py").write_text(WRONG)
    bad = run("verify", original, tmp_path / "wrong.py", "--model", "MLP", "--input", "float32[4,6]")
    assert bad.exit_code == 1 and "FAIL" in bad.stdout

    error = run("verify", original, converted, "--model", "Nope", "--input", "float32[4,6]")
    assert error.exit_code == 2 and error.stderr.startswith("error: ")
    # an unknown --model names the file and lists the classes it does define
    assert f"{original}: no class or function named 'Nope'; classes in the file: MLP" in error.stderr


def test_rewrite_verify_uses_pyproject_entries(run, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pt2jax.verify]\n"models/mlp.py" = { model = "MLP", inputs = ["float32[4,6]"] }\n'
    )
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "mlp.py"
    model.write_text(MLP)
    result = run("rewrite", "--verify", model)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "verify " in result.stdout and "PASS" in result.stdout
    assert "nnx.Module" in model.read_text()

    # a rewrite whose result does not match is a failure (exit 1); here: --init the torch
    # model does not accept makes verify unable to run (exit 2)
    model.write_text(MLP)
    broken = run("rewrite", "--verify", "--model", "MLP", "--init", "7", "--input", "float32[4,6]", "--check", model)
    assert broken.exit_code == 2 and "verify could not run" in broken.stderr
    assert model.read_text() == MLP


# ------------------------------------------------------------------------- colour, jobs, config


def test_colour_only_when_asked(run, project):
    plain = run("lint", project / "pkg" / "mlp.py")
    coloured = run("lint", "--color", project / "pkg" / "mlp.py")
    assert "\x1b[" not in plain.stdout and "\x1b[" in coloured.stdout
    strip = __import__("re").compile(r"\x1b\[[0-9;]*m")
    assert strip.sub("", coloured.stdout) == plain.stdout


def test_parallel_lint_gives_the_same_answer(run, project, tmp_path):
    (tmp_path / "src" / "broken.py").write_text("import torch\nx = (\n")
    serial = run("lint", "--no-cache", project)
    parallel = run("lint", "--no-cache", "-j", "2", project)
    assert serial.exit_code == parallel.exit_code == 2
    assert serial.stdout == parallel.stdout and serial.stderr == parallel.stderr
    assert f"{project / 'broken.py'}:2: syntax error" in parallel.stderr


def test_config_is_found_above_the_paths_and_validated(tmp_path):
    from pt2jax_migrate.config import ConfigError, find_pyproject, load_config

    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.pt2jax.verify]\n'
        '"pkg/m.py" = { model = "Net", init = "4, 3", inputs = "float32[2,4]", atol = 1e-5, loss = "out.sum()" }\n'
    )
    nested = tmp_path / "pkg" / "deep"
    nested.mkdir(parents=True)
    (nested / "pyproject.toml").write_text('[project]\nname = "inner"\n')  # no [tool.pt2jax]: keep looking
    assert find_pyproject([nested]) == tmp_path / "pyproject.toml"
    config = load_config([tmp_path / "pkg" / "m.py"])
    assert config.root == tmp_path
    entry = config.verify_entry(tmp_path / "pkg" / "m.py")
    assert entry is not None and entry.kwargs() == {
        "model": "Net", "init": "4, 3", "inputs": ["float32[2,4]"], "atol": 1e-5, "rtol": None,
        "dtype": "float32", "perturb": True, "loss": "out.sum()", "seed": 0,
    }
    assert config.verify_entry(tmp_path / "other.py") is None

    (tmp_path / "pyproject.toml").write_text('[tool.pt2jax.verify]\n"m.py" = { inputs = ["float32[2]"] }\n')
    with pytest.raises(ConfigError, match="`model`"):
        load_config([tmp_path])
    (tmp_path / "pyproject.toml").write_text('[tool.pt2jax.verify]\n"m.py" = { model = "N", inputs = ["f"], tol = 1 }\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_config([tmp_path])


def test_rewrite_verify_reports_a_bad_config_as_a_usage_error(run, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.pt2jax.verify]\n"m.py" = "MLP"\n')
    (tmp_path / "m.py").write_text(MLP)
    result = run("rewrite", "--verify", tmp_path / "m.py")
    assert result.exit_code == 2 and "expected a table" in result.stderr
    assert (tmp_path / "m.py").read_text() == MLP
