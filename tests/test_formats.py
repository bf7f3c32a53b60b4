"""CI output formats: SARIF 2.1.0 (checked against the official schema shipped in tests/data),
GitHub Actions workflow commands, JUnit XML, and several outputs written in one call."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from pt2jax_migrate import __version__
from pt2jax_migrate.fsio import write_text_atomic
from pt2jax_migrate.output import FORMATS, parse_output_spec, parse_output_specs, render_findings, write_outputs
from pt2jax_migrate.output.common import fingerprints, read_sources
from pt2jax_migrate.output.counts import display_message
from pt2jax_migrate.output.github import escape_data, escape_property, github_annotations
from pt2jax_migrate.output.junit import to_junit
from pt2jax_migrate.output.sarif import FINGERPRINT_KEY, to_sarif
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.model import Finding, SourceError
from pt2jax_migrate.rules import load_rules

SCHEMA_FILE = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"

MODEL = '''import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = x.view(-1, 4)
        return self.fc(x)


net = Net()
net.train()
y = net(torch.randn(3, 4))
y = y.view(-1)
'''


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def assert_valid(validator, document) -> None:
    problems = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not problems, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in problems)


@pytest.fixture
def project(tmp_path):
    """A source tree under tmp_path/repo: pkg/model.py (torch), pkg/clean.py (no torch)."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "model.py").write_text(MODEL, encoding="utf-8")
    (root / "pkg" / "clean.py").write_text("import json\n", encoding="utf-8")
    return root


def linted(root: Path) -> tuple[list[Finding], dict[str, str]]:
    path = str(root / "pkg" / "model.py")
    source = Path(path).read_text(encoding="utf-8")
    return lint_source(source, path), {path: source}


def hand_findings() -> list[Finding]:
    return [
        Finding("src/a.py", 3, 5, "PTJ102", "torch.nn.Linear layer construction [fixable]", True, "warning", "safe"),
        Finding("src/a.py", 9, 1, "PTJ901", "torch.fft.rfft has no mapping", False, "error"),
        Finding("src/b.py", 2, 1, "PTJ303", ".train(): kept as is", False, "info"),
    ]


# ------------------------------------------------------------------------------ specs


@pytest.mark.parametrize("spec, expected", [
    ("text", ("text", None)),
    ("json:-", ("json", None)),
    ("sarif:results.sarif", ("sarif", "results.sarif")),
    ("SARIF:out/r.sarif", ("sarif", "out/r.sarif")),
    ("junit:C:\\ci\\lint.xml", ("junit", "C:\\ci\\lint.xml")),  # only the first colon separates
    ("github", ("github", None)),
])
def test_parse_output_spec(spec, expected):
    assert parse_output_spec(spec) == expected


def test_unknown_format_names_the_allowed_ones():
    with pytest.raises(ValueError) as caught:
        parse_output_spec("xml:out.xml")
    message = str(caught.value)
    assert "'xml'" in message
    for fmt in FORMATS:
        assert fmt in message
    with pytest.raises(ValueError, match="sarif, github, junit"):
        render_findings([], "bogus", io.StringIO())


def test_spec_with_empty_path_is_refused():
    with pytest.raises(ValueError, match="names no file"):
        parse_output_spec("sarif:")


def test_only_one_output_may_go_to_stdout():
    assert parse_output_specs(["text", "sarif:r.sarif", ("junit", "j.xml")]) == [
        ("text", None), ("sarif", "r.sarif"), ("junit", "j.xml")]
    with pytest.raises(ValueError, match="only one output can go to stdout.*text, json"):
        parse_output_specs(["text", "json:-"])
    with pytest.raises(ValueError, match="named by two outputs"):
        parse_output_specs(["sarif:r.out", "json:./r.out"])


# ------------------------------------------------------------------------------ SARIF


def test_sarif_from_real_lint_output_validates_and_is_uploadable(project, validator):
    findings, sources = linted(project)
    assert findings, "the sample must produce findings"
    log = to_sarif(findings, root=project, sources=sources)
    assert_valid(validator, log)
    json.dumps(log)  # serialisable as is

    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "pt2jax" and driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")

    catalogue = load_rules().lint_rules
    assert [r["id"] for r in driver["rules"]] == sorted(catalogue)
    for rule in driver["rules"]:
        entry = catalogue[rule["id"]]
        assert rule["name"] == entry.name
        assert rule["shortDescription"]["text"] == entry.summary
        assert rule["fullDescription"]["text"] == entry.what
        assert entry.why in rule["help"]["text"] and entry.instead in rule["help"]["text"]
        assert f"```python\n{entry.example}\n```" in rule["help"]["markdown"]
        assert rule["properties"]["fix"] == entry.fix

    results = run["results"]
    assert len(results) == len(findings)
    for result, finding in zip(results, sorted(findings)):
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"] == finding.code
        assert result["message"]["text"] == display_message(finding)
        assert result["message"]["text"].endswith(" [unsafe fix]") == (finding.fix == "unsafe")
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"] == {"uri": "pkg/model.py", "uriBaseId": "%SRCROOT%"}
        assert location["region"] == {"startLine": finding.line, "startColumn": finding.col}
        assert location["region"]["startColumn"] >= 1
        assert result["properties"]["fixable"] == finding.fixable
        assert result["properties"]["fix"] in ("safe", "unsafe", "manual")
        assert result["partialFingerprints"][FINGERPRINT_KEY]
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels["PTJ303"] == "note"  # net.train() is an info finding
    assert levels["PTJ102"] == "warning"
    assert len({r["partialFingerprints"][FINGERPRINT_KEY] for r in results}) == len(results)


def test_sarif_levels_fix_and_unknown_codes(validator):
    findings = [*hand_findings(), Finding("src/c.py", 1, 0, "XYZ999", "not in the catalogue")]
    log = to_sarif(findings, root=".")
    assert_valid(validator, log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    by_code = {r["ruleId"]: r for r in run["results"]}
    assert by_code["PTJ901"]["level"] == "error"
    assert by_code["PTJ303"]["level"] == "note"
    assert by_code["PTJ102"]["properties"] == {"fixable": True, "fix": "safe"}
    assert by_code["PTJ901"]["properties"] == {"fixable": False, "fix": "manual"}
    assert rules[by_code["XYZ999"]["ruleIndex"]]["id"] == "XYZ999"
    assert by_code["XYZ999"]["locations"][0]["physicalLocation"]["region"]["startColumn"] == 1  # clamped


def test_sarif_paths_are_relative_uris_with_forward_slashes(tmp_path, validator):
    inside = str(tmp_path / "root" / "sub dir" / "m.py")
    outside = str(tmp_path / "elsewhere" / "n.py")
    log = to_sarif([Finding(inside, 1, 1, "PTJ001", "import"), Finding(outside, 1, 1, "PTJ001", "import")],
                   root=tmp_path / "root")
    assert_valid(validator, log)
    locations = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]]
    assert {"uri": "sub%20dir/m.py", "uriBaseId": "%SRCROOT%"} in locations
    (absolute,) = [loc for loc in locations if "uriBaseId" not in loc]
    assert absolute["uri"].startswith("file://") and absolute["uri"].endswith("/elsewhere/n.py")


def test_sarif_file_errors_become_notifications(validator):
    errors = [SourceError("src/bad.py", "syntax error: invalid syntax", 4), "something odd"]
    log = to_sarif(hand_findings(), errors=errors)
    assert_valid(validator, log)
    (invocation,) = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    first, second = invocation["toolExecutionNotifications"]
    assert first["message"]["text"] == "syntax error: invalid syntax"
    assert first["locations"][0]["physicalLocation"]["region"] == {"startLine": 4}
    assert second["message"]["text"] == "something odd" and "locations" not in second
    assert to_sarif([])["runs"][0]["invocations"] == [{"executionSuccessful": True}]


def test_schema_check_bites_on_broken_sarif(project, validator):
    findings, sources = linted(project)
    good = to_sarif(findings, root=project, sources=sources)
    breakages = [
        lambda log: log.update(version="2.0.0"),
        lambda log: log["runs"][0]["results"][0].update(level="warning-ish"),
        lambda log: log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"].update(startLine=0),
        lambda log: log["runs"][0]["tool"]["driver"].pop("name"),
        lambda log: log["runs"][0]["results"][0].update(message="plain string"),
    ]
    for breakage in breakages:
        broken = copy.deepcopy(good)
        breakage(broken)
        assert list(validator.iter_errors(broken)), "the schema should reject this document"


def test_fingerprints_survive_line_shifts_and_change_with_the_line(project):
    findings, sources = linted(project)
    path = next(iter(sources))
    shifted_source = "# a new header comment\n\n\n" + MODEL
    shifted = lint_source(shifted_source, path)
    assert [f.line for f in shifted] == [f.line + 3 for f in findings]

    before = fingerprints(findings, root=project, sources=sources)
    after = fingerprints(shifted, root=project, sources={path: shifted_source})
    assert before == after
    def sarif_fingerprints(found, text):
        return [r["partialFingerprints"] for r in to_sarif(found, root=project, sources={path: text})["runs"][0]["results"]]

    assert sarif_fingerprints(findings, MODEL) == sarif_fingerprints(shifted, shifted_source)

    # the two `.view(-1...)` lines differ in text, so their PTJ105 fingerprints differ; a
    # repeated identical line is told apart by occurrence
    edited_source = MODEL.replace("nn.Linear(4, 2)", "nn.Linear(4, 3)")
    edited = fingerprints(lint_source(edited_source, path), root=project, sources={path: edited_source})
    changed = [i for i, (a, b) in enumerate(zip(before, edited)) if a != b]
    assert [findings[i].code for i in changed] == ["PTJ102"]

    twice = [Finding("a.py", 1, 1, "PTJ105", "m"), Finding("a.py", 2, 1, "PTJ105", "m")]
    first, second = fingerprints(twice, sources={"a.py": "x.view(1)\nx.view(1)\n"})
    assert first != second and first.split(":")[0] == second.split(":")[0]

    # the path is part of the hash
    assert fingerprints(findings, root=project, sources=sources) != fingerprints(
        findings, root=project / "pkg", sources=sources)


def test_fingerprints_fall_back_to_the_message_without_sources():
    a = Finding("a.py", 3, 1, "PTJ001", "PyTorch import of torch")
    assert fingerprints([a]) == fingerprints([Finding("a.py", 30, 1, "PTJ001", "PyTorch import of torch")])
    assert fingerprints([a]) != fingerprints([Finding("a.py", 3, 1, "PTJ001", "PyTorch import of torch.nn")])
    # a source that does not reach the line also falls back
    assert fingerprints([a], sources={"a.py": "x = 1\n"}) == fingerprints([a])


def test_read_sources_skips_unreadable_files(tmp_path):
    good = tmp_path / "g.py"
    good.write_text("import torch\r\n", encoding="utf-8")
    (tmp_path / "bad.py").write_bytes(b"\xff\xfe")
    assert read_sources([str(good), str(tmp_path / "bad.py"), str(tmp_path / "missing.py")]) == {
        str(good): "import torch\r\n"}


# ------------------------------------------------------------------------- GitHub Actions


def test_github_escaping_rules():
    assert escape_data("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext: a,b"
    assert escape_property("dir:x,y/100%\n.py") == "dir%3Ax%2Cy/100%25%0A.py"


def test_github_annotations(tmp_path):
    findings = [
        *hand_findings(),
        Finding("odd,name:1.py", 7, 2, "PTJ105", "50% of x.view(\n  -1)"),
    ]
    out = github_annotations(findings, root=".")
    assert out.endswith("\n")
    lines = out.splitlines()
    assert len(lines) == 4
    assert "::warning file=src/a.py,line=3,col=5,title=PTJ102::torch.nn.Linear layer construction [fixable]" in lines
    assert "::error file=src/a.py,line=9,col=1,title=PTJ901::torch.fft.rfft has no mapping" in lines
    assert "::notice file=src/b.py,line=2,col=1,title=PTJ303::.train(): kept as is" in lines
    assert "::warning file=odd%2Cname%3A1.py,line=7,col=2,title=PTJ105::50%25 of x.view(%0A  -1)" in lines

    # absolute paths under the root are shown relative to it, with forward slashes
    inside = tmp_path / "pkg" / "m.py"
    (line,) = github_annotations([Finding(str(inside), 1, 1, "PTJ001", "x")], root=tmp_path).splitlines()
    assert line.startswith("::warning file=pkg/m.py,line=1,")


def test_github_errors_and_real_lint_output(project):
    findings, _ = linted(project)
    errors = [SourceError(str(project / "pkg" / "bad.py"), "syntax error: x", 2)]
    lines = github_annotations(findings, root=project, errors=errors).splitlines()
    assert len(lines) == len(findings) + 1
    assert all(line.startswith(("::warning file=pkg/model.py,", "::notice file=pkg/model.py,")) for line in lines[:-1])
    assert lines[-1] == "::error file=pkg/bad.py,line=2,title=pt2jax::syntax error: x"


# ---------------------------------------------------------------------------------- JUnit


def test_junit_one_testcase_per_file(project):
    findings, sources = linted(project)
    clean = str(project / "pkg" / "clean.py")
    xml = to_junit(findings, files=[*sources, clean], root=project,
                   errors=[SourceError(str(project / "pkg" / "bad.py"), "syntax error: x", 2)])
    root = ET.fromstring(xml.encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert set(cases) == {"pkg/model.py", "pkg/clean.py", "pkg/bad.py"}
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("errors") == "1"

    failures = cases["pkg/model.py"].findall("failure")
    assert len(failures) == len(findings)
    assert [f.get("type") for f in failures] == [f.code for f in sorted(findings)]
    assert failures[0].text.startswith(f"pkg/model.py:{sorted(findings)[0].line}:")
    assert list(cases["pkg/clean.py"]) == []  # a passing testcase
    (error,) = cases["pkg/bad.py"].findall("error")
    assert "syntax error: x" in error.get("message")


def test_junit_escapes_markup_and_control_characters():
    nasty = Finding("a&b<c>.py", 1, 1, "PTJ901", 'x < y && "z" \x01 \x1b[0m')
    root = ET.fromstring(to_junit([nasty, *hand_findings()], files=["src/clean.py"]).encode("utf-8"))
    suite = root.find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "3"
    case = suite.find("testcase[@name='a&b<c>.py']")
    assert case is not None
    assert 'x < y && "z"' in case.find("failure").get("message")
    assert len(suite.find("testcase[@name='src/a.py']").findall("failure")) == 2


def test_junit_without_findings_passes():
    root = ET.fromstring(to_junit([], files=["a.py", "./a.py", "b.py"]).encode("utf-8"))
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.findall("testcase")] == ["a.py", "b.py"]


# ------------------------------------------------------------------------ several outputs


def test_write_outputs_renders_every_spec_in_one_call(project, tmp_path, validator):
    findings, sources = linted(project)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "lint.json").write_text("stale", encoding="utf-8")
    stdout = io.StringIO()
    clean = str(project / "pkg" / "clean.py")
    written = write_outputs(
        findings,
        ["text", f"sarif:{out / 'results.sarif'}", f"json:{out / 'lint.json'}",
         f"junit:{out / 'nested' / 'junit.xml'}", ("github", str(out / "annotations.txt"))],
        stdout=stdout, color=False, root=project, sources=sources, files=[clean],
    )
    assert [fmt for fmt, _ in written] == ["text", "sarif", "json", "junit", "github"]

    text = stdout.getvalue()
    assert text.splitlines()[-1].startswith(f"Found {len(findings)} findings")
    assert "\x1b[" not in text

    log = json.loads((out / "results.sarif").read_text(encoding="utf-8"))
    assert_valid(validator, log)
    assert len(log["runs"][0]["results"]) == len(findings)
    assert len(json.loads((out / "lint.json").read_text(encoding="utf-8"))) == len(findings)
    suite = ET.parse(out / "nested" / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert len((out / "annotations.txt").read_text(encoding="utf-8").splitlines()) == len(findings)
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in out.iterdir()) == ["annotations.txt", "lint.json", "nested", "results.sarif"]


def test_write_outputs_checks_every_spec_before_writing(tmp_path):
    target = tmp_path / "r.sarif"
    with pytest.raises(ValueError, match="only one output can go to stdout"):
        write_outputs(hand_findings(), [f"sarif:{target}", "text", "github"], stdout=io.StringIO())
    with pytest.raises(ValueError, match="unknown output format 'html'"):
        write_outputs(hand_findings(), [f"sarif:{target}", "html:x.html"], stdout=io.StringIO())
    assert not target.exists()


def test_write_outputs_sends_one_machine_format_to_stdout():
    stdout = io.StringIO()
    write_outputs(hand_findings(), ["json:-"], stdout=stdout, color=True)
    assert [f["code"] for f in json.loads(stdout.getvalue())] == ["PTJ102", "PTJ901", "PTJ303"]
    stdout = io.StringIO()
    write_outputs(hand_findings(), ["github"], stdout=stdout)
    assert stdout.getvalue().count("\n") == 3 and stdout.getvalue().startswith("::")


def test_render_findings_accepts_the_ci_formats():
    stream = io.StringIO()
    render_findings(hand_findings(), "sarif", stream, False, root=".")
    assert json.loads(stream.getvalue())["runs"][0]["results"][0]["ruleId"] == "PTJ102"
    stream = io.StringIO()
    render_findings(hand_findings(), "text", stream, False)
    assert stream.getvalue().splitlines()[0] == "src/a.py:3:5 PTJ102 torch.nn.Linear layer construction [fixable]"


def test_failed_atomic_write_leaves_the_target_untouched(tmp_path, monkeypatch):
    target = tmp_path / "results.sarif"
    target.write_text("old", encoding="utf-8")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SourceError, match="results.sarif: cannot write: Permission denied"):
        write_text_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.sarif"]


def test_formats_import_neither_torch_nor_jax_nor_libcst():
    code = (
        "import sys\n"
        "from pt2jax_migrate.output.sarif import to_sarif\n"
        "from pt2jax_migrate.output.junit import to_junit\n"
        "from pt2jax_migrate.output.github import github_annotations\n"
        "from pt2jax_migrate.model import Finding\n"
        "f = [Finding('a.py', 1, 1, 'PTJ001', 'import')]\n"
        "to_sarif(f); to_junit(f); github_annotations(f)\n"
        "print(sorted(m for m in ('torch', 'jax', 'libcst', 'flax') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
