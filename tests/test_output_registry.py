"""The output registry: every format renders every kind of data it declares, refuses the
others, and each command's --format offers exactly what the registry renders for it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import click
import pytest

from pt2jax_migrate import output
from pt2jax_migrate.cli import lint as lint_command
from pt2jax_migrate.cli import verify as verify_command
from pt2jax_migrate.model import Finding
from pt2jax_migrate.output import (FINDINGS, KINDS, LINT_REPORT, REGISTRY, REWRITE, STATISTICS, VERIFY,
                                   VERIFY_TRAIN, OutputContext, formats_for, render)
from pt2jax_migrate.output.results import LintSummary, RewriteResults
from pt2jax_migrate.output.statistics import compute
from pt2jax_migrate.project import LintOptions, lint_project
from pt2jax_migrate.verify.report import Comparison, VerifyReport

LINT_DATA = Path(__file__).parent / "data" / "lint"


def findings() -> list[Finding]:
    return [
        Finding("src/a.py", 3, 5, "PTJ102", "torch.nn.Linear layer construction [fixable]", True, "warning", "safe"),
        Finding("src/a.py", 4, 5, "PTJ104", "torch.randn tensor creation [fixable]", True, "warning", "unsafe"),
        Finding("src/a.py", 9, 1, "PTJ901", "torch.fft.rfft has no automatic conversion", False, "error", "manual"),
    ]


def verify_report(passed: bool) -> VerifyReport:
    comparisons = [Comparison("output", "output", (2, 3), 1e-7, 1e-7, True),
                   Comparison("grad fc.weight", "gradient", (3, 4), 0.5 if not passed else 1e-8, 0.1, passed)]
    return VerifyReport(passed, "MLP", "float32", 1e-5, 1e-4, 1e-6, 1e-4, comparisons,
                        original="m.py", converted="jax_m.py", transferred=2)


def sample(kind: str):
    if kind == FINDINGS:
        return findings()
    report = lint_project([str(LINT_DATA)], LintOptions(), cache=False)
    if kind == STATISTICS:
        return compute(report)
    if kind == LINT_REPORT:
        return LintSummary(compute(report), report.findings)
    if kind == REWRITE:
        return RewriteResults(files=2, lines=20, changed=["src/a.py"], findings=findings(), todo_markers=1)
    if kind == VERIFY:
        return verify_report(passed=False)
    if kind == VERIFY_TRAIN:
        from pt2jax_migrate.verify.train_report import TrainComparison, TrainReport, TrainStepResult

        step = TrainStepResult(1, 0.7, 0.71, [TrainComparison("loss", "loss", (), 0.01, 0.014, 1e-4, False)])
        return TrainReport(False, "MLP", "the script's step", "build_optimizer(model)", "m.py", "jax_m.py",
                           "float32", ["x=float32[2,4]"], [step])
    raise AssertionError(kind)


CASES = [(name, kind) for name, fmt in REGISTRY.items() for kind in KINDS if fmt.serves(kind)]


@pytest.mark.parametrize("name, kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_every_declared_format_renders_its_kind(name, kind):
    data = sample(kind)
    stream = io.StringIO()
    render(name, kind, data, stream, OutputContext(root="."))
    text = stream.getvalue()
    assert text.strip(), f"{name} rendered nothing for {kind}"
    if name == "json":
        json.loads(text)
    elif name == "junit":
        ET.fromstring(text.split("\n", 1)[1])
    elif name == "markdown":
        assert text.startswith("# pt2jax ")


def test_a_format_refuses_a_kind_it_does_not_declare():
    refused = [(name, kind) for name, fmt in REGISTRY.items() for kind in KINDS if not fmt.serves(kind)]
    assert refused  # e.g. sarif cannot render a verify report
    for name, kind in refused:
        with pytest.raises(ValueError, match="choose from " + ", ".join(formats_for(kind))):
            render(name, kind, sample(kind), io.StringIO())


def test_every_format_serves_something_and_every_kind_has_a_format():
    for fmt in REGISTRY.values():
        assert any(fmt.serves(kind) for kind in KINDS), fmt.name
    for kind in KINDS:
        assert formats_for(kind), kind
    with pytest.raises(ValueError, match="unknown output kind"):
        formats_for("nonsense")


def _choices(command: click.Command, name: str) -> tuple[str, ...]:
    option = next(p for p in command.params if p.name == name)
    return tuple(option.type.choices)


def test_cli_format_choices_come_from_the_registry():
    assert _choices(lint_command, "fmt") == formats_for(FINDINGS) == output.FORMATS
    assert _choices(verify_command, "fmt") == formats_for(VERIFY)
    assert "sarif" not in formats_for(VERIFY)  # a verify report has no SARIF form: not offered


@pytest.mark.parametrize("fmt", formats_for(VERIFY))
def test_verify_renders_every_format_it_offers(run, monkeypatch, fmt):
    """The CLI path for each offered format, with the engine replaced by a finished report
    (the engine's own tests run torch and jax)."""
    import pt2jax_migrate.verify as verify_package

    for passed in (True, False):
        monkeypatch.setattr(verify_package, "run_verify", lambda *a, _p=passed, **k: verify_report(_p))
        result = run("verify", "m.py", "jax_m.py", "--model", "MLP", "--input", "float32[2,4]", "--format", fmt)
        assert result.exit_code == (0 if passed else 1), result.output
        out = result.stdout
        if fmt == "json":
            assert json.loads(out)["passed"] is passed
        elif fmt == "junit":
            suite = ET.fromstring(out.split("\n", 1)[1]).find("testsuite")
            assert suite.get("tests") == "2" and suite.get("failures") == ("0" if passed else "1")
        elif fmt == "github":
            assert out.splitlines()[-1].startswith("::notice" if passed else "::error")
            assert ("grad fc.weight" in out) is not passed
        else:
            assert ("PASS" if passed else "FAIL") in out and "grad fc.weight" in out


def test_output_package_imports_neither_rich_nor_torch_nor_jax():
    code = (
        "import sys\n"
        "import pt2jax_migrate.output as o\n"
        "from pt2jax_migrate.model import Finding\n"
        "import io\n"
        "o.render('json', o.FINDINGS, [Finding('a.py', 1, 1, 'PTJ001', 'import')], io.StringIO())\n"
        "print(sorted(m for m in ('torch', 'jax', 'libcst', 'flax', 'rich') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
