"""Whole training programs (fixtures/programs/*.py, see its README): each converts completely,
and the converted program, run in this process, prints the losses the PyTorch original prints."""

from __future__ import annotations

import ast
import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import pytest

from pt2jax_migrate.rewrite import rewrite_source

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "fixtures" / "programs").glob("*.py"))
LOSS = re.compile(r"\bloss\b\s*[:=]?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)")


def header(path: Path) -> dict[str, str]:
    """The `# key: value` comment lines at the top of a program."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"#\s*([\w-]+):\s*(.*)", line)
        if not match:
            break
        found[match.group(1)] = match.group(2).strip()
    return found


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module)
    return roots


def converted(path: Path):
    result = rewrite_source(path.read_text(), str(path))
    assert result.error is None, result.error
    return result


def run_program(path: Path, cwd: Path, monkeypatch) -> str:
    """Run a program as __main__ in this process (torch and jax are imported once per worker)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [str(path)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(path), run_name="__main__")
    return out.getvalue()


def losses(text: str) -> list[float]:
    return [float(m.group(1)) for m in LOSS.finditer(text)]


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_program_converts_completely(path):
    result = converted(path)
    new = result.new_source
    ast.parse(new)
    assert "TODO(pt2jax)" not in new, [f"{f.line}: {f.code} {f.message}" for f in result.findings if not f.fixable]
    allowed = {"torch.utils.data"} if header(path).get("allow-torch") == "data" else set()
    torch_imports = {m for m in imported_roots(new) if m.split(".")[0] in ("torch", "torchvision")}
    assert not {m for m in torch_imports if not any(m == a or m.startswith(a + ".") for a in allowed)}, torch_imports
    assert rewrite_source(new, str(path)).new_source == new, "a second rewrite changed the program"


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_program_trains_like_the_original(path, tmp_path, monkeypatch):
    check = header(path).get("check", "")
    assert check, f"{path.name} has no '# check:' header"
    (tmp_path / "torch").mkdir()
    (tmp_path / "jax").mkdir()
    original = tmp_path / "torch" / path.name
    original.write_text(path.read_text())
    port = tmp_path / "jax" / path.name
    port.write_text(converted(path).new_source)
    want = losses(run_program(original, original.parent, monkeypatch))
    got = losses(run_program(port, port.parent, monkeypatch))
    assert want, f"{path.name} printed no losses"
    if check == "exact":
        assert len(got) == len(want), (want, got)
        for i, (w, g) in enumerate(zip(want, got)):
            assert abs(w - g) <= 1e-5 * max(1.0, abs(w)), f"loss #{i}: torch {w} jax {g}\n{want}\n{got}"
    else:
        match = re.fullmatch(r"final rtol=([\d.]+)", check)
        assert match, f"unknown check {check!r}"
        rtol = float(match.group(1))
        assert got, "the converted program printed no losses"
        assert abs(got[-1] - want[-1]) <= rtol * abs(want[-1]), (want[-1], got[-1])
