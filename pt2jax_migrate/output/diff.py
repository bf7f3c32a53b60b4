"""Unified diffs of what `rewrite --diff` and `lint --diff` would change. Not a `--format`:
a diff is a view of one file's change, printed as each file is converted."""

from __future__ import annotations

import difflib
import os
from typing import TextIO


def unified_diff(old: str, new: str, path: str) -> str:
    """A unified diff of one file, ending with a newline: `a/path` -> `b/path` for a relative
    path (as git writes them), the path itself on both sides for an absolute one."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    before, after = (path, path) if os.path.isabs(path) else (f"a/{path}", f"b/{path}")
    out = []
    for line in difflib.unified_diff(old_lines, new_lines, before, after):
        out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def render_diff(diff: str, stream: TextIO, color: bool) -> None:
    if not color:
        stream.write(diff)
        return
    from rich.text import Text

    from .text import console

    out = console(stream, True)
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        out.print(Text(line, style=style))
