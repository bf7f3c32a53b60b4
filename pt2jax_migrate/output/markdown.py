"""`markdown`: the `--report FILE.md` of `lint` and `rewrite`, for the pull request's reviewer.

It says how much was scanned and how much is already torch-free, lists the findings per code
(each code links to its doc in a "Rules" section at the end of the report, anchor `#ptjNNN`),
what `pt2jax rewrite` converts automatically, and every place that needs a person
(path:line, code, message). Every number comes from counts.py, so it matches the text summary
and `--statistics`. Long lists are cut at MAX_ROWS rows with a count of the rest, so the
report fits in a pull-request comment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TextIO

from ..model import Finding
from .counts import MANUAL, SAFE, UNSAFE, bare_message, count_findings, fix_safety
from .results import LintSummary, RewriteResults
from .statistics import Statistics, percent

MAX_ROWS = 500


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code_link(code: str) -> str:
    return f"[{code}](#{code.lower()})"


def _location(finding: Finding) -> str:
    return f"`{finding.path}:{finding.line}`"


def _rules_section(codes: Iterable[str], target: str = "nnx") -> list[str]:
    from ..rules import load_rules

    rules = load_rules()
    out = ["## Rules", ""]
    for code in sorted(set(codes)):
        rule = rules.lint_rules.get(code)
        if rule is None:
            continue
        unsafe = sorted(
            name for entry in rules.entries if entry.code == code and entry.get("safety") == "unsafe"
            for name in entry.names
        )
        doc = rule.doc(target)  # in the run's target's form (`pt2jax rule CODE --target T`)
        command = f"pt2jax rule {code}" + (f" --target {target}" if target != "nnx" else "")
        out += [f"### {code}", "", f"**{rule.name}**: {rule.summary}", "",
                f"- **What it detects:** {doc['what']}",
                f"- **Why it matters in JAX:** {doc['why']}",
                "- **Example:**", "", "  ```python", *("  " + line for line in doc["example"].splitlines()), "  ```",
                "- **JAX equivalent:**", "", "  ```python", *("  " + line for line in doc["instead"].splitlines()),
                "  ```",
                f"- **Fix safety:** {rule.fix}" + (f" (unsafe for {', '.join(unsafe)})" if unsafe else ""),
                f"- `{command}` prints this doc.", ""]
    return out


def _per_code_table(stats: Statistics) -> list[str]:
    if not stats.codes:
        return ["No findings.", ""]
    out = ["| code | rule | findings | auto-fixable | safe | unsafe | needs a person |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for c in stats.codes:
        out.append(f"| {_code_link(c.code)} | {c.name} | {c.count} | {c.fixable} | {c.safe} | {c.unsafe} | {c.manual} |")
    return out + [""]


def _manual_table(findings: Sequence[Finding], empty: str) -> list[str]:
    manual = [f for f in sorted(findings) if fix_safety(f) == MANUAL]
    if not manual:
        return [empty, ""]
    out = ["| location | code | what to do |", "|---|---|---|"]
    for finding in manual[:MAX_ROWS]:
        out.append(f"| {_location(finding)} | {_code_link(finding.code)} | {_cell(bare_message(finding))} |")
    if len(manual) > MAX_ROWS:
        out.append(f"| … | | {len(manual) - MAX_ROWS} more (run `pt2jax lint` for all) |")
    return out + [""]


def lint_report(stats: Statistics, findings: Sequence[Finding], *, suppressed: int = 0,
                baseline: tuple[str, int] | None = None, errors: Sequence[str] = (), target: str = "nnx") -> str:
    """The report for `pt2jax lint --report`. `baseline` is (file, findings it covered)."""
    counts = stats.counts
    fixable = [f for f in findings if fix_safety(f) in (SAFE, UNSAFE)]
    lines = [
        "# pt2jax migration report", "",
        f"- **Files scanned:** {stats.files} ({stats.lines} lines)",
        f"- **Torch-free:** {stats.torch_free_files} of {stats.files} files "
        f"({percent(stats.torch_free_file_share)}), {stats.torch_free_lines} of {stats.lines} lines "
        f"({percent(stats.torch_free_line_share)})",
        f"- **Findings:** {counts.findings}: {counts.fixable} converted automatically by `pt2jax rewrite` "
        f"({percent(counts.fixable_share)}; {counts.safe} safe, {counts.unsafe} unsafe), "
        f"{counts.manual} need a person" + (f", {counts.notes} notes (nothing to do of their own)"
                                             if counts.notes else ""),
    ]
    if suppressed:
        lines.append(f"- **Suppressed** by `# noqa` / `# pt2jax: noqa`: {suppressed}")
    if baseline is not None:
        lines.append(f"- **Baseline** `{baseline[0]}`: {baseline[1]} known findings not counted above")
    if errors:
        lines.append(f"- **Files that could not be linted:** {len(errors)}")
    lines += ["", "## Findings per code", "", *_per_code_table(stats)]
    lines += ["## What `pt2jax rewrite` converts automatically", ""]
    if fixable:
        per_file: dict[str, list[Finding]] = {}
        for finding in fixable:
            per_file.setdefault(finding.path, []).append(finding)
        lines += ["| file | conversions | unsafe (change numbers; `--unsafe-fixes`) | codes |", "|---|---:|---:|---|"]
        for path in sorted(per_file)[:MAX_ROWS]:
            group = per_file[path]
            codes = ", ".join(_code_link(c) for c in sorted({f.code for f in group}))
            lines.append(f"| `{_cell(path)}` | {len(group)} | {count_findings(group).unsafe} | {codes} |")
        if len(per_file) > MAX_ROWS:
            lines.append(f"| … {len(per_file) - MAX_ROWS} more files | | | |")
        lines += ["", "Safe fixes: `pt2jax lint --fix PATH` (or `pt2jax rewrite PATH` for all of them, "
                  "`pt2jax rewrite --diff PATH` to preview).", ""]
    else:
        lines += ["Nothing to convert automatically.", ""]
    lines += ["## Needs a person", "", *_manual_table(findings, "Nothing: every finding is converted automatically.")]
    if errors:
        lines += ["## Files that could not be linted", ""]
        lines += [f"- `{_cell(e)}`" for e in errors[:MAX_ROWS]] + [""]
    lines += _rules_section((f.code for f in findings), target)
    return "\n".join(lines).rstrip() + "\n"


def rewrite_report(results: RewriteResults) -> str:
    """The report for `pt2jax rewrite --report`."""
    from ..rules import load_rules

    names = {code: rule.name for code, rule in load_rules().lint_rules.items()}
    counts = results.counts
    share_files = results.torch_free_files / results.files if results.files else 1.0
    share_lines = results.torch_free_lines / results.lines if results.lines else 1.0
    out = [
        "# pt2jax rewrite report", "",
        f"- **Files scanned:** {results.files} ({results.lines} lines)",
        f"- **Torch-free before the rewrite:** {results.torch_free_files} of {results.files} files "
        f"({percent(share_files)}), {results.torch_free_lines} of {results.lines} lines ({percent(share_lines)})",
        f"- **Files {results.mode}:** {len(results.changed)}",
        f"- **Changes:** {counts.fixable} ({counts.unsafe} unsafe: they change numbers)",
        f"- **Left for a person** (marked `# TODO(pt2jax)`): {counts.manual}",
    ]
    if results.markers_disagree:
        out.append(f"- **`# TODO(pt2jax)` comment lines in the output:** {results.todo_markers} "
                   "(not one per finding left for a person: check them)")
    if results.errors:
        out.append(f"- **Files that could not be converted:** {len(results.errors)}")
    out += ["", "## Changes per code", ""]
    per_code: dict[str, list[Finding]] = {}
    for finding in results.findings:
        per_code.setdefault(finding.code, []).append(finding)
    if per_code:
        out += ["| code | rule | converted | unsafe | left for a person |", "|---|---|---:|---:|---:|"]
        for code in sorted(per_code, key=lambda c: (-len(per_code[c]), c)):
            group = count_findings(per_code[code])
            out.append(f"| {_code_link(code)} | {names.get(code, '')} | {group.fixable} | {group.unsafe} | "
                       f"{group.manual} |")
        out.append("")
    else:
        out += ["Nothing to convert.", ""]
    if results.changed:
        out += ["## Files", ""] + [f"- `{_cell(p)}`" for p in list(results.changed)[:MAX_ROWS]]
        if len(results.changed) > MAX_ROWS:
            out.append(f"- … {len(results.changed) - MAX_ROWS} more")
        out.append("")
    todos = [f for f in results.findings if fix_safety(f) == MANUAL]
    out += ["## Needs a person", "", *_manual_table(todos, "Nothing: everything was converted.")]
    if results.errors:
        out += ["## Files that could not be converted", ""] + [f"- `{_cell(e)}`" for e in results.errors[:MAX_ROWS]] + [""]
    out += _rules_section(per_code, results.target)
    return "\n".join(out).rstrip() + "\n"


def render_lint_report(summary: LintSummary, stream: TextIO, ctx=None) -> None:
    stream.write(lint_report(summary.stats, summary.findings, suppressed=summary.suppressed,
                             baseline=summary.baseline, errors=summary.errors, target=summary.target))


def render_rewrite(results: RewriteResults, stream: TextIO, ctx=None) -> None:
    stream.write(rewrite_report(results))
