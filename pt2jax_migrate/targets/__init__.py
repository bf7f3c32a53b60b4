"""The registry of targets: the JAX APIs the rewrite can write (see base.Target).

`get_target("nnx")` returns the Flax NNX target. A new target registers itself with
`register_target` (its folder's module does it on import, listed in _BUILTIN).
"""

from __future__ import annotations

from ..rules_schema import register_helpers

from .base import Helper, Target
from .linen import LinenTarget
from .nnx import NNXTarget

__all__ = ["DEFAULT_TARGET", "Helper", "Target", "UnknownTarget", "available_targets", "get_target",
           "register_target", "target_of_text", "unregister_target"]

DEFAULT_TARGET = "nnx"
_REGISTRY: dict[str, Target] = {}


class UnknownTarget(ValueError):
    """A target name that no registered target has."""


def register_target(target: Target) -> Target:
    """Make `target` available under `target.name` (a second target of one name is refused)."""
    if not isinstance(target, Target):
        raise TypeError(f"{target!r} is not a Target")
    if target.name in _REGISTRY and _REGISTRY[target.name] is not target:
        raise ValueError(f"a target named {target.name!r} is already registered")
    _REGISTRY[target.name] = target
    register_helpers(target.table, target.helpers)  # so the tables' `helpers = [...]` names are checked
    return target


def unregister_target(name: str) -> None:
    _REGISTRY.pop(name, None)


def available_targets() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_target(name: str | Target | None = None) -> Target:
    """The target called `name` (None: the default); a Target instance is returned as is."""
    if isinstance(name, Target):
        return name
    name = DEFAULT_TARGET if name is None else name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownTarget(f"unknown target {name!r}; available targets: {', '.join(available_targets())}") from None


def target_of_text(text: str) -> str | None:
    """The name of the non-default target whose converted code `text` is (Target.wrote), else None."""
    for name, target in _REGISTRY.items():
        if name != DEFAULT_TARGET and target.wrote(text):
            return name
    return None


register_target(NNXTarget())
register_target(LinenTarget())
