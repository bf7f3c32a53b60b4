"""User weight mappings for hand-finished ports: `[tool.pt2jax.weights]` or `--weights-map FILE`.

A model finished by hand may hold a layer the tables (rules/layers.toml) do not know: a
user-defined module whose converted twin stores its weight in another layout or under another
name, or a torch.nn layer without an entry. The user maps it with the tables' own vocabulary:

    [tool.pt2jax.weights]
    # a module class (a user-defined class by name, or "torch.nn.Bilinear"): every tensor it
    # holds directly, written like a table's `weights` list
    ScaledLinear = [{ torch = "weight", to = "kernel", transform = "transpose" }, { torch = "bias", to = "bias" }]
    # one torch state_dict key (a glob; `*` matches within and across dots): one tensor
    "blocks.*.gate.w" = { to = "gate.kernel", transform = "transpose" }

`to` is relative to the converted module that corresponds to the torch module holding the
tensor (as in the tables; "" drops the tensor), `transform` one of the tables' weight
transforms (copy, transpose, conv, conv_transpose), `positive = true` for a variance-like
buffer. A key pattern wins over a class entry, and a class entry over the tables. A
`--weights-map` file holds the same table at top level (or under [tool.pt2jax.weights]); its
entries win over the pyproject's. (Plain data and tomllib only: no torch or jax here.)
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..rules_schema import WEIGHT_TRANSFORMS
from .report import VerifyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_KEYS = {"torch", "to", "transform", "positive"}


def _rule(where: str, raw, need_torch: bool) -> dict:
    if not isinstance(raw, dict):
        raise VerifyError(f"{where}: expected a table such as {{ torch = \"weight\", to = \"kernel\", "
                          "transform = \"transpose\" }")
    unknown = set(raw) - _KEYS
    if unknown:
        raise VerifyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
    if need_torch and not isinstance(raw.get("torch"), str):
        raise VerifyError(f"{where}: `torch` (the tensor's name in the torch module) is required")
    if not isinstance(raw.get("to"), str):
        raise VerifyError(f"{where}: `to` (the variable's path in the converted module, \"\" to drop it) is required")
    transform = raw.get("transform", "copy") or "copy"
    if transform not in WEIGHT_TRANSFORMS:
        raise VerifyError(f"{where}: unknown transform {transform!r}; known: {', '.join(WEIGHT_TRANSFORMS)}")
    if "positive" in raw and not isinstance(raw["positive"], bool):
        raise VerifyError(f"{where}: `positive` must be true or false")
    return {"torch": raw.get("torch", ""), "to": raw["to"], "transform": transform,
            "positive": bool(raw.get("positive", False))}


@dataclass
class WeightMap:
    classes: dict[str, dict[str, dict]] = field(default_factory=dict)  # class -> torch tensor name -> rule
    keys: dict[str, dict] = field(default_factory=dict)  # state_dict key glob -> rule
    source: str = ""  # where it was read, for messages

    @classmethod
    def from_table(cls, table, source: str) -> WeightMap:
        if not isinstance(table, dict):
            raise VerifyError(f"{source}: the weights map must be a table of class = [weights] or "
                              "\"key.pattern\" = { to = ..., transform = ... }")
        out = cls(source=source)
        for name, raw in table.items():
            where = f"{source}: {name!r}"
            if isinstance(raw, list):
                rules = [_rule(f"{where}[{i}]", item, True) for i, item in enumerate(raw)]
                out.classes[str(name)] = {r["torch"]: r for r in rules}
            else:
                out.keys[str(name)] = _rule(where, raw, False)
        return out

    @classmethod
    def from_file(cls, path: str) -> WeightMap:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise VerifyError(f"{path}: no such file (--weights-map)") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise VerifyError(f"{path}: cannot read the weights map: {exc}") from None
        if isinstance(data.get("tool"), dict):
            data = data["tool"].get("pt2jax", {}).get("weights", {})
        elif set(data) == {"weights"} and isinstance(data["weights"], dict):
            data = data["weights"]
        return cls.from_table(data, path)

    def merged(self, other: WeightMap | None) -> WeightMap:
        """This map with `other`'s entries on top."""
        if other is None:
            return self
        return WeightMap({**self.classes, **other.classes}, {**self.keys, **other.keys},
                         " and ".join(s for s in (self.source, other.source) if s))

    def __bool__(self) -> bool:
        return bool(self.classes or self.keys)

    def for_class(self, module) -> tuple[str, dict[str, dict]] | None:
        """(the name it matched, tensor name -> rule) for a module's class, or None."""
        cls = type(module)
        names = []
        if cls.__module__.startswith("torch.nn"):
            names.append("torch.nn." + cls.__name__)
        return self.for_class_names(names + [cls.__qualname__, cls.__name__])

    def for_class_names(self, names: list[str]) -> tuple[str, dict[str, dict]] | None:
        """for_class on a class's names ("torch.nn.Linear" for torch's, qualname, name)."""
        for name in names:
            if name in self.classes:
                return name, self.classes[name]
        return None

    def for_key(self, key: str) -> tuple[str, dict] | None:
        """(the pattern, rule) for a torch state_dict key, or None (an exact key wins over globs)."""
        if key in self.keys:
            return key, self.keys[key]
        for pattern, rule in self.keys.items():
            if fnmatch.fnmatchcase(key, pattern):
                return pattern, rule
        return None


def project_weights_map(path: str) -> WeightMap | None:
    """The `[tool.pt2jax.weights]` table of the project `path` belongs to (config.load_config's
    pyproject), or None."""
    from ..config import ConfigError, load_config

    try:
        config = load_config([path])
    except ConfigError as exc:
        raise VerifyError(str(exc)) from None
    table = config.settings.get("weights")
    if table is None or config.pyproject is None:
        return None
    return WeightMap.from_table(table, f"{config.pyproject}: [tool.pt2jax.weights]")


def load_weights_map(converted: str, file: str | None = None) -> WeightMap | None:
    """The project's map (found from the converted file) with `file`'s (--weights-map) on top."""
    project = project_weights_map(str(Path(converted)))
    user = WeightMap.from_file(file) if file else None
    if project is None:
        return user
    return project.merged(user)
