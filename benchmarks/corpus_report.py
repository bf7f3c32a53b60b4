"""corpus_check's record and summary: one JSON line per checked file, appended (and flushed)
as each file finishes, so a run cut short (--budget, Ctrl-C, kill, a crash of the machine) is
still a record, and `--resume` goes on from it; the summary is computed from the records."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path


class Record:
    """The JSON-lines record at `path` (None: no record). `resume`: keep the files already
    checked there (a torn last line, from a kill mid-write, is dropped) and check the rest."""

    def __init__(self, path: str | None, resume: bool):
        self.path = path
        self.earlier: list[dict] = []
        self.handle = None
        if path is None:
            return
        if resume and os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        self.earlier.append(json.loads(line))
                    except ValueError:
                        pass  # a torn line: that file is checked again
            with open(path, "w", encoding="utf-8") as handle:  # rewrite without the torn line
                handle.writelines(json.dumps(r) + "\n" for r in self.earlier)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.handle = open(path, "a" if resume else "w", encoding="utf-8")

    def done(self) -> set[str]:
        return {r["path"] for r in self.earlier}

    def add(self, result: dict) -> None:
        if self.handle is not None:
            self.handle.write(json.dumps(result) + "\n")
            self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def summarize(results: list[dict], seconds: float, jobs: int, show: int,
              skipped: list[tuple[str, int]] = ()) -> tuple[str, int]:
    """(the summary text, the number of failed files)."""
    lines = sum(r["lines"] for r in results)
    cpu = sum(r.get("cpu", 0.0) for r in results)
    wall = sum(r.get("seconds", 0.0) for r in results)
    by_kind: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in results:
        for kind, why in r["failures"]:
            by_kind[kind].append((r["path"], why))
    states = Counter(r["state"] for r in results)
    failed = sum(bool(r["failures"]) for r in results)
    rewrite_lines = sum(r["lines"] for r in results if "rewrite_cpu" in r)
    rewrite_cpu = sum(r.get("rewrite_cpu", 0) for r in results)
    text = [
        f"files: {len(results)}  lines: {lines}  changed by rewrite: {sum(r['changed'] for r in results)}  "
        f"not Python (skipped): {states['not-python']}  refused with a message: {states['refused']}",
        f"wall: {seconds:.1f} s with {jobs} job(s) this session (files' own wall time summed: {wall:.1f} s); "
        f"CPU {cpu:.1f} s  ->  {lines / max(cpu, 1e-9):.0f} lines/s per core "
        "(lint + rewrite + second rewrite + checks); the first rewrite alone (read, convert, check, write): "
        f"{rewrite_lines / max(rewrite_cpu, 1e-9):.0f} lines/s per core",
        f"failed files: {failed}",
    ]
    for kind in sorted(by_kind, key=lambda k: -len(by_kind[k])):
        text.append(f"  {kind}: {len(by_kind[kind])}")
        for path, why in by_kind[kind][:show]:
            text.append(f"    {path}: {why[:300]}")
    gaps: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in results:
        for kind, why in r.get("gaps", []):
            gaps[kind].append((r["path"], why))
    for kind in gaps:  # not failures: the output is still honest (every residue marked)
        text.append(f"  engine gaps, not failures: {kind}: {len(gaps[kind])} files")
        for path, why in gaps[kind][:show]:
            text.append(f"    {path}: {why[:300]}")
    refused = [r for r in results if r["state"] == "refused"]
    if refused:
        text.append(f"  refused (documented limits, not failures): {len(refused)}")
        for r in refused[:show]:
            text.append(f"    {r['refusal'][:300]}")
    if skipped:
        text.append(f"  not checked, over --max-bytes (not failures): {len(skipped)} files, "
                    f"{sum(size for _, size in skipped)} bytes")
        for path, size in skipped[:show]:
            text.append(f"    {path}: {size} bytes")
    slowest = sorted(results, key=lambda r: -r.get("cpu", 0.0))[:3]
    text.append("slowest: " + ", ".join(f"{Path(r['path']).name} ({r['lines']} lines, {r.get('cpu', 0):.1f} s CPU)"
                                        for r in slowest))
    return "\n".join(text), failed
