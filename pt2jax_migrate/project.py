"""Lint a project: find its files (files.walk, the walker rewrite uses too), lint them (lint.lint_sources), then apply the project's
rule selection, per-file ignores and suppression comments to each file's findings.

The engine's per-file findings are cached unfiltered, so changing `--select` or adding a
`# noqa` never invalidates the cache; the filtering below reads no file twice and parses
nothing (suppress.apply only looks at the lines that carry findings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .files.walk import AnyOf, FileRules, discover
from .lint import lint_sources
from .model import Finding, SourceError
from .selection import Layer, PatternList, resolve_selection
from .suppress import apply, split_lines


@dataclass
class LintOptions:
    """What to report and which files to look at (from the config, then the command line)."""

    enabled: frozenset[str] | None = None  # None: every code
    per_file_ignores: list[tuple[PatternList, tuple[str, ...]]] = field(default_factory=list)
    exclude: PatternList | AnyOf | None = None
    respect_gitignore: bool = True
    root: str | None = None  # the folder patterns are relative to
    target: str = "nnx"  # the JAX API the findings are judged for (what `rewrite --target` would write)

    @classmethod
    def build(cls, config=None, *, select: Sequence[str] | None = None, extend_select: Sequence[str] = (),
              ignore: Sequence[str] = (), exclude: Sequence[str] = (), respect_gitignore: bool | None = None,
              known: Iterable[str] | None = None, target: str | None = None) -> LintOptions:
        """Options from a config.Config (may be None) overridden by command-line values."""
        if known is None:
            from .rules import load_rules

            known = load_rules().lint_rules
        known = list(known)
        layers = []
        per_file: list[tuple[PatternList, tuple[str, ...]]] = []
        if config is not None and config.pyproject is not None:
            layers.append(Layer(config.select, tuple(config.extend_select), tuple(config.ignore)))
            per_file = [(PatternList.from_lines(str(config.root), [glob]), codes)
                        for glob, codes in config.per_file_ignores.items()]
        cli = Layer(tuple(select) if select else None, tuple(extend_select), tuple(ignore))
        if cli != Layer():
            layers.append(cli)
        files = FileRules.build(config, exclude=exclude, respect_gitignore=respect_gitignore)
        target = target or (config.target if config is not None else "nnx")
        return cls(resolve_selection(layers, known), per_file, files.exclude, files.respect_gitignore, files.root,
                   target)

    @property
    def file_rules(self) -> FileRules:
        return FileRules(self.exclude, self.respect_gitignore, self.root)

    def enabled_for(self, path: str) -> frozenset[str] | None:
        enabled = self.enabled
        if not self.per_file_ignores:
            return enabled
        if enabled is None:
            from .rules import load_rules

            enabled = frozenset(load_rules().lint_rules)
        for patterns, codes in self.per_file_ignores:
            if patterns.matches(path):
                enabled = frozenset(c for c in enabled if not any(c.startswith(p) for p in codes))
        return enabled


@dataclass
class FileLint:
    path: str
    lines: int  # physical lines
    torch_free: bool  # the engine found nothing at all (before any filtering)
    findings: list[Finding]  # after selection and suppressions
    suppressed: int = 0
    source: str | None = None  # kept for files with findings (baseline, reports, --add-noqa)
    _lines: list[str] | None = None

    def line(self, number: int) -> str:
        if self.source is None:
            return ""
        if self._lines is None:
            self._lines = split_lines(self.source.removeprefix("\ufeff"))
        return self._lines[number - 1] if 0 < number <= len(self._lines) else ""


@dataclass
class LintReport:
    files: list[FileLint] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    excluded: int = 0  # files left out by `exclude`

    @property
    def findings(self) -> list[Finding]:
        return sorted(f for file in self.files for f in file.findings)

    @property
    def suppressed(self) -> int:
        return sum(file.suppressed for file in self.files)

    def by_path(self) -> dict[str, FileLint]:
        return {file.path: file for file in self.files}

    def line_text(self) -> Callable[[Finding], str]:
        files = self.by_path()

        def text(finding: Finding) -> str:
            file = files.get(finding.path)
            return file.line(finding.line) if file is not None else ""

        return text


def count_lines(source: str) -> int:
    if not source:
        return 0
    return source.count("\n") + (0 if source.endswith("\n") else 1)


def filter_file(path: str, source: str, raw: list[Finding], options: LintOptions) -> FileLint:
    outcome = apply(path, source, raw, options.enabled_for(path))
    return FileLint(path, count_lines(source), not raw, outcome.findings, outcome.suppressed,
                    source if outcome.findings else None)


def lint_project(paths: Sequence[str], options: LintOptions | None = None, *, cache: bool = False, jobs: int = 1,
                 progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
                 stdin: tuple[str, str] | None = None) -> LintReport:
    """Find the files under `paths`, lint them, filter the findings. `stdin` is
    (filename, text): lint that text as if it were the file (`paths` is then ignored)."""
    options = options or LintOptions()
    report = LintReport()
    sources = None
    if stdin is not None:
        name, text = stdin
        if options.exclude is not None and options.exclude.matches(name):
            report.excluded = 1
            return report
        files, sources = [name], {name: text}
    else:
        found = discover(paths, options.file_rules)
        files, report.excluded = found.paths, found.excluded
        report.errors.extend(found.errors)
    if on_total is not None:
        on_total(len(files))
    for _file, _source, outcome in lint_sources(files, cache=cache and stdin is None, jobs=jobs, progress=progress,
                                                sources=sources, target=options.target,
                                                finish=lambda file, source, raw: filter_file(file, source, raw, options)):
        if isinstance(outcome, SourceError):
            report.errors.append(outcome)
        else:
            report.files.append(outcome)
    return report
