"""`json`: machine-readable lint findings (a list of finding dicts, messages with the honest
fix mark), `--statistics` (one object) and verify reports (VerifyReport.to_dict)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from ..model import Finding
from .counts import display_message


def _dump(data, stream: TextIO) -> None:
    json.dump(data, stream, indent=2)
    stream.write("\n")


def finding_dict(finding: Finding) -> dict:
    return {**finding.to_dict(), "message": display_message(finding)}


def render_findings(findings: Sequence[Finding], stream: TextIO, ctx) -> None:
    _dump([finding_dict(f) for f in sorted(findings)], stream)


def render_statistics(stats, stream: TextIO, ctx=None) -> None:
    _dump(stats.to_dict(), stream)


def render_verify(report, stream: TextIO, ctx) -> None:
    _dump(report.to_dict(), stream)
