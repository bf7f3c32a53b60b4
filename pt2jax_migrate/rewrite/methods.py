"""Tensor methods through the tables, device moves (.to/.cuda/.cpu), and the methods and
attributes only torch tensors and modules have (core.constructs, shared with lint)."""

from __future__ import annotations

import libcst as cst

from ..core.constructs import (ATTRIBUTE_NAMES, DEVICE_MOVES, construct_code,
                               is_dtype_text, torch_only_attribute)
from ..core.structure import TRAIN_FLAG
from ..core.decide import MODE_METHODS, STEP_METHODS, MethodSite, decide_method
from ..mapping import Refused, check_rule, render_call

_STRINGS = (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)

from .cst_util import _head, _receiver_text, code_of, keep_parens, paren_code, parse_expr

_LONG_RECEIVER = 200  # characters
_RECEIVER_STAND_IN = "__pt2jax_receiver__"


class _PutBack(cst.CSTTransformer):
    """Replaces the stand-in name with the receiver node it stood for."""

    def __init__(self, name: str, node: cst.BaseExpression):
        super().__init__()
        self.name, self.node = name, node

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        return self.node if updated.value == self.name else updated


class MethodsMixin:
    """`x.method(...)` calls and torch-only attributes (`x.grad`, `x.device`, ...)."""

    def _method_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """Facts about the method call -> core.decide.decide_method (lint asks the same) -> rendering."""
        method = original.func.attr.value  # type: ignore[attr-defined]
        receiver = updated.func.value  # type: ignore[attr-defined]
        if method in STEP_METHODS or method in MODE_METHODS or self._handled_by_structure(original, method):
            return updated  # a step/mode method (rewritten per block, or a note); a structure statement
        init_site = self._init_site(original)
        if init_site is not None:  # m.weight.data.normal_(...): core.decide.decide_init
            return self._init_call(original, updated, init_site)
        init_method = self._init_method_call(original, updated)
        if init_method is not None:  # self.init_weights() in __init__: it takes rngs
            return init_method
        args, kwargs = self._args(updated)
        bare = original.func.value.value if isinstance(original.func.value, cst.Name) else None  # type: ignore[attr-defined]
        site = MethodSite(
            method, tuple((a.source, a.starred) for a in args), tuple((k, v.source) for k, v in kwargs.items()),
            tuple("str" if isinstance(a.value, _STRINGS) else "other" for a in original.args if a.keyword is None),
            _receiver_text(original.func.value), bare,  # type: ignore[attr-defined]
            receiver_is_not_tensor=bare in self.not_tensors,
            inside_torch_call=bool(self.call_stack) and self.call_stack[-1][1],
            init_function=self.init_facts.applies.get((self._pos(original)[0], self._pos(original)[1] - 1)),
            feeds_data=(self._pos(original)[0], self._pos(original)[1] - 1) in self.data_generators,
        )
        decision = decide_method(site, self.rules, check_rule)
        if decision is None:
            return updated
        if not decision.fixable:
            self.todo(original, decision.code, decision.message)
            return updated
        if decision.action == "modules":
            helper = self.target.modules_helper
            self.helpers.add(helper)
            self.changed(original, decision.code, f"{decision.message} -> {helper}(...)")
            return parse_expr(f"{helper}({code_of(receiver)})")
        if decision.action == "module_apply":
            return self._apply_call(original, updated, site.init_function, decision)
        if decision.action == "device_move":
            return self._device_move(original, updated, method, receiver)
        rule = decision.rule
        if rule.get("templates") is None or self.skip_unsafe(rule):
            return updated
        # a long receiver (a chain of hundreds of calls) is rendered as a placeholder name and
        # put back as a node, its text never printed: printing or re-parsing it at every link
        # made a chain cost O(n^2) or worse. The finding shows it as `(...)`
        receiver_code = None if self._long_span(original.func.value) else code_of(receiver)  # type: ignore[attr-defined]
        stand_in = _RECEIVER_STAND_IN if receiver_code is None or len(receiver_code) > _LONG_RECEIVER else None
        try:
            rendered = render_call(rule, args, kwargs, name=method, ctx=self._ctx(stand_in or receiver_code))
        except Refused as why:  # the check said yes: a rendering gap, reported as the table's code
            self.todo(original, rule.code, f".{method}(): {why}")
            return updated
        self.helpers |= rendered.helpers
        text = rendered.text if stand_in is None else rendered.text.replace(stand_in, receiver_code or "(...)")
        self.changed(original, rule.code, f".{method}(...) -> {_head(text)}", rule.get("safety", "safe"))
        if stand_in is not None and stand_in in rendered.text:
            return self._expr(rendered.text, (stand_in, receiver))
        return self._expr(rendered.text)

    def _long_span(self, node: cst.BaseExpression) -> bool:
        """Whether the receiver's source spans over 2 * _LONG_RECEIVER columns or _LONG_RECEIVER
        lines: its text is long, known without printing it (printing at every link of a chain
        made each link cost O(n))."""
        start, end = self.positions.get(id(node)), self.ends.get(id(node))
        if start is None or end is None:  # a node the rewrite made
            return False
        lines = end[0] - start[0]
        return lines > _LONG_RECEIVER or (lines == 0 and end[1] - start[1] > 2 * _LONG_RECEIVER)

    def _device_move(self, original: cst.Call, updated: cst.Call, method: str, receiver) -> cst.BaseExpression:
        args, kwargs = self._args(updated)
        if method == "to":
            # `dtype=` always casts, whatever it names; a positional one when it reads as a dtype
            dtype = kwargs["dtype"].source if "dtype" in kwargs else None
            for arg in args:
                q = self.qualname(parse_expr(arg.source))
                if q in self.rules.dtypes:
                    dtype = self.rules.dtypes[q]
                elif arg.source.startswith("jnp.") or is_dtype_text(arg.source):  # converted, or `y.dtype`
                    dtype = arg.source
            if dtype is not None:
                self.changed(original, "PTJ302", f".to(dtype) -> .astype({dtype})")
                return parse_expr(f"{paren_code(receiver)}.astype({dtype})")
            if not args and not kwargs:
                return updated
        self.changed(original, "PTJ302", f".{method}(...) removed (JAX places arrays itself)")
        return receiver.with_changes(lpar=[], rpar=[]) if isinstance(receiver, (cst.Name, cst.Attribute)) else receiver

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        new = self._convert_attribute(original, updated)
        return new if not updated.lpar or new is updated else keep_parens(updated, new, self.wrapped)

    def _convert_attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        wrapped = self._wrapped_module(original, updated)  # `model.module` of a data-parallel wrapper
        if wrapped is not None:
            return wrapped
        if original.attr.value == "training" and self.structure.training:
            line, col = self._pos(original)
            site = self.structure.training.get((line, col - 1))
            if site is not None:  # `self.training` in a module class (structure_facts, core.structure)
                decision = self._decide_structure(site)
                if not decision.fixable:
                    self.todo(original, decision.code, decision.message)
                    return updated
                self.changed(original, decision.code, decision.message)
                return self._expr(self.target.render_training(f"not self.{TRAIN_FLAG}"))
        if original.attr.value in ATTRIBUTE_NAMES and id(original) not in self.called_attributes \
                and self.qualname(original) is None \
                and not (self.call_stack and self.call_stack[-1][2] in DEVICE_MOVES) \
                and not self._handled_by_structure(original, original.attr.value) \
                and not (original.attr.value == "requires_grad" and self.call_stack and self.call_stack[-1][1]):
            # x.to(y.device) goes whole; SGD(filter(lambda p: p.requires_grad, ...)): the torch call decides
            reason = torch_only_attribute(original.attr.value, _receiver_text(original.value))
            if reason is not None:
                self.todo(original, construct_code(original.attr.value), reason)
        init_read = self._init_read(original)
        if init_read is not None:  # `m.weight.numel()` in an init function: the parameter as torch lays it out
            return init_read
        if id(original) in self.handled_refs:
            return updated
        line, col = self._pos(original)
        if self.schedules is not None and (line, col - 1) in self.schedules.param_groups:
            self.helpers.add("param_groups")  # torch's opt.param_groups, over the converted optimizer
            return parse_expr(f"param_groups({code_of(updated.value)})")
        if (line, col - 1) in self.param_reads:  # an nnx.Param is no array to einops: its value is
            return cst.Subscript(updated, [cst.SubscriptElement(cst.Index(cst.Ellipsis()))])
        return self._reference(original, updated)
