"""Baselines: record today's findings, then fail only on new ones (a ratchet).

A baseline entry is keyed by what survives unrelated edits: the file's path (relative to the
baseline file's folder, with `/`), the code, the finding's source line with surrounding
whitespace stripped, and the occurrence index among findings with that same path, code and
line text (in file order). Line numbers are not part of the key, so inserting or deleting
lines elsewhere in a file changes nothing; editing the line itself, or adding one more
identical construct, shows up as a new finding.

The file is JSON, sorted and indented so that diffs review well:

    {
      "tool": "pt2jax",
      "version": 1,
      "findings": [
        {"path": "src/model.py", "code": "PTJ102", "line": "self.fc = nn.Linear(4, 3)",
         "occurrence": 0, "message": "torch.nn.Linear layer construction [fixable]"}
      ]
    }

`message` is there for the reader; matching ignores it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .model import Finding

VERSION = 1

Key = tuple[str, str, str, int]


class BaselineError(Exception):
    """The baseline file is missing, unreadable or not a pt2jax baseline."""


def _relative(path: str, folder: str) -> str:
    try:
        relative = os.path.relpath(os.path.abspath(path), folder)
    except ValueError:  # another drive on Windows
        relative = os.path.abspath(path)
    return relative.replace(os.sep, "/")


def keys(findings: Iterable[Finding], line_text: Callable[[Finding], str], folder: str) -> list[tuple[Key, Finding]]:
    """Each finding with its baseline key, in file order."""
    ordered = sorted(findings, key=lambda f: (f.path, f.line, f.col, f.code))
    seen: Counter[tuple[str, str, str]] = Counter()
    out = []
    for finding in ordered:
        base = (_relative(finding.path, folder), finding.code, line_text(finding).strip())
        out.append(((*base, seen[base]), finding))
        seen[base] += 1
    return out


def render(findings: Iterable[Finding], line_text: Callable[[Finding], str], baseline_path: str) -> str:
    folder = os.path.dirname(os.path.abspath(baseline_path))
    rows = [
        {"path": key[0], "code": key[1], "line": key[2], "occurrence": key[3], "message": finding.message}
        for key, finding in keys(findings, line_text, folder)
    ]
    rows.sort(key=lambda r: (r["path"], r["code"], r["line"], r["occurrence"]))
    return json.dumps({"tool": "pt2jax", "version": VERSION, "findings": rows}, indent=2, sort_keys=True,
                      ensure_ascii=False) + "\n"


def write(path: str, findings: Iterable[Finding], line_text: Callable[[Finding], str]) -> int:
    """Write the baseline atomically; returns the number of entries."""
    import tempfile

    text = render(findings, line_text, path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".pt2jax-baseline-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return len(json.loads(text)["findings"])


@dataclass
class Baseline:
    path: str
    entries: Counter[Key]

    @classmethod
    def load(cls, path: str) -> Baseline:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise BaselineError(f"{path}: no such baseline file (create one with --write-baseline {path})") from None
        except (OSError, ValueError) as error:
            raise BaselineError(f"{path}: cannot read the baseline: {error}") from None
        if not isinstance(data, dict) or data.get("tool") != "pt2jax" or not isinstance(data.get("findings"), list):
            raise BaselineError(f"{path}: not a pt2jax baseline (expected {{\"tool\": \"pt2jax\", \"findings\": [...]}})")
        if data.get("version") != VERSION:
            raise BaselineError(f"{path}: baseline version {data.get('version')!r} is not supported (expected {VERSION})")
        entries: Counter[Key] = Counter()
        for row in data["findings"]:
            try:
                entries[(str(row["path"]), str(row["code"]), str(row["line"]), int(row["occurrence"]))] += 1
            except (KeyError, TypeError, ValueError):
                raise BaselineError(f"{path}: malformed entry {row!r}") from None
        return cls(path, entries)

    def filter(self, findings: Iterable[Finding], line_text: Callable[[Finding], str],
               scanned: Iterable[str] | None = None) -> tuple[list[Finding], int, int]:
        """(findings not in the baseline, how many matched, how many entries of the `scanned`
        files (all files when None) no longer occur: fixed since the baseline was written)."""
        folder = os.path.dirname(os.path.abspath(self.path))
        remaining = Counter(self.entries)
        new: list[Finding] = []
        matched = 0
        for key, finding in keys(findings, line_text, folder):
            if remaining[key] > 0:
                remaining[key] -= 1
                matched += 1
            else:
                new.append(finding)
        if scanned is not None:
            linted = {_relative(p, folder) for p in scanned}
            gone = sum(n for key, n in remaining.items() if key[0] in linted)
        else:
            gone = sum(remaining.values())
        return sorted(new), matched, gone
