"""Load the declarative mapping tables in rules/*.toml (never imports torch or jax).

One table entry drives lint (code, fixability), rewrite (target, argument mapping),
weight transfer in verify (`weights`) and the generated tests (`example`).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TABLES = ("layers", "functional", "tensor_methods", "losses", "optimizers", "lint")


def rules_dir() -> Path:
    """rules/ in a source checkout or editable install; the packaged copy otherwise."""
    here = Path(__file__).resolve().parent.parent / "rules"
    if (here / "layers.toml").is_file():
        return here
    from importlib.resources import files

    return Path(str(files("pt2jax_migrate.rules")))


@dataclass(frozen=True)
class Rule:
    """One mapping entry. `kind` says which table it came from."""

    kind: str  # layer | function | method | loss | optimizer
    names: tuple[str, ...]  # qualified torch names (methods: bare method names)
    code: str
    raw: dict[str, Any] = field(hash=False, compare=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @property
    def signature(self) -> list[str]:
        return list(self.raw.get("signature", []))

    @property
    def status(self) -> str:
        return self.raw.get("status", "exact")

    @property
    def example(self) -> dict | None:
        return self.raw.get("example")

    @property
    def label(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class LintRule:
    code: str
    name: str
    summary: str
    what: str
    why: str
    example: str
    instead: str
    fix: str


@dataclass
class RuleSet:
    by_name: dict[str, Rule]  # qualified torch name -> rule (layers, functions, losses, optimizers)
    methods: dict[str, Rule]  # tensor method name -> rule
    dtypes: dict[str, str]  # torch.float32 -> jnp.float32
    lint_rules: dict[str, LintRule]
    entries: list[Rule]

    def layer_for_class(self, cls_qualname: str) -> Rule | None:
        """The layer rule for a torch class such as 'torch.nn.Linear' (used by verify)."""
        rule = self.by_name.get(cls_qualname)
        return rule if rule is not None and rule.kind in ("layer", "loss") else None


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def _load_table(name: str) -> dict:
    path = rules_dir() / f"{name}.toml"
    with open(path, "rb") as handle:
        return tomllib.load(handle)


@functools.lru_cache(maxsize=1)
def load_rules() -> RuleSet:
    by_name: dict[str, Rule] = {}
    methods: dict[str, Rule] = {}
    entries: list[Rule] = []
    dtypes: dict[str, str] = {}
    for table, key, kind in (
        ("layers", "layer", "layer"),
        ("functional", "function", "function"),
        ("losses", "loss", "loss"),
        ("optimizers", "optimizer", "optimizer"),
        ("tensor_methods", "method", "method"),
    ):
        data = _load_table(table)
        for raw in data.get(key, []):
            names = _as_tuple(raw["name"] if kind == "method" else raw["torch"])
            rule = Rule(kind=kind, names=names, code=raw["code"], raw=raw)
            entries.append(rule)
            target = methods if kind == "method" else by_name
            for n in names:
                if n in target:
                    raise ValueError(f"rules/{table}.toml: {n} is mapped twice")
                target[n] = rule
        for dt in data.get("dtype", []):
            dtypes.update(dt["torch"])
    lint_rules = {
        r["code"]: LintRule(**{k: r[k] for k in LintRule.__dataclass_fields__})
        for r in _load_table("lint")["rule"]
    }
    for rule in entries:
        if rule.code not in lint_rules:
            raise ValueError(f"{rule.label}: code {rule.code} is not in rules/lint.toml")
    return RuleSet(by_name, methods, dtypes, lint_rules, entries)
