"""What `lint` marks fixable is exactly what `rewrite` changes (design.md's property).

lint is `ast`-only and rewrite is libcst; both decide through the same tables and
mapping.check_call, and this test holds them to one answer on every fixture and test source.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (sorted((ROOT / "fixtures").glob("*.in.py")) + sorted((ROOT / "tests" / "data" / "verify").glob("*torch*.py"))
           + sorted((ROOT / "tests" / "data" / "lint").glob("*.py")))
# rewrite's own bookkeeping on lines lint reports under the class (PTJ101): __init__ gains
# rngs, forward is renamed, super().__init__() goes, constructions get rngs=
BOOKKEEPING = {"PTJ101"}


def keyed(findings, fixable):
    return {(f.line, f.code) for f in findings if f.fixable == fixable}


@pytest.mark.parametrize("target", ["nnx", "linen"])
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_lint_fixable_marks_match_rewrite_changes(path, target):
    """Per target: lint --target T judges what rewrite --target T does."""
    source = path.read_text()
    lint = lint_source(source, str(path), target=target)
    result = rewrite_source(source, str(path), target=target)
    new_text = result.new_source

    lint_fixable = {k for k in keyed(lint, True) if k[1] not in BOOKKEEPING | {"PTJ001"}}
    rewrite_changes = {k for k in keyed(result.findings, True) if k[1] not in BOOKKEEPING}
    assert lint_fixable == rewrite_changes, (
        f"lint-only: {sorted(lint_fixable - rewrite_changes)}\nrewrite-only: {sorted(rewrite_changes - lint_fixable)}"
    )
    # train()/eval() notes (PTJ303, info) are lint's alone; a PTJ303 left for a person is a TODO
    lint_manual = {(f.line, f.code) for f in lint if not f.fixable and f.code != "PTJ001"
                   and not (f.code == "PTJ303" and f.severity == "info")}
    rewrite_todos = {(f.line, f.code) for f in result.findings if not f.fixable
                     and not (f.code == "PTJ303" and f.severity == "info")}
    assert lint_manual == rewrite_todos, (
        f"lint-only: {sorted(lint_manual - rewrite_todos)}\nrewrite-only: {sorted(rewrite_todos - lint_manual)}"
    )
    # an import lint calls manual (still needed) is never removed; one it calls fixable is
    # removed unless a local name of the same spelling keeps it alive (the rewrite's import
    # pruning counts every use of the name: conservative, never breaks code)
    lines = source.splitlines()
    new_lines = new_text.splitlines()
    for finding in lint:
        if finding.code == "PTJ001":
            statement = lines[finding.line - 1].strip()
            if not finding.fixable:
                assert statement in new_lines, statement
            elif statement in new_lines:
                bound = statement.split(" as ")[-1].split()[-1].split(".")[0]
                assert f"def {bound}(" in source or f"({bound})" in source or f"{bound} =" in source, statement


def test_train_steps_are_planned_with_the_optimizers_their_function_sees():
    """A later function's `optimizer = SGD(prepared...)` once decided an earlier function's step
    for lint and the kept-optimizer check, but not for the rewrite: the step was converted with
    its Adam left PyTorch (a second rewrite then converted the Adam). And an optimizer handed
    to a function whose step stays PyTorch was converted alone."""
    data = ROOT / "tests" / "data" / "lint"
    source = (data / "optimizer_name_reused_in_a_later_function.py").read_text()
    first = rewrite_source(source, "a.py").new_source
    assert "TODO(pt2jax)" not in first and first.count("optimizer.update(model, grads)") == 2
    assert "nnx.Optimizer(model, optax.adam(0.001)" in first and "import torch" not in first
    assert rewrite_source(first, "a.py").new_source == first

    source = (data / "optimizer_handed_to_a_refused_step.py").read_text()
    kept = rewrite_source(source, "b.py").new_source
    assert "nnx.Optimizer" not in kept and "optimizer = torch.optim.SGD(" in kept
    assert "PTJ201 torch.optim.SGD: kept in PyTorch: the training step that calls optimizer.step()" in kept
    assert rewrite_source(kept, "b.py").new_source == kept
