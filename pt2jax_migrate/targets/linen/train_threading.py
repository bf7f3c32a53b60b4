"""`train` threaded through a converted class's methods (module.py calls it): __call__ takes
`train: bool = False`; a method only forward runs that needs the mode (facts.train_helpers) takes
`train` (keyword-only, no default: every call passes it); in both, a submodule, a container's
element or such a method called there gets the mode (`deterministic=not train`, `train=train`).
"""

from __future__ import annotations

import libcst as cst

from .module_structure import _ContainerThreading, _self_attr, _with_keyword

__all__ = ["thread_train"]


class _Threading(cst.CSTTransformer):
    """`self.x(...)` of a submodule (or a threaded method) taking `train` gets it."""

    def __init__(self, keywords: dict[str, str]):
        self.keywords = keywords

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        attr = _self_attr(original.func)
        return _with_keyword(updated, self.keywords[attr]) if attr in self.keywords else updated


def _with_train(stmt: cst.FunctionDef, default: bool) -> cst.FunctionDef | None:
    """The method with a keyword-only `train` (before a **kwargs); None if it has one."""
    names = {p.name.value for p in [*stmt.params.params, *stmt.params.kwonly_params]}
    if "train" in names:
        return None
    text = "train: bool = False" if default else "train: bool"
    train = cst.parse_statement(f"def f(*, {text}): pass\n").params.kwonly_params[0]  # type: ignore[attr-defined]
    star = stmt.params.star_arg
    if isinstance(star, cst.MaybeSentinel):
        star = cst.ParamStar()
    kwonly = list(stmt.params.kwonly_params)
    if kwonly:
        kwonly[-1] = kwonly[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return stmt.with_changes(params=stmt.params.with_changes(star_arg=star, kwonly_params=[*kwonly, train]))


def thread_train(body: list, keywords: dict[str, str], containers: dict[str, str], helpers: frozenset[str],
                 transformer, original: cst.ClassDef) -> list:
    """The class body with `train` reaching what __call__ and the `helpers` call."""
    keywords = {**keywords, **{h: "train=train" for h in helpers}}
    for i, stmt in enumerate(body):
        if not isinstance(stmt, cst.FunctionDef) or (stmt.name.value != "__call__" and stmt.name.value not in helpers):
            continue
        stmt = stmt.visit(_Threading(keywords)).visit(_ContainerThreading(containers))
        with_train = _with_train(stmt, default=stmt.name.value == "__call__")
        if with_train is not None:
            stmt = with_train
            transformer.changed(original, "PTJ101", "__call__ takes `train` (dropout, batch statistics)"
                                if stmt.name.value == "__call__" else
                                f"{stmt.name.value} takes `train` (forward's mode: only forward calls it)")
        body[i] = stmt
    return body
