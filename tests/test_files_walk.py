"""The one file walker (files.walk.discover), used by lint and rewrite alike: exclude,
.gitignore, symlinks, non-regular files, missing paths."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from pt2jax_migrate import api
from pt2jax_migrate.config import load_config
from pt2jax_migrate.files import FileRules, discover
from pt2jax_migrate.fsio import read_source
from pt2jax_migrate.model import SourceError
from pt2jax_migrate.project import LintOptions

TORCH = "import torch\nx = torch.zeros(3)\n"

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and symlinks")


@pytest.fixture
def no_hang():
    """Fail (instead of hanging the suite) when the code under test blocks."""
    def timeout(*_):
        raise TimeoutError("blocked")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A project whose pyproject excludes legacy/ and whose .gitignore ignores gen.py."""
    (tmp_path / "pyproject.toml").write_text('[tool.pt2jax]\nexclude = ["legacy/"]\n')
    (tmp_path / ".gitignore").write_text("gen.py\n")
    src = tmp_path / "src"
    for name in ("model.py", "gen.py", "legacy/old.py", "pkg/layer.py", ".hidden/h.py", "build/b.py"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(TORCH)
    monkeypatch.chdir(tmp_path)
    return src


def rel(paths, base):
    return sorted(os.path.relpath(p, base) for p in paths)


def test_lint_and_rewrite_take_the_same_files(tree):
    config = load_config([str(tree)])
    rules = FileRules.build(config)
    found = discover([str(tree)], rules)
    assert rel(found.paths, tree) == ["model.py", os.path.join("pkg", "layer.py")]
    assert found.errors == []
    linted = api.lint_paths([str(tree)], LintOptions.build(config))
    rewritten = api.rewrite_paths([str(tree)], write=False, rules=rules)
    assert rel([f.path for f in linted.files], tree) == rel(found.paths, tree)
    assert rel([f.path for f in rewritten.files], tree) == rel(found.paths, tree)
    # without .gitignore, gen.py comes back; exclude still holds
    loose = discover([str(tree)], FileRules.build(config, respect_gitignore=False))
    assert rel(loose.paths, tree) == ["gen.py", "model.py", os.path.join("pkg", "layer.py")]


def test_a_file_named_directly_is_taken_unless_excluded(tree):
    rules = FileRules.build(load_config([str(tree)]), exclude=["gen.py"])
    found = discover([str(tree / "gen.py"), str(tree / "legacy" / "old.py"), str(tree / "model.py")], rules)
    assert rel(found.paths, tree) == ["model.py"]
    assert found.excluded == 2


def test_missing_paths_are_errors_and_the_rest_is_walked(tmp_path):
    (tmp_path / "a.py").write_text("")
    found = discover([str(tmp_path / "nope.py"), str(tmp_path)])
    assert found.paths == [str(tmp_path / "a.py")]
    assert [str(e) for e in found.errors] == [f"{tmp_path / 'nope.py'}: no such file or directory"]


@posix_only
def test_fifos_are_skipped_with_one_error_and_never_opened(tmp_path, no_hang):
    (tmp_path / "a.py").write_text(TORCH)
    os.mkfifo(tmp_path / "pipe.py")
    found = discover([str(tmp_path), str(tmp_path / "pipe.py")])  # walked and named: one error
    assert found.paths == [str(tmp_path / "a.py")]
    assert [str(e) for e in found.errors] == [f"{tmp_path / 'pipe.py'}: is a FIFO, not a regular file; skipped"]
    with pytest.raises(SourceError, match="is a FIFO"):
        read_source(tmp_path / "pipe.py")  # even when asked directly: no blocking open
    run = api.rewrite_paths([str(tmp_path / "pipe.py"), str(tmp_path / "a.py")], write=False)
    assert [f.path for f in run.done] == [str(tmp_path / "a.py")] and len(run.errors) == 1


@posix_only
def test_character_devices_are_refused(no_hang):
    found = discover(["/dev/null"])
    assert found.paths == [] and "is a character device" in str(found.errors[0])


@posix_only
def test_symlink_loops_end_and_outside_links_are_marked(tmp_path, no_hang):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text(TORCH)
    (src / "pkg" / "loop").symlink_to(src)  # back up the tree
    (src / "same").symlink_to(src / "pkg")  # inside, but points at what is walked anyway
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "o.py").write_text(TORCH)
    (src / "out_dir").symlink_to(outside)
    (src / "out_file.py").symlink_to(outside / "o.py")
    found = discover([str(src)])
    by_name = {os.path.relpath(f.path, src): f for f in found.files}
    # the loop and the link out of the tree are not followed; `same` leads where pkg/ was walked
    assert set(by_name) == {os.path.join("pkg", "m.py"), "out_file.py"}
    assert by_name["out_file.py"].outside
    assert not any(f.outside for name, f in by_name.items() if name != "out_file.py")


@posix_only
def test_in_place_rewrite_does_not_write_through_a_link_out_of_the_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text(TORCH)
    outside = tmp_path / "shared.py"
    outside.write_text(TORCH)
    (src / "link.py").symlink_to(outside)
    run = api.rewrite_paths([str(src)])
    assert outside.read_text() == TORCH  # not written
    assert [str(e) for e in run.errors] == [
        f"{src / 'link.py'}: is a symlink to {outside}, outside the folder given; not rewritten in place "
        "(name the file itself, or use --out)"]
    assert "jnp.zeros" in (src / "m.py").read_text()
    # named directly, the link is the user's choice: written through, the link kept
    again = api.rewrite_paths([str(src / "link.py")])
    assert not again.errors and "jnp.zeros" in outside.read_text() and (src / "link.py").is_symlink()
