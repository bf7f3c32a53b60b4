"""Argument binding and refusal for table entries: framework-neutral (no target, no rendering).

`bind` fits a call's arguments (as source text) to the torch signature a table entry records;
`check_arguments` applies the entry's refusals (`refuse`, `allow`, `values`, `int_args`, ...);
`tensor_method_applies` tells a tensor method call from a same-named method of something else.
Lint and rewrite both reach these through core.decide; rendering lives with the target (mapping.py).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ..rules import Rule


@dataclass(frozen=True)
class Arg:
    source: str  # the argument expression as written
    literal: str | None  # repr() of its value when it is a literal, else None
    starred: bool = False  # *args or **kwargs


def make_arg(source: str, starred: bool = False) -> Arg:
    try:
        literal = repr(ast.literal_eval(source.strip()))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        literal = None
    return Arg(source.strip(), literal, starred)


def arguments_from_text(args: tuple, kwargs: tuple) -> tuple[list[Arg], dict[str, Arg]]:
    """((source, starred), ...), ((keyword or None for **, source), ...) -> bind()'s Args."""
    arg_list = [make_arg(text, starred) for text, starred in args]
    kwarg_map = {k if k is not None else "**": make_arg(text, k is None) for k, text in kwargs}
    return arg_list, kwarg_map


class Refused(Exception):
    """The call is left in place; the message says why (it becomes the TODO text)."""


# --------------------------------------------------------------------------- binding


def is_module_form(rule: Rule, name: str | None) -> bool:
    """nn.CrossEntropyLoss (a module, built then called) vs F.cross_entropy (a function)."""
    return rule.kind == "loss" and name is not None and name.rsplit(".", 1)[-1][:1].isupper()


def _signature(rule: Rule, name: str | None) -> list[str]:
    if is_module_form(rule, name):
        return list(rule.get("module_signature", []))
    return rule.signature


def bind(rule: Rule, args: list[Arg], kwargs: dict[str, Arg], name: str | None = None) -> dict[str, Arg | list[Arg]]:
    """Bind call arguments to the torch signature. Raises Refused when they do not fit."""
    if any(a.starred for a in args) or any(a.starred for a in kwargs.values()):
        raise Refused("*args/**kwargs are not converted")
    signature = _signature(rule, name)
    by_arity = rule.get("signature_by_arity", {})
    if str(len(args)) in by_arity:  # torch overloads: randint(high, size) / randint(low, high, size)
        signature = by_arity[str(len(args))] + [p for p in signature if p not in by_arity[str(len(args))]]
    bound: dict[str, Arg | list[Arg]] = {}
    position = 0
    for param in signature:
        if param.startswith("**"):
            continue
        if param.startswith("*"):
            bound[param[1:]] = list(args[position:])
            position = len(args)
            break
        if position < len(args):
            bound[param] = args[position]
            position += 1
    if position < len(args):
        raise Refused(f"{len(args)} positional arguments; the torch signature takes {position}")
    names = {p.lstrip("*") for p in signature}
    takes_any_keyword = any(p.startswith("**") for p in signature)  # Rearrange(pattern, **axes_lengths)
    for key, value in kwargs.items():
        if key not in names and not takes_any_keyword:
            raise Refused(f"unknown argument {key}=")
        if key in bound:
            raise Refused(f"argument {key} given twice")
        bound[key] = value
    # varargs given as one sequence: x.view((2, 3)) / torch.zeros((2, 3))
    return bound


def check_arguments(rule: Rule, bound: dict) -> None:
    for param in rule.get("int_args", []):  # torch.max(a, b) vs torch.max(x, 1): only a literal int is a dim
        arg = bound.get(param)
        if isinstance(arg, Arg) and not _is_int_literal(arg):
            raise Refused(f"{param}={arg.source} is not a literal int (torch.max(a, b) is element-wise)")
    refuse = rule.get("refuse", {})
    allow = rule.get("allow", {})
    if "<always>" in refuse:
        raise Refused(refuse["<always>"])
    for key, reason in refuse.items():
        if key.startswith("<missing>") and key[len("<missing>"):] not in bound:
            raise Refused(reason)
    for param, arg in bound.items():
        if param in refuse:
            if not (isinstance(arg, Arg) and arg.literal is not None and arg.literal in allow.get(param, [])):
                raise Refused(refuse[param])
    for param, reason in rule.get("refuse_literal", {}).items():
        arg = bound.get(param)
        if isinstance(arg, Arg) and arg.literal is not None and arg.literal not in rule.get("keep_literal", {}).get(
                param, []):
            raise Refused(reason)
    values = rule.get("values", {})
    for param, table in values.items():
        arg = bound.get(param)
        if isinstance(arg, Arg) and (arg.literal is None or arg.literal not in table):
            raise Refused(f"{param}={arg.source} is not converted")
    for param, spec in rule.get("args", {}).items():
        arg = bound.get(param)
        if isinstance(spec, dict) and isinstance(arg, Arg):
            table = spec.get("values")
            if table is not None and (arg.literal is None or arg.literal not in table):
                raise Refused(f"{param}={arg.source} is not converted")
            if spec.get("transform") == "one_minus" and arg.literal == "None":
                raise Refused(f"{param}=None (cumulative average) is not converted (the converted layer keeps an exponential average)")


def effective(rule: Rule, bound: dict) -> dict:
    """Bound arguments minus those that do not change the output (ignored, allowed defaults)."""
    ignore = set(rule.get("ignore", []))
    allow = rule.get("allow", {})
    out = {}
    for param, arg in bound.items():
        if param in ignore:
            continue
        if isinstance(arg, Arg) and arg.literal is not None and arg.literal in allow.get(param, []):
            continue
        out[param] = arg
    return out


def tensor_method_applies(rule: Rule, args: list[Arg], kwargs: dict[str, Arg], *, receiver: str | None,
                          not_tensors: set[str]) -> bool:
    """Whether `receiver.method(...)` is taken for a tensor method (lint and rewrite ask this).

    Methods have no qualified name, so a call is left alone when its receiver is a bare name
    bound to a module, function or class (`math.sqrt(x)`, `np.exp(x)`), is `self`
    (`self.relu(x)` calls a submodule), when its arguments do not fit the torch method's
    signature, or when JAX already spells it the same way (`x.sum(1)`, `x.max()`).
    receiver: the receiver's text when it is a bare name, else None.
    """
    if receiver is not None and (receiver == "self" or receiver in not_tensors):
        return False
    if rule.get("rewrite_only_keywords") and not set(kwargs) & {"dim", "keepdim"}:
        return False
    if rule.get("only_with_arguments") and not (args or kwargs):
        return False
    try:
        bound = bind(rule, args, kwargs)
    except Refused:
        return False
    sizes = rule.get("sizes_arg")
    if sizes is not None and "dim" not in kwargs:  # line.split(sep, 1) is str's: only literal sizes tell
        return _is_sizes_literal(bound.get(sizes))
    return True


def _is_sizes_literal(arg) -> bool:
    """An int, or a list/tuple of ints, written as a literal (x.split(2), x.split([1, 3]))."""
    if not isinstance(arg, Arg) or arg.literal is None:
        return False
    value = ast.literal_eval(arg.literal)
    if isinstance(value, (list, tuple)):
        return bool(value) and all(type(v) is int for v in value)
    return type(value) is int


def _is_int_literal(arg: Arg) -> bool:
    return arg.literal is not None and isinstance(ast.literal_eval(arg.literal), int)


