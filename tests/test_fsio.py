"""File I/O: exact reads, clear errors, atomic writes that keep the mode, file discovery."""

from __future__ import annotations

import os
import stat

import pytest

from pt2jax_migrate import fsio
from pt2jax_migrate.fsio import collect_python_files, iter_python_files, read_source, write_atomic
from pt2jax_migrate.model import SourceError


def test_read_source_keeps_the_text_exactly(tmp_path):
    raw = "\ufeffx = 'é'\r\ny = 2\r\n\r\n".encode("utf-8")
    path = tmp_path / "crlf.py"
    path.write_bytes(raw)
    text = read_source(path)
    assert text.encode("utf-8") == raw
    assert "\r\n" in text and text.startswith("\ufeff")


def test_read_source_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(SourceError) as info:
        read_source(tmp_path / "missing.py")
    assert str(info.value) == f"{tmp_path / 'missing.py'}: no such file"

    bad = tmp_path / "latin1.py"
    bad.write_bytes(b"x = 1\ny = 2\nname = 'caf\xe9'\n")
    with pytest.raises(SourceError) as info:
        read_source(bad)
    assert info.value.line == 3 and info.value.path == str(bad)
    assert str(info.value).startswith(f"{bad}:3: not valid UTF-8 (byte 0xe9 at column 12)")

    with pytest.raises(SourceError, match="is a directory"):
        read_source(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
def test_read_source_unreadable(tmp_path):
    path = tmp_path / "secret.py"
    path.write_text("x = 1\n")
    path.chmod(0)
    with pytest.raises(SourceError, match="cannot read"):
        read_source(path)


def test_write_atomic_writes_exact_bytes_and_keeps_the_mode(tmp_path):
    path = tmp_path / "script.py"
    path.write_text("x = 1\n")
    path.chmod(0o751)
    write_atomic(path, "x = 2\r\ny = 'ü'\r\n")
    assert path.read_bytes() == "x = 2\r\ny = 'ü'\r\n".encode("utf-8")
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]  # no temp file left


def test_write_atomic_creates_new_files_and_folders(tmp_path):
    target = tmp_path / "out" / "pkg" / "m.py"
    write_atomic(target, "import jax\n")
    assert target.read_text() == "import jax\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_write_atomic_refuses_text_that_does_not_parse(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("x = 1\n")
    with pytest.raises(SourceError) as info:
        write_atomic(path, "x = 1\ndef f(:\n")
    assert str(info.value).startswith(f"{path}:2: refusing to write text that does not parse")
    assert path.read_text() == "x = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


def test_write_atomic_never_half_writes(tmp_path, monkeypatch):
    path = tmp_path / "m.py"
    path.write_text("original = True\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsio.os, "replace", boom)
    with pytest.raises(SourceError, match="No space left"):
        write_atomic(path, "new = True\n")
    assert path.read_text() == "original = True\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


def test_write_atomic_writes_through_a_symlink(tmp_path):
    real = tmp_path / "real.py"
    real.write_text("a = 1\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    write_atomic(link, "a = 2\n")
    assert link.is_symlink() and real.read_text() == "a = 2\n"


def test_iter_python_files_sorted_and_skipping_tool_folders(tmp_path):
    for name in ["b.py", "a.py", "notes.txt", "pkg/c.py", "pkg/sub/d.py", ".hidden/e.py", "__pycache__/f.py",
                 ".venv/g.py", "venv/h.py", "lib/site-packages/i.py", "build/j.py", "dist/k.py"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    found = [os.path.relpath(p, tmp_path) for p in iter_python_files([tmp_path])]
    assert found == ["a.py", "b.py", os.path.join("pkg", "c.py"), os.path.join("pkg", "sub", "d.py")]
    # files named directly are taken as they are, once each
    explicit = list(iter_python_files([tmp_path / "notes.txt", tmp_path / "a.py", tmp_path / "a.py"]))
    assert explicit == [str(tmp_path / "notes.txt"), str(tmp_path / "a.py")]


def test_found_paths_are_normalised(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("")
    monkeypatch.chdir(tmp_path)
    assert list(iter_python_files(["."])) == [os.path.join("pkg", "m.py")]
    assert list(iter_python_files(["./pkg/"])) == [os.path.join("pkg", "m.py")]


def test_missing_paths(tmp_path):
    with pytest.raises(SourceError, match="no such file or directory"):
        list(iter_python_files([tmp_path / "nope"]))
    (tmp_path / "a.py").write_text("")
    files, errors = collect_python_files([tmp_path / "nope", tmp_path])
    assert files == [str(tmp_path / "a.py")]
    assert [str(e) for e in errors] == [f"{tmp_path / 'nope'}: no such file or directory"]


def test_write_atomic_checks_deeply_nested_text_without_a_recursion_error(tmp_path):
    # a converted sum of 3,000 terms: the rewrite ran on a deep stack, the check before the
    # write must too (it raised RecursionError, a traceback and exit 1, taking the run down)
    text = "x = " + " + ".join(["jnp.ones((1,))"] * 3000) + "\n"
    write_atomic(tmp_path / "deep.py", text)
    assert (tmp_path / "deep.py").read_text() == text
    with pytest.raises(SourceError, match="does not parse"):
        write_atomic(tmp_path / "bad.py", text + "x = (\n")
