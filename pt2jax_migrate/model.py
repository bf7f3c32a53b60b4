"""Plain data passed between the engine, the CLI and the renderers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, order=True)
class Finding:
    """One PyTorch construct found by `lint`, or one change/diagnostic from `rewrite`."""

    path: str
    line: int
    col: int  # 1-based, as editors and ruff print it
    code: str
    message: str
    fixable: bool = False
    severity: str = "warning"  # error | warning | info
    fix: str = ""  # safe (numerically identical) | unsafe (changes numbers) | manual (TODO) | "" (n/a)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FileResult:
    """What the engine produced for one file."""

    path: str
    source: str
    new_source: str | None = None  # None: the file was not rewritten (or could not be)
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # a file-level error (syntax error, decode error): exit 2

    @property
    def changed(self) -> bool:
        return self.new_source is not None and self.new_source != self.source


class SourceError(Exception):
    """A file could not be read or parsed. The message names the file and the line."""

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path, self.line = path, line
        self.message = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # picklable, for lint's worker processes
        return (SourceError, (self.path, self.message, self.line))
