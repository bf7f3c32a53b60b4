"""Load the declarative mapping tables in rules/*.toml (never imports torch or jax).

One table entry drives lint (code, fixability), rewrite (target, argument mapping),
weight transfer in verify (`weights`) and the generated tests (`example`, `valid`).
Every file is checked against rules_schema.py on load (TableError names file and entry).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .rules_schema import DEFAULT_TARGET, HELPERS, SHARES_SIDES, TARGETS, TableError, framework_neutral, validate_table

__all__ = ["TABLES", "LintRule", "Rule", "RuleSet", "TableError", "load_rules", "rules_dir"]
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TABLES = ("layers", "functional", "tensor_methods", "losses", "optimizers", "lint")


@functools.lru_cache(maxsize=1)
def rules_dir() -> Path:
    """rules/ in a source checkout or editable install; the packaged copy otherwise (found
    once: lint asks for the rules of every file)."""
    here = Path(__file__).resolve().parent.parent / "rules"
    if (here / "layers.toml").is_file():
        return here
    from importlib.resources import files

    return Path(str(files("pt2jax_migrate.rules")))


@dataclass(frozen=True)
class Rule:
    """One mapping entry. `kind` says which table it came from.

    `raw` is the entry's source side (the torch construct); `sides` holds one sub-table per
    target (`[layer.nnx]`). `get` reads the source side, then the sub-table of `target`, so
    callers need not know on which side a key lives.
    """

    kind: str  # layer | function | method | loss | optimizer
    names: tuple[str, ...]  # qualified torch names (methods: bare method names)
    code: str
    raw: dict[str, Any] = field(hash=False, compare=False)
    sides: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False, compare=False)
    # compared (and hashed): the verdicts memoised per rule (mapping.check_rule, core.decide) are per target
    target: str = field(default=DEFAULT_TARGET)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.raw:
            return self.raw[key]
        return self.side().get(key, default)

    def side(self, target: str | None = None) -> dict[str, Any]:
        """The target-side keys for `target` (default: the rule set's target); {} if unmapped."""
        return self.sides.get(target or self.target, {})

    def supports(self, target: str | None = None) -> bool:
        """Whether the entry has a mapping for `target` (a sub-table for it)."""
        return (target or self.target) in self.sides

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
    # target -> the doc keys (what, why, example, instead) that target words its own way
    targets: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, hash=False)

    def doc(self, target: str = DEFAULT_TARGET) -> dict[str, str]:
        """what, why, example, instead as `target` has them (the rule's own where it says nothing)."""
        own = self.targets.get(target, {})
        return {k: own.get(k, getattr(self, k)) for k in ("what", "why", "example", "instead")}


@dataclass
class RuleSet:
    by_name: dict[str, Rule]  # qualified torch name -> rule (layers, functions, losses, optimizers)
    methods: dict[str, Rule]  # tensor method name -> rule
    dtypes: dict[str, str]  # torch.float32 -> jnp.float32
    lint_rules: dict[str, LintRule]
    entries: list[Rule]
    target: str = DEFAULT_TARGET  # the target whose sub-tables the rules resolve

    def layer_for_class(self, cls_qualname: str) -> Rule | None:
        """The layer rule for a torch class such as 'torch.nn.Linear' (used by verify)."""
        rule = self.by_name.get(cls_qualname)
        return rule if rule is not None and rule.kind in ("layer", "loss") else None


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def _side_helpers(side: dict) -> list[str]:
    """The helpers a target sub-table writes (its `helpers`, `algorithm` and `target_if_given` names)."""
    return [*side.get("helpers", []), *([side["algorithm"]] if "algorithm" in side else []),
            *side.get("target_if_given", {}).values()]


def _load_table(directory: Path, name: str) -> dict:
    path = directory / f"{name}.toml"
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise TableError(f"{path}: {exc}") from None
    validate_table(str(path), name, data)
    return data


def load_rules(path: str | Path | None = None, target: str = DEFAULT_TARGET) -> RuleSet:
    """The rule set read from `path` (default: rules_dir()), resolving target keys for `target`.
    Cached: the tables are read and validated once per (path, target)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    if target in SHARES_SIDES and not any(target in owners for owners in HELPERS.values()):
        # sharing a sub-table needs the target's helper names (registered by targets.register_target)
        raise ValueError(f"target {target!r} is not registered yet: import pt2jax_migrate.targets first")
    return _load_rules(Path(path) if path is not None else rules_dir(), target)


@functools.lru_cache(maxsize=8)
def _load_rules(directory: Path, target: str) -> RuleSet:
    by_name: dict[str, Rule] = {}
    methods: dict[str, Rule] = {}
    entries: list[Rule] = []
    table_of: dict[int, str] = {}
    dtypes: dict[str, str] = {}
    for table, key, kind in (
        ("layers", "layer", "layer"),
        ("functional", "function", "function"),
        ("losses", "loss", "loss"),
        ("optimizers", "optimizer", "optimizer"),
        ("tensor_methods", "method", "method"),
    ):
        data = _load_table(directory, table)
        for entry in data.get(key, []):
            source = {k: v for k, v in entry.items() if k not in TARGETS}
            sides = {t: entry[t] for t in TARGETS if t in entry}
            for reader, base in SHARES_SIDES.items():
                if reader not in sides and base in sides and framework_neutral(kind, source) and all(
                        reader in HELPERS.get(h, ()) for h in _side_helpers(sides[base])):
                    sides[reader] = sides[base]  # the same jax/jnp/optax text (rules_schema.SHARES_SIDES)
            names = _as_tuple(source["name"] if kind == "method" else source["torch"])
            rule = Rule(kind=kind, names=names, code=source["code"], raw=source, sides=sides, target=target)
            entries.append(rule)
            table_of[id(rule)] = table
            index = methods if kind == "method" else by_name
            for n in names:
                if n in index:
                    raise TableError(f"{directory / table}.toml: {n} is mapped twice")
                index[n] = rule
        for dt in data.get("dtype", []):
            dtypes.update(dt["torch"])
    lint_rules = {
        r["code"]: LintRule(**{k: r[k] for k in LintRule.__dataclass_fields__ if k != "targets"},
                            targets={t: r[t] for t in TARGETS if t in r})
        for r in _load_table(directory, "lint").get("rule", [])
    }
    for rule in entries:
        if rule.code not in lint_rules:
            raise TableError(f"{directory / table_of[id(rule)]}.toml: {rule.label}: code {rule.code} is not in "
                             f"{directory / 'lint.toml'}")
    return RuleSet(by_name, methods, dtypes, lint_rules, entries, target)
