"""Odd files beside a good one, through the command line, for lint and rewrite alike (the
issue's list, the cases test_hostile.py and test_files_walk.py do not already run through the
CLI): a character device and a FIFO named `.py` (never waited on), an unreadable file, a binary
file, a 5 MB file under the default size limit, two folders both holding `model.py` under
`--out`; each is one line naming the file, exit 2, the good file still done. An empty file is
valid Python (every empty `__init__.py`): no error, left as it is."""

from __future__ import annotations

import os
import sys

import pytest

GOOD = "import torch\n\nx = torch.zeros(3)\n"

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, devices and modes")


def _lines_naming(output: str, name: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(name)]


@posix_only
def test_special_unreadable_binary_and_huge_files_are_one_line_each_and_the_good_file_is_done(
        run, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.py").write_text(GOOD)
    os.mkfifo(src / "pipe.py")
    (tmp_path / "device.py").symlink_to("/dev/null")  # a `.py` that is a character device
    (src / "secret.py").write_text(GOOD)
    (src / "secret.py").chmod(0)
    real_open = os.open

    def no_read(path, flags, *args, **kwargs):  # root reads any mode: refuse as the kernel would
        if os.fspath(path).endswith("secret.py"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_read)
    (src / "binary.py").write_bytes(bytes(range(256)) * 8)
    (src / "huge.py").write_text("import torch\n" + "x = torch.zeros(3)\n" * 280_000)  # 5 MB
    assert (src / "huge.py").stat().st_size > 5_000_000
    (src / "__init__.py").write_text("")
    expected = {"src/pipe.py": "is a FIFO", "device.py": "is a character device",
                "src/secret.py": "cannot read: Permission denied", "src/binary.py": "not valid UTF-8",
                "src/huge.py": "over the size limit of 2 MB"}
    for command in (["lint", "--no-cache", "--exit-zero"], ["rewrite", "--out", "out"]):
        result = run(*command, "-j", "1", "src", "device.py")
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        for name, reason in expected.items():
            named = _lines_naming(result.output, name)
            assert len(named) == 1 and reason in named[0], (name, result.output)
        assert not _lines_naming(result.output, "src/__init__.py"), result.output
    assert "jnp.zeros" in (tmp_path / "out" / "good.py").read_text()
    assert (tmp_path / "out" / "__init__.py").read_bytes() == b""  # empty: written as it was
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["__init__.py", "good.py"]
    assert (src / "__init__.py").read_bytes() == b""


def test_two_folders_both_holding_model_py_are_refused_under_out_naming_both(run, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.py").write_text(GOOD)
    result = run("rewrite", "--out", "out", "a", "b")
    assert result.exit_code == 2, result.output
    assert "a/model.py" in result.output and "b/model.py" in result.output
    assert "would both be written to" in result.output
    assert not (tmp_path / "out").exists()
