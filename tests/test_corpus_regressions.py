"""Failures benchmarks/corpus_check.py found on real files, each pinned by the smallest input
that showed it."""

from __future__ import annotations

import os
import stat

GOOD = "import torch\n\nx = torch.zeros(3)\n"


def test_out_copies_each_input_files_permissions(run, tmp_path):
    """corpus_check: a 0o664 fixture came back 0o644 under --out (the umask's default, not the
    input's mode); an executable script must stay executable, a private file private."""
    (tmp_path / "src").mkdir()
    modes = {"shared.py": 0o664, "script.py": 0o755, "private.py": 0o600, "free.py": 0o640}
    for name, mode in modes.items():
        path = tmp_path / "src" / name
        path.write_text(GOOD if name != "free.py" else "x = 1\n")
        os.chmod(path, mode)
    old = os.umask(0o077)  # the umask would give 0o600 to every new file
    try:
        result = run("rewrite", "--out", "out", "src")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    for name, mode in modes.items():
        assert stat.S_IMODE(os.stat(tmp_path / "out" / name).st_mode) == mode, name
