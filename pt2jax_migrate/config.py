"""`[tool.pt2jax]` settings from pyproject.toml.

The nearest pyproject.toml with a `[tool.pt2jax]` table, walking up from the paths given
(from the current folder when none are), is the project's configuration. Its
`[tool.pt2jax.verify]` table maps a file (relative to the pyproject's folder) to how
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

    @property
    def root(self) -> Path | None:
        return self.pyproject.parent if self.pyproject is not None else None

    def verify_entry(self, path: str | os.PathLike) -> VerifyEntry | None:
        return self.verify.get(Path(path).resolve())


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
    return Config(found, table, verify)
