"""What a Linen user reads names Linen's API, never NNX's: lint --target linen's findings, rewrite
--target linen's changes and TODO comments, and the converted code itself (helpers, key streams)
on every fixture and lint test source; and the converse for NNX on the sources that exercise the
reworded texts (targets/linen/wording.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "fixtures").glob("*.in.py"), *(ROOT / "fixtures" / "programs").glob("*.py"),
                  *(ROOT / "fixtures" / "linen_programs").glob("*.py"), *(ROOT / "tests" / "data" / "lint").glob("*.py")])
OTHER = {"linen": re.compile(r"\bnnx\b|NNX"), "nnx": re.compile(r"\blinen\b|Linen")}


def _foreign_texts(paths: list[Path], target: str) -> list[str]:
    """Every finding, TODO/NOTE comment and new line of converted code that names the other API."""
    other = OTHER[target]
    out = []
    for path in paths:
        source = path.read_text()
        rel = path.relative_to(ROOT)
        findings = [*lint_source(source, str(path), target=target)]
        result = rewrite_source(source, str(path), target=target)
        findings += result.findings
        out += [f"{rel}:{f.line} {f.code} {f.message}" for f in findings if other.search(f.message)]
        old_lines = set(source.splitlines())
        out += [f"{rel} writes: {line.strip()}" for line in (result.new_source or "").splitlines()
                if other.search(line) and line not in old_lines]
    return out


@pytest.mark.corpus
def test_linen_output_and_messages_never_name_nnx():
    found = _foreign_texts(SOURCES, "linen")
    assert not found, "\n".join(found)


def test_the_reworded_advice_is_linens_and_nnx_keeps_its_own():
    """tests/data/lint/module_api.py: module state, submodules, gradients, freezing, seeds."""
    path = ROOT / "tests" / "data" / "lint" / "module_api.py"
    source = path.read_text()
    messages = {t: {f.message for f in lint_source(source, str(path), target=t)} for t in ("nnx", "linen")}
    linen, nnx = "\n".join(messages["linen"]), "\n".join(messages["nnx"])
    assert "variables dict module.init returns" in linen and "nnx.state(model, nnx.Param)" in nnx
    assert "iterate submodules by attribute" in linen and "nnx.iter_graph" in nnx
    assert "use self.param(name, init_fn)" in linen and "register_parameter(): assign an nnx.Param" in nnx
    assert "jax.grad over the params" in linen and "nnx.grad" in nnx
    assert "optax.masked" in linen and "nnx.Optimizer(..., wrt=...)" in nnx
    new = rewrite_source(source, str(path), target="linen").new_source
    assert "rngs = KeyStream(0)" in new and "g = KeyStream(1)" in new and "class KeyStream" in new
    assert "from flax import nnx" not in new
    assert not _foreign_texts([path], "nnx")
