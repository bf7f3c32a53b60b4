"""Honest counts and marks: text output says which fixes are unsafe, and lint's text summary,
--statistics (text, json) and --report, and rewrite's summary line and --report, count the
same things on the same files (counts.py is the one place that counts)."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from pt2jax_migrate.lint import FIXABLE, lint_source
from pt2jax_migrate.model import Finding
from pt2jax_migrate.output import render_findings
from pt2jax_migrate.output.counts import (LINT_FIX_MARK, count_findings, count_todo_markers, display_message,
                                          fix_safety)
from pt2jax_migrate.output.text import finding_line

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted(ROOT.glob("fixtures/*.in.py")) + sorted((ROOT / "tests" / "data" / "lint").glob("*.py"))

SAFE_AND_UNSAFE = "import torch\n\nx = torch.zeros(3)\nnoise = torch.randn(3)\ny = torch.fft.rfft(x)\n"


# ------------------------------------------------------------------------------- fix marks


def test_the_mark_output_strips_is_the_mark_lint_writes():
    assert LINT_FIX_MARK == FIXABLE


def test_text_output_marks_unsafe_fixes_as_unsafe():
    findings = lint_source(SAFE_AND_UNSAFE, "m.py")
    lines = {f.line: finding_line(f) for f in findings if f.code in ("PTJ104", "PTJ105", "PTJ901")}
    assert lines[3].endswith("torch.zeros tensor creation [fixable]")
    assert lines[4].endswith("torch.randn tensor creation [unsafe fix]")
    assert "[fixable]" not in lines[4]
    assert not lines[5].endswith("]")  # for a person: no fix mark at all
    for finding in findings:  # the mark follows the finding's own safety, for every finding
        shown = finding_line(finding)
        assert shown.endswith(" [fixable]") == (fix_safety(finding) == "safe"), shown
        assert shown.endswith(" [unsafe fix]") == (fix_safety(finding) == "unsafe"), shown


def test_coloured_text_and_machine_formats_carry_the_same_marks():
    findings = lint_source(SAFE_AND_UNSAFE, "m.py")
    stream = io.StringIO()
    render_findings(findings, "text", stream, True)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())
    assert "torch.randn tensor creation [unsafe fix]" in plain
    stream = io.StringIO()
    render_findings(findings, "json", stream)
    messages = {row["line"]: row["message"] for row in json.loads(stream.getvalue()) if row["code"] == "PTJ104"}
    assert messages == {3: "torch.zeros tensor creation [fixable]", 4: "torch.randn tensor creation [unsafe fix]"}
    stream = io.StringIO()
    render_findings(findings, "github", stream)
    assert "torch.randn tensor creation [unsafe fix]" in stream.getvalue()


def test_rewrite_messages_carry_no_mark():
    done = Finding("a.py", 1, 1, "PTJ104", "torch.randn -> jax.random.normal(...)", True, fix="unsafe")
    assert display_message(done) == done.message


# ---------------------------------------------------------------------------------- counts


def test_count_findings_classifies_each_finding_once():
    findings = [
        Finding("a.py", 1, 1, "PTJ102", "x [fixable]", True, fix="safe"),
        Finding("a.py", 2, 1, "PTJ104", "x [fixable]", True, fix="unsafe"),
        Finding("b.py", 3, 1, "PTJ104", "x [fixable]", True, fix=""),  # no recorded safety: safe
        Finding("b.py", 4, 1, "PTJ901", "x", False, fix="manual"),
        Finding("b.py", 5, 1, "PTJ901", "x", False),
    ]
    counts = count_findings(findings)
    assert (counts.findings, counts.safe, counts.unsafe, counts.manual, counts.files) == (5, 2, 1, 2, 2)
    assert counts.fixable == 3 and counts.safe + counts.unsafe + counts.manual == counts.findings
    assert counts.fixes_phrase() == "2 safe fixes, 1 unsafe fix, 2 for a person"


def test_todo_markers_are_comment_lines_only():
    text = ('"""Each stays with a TODO(pt2jax) marker."""\n'
            "x = 1  # TODO(pt2jax): PTJ901 one\n"
            "    # TODO(pt2jax): PTJ105 two\n"
            "s = '# TODO(pt2jax): not a comment'\n")
    assert count_todo_markers(text) == 2


# ------------------------------------------------------------------ the same numbers everywhere


def _numbers(pattern: str, text: str) -> tuple[int, ...]:
    match = re.search(pattern, text, re.M)
    assert match, f"{pattern!r} not in:\n{text}"
    return tuple(int(g) for g in match.groups())


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for path in CORPUS:
        name = path.name if path.parent.name == "fixtures" else f"data_{path.name}"
        shutil.copyfile(path, folder / name)
    return folder


def test_lint_summary_statistics_and_report_agree(run, corpus):
    text = run("lint", corpus)
    assert text.exit_code == 1
    *summary, notes = _numbers(r"^Found (\d+) findings in \d+ files: (\d+) safe fix(?:es)?, (\d+) unsafe fix(?:es)?, "
                               r"(\d+) for a person, (\d+) notes?\.$", text.stdout)
    summary = tuple(summary)
    shown = [line for line in text.stdout.splitlines() if re.match(r"^\S+:\d+:\d+ PTJ\d+ ", line)]
    from_lines = (len(shown), sum(line.endswith(" [fixable]") for line in shown),
                  sum(line.endswith(" [unsafe fix]") for line in shown),
                  sum(not line.endswith(("[fixable]", "[unsafe fix]")) for line in shown) - notes)
    assert summary == from_lines
    # notes: PyTorch imports kept while their uses are TODOs, .train()/.eval() kept as is, the
    # data pipeline kept by policy (PTJ401 "kept")
    assert notes == sum((" PTJ001 " in line and "kept while" in line) or (" PTJ303 " in line and "kept as is" in line)
                        or (" PTJ401 " in line and "data-pipeline policy" in line) for line in shown) > 0
    assert summary[2] > 0 and summary[3] > 0  # the corpus has unsafe fixes and work for a person

    stats = run("lint", "--statistics", corpus).stdout
    assert _numbers(r"^Findings: (\d+), \d+ auto-fixable \([\d.]+%: (\d+) safe, (\d+) unsafe\), (\d+) for a person",
                    stats) == summary
    data = json.loads(run("lint", "--statistics", "--format", "json", corpus).stdout)
    assert (data["findings"], data["safe"], data["unsafe"], data["manual"]) == summary
    assert sum(c["count"] for c in data["codes"]) == summary[0]
    assert sum(c["manual"] for c in data["codes"]) == summary[3]

    run("lint", corpus, "--report", "report.md")
    md = (corpus.parent / "report.md").read_text()
    findings, fixable, safe, unsafe, manual = _numbers(
        r"^- \*\*Findings:\*\* (\d+): (\d+) converted automatically by `pt2jax rewrite` \([\d.]+%; (\d+) safe, "
        r"(\d+) unsafe\), (\d+) need a person(?:, \d+ notes \(nothing to do of their own\))?$", md)
    assert (findings, safe, unsafe, manual) == summary and fixable == safe + unsafe
    needs_person = md[md.index("## Needs a person"):md.index("## Rules")]
    assert len(re.findall(r"^\| `", needs_person, re.M)) == manual


def _rewrite_numbers(run, corpus, out):
    result = run("rewrite", "--out", out, corpus, "--report", "rewrite.md")
    assert result.exit_code == 0, result.output
    changes, todos = _numbers(r"^Wrote \d+ files to \S+ \(\d+ converted; (\d+) changes(?: including \d+ unsafe)?, "
                              r"(\d+) TODOs left for a person\)\.$", result.stdout)
    md = (corpus.parent / "rewrite.md").read_text()
    report = (_numbers(r"^- \*\*Changes:\*\* (\d+) ", md)[0],
              _numbers(r"^- \*\*Left for a person\*\* \(marked `# TODO\(pt2jax\)`\): (\d+)$", md)[0])
    assert "comment lines in the output" not in md  # markers and findings agree on this corpus
    return (changes, todos), report


def test_rewrite_summary_report_and_todo_markers_agree(run, corpus, tmp_path):
    """"N TODOs left for a person" = rewrite's findings it could not convert = the
    `# TODO(pt2jax): CODE why` comment lines it wrote (counted here by a plain line scan)."""
    out = tmp_path / "out"
    summary, report = _rewrite_numbers(run, corpus, out)
    assert summary == report
    markers = sum(len(re.findall(r"^[ \t]*# TODO\(pt2jax\): PTJ\d+ ", p.read_text(), re.M)) for p in out.rglob("*.py"))
    assert summary[1] == markers > 0


def test_rewrite_says_so_when_markers_and_findings_differ(run, tmp_path):
    (tmp_path / "m.py").write_text("import torch\n# TODO(pt2jax): PTJ999 written by hand\nx = torch.zeros(3)\n")
    result = run("rewrite", "--check", "m.py", "--report", "r.md")
    assert "0 TODOs left for a person; 1 TODO(pt2jax) comment line in the output" in result.stdout
    assert "- **`# TODO(pt2jax)` comment lines in the output:** 1 " in (tmp_path / "r.md").read_text()


def test_lint_for_a_person_equals_rewrite_todos(run, corpus, tmp_path):
    lint_text = run("lint", corpus).stdout
    manual = _numbers(r"(\d+) for a person(?:, \d+ notes?)?\.$", lint_text)[0]
    (changes, todos), _ = _rewrite_numbers(run, corpus, tmp_path / "out")
    assert manual == todos
