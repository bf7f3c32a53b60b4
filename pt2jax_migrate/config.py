"""`[tool.pt2jax]` settings from pyproject.toml.

The nearest pyproject.toml with a `[tool.pt2jax]` table, walking up from the paths given
(from the current folder when none are), is the project's configuration:

    [tool.pt2jax]
    select = ["ALL"]                 # code prefixes to report (default ALL)
    extend-select = []               # added to `select`
    ignore = ["PTJ303"]              # code prefixes not to report
    exclude = ["legacy/", "*_pb2.py"]  # files and folders never linted (gitignore-style globs)
    respect-gitignore = true         # skip what .gitignore files ignore when walking folders
    target = "nnx"                   # nnx | linen (the JAX API `rewrite` and `lint --fix` write)

    [tool.pt2jax.per-file-ignores]
    "tests/**" = ["PTJ104", "PTJ3"]  # glob (relative to this file's folder) -> code prefixes

Command-line options override these (see pt2jax_migrate.selection for the semantics).
Keys may be spelled with `-` or `_`. Its `[tool.pt2jax.verify]` table maps a file (relative to the pyproject's folder) to how
`pt2jax rewrite --verify` checks it:

    [tool.pt2jax.verify]
    "models/mlp.py" = { model = "MLP", init = "20, 10", inputs = ["float32[8,20]"] }
    "models/cnn.py" = { model = "CNN", inputs = ["float32[2,1,28,28]"], atol = 1e-5, loss = "cross_entropy" }
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VERIFY_KEYS = {"model", "init", "inputs", "loss", "atol", "rtol", "dtype", "perturb", "seed"}
LINT_KEYS = {"select", "extend-select", "ignore", "exclude", "per-file-ignores", "respect-gitignore", "target",
             "verify", "weights"}  # [tool.pt2jax.weights]: verify's user weight mappings (verify/weightmap.py)
TARGETS = ("nnx", "linen")


class ConfigError(Exception):
    """pyproject.toml is unreadable or its [tool.pt2jax] table is malformed."""


@dataclass(frozen=True)
class VerifyEntry:
    model: str
    inputs: tuple[str, ...]
    init: str = ""
    loss: str | None = None
    atol: float | None = None
    rtol: float | None = None
    dtype: str = "float32"
    perturb: bool = True
    seed: int = 0

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for verify.run_verify."""
        return {"model": self.model, "init": self.init, "inputs": list(self.inputs), "atol": self.atol,
                "rtol": self.rtol, "dtype": self.dtype, "perturb": self.perturb, "loss": self.loss,
                "seed": self.seed}


@dataclass
class Config:
    pyproject: Path | None = None  # the file read, None when there is none
    settings: dict[str, Any] = field(default_factory=dict)  # the whole [tool.pt2jax] table
    verify: dict[Path, VerifyEntry] = field(default_factory=dict)  # resolved file path -> entry
    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)  # glob -> code prefixes
    respect_gitignore: bool = True
    target: str = "nnx"
    warnings: list[str] = field(default_factory=list)  # e.g. unknown keys (printed, not fatal)

    @property
    def root(self) -> Path | None:
        return self.pyproject.parent if self.pyproject is not None else None

    def verify_entry(self, path: str | os.PathLike) -> VerifyEntry | None:
        return self.verify.get(Path(path).resolve())


def _normal_key(key: str) -> str:
    return key.replace("_", "-")


def _code_list(found: Path, key: str, value: Any) -> tuple[str, ...]:
    from .selection import split_codes

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{found}: [tool.pt2jax] `{key}` must be a list of codes such as [\"PTJ1\", \"PTJ302\"]")
    return tuple(split_codes(value))


def _lint_settings(found: Path, table: dict, config: Config) -> None:
    from .selection import SelectionError, check_selectors
    from .rules import load_rules

    normal = {_normal_key(k): v for k, v in table.items()}
    unknown = sorted(set(normal) - LINT_KEYS)
    if unknown:
        config.warnings.append(f"{found}: unknown [tool.pt2jax] key(s) {', '.join(unknown)} ignored; "
                               f"known: {', '.join(sorted(LINT_KEYS))}")
    known_codes = load_rules().lint_rules
    if "select" in normal:
        config.select = _code_list(found, "select", normal["select"])
    if "extend-select" in normal:
        config.extend_select = _code_list(found, "extend-select", normal["extend-select"])
    if "ignore" in normal:
        config.ignore = _code_list(found, "ignore", normal["ignore"])
    exclude = normal.get("exclude", [])
    if isinstance(exclude, str):
        exclude = [exclude]
    if not isinstance(exclude, list) or not all(isinstance(v, str) for v in exclude):
        raise ConfigError(f"{found}: [tool.pt2jax] `exclude` must be a list of globs such as [\"legacy/\"]")
    config.exclude = tuple(exclude)
    per_file = normal.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise ConfigError(f"{found}: [tool.pt2jax.per-file-ignores] must be a table of glob = [codes]")
    config.per_file_ignores = {
        str(glob): _code_list(found, f"per-file-ignores {glob!r}", codes) for glob, codes in per_file.items()
    }
    if "respect-gitignore" in normal:
        if not isinstance(normal["respect-gitignore"], bool):
            raise ConfigError(f"{found}: [tool.pt2jax] `respect-gitignore` must be true or false")
        config.respect_gitignore = normal["respect-gitignore"]
    target = normal.get("target", "nnx")
    if target not in TARGETS:
        raise ConfigError(f"{found}: [tool.pt2jax] `target` must be one of {', '.join(TARGETS)}, not {target!r}")
    config.target = target
    try:
        for key, codes in (("select", config.select or ()), ("extend-select", config.extend_select),
                           ("ignore", config.ignore)):
            check_selectors(codes, known_codes, f"{found}: [tool.pt2jax] `{key}`")
        for glob, codes in config.per_file_ignores.items():
            check_selectors(codes, known_codes, f"{found}: [tool.pt2jax.per-file-ignores] {glob!r}")
    except SelectionError as error:
        raise ConfigError(str(error)) from None


def _start_folder(path: str | os.PathLike) -> Path:
    p = Path(path).resolve()
    return p if p.is_dir() else p.parent


def _read(pyproject: Path) -> dict:
    try:
        with open(pyproject, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{pyproject}: {error}") from None


def find_pyproject(paths: list[str | os.PathLike] | tuple = ()) -> Path | None:
    """The nearest pyproject.toml with a [tool.pt2jax] table above the first path (or the
    current folder); failing that the nearest pyproject.toml at all; else None."""
    start = _start_folder(paths[0]) if paths else Path.cwd().resolve()
    nearest = None
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            if nearest is None:
                nearest = candidate
            if "pt2jax" in _read(candidate).get("tool", {}):
                return candidate
    return nearest


def _entry(pyproject: Path, key: str, raw: Any) -> VerifyEntry:
    where = f"{pyproject}: [tool.pt2jax.verify] {key!r}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table such as {{ model = \"MLP\", inputs = [\"float32[8,20]\"] }}")
    unknown = set(raw) - VERIFY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(VERIFY_KEYS))}")
    if not isinstance(raw.get("model"), str) or not raw["model"]:
        raise ConfigError(f"{where}: `model` (the class or factory to build) is required")
    inputs = raw.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise ConfigError(f"{where}: `inputs` must be a list of specs such as [\"float32[8,20]\"]")
    for name in ("atol", "rtol"):
        if name in raw and not isinstance(raw[name], (int, float)):
            raise ConfigError(f"{where}: `{name}` must be a number")
    return VerifyEntry(
        model=raw["model"], inputs=tuple(inputs), init=str(raw.get("init", "")), loss=raw.get("loss"),
        atol=raw.get("atol"), rtol=raw.get("rtol"), dtype=str(raw.get("dtype", "float32")),
        perturb=bool(raw.get("perturb", True)), seed=int(raw.get("seed", 0)),
    )


def load_config(paths: list[str | os.PathLike] | tuple = (), pyproject: str | os.PathLike | None = None) -> Config:
    """Read [tool.pt2jax] (and its verify table) from `pyproject` or the one found above `paths`."""
    found = Path(pyproject).resolve() if pyproject is not None else find_pyproject(list(paths))
    if found is None:
        return Config()
    table = _read(found).get("tool", {}).get("pt2jax", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{found}: [tool.pt2jax] must be a table")
    verify_table = table.get("verify", {})
    if not isinstance(verify_table, dict):
        raise ConfigError(f"{found}: [tool.pt2jax.verify] must be a table")
    verify = {
        (found.parent / key).resolve(): _entry(found, key, raw) for key, raw in verify_table.items()
    }
    config = Config(found, table, verify)
    _lint_settings(found, table, config)
    return config
