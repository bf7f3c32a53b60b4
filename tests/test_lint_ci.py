"""lint in CI: baselines, --statistics, --report, --fix/--diff/--unsafe-fixes, exit codes,
outputs (--format/--output-file/--output), progress bar, rewrite --report/--safe-only, help."""

from __future__ import annotations

import io
import json
import os
import re
import textwrap

import pytest

from pt2jax_migrate.cli import want_progress
from pt2jax_migrate.project import LintOptions, lint_project

MODEL = """import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return torch.fft.rfft(self.fc(x))
"""

SAFE_AND_UNSAFE = """import torch

x = torch.zeros(3)
noise = torch.randn(3)
"""


def finding_lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if re.match(r"^\S+:\d+:\d+ PTJ\d+ ", line)]


# ----------------------------------------------------------------------------- baseline


def test_baseline_survives_line_shifts_and_catches_new_findings(run, tmp_path):
    (tmp_path / "src").mkdir()
    model = tmp_path / "src" / "m.py"
    model.write_text(MODEL)
    wrote = run("lint", "src", "--write-baseline", "baseline.json")
    assert wrote.exit_code == 0
    assert "Wrote 5 findings to the baseline baseline.json." in wrote.stderr
    data = json.loads((tmp_path / "baseline.json").read_text())
    assert data["tool"] == "pt2jax" and data["version"] == 1
    rows = data["findings"]
    assert rows == sorted(rows, key=lambda r: (r["path"], r["code"], r["line"], r["occurrence"]))
    assert {"path": "src/m.py", "code": "PTJ102", "line": "self.fc = nn.Linear(4, 3)", "occurrence": 0,
            "message": "torch.nn.Linear layer construction [fixable]"} in rows
    # stable: writing it again gives the same bytes
    before = (tmp_path / "baseline.json").read_bytes()
    run("lint", "src", "--write-baseline", "baseline.json")
    assert (tmp_path / "baseline.json").read_bytes() == before

    clean = run("lint", "src", "--baseline", "baseline.json")
    assert clean.exit_code == 0 and finding_lines(clean) == []
    assert clean.stdout == "No new PyTorch constructs; 5 known findings in the baseline.\n"
    assert "5 findings in the baseline baseline.json not shown." in clean.stderr

    # lines moved, indentation changed: still known
    model.write_text('"""Docstring."""\n\n\nif True:\n' + textwrap.indent(MODEL, "    "))
    assert run("lint", "src", "--baseline", "baseline.json").exit_code == 0

    # one more identical construct is new (the occurrence index), and so is an edited line
    model.write_text(MODEL.replace("        self.fc = nn.Linear(4, 3)\n",
                                   "        self.fc = nn.Linear(4, 3)\n        self.fc = nn.Linear(4, 3)\n"
                                   "        self.out = nn.Linear(3, 2)\n"))
    new = run("lint", "src", "--baseline", "baseline.json")
    assert new.exit_code == 1
    lines = finding_lines(new)
    assert [line.split()[0] for line in lines] == [f"{os.path.join('src', 'm.py')}:9:19", f"{os.path.join('src', 'm.py')}:10:20"]
    assert new.stdout.endswith("Found 2 new findings in 1 file: 2 safe fixes, 0 unsafe fixes, 0 for a person; 5 known findings in the baseline.\n")
    as_json = run("lint", "src", "--baseline", "baseline.json", "--format", "json")
    assert [(f["line"], f["code"]) for f in json.loads(as_json.stdout)] == [(9, "PTJ102"), (10, "PTJ102")]

    # re-recording with the old baseline in place records everything, not just the new ones
    assert run("lint", "src", "--baseline", "baseline.json", "--write-baseline", "b2.json").exit_code == 0
    assert len(json.loads((tmp_path / "b2.json").read_text())["findings"]) == 7

    # a fixed finding: reported as stale, not as a failure
    model.write_text(MODEL.replace("torch.fft.rfft(self.fc(x))", "self.fc(x)"))
    fixed = run("lint", "src", "--baseline", "baseline.json")
    assert fixed.exit_code == 0 and "1 baseline entry no longer occurs" in fixed.stderr


def test_baseline_paths_are_relative_to_the_baseline_file(run, tmp_path):
    (tmp_path / "ci").mkdir()
    (tmp_path / "m.py").write_text(MODEL)
    run("lint", "m.py", "--write-baseline", "ci/baseline.json")
    paths = {row["path"] for row in json.loads((tmp_path / "ci" / "baseline.json").read_text())["findings"]}
    assert paths == {"../m.py"}
    os.chdir(tmp_path / "ci")  # another working folder: the same findings match
    assert run("lint", tmp_path / "m.py", "--baseline", "baseline.json").exit_code == 0


def test_bad_baselines_are_usage_errors(run, tmp_path):
    (tmp_path / "m.py").write_text(MODEL)
    missing = run("lint", "m.py", "--baseline", "nope.json")
    assert missing.exit_code == 2 and "--write-baseline" in missing.stderr
    (tmp_path / "b.json").write_text("[]")
    assert "not a pt2jax baseline" in run("lint", "m.py", "--baseline", "b.json").stderr
    (tmp_path / "b.json").write_text('{"tool": "pt2jax", "version": 99, "findings": []}')
    assert "version" in run("lint", "m.py", "--baseline", "b.json").stderr


# ----------------------------------------------------------------------------- statistics, report


def project(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text(MODEL)  # 11 lines
    (tmp_path / "src" / "s.py").write_text(SAFE_AND_UNSAFE)  # 4 lines
    (tmp_path / "src" / "plain.py").write_text("import json\n" * 5)  # 5 lines, torch-free
    return tmp_path / "src"


def test_statistics_text_and_json(run, tmp_path):
    src = project(tmp_path)
    text = run("lint", "--statistics", src)
    assert text.exit_code == 1
    out = text.stdout
    assert re.search(r"^\s+1\s+1\s+PTJ102\s+layer-construction$", out, re.M)
    assert re.search(r"^\s+3\s+2\s+PTJ001\s+torch-import$", out, re.M)
    assert re.search(r"^\s+5\s+3\s+\S+m\.py$", out, re.M)
    assert "Findings: 8, 6 auto-fixable (75.0%: 4 safe, 2 unsafe), 1 for a person, 1 note." in out
    assert "Torch-free: 1 of 3 files (33.3%), 5 of 20 lines (25.0%)." in out
    assert "PTJ102 torch.nn.Linear" not in out  # counts instead of each finding

    data = json.loads(run("lint", "--statistics", "--format", "json", src).stdout)
    assert data["files"] == 3 and data["lines"] == 20 and data["torch_free_files"] == 1
    assert data["fixable"] == 6 and data["safe"] == 4 and data["unsafe"] == 2
    assert data["torch_free_line_share"] == 0.25
    by_code = {c["code"]: c for c in data["codes"]}
    assert by_code["PTJ104"] == {"code": "PTJ104", "name": "tensor-creation", "count": 2, "fixable": 2,
                                 "safe": 1, "unsafe": 1, "manual": 0}


def test_markdown_report(run, tmp_path):
    src = project(tmp_path)
    result = run("lint", src, "--report", "report.md")
    assert result.exit_code == 1 and finding_lines(result)  # the usual output as well
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# pt2jax migration report\n")
    assert "- **Files scanned:** 3 (20 lines)" in md
    assert "- **Torch-free:** 1 of 3 files (33.3%), 5 of 20 lines (25.0%)" in md
    assert "| [PTJ102](#ptj102) | layer-construction | 1 | 1 | 1 | 0 | 0 |" in md
    # what rewrite converts, per file
    assert f"| `{src / 's.py'}` | 3 | 2 | [PTJ001](#ptj001), [PTJ104](#ptj104) |" in md
    # the places that need a person
    manual = md[md.index("## Needs a person"):md.index("## Rules")]
    assert f"| `{src / 'm.py'}:11` | [PTJ901](#ptj901) | torch.fft.rfft has no automatic conversion; port it by hand |" in manual
    assert "PTJ102" not in manual
    # every code linked has its doc in the report, under a heading whose anchor is the code
    for code in set(re.findall(r"\(#(ptj\d+)\)", md)):
        assert f"\n### {code.upper()}\n" in md
    assert "**Why it matters in JAX:**" in md and "**JAX equivalent:**" in md


def test_markdown_reports_show_the_rules_in_the_targets_form(run, tmp_path):
    """Under --target linen the Rules section quotes each rule's Linen doc (no NNX code), as
    `pt2jax rule CODE --target linen` does."""
    model = tmp_path / "net.py"
    model.write_text("import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
                     "        super().__init__()\n        self.fc = nn.Linear(2, 2)\n\n"
                     "    def forward(self, x):\n        return self.fc(x)\n")
    commands = [["lint", model, "--report", "lint.md"], ["rewrite", "--check", "--report", "rw.md", model]]
    for target, present, absent in (("nnx", "class Net(nnx.Module):", "--target linen"),
                                     ("linen", "def setup(self)", "nnx")):
        for command in commands:
            assert run(*command, "--target", target).exit_code == 1
        for name in ("lint.md", "rw.md"):
            rules = (tmp_path / name).read_text().split("## Rules")[1]
            assert "### PTJ101" in rules and present in rules and absent not in rules, (target, name)
    assert "`pt2jax rule PTJ101 --target linen` prints this doc." in rules


def test_rewrite_report_and_safe_only(run, tmp_path):
    src = project(tmp_path)
    result = run("rewrite", "--check", "--report", "rewrite.md", src)
    assert result.exit_code == 1
    md = (tmp_path / "rewrite.md").read_text()
    assert md.startswith("# pt2jax rewrite report\n")
    assert "- **Files that would be rewritten:** 2" in md and "| [PTJ104](#ptj104) |" in md
    assert "\n### PTJ901\n" in md and f"`{src / 'm.py'}:11`" in md

    safe = run("rewrite", "--safe-only", src / "s.py")
    assert safe.exit_code == 0
    text = (src / "s.py").read_text()
    assert "jnp.zeros((3,))" in text and "torch.randn(3)" in text and "import torch\n" in text
    everything = run("rewrite", src / "s.py")
    assert "import torch" not in (src / "s.py").read_text() and everything.exit_code == 0


# ----------------------------------------------------------------------------- --fix, --diff


def test_fix_applies_safe_fixes_and_reports_what_remains(run, tmp_path):
    model = tmp_path / "s.py"
    model.write_text(SAFE_AND_UNSAFE)
    diff = run("lint", "--diff", model)
    assert diff.exit_code == 1
    assert "-x = torch.zeros(3)\n+x = jnp.zeros((3,))\n" in diff.stdout and "torch.randn" not in diff.stdout.split("@@")[-1].replace(" noise = torch.randn(3)", "")
    assert model.read_text() == SAFE_AND_UNSAFE
    assert "Would fix 1 finding in 1 file; 2 would remain." in diff.stderr

    fixed = run("lint", "--fix", model)
    assert fixed.exit_code == 1  # torch.randn (unsafe) and its import remain
    assert "jnp.zeros((3,))" in model.read_text() and "torch.randn(3)" in model.read_text()
    assert [line.split()[1] for line in finding_lines(fixed)] == ["PTJ001", "PTJ104"]
    assert "Fixed 1 finding in 1 file; 2 remaining." in fixed.stderr
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]

    unsafe = run("lint", "--fix", "--unsafe-fixes", model)
    assert unsafe.exit_code == 0 and "import torch" not in model.read_text()
    assert "jax.random.normal" in model.read_text()
    assert unsafe.stdout.endswith("No PyTorch constructs found.\n")

    assert run("lint", "--unsafe-fixes", model).exit_code == 2  # only with --fix/--diff


def test_fix_leaves_files_with_suppressed_fixable_findings_alone(run, tmp_path):
    model = tmp_path / "m.py"
    text = "import torch\nx = torch.zeros(3)  # noqa: PTJ104\ny = torch.ones(3)\n"
    model.write_text(text)
    result = run("lint", "--fix", model)
    assert result.exit_code == 1 and model.read_text() == text
    assert "not fixed" in result.stderr and "line 2, PTJ104" in result.stderr
    clean = tmp_path / "clean.py"
    clean.write_text("import torch\nx = torch.zeros(3)\n")
    assert run("lint", "--fix", clean).exit_code == 0
    assert clean.read_text() == "import jax.numpy as jnp\nx = jnp.zeros((3,))\n"


def test_exit_codes_and_exit_zero(run, tmp_path):
    (tmp_path / "m.py").write_text(MODEL)
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "bad.py").write_text("import torch\nx = (\n")
    assert run("lint", "ok.py").exit_code == 0
    assert run("lint", "m.py").exit_code == 1
    assert run("lint", "m.py", "--exit-zero").exit_code == 0
    assert run("lint", "m.py", "bad.py", "--exit-zero").exit_code == 2


# ----------------------------------------------------------------------------- outputs


def test_output_file_and_several_outputs(run, tmp_path):
    (tmp_path / "m.py").write_text(MODEL)
    to_file = run("lint", "--format", "json", "--output-file", "out.json", "m.py")
    assert to_file.exit_code == 1 and to_file.stdout == ""
    assert {f["code"] for f in json.loads((tmp_path / "out.json").read_text())} >= {"PTJ102", "PTJ901"}

    several = run("lint", "m.py", "--output", "sarif:r.sarif", "--output", "junit:j.xml", "--output-format", "text")
    assert several.exit_code == 1 and "m.py:8:19 PTJ102" in several.stdout
    sarif = json.loads((tmp_path / "r.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"PTJ102", "PTJ901"}
    assert "<testsuite" in (tmp_path / "j.xml").read_text()

    # an --output to stdout takes --format's place; two on stdout are a usage error
    github = run("lint", "m.py", "--output", "github")
    assert github.stdout.startswith("::notice ") and "::warning " in github.stdout and "PTJ102" in github.stdout
    assert run("lint", "m.py", "--format", "json", "--output", "github").exit_code == 2
    assert run("lint", "m.py", "--output", "xml:x.xml").exit_code == 2


# ----------------------------------------------------------------------------- progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_only_on_a_terminal_outside_ci_and_for_long_runs():
    tty, pipe = _Stream(True), _Stream(False)
    assert want_progress(tty, 5000, environ={})
    assert not want_progress(tty, 10, environ={})  # short run
    assert want_progress(tty, 10, option=True, environ={})
    assert not want_progress(pipe, 5000, environ={})  # a CI log or a pipe
    assert not want_progress(pipe, 5000, option=True, environ={})
    assert not want_progress(tty, 5000, environ={"CI": "true"})
    assert not want_progress(tty, 5000, environ={"CI": "1"})
    assert want_progress(tty, 5000, environ={"CI": "false"})
    assert not want_progress(tty, 5000, option=False, environ={})


def test_no_progress_output_when_not_a_terminal(run, tmp_path):
    for i in range(3):
        (tmp_path / f"m{i}.py").write_text(MODEL)
    result = run("lint", "--progress", ".")
    assert "linting" not in result.stderr and "\x1b[" not in result.stderr


def test_project_api_reports_progress(tmp_path):
    for i in range(4):
        (tmp_path / f"m{i}.py").write_text(MODEL if i % 2 else "x = 1\n")
    seen, total = [], []
    report = lint_project([str(tmp_path)], LintOptions(), progress=seen.append, on_total=total.append)
    assert total == [4] and sum(seen) == 4
    assert len(report.files) == 4 and sum(f.torch_free for f in report.files) == 2


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize("flag", [
    "--select", "--ignore", "--extend-select", "--exclude", "--respect-gitignore", "--config", "--stdin-filename",
    "--fix", "--unsafe-fixes", "--diff", "--add-noqa", "--baseline", "--write-baseline", "--statistics", "--report",
    "--exit-zero", "--format", "--output-format", "--output-file", "--output", "--progress", "--no-cache", "--jobs",
])
def test_every_lint_flag_is_documented_in_help_and_readme(run, flag):
    from pathlib import Path

    assert flag in run("lint", "--help").stdout
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Lint in CI"):]
    assert flag in section


def test_rewrite_help_lists_the_new_flags(run):
    out = run("rewrite", "--help").stdout
    assert "--safe-only" in out and "--report" in out
