"""benchmarks/corpus_check.py's record: one JSON line per file as it finishes, --resume going
on from a record cut short (a torn last line is checked again), --max-bytes skipping and
listing big files."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("corpus_check", ROOT / "benchmarks" / "corpus_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_resume_and_max_bytes(tmp_path, capsys):
    check = _script()
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("import torch\nx = torch.zeros(3)\n")
    (src / "b.py").write_text("y = 1\n")
    (src / "big.py").write_text("import torch\n" + "x = torch.zeros(3)\n" * 100)
    report = tmp_path / "rec" / "run.jsonl"
    args = [str(src), "-j", "1", "-q", "--max-bytes", "500", "--report", str(report)]
    assert check.main(args) == 0
    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(Path(r["path"]).name for r in records) == ["a.py", "b.py"]
    assert all(r["failures"] == [] for r in records)
    summary = (tmp_path / "rec" / "run.jsonl.summary.txt").read_text()
    assert "files: 2 " in summary and "failed files: 0" in summary
    assert "over --max-bytes (not failures): 1 files" in summary and "big.py" in summary
    # a kill mid-write: the last line torn; --resume keeps a.py's record and checks b.py again
    kept = next(line for line in report.read_text().splitlines() if '/a.py"' in line)
    report.write_text(kept + "\n" + '{"path": "' + str(src / "b.py") + '", "li')
    capsys.readouterr()
    assert check.main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resumed: 1 files already in" in err and "1 to check" in err
    lines = report.read_text().splitlines()
    assert [Path(json.loads(line)["path"]).name for line in lines] == ["a.py", "b.py"]
