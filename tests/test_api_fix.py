"""api.fix_paths / api.add_noqa / api.verify_rewritten called directly: files change on disk
(or stay byte for byte), and the returned data says what happened."""

from __future__ import annotations

import os

import pytest

from pt2jax_migrate import api
from pt2jax_migrate.project import LintOptions

# line 2 is a safe fix (PTJ104); line 3 is manual (PTJ301: seeding used as a value)
FIXABLE = "import torch\nx = torch.zeros(3)\ny = torch.manual_seed(0)\n"
# line 2's safe fix is suppressed: fixing line 3 would convert line 2 as well
SUPPRESSED = "import torch\nx = torch.zeros(3)  # noqa: PTJ104\nz = torch.ones(2)\n"
UNSAFE = "import torch\nx = torch.randn(3)\n"  # random sampling: an unsafe fix (changes numbers)
PLAIN = "import json\n"


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for name, text in (("fixable.py", FIXABLE), ("suppressed.py", SUPPRESSED), ("unsafe.py", UNSAFE),
                       ("plain.py", PLAIN)):
        (root / name).write_text(text)
    return root


def codes(findings, path):
    return [(f.line, f.code) for f in findings if f.path == str(path)]


def test_fix_writes_the_safe_fixes_and_relints_what_remains(src):
    run = api.fix_paths([str(src)])
    fixable = src / "fixable.py"
    text = fixable.read_text()
    assert "jnp.zeros((3,))" in text and "torch.zeros" not in text
    assert "y = torch.manual_seed(0)" in text  # the manual line is kept, with its TODO above it
    assert [f.path for f in run.changed] == [str(fixable)] and run.changed[0].written
    assert run.fixed == 1
    # what remains is the re-lint of the new text: the seeding (and its import), not the fixed zeros
    assert codes(run.remaining, fixable) == [(1, "PTJ001"), (5, "PTJ301")]  # below the added import and TODO
    assert run.remaining == run.report.findings
    assert (src / "unsafe.py").read_text() == UNSAFE  # unsafe fixes only when asked
    assert (src / "plain.py").read_text() == PLAIN
    assert run.note() == f"Fixed 1 finding in 1 file; {len(run.remaining)} remaining."


def test_a_suppressed_fixable_finding_skips_the_file_and_says_why(src):
    run = api.fix_paths([str(src)])
    assert (src / "suppressed.py").read_text() == SUPPRESSED
    [skipped] = run.skipped
    assert skipped.path == str(src / "suppressed.py") and skipped.diff is None
    assert skipped.skipped == ("1 fixable finding in it is suppressed or not selected, and the rewrite converts "
                               "whole files (first: line 2, PTJ104)")
    # the file's own findings are still reported (line 3's fixable zeros stay)
    assert (3, "PTJ104") in codes(run.remaining, src / "suppressed.py")


def test_fix_without_writing_returns_the_diffs_and_touches_nothing(src):
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    run = api.fix_paths([str(src)], write=False, unsafe=True)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    assert sorted(os.path.basename(f.path) for f in run.changed) == ["fixable.py", "unsafe.py"]
    assert not any(f.written for f in run.files)
    diff = next(f.diff for f in run.changed if f.path.endswith("unsafe.py"))
    assert f"--- {src / 'unsafe.py'}" in diff and "-x = torch.randn(3)\n" in diff
    assert any(line.startswith("+") and "jax.random" in line for line in diff.splitlines())
    # fixable.py's zeros, and unsafe.py's randn and its then-unused torch import
    assert run.fixed == 3 and run.note() == f"Would fix 3 findings in 2 files; {len(run.remaining)} would remain."


def test_unsafe_fixes_only_when_asked(src):
    safe = api.fix_paths([str(src / "unsafe.py")])
    assert safe.files == [] and safe.note() == f"Nothing to fix; {len(safe.remaining)} remaining."
    assert (src / "unsafe.py").read_text() == UNSAFE
    unsafe = api.fix_paths([str(src / "unsafe.py")], unsafe=True)
    assert [f.path for f in unsafe.changed] == [str(src / "unsafe.py")]
    assert "torch.randn" not in (src / "unsafe.py").read_text()


def test_fix_reuses_and_updates_a_given_report(src):
    options = LintOptions()
    report = api.lint_paths([str(src / "fixable.py")], options)
    assert (2, "PTJ104") in codes(report.findings, src / "fixable.py")
    run = api.fix_paths((), options, report=report)
    assert run.report is report and (2, "PTJ104") not in codes(report.findings, src / "fixable.py")
    assert "jnp.zeros" in (src / "fixable.py").read_text()


def test_add_noqa_writes_directives_so_the_next_lint_is_clean(src):
    report = api.lint_paths([str(src / "fixable.py"), str(src / "unsafe.py")])
    run = api.add_noqa(report)
    assert sorted(os.path.basename(p) for p in run.files) == ["fixable.py", "unsafe.py"]
    assert run.added == len({(f.path, f.line) for f in report.findings}) and run.skipped == [] and run.errors == []
    assert (src / "unsafe.py").read_text().splitlines()[1] == "x = torch.randn(3)  # noqa: PTJ104"
    again = api.lint_paths([str(src / "fixable.py"), str(src / "unsafe.py")])
    assert again.findings == [] and again.suppressed == len(report.findings)


def test_add_noqa_skips_a_line_it_cannot_mark(tmp_path):
    path = tmp_path / "doc.py"
    text = 'import torch\nx = torch.zeros(3) if """\n""" else 0\n'
    path.write_text(text)
    report = api.lint_paths([str(path)])
    run = api.add_noqa(report, [f for f in report.findings if f.line == 2])
    assert run.skipped == [(str(path), 2, "the line ends inside a multi-line string")]
    assert run.files == [] and run.added == 0 and path.read_text() == text


from tests.test_cli import MLP  # the same small model the CLI tests verify


def test_verify_rewritten_compares_each_changed_file_with_its_original(tmp_path):
    pytest.importorskip("torch")
    model = tmp_path / "mlp.py"
    model.write_text(MLP)
    (tmp_path / "plain.py").write_text(PLAIN)
    run = api.rewrite_paths([str(tmp_path)])  # in place: the original survives only in run's results
    assert "nnx.Module" in model.read_text()
    [outcome] = api.verify_rewritten(run, model="MLP", inputs=["float32[4,6]"])  # only the changed file
    assert outcome.path == str(model) and outcome.ran and outcome.passed and outcome.error is None
    assert outcome.report.model == "MLP"

    # not written (--check): the converted text is verified from memory
    model.write_text(MLP)
    dry = api.rewrite_paths([str(model)], write=False)
    [outcome] = api.verify_rewritten(dry, model="MLP", inputs=["float32[4,6]"])
    assert outcome.passed and model.read_text() == MLP

    # no settings: not verified; settings that cannot run: the error, naming the file
    [unset] = api.verify_rewritten(dry)
    assert unset.unset and not unset.ran
    [failed] = api.verify_rewritten(dry, model="Nope", inputs=["float32[4,6]"])
    assert not failed.ran and not failed.passed
    assert failed.error == f"{model}: no class or function named 'Nope'; classes in the file: MLP"


def test_verify_settings_come_from_the_config_with_tolerances_overridden(tmp_path):
    from pt2jax_migrate.config import load_config

    (tmp_path / "pyproject.toml").write_text('[tool.pt2jax.verify]\n"m.py" = { model = "MLP", inputs = ["float32[4,6]"] }\n')
    config = load_config([tmp_path])
    settings = api.verify_settings(config, str(tmp_path / "m.py"), atol=1e-3)
    assert settings is not None and settings["model"] == "MLP" and settings["atol"] == 1e-3 and settings["rtol"] is None
    assert api.verify_settings(config, str(tmp_path / "other.py")) is None
    assert api.verify_settings(config, str(tmp_path / "other.py"), model="Net", inputs=("float32[2]",)) == {
        "model": "Net", "init": "", "inputs": ["float32[2]"], "atol": None, "rtol": None}
