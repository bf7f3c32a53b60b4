"""Tensor methods through the tables, device moves (.to/.cuda/.cpu), and the methods and
attributes only torch tensors and modules have (core.constructs, shared with lint)."""

from __future__ import annotations

import libcst as cst

from ..core.constructs import (ATTRIBUTE_NAMES, CONSUMED_BY_TORCH_CALLS, DECIDED_ELSEWHERE, DEVICE_MOVES, construct_code,
                               is_dtype_text, torch_only_attribute, torch_only_method)
from ..mapping import Refused, render_call, tensor_method_applies
from .cst_util import _head, _receiver_text, code_of, paren_code

class MethodsMixin:
    """`x.method(...)` calls and torch-only attributes (`x.grad`, `x.device`, ...)."""

    def _method_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        method = original.func.attr.value  # type: ignore[attr-defined]
        receiver = updated.func.value  # type: ignore[attr-defined]
        if method in ("to", "cuda", "cpu"):
            return self._device_move(original, updated, method, receiver)
        rule = self.rules.methods.get(method)
        if rule is None:
            return self._torch_only_method(original, updated, method)
        if (rule.get("templates") is None and rule.status != "refused") or self.skip_unsafe(rule):
            return updated
        args, kwargs = self._args(updated)
        bare = original.func.value.value if isinstance(original.func.value, cst.Name) else None  # type: ignore[attr-defined]
        if not tensor_method_applies(rule, args, kwargs, receiver=bare, not_tensors=self.not_tensors):
            return self._torch_only_method(original, updated, method)  # maybe a module's method
        try:
            rendered = render_call(rule, args, kwargs, name=method, ctx=self._ctx(code_of(receiver)))
        except Refused as why:
            self.todo(original, rule.code, f".{method}(): {why}")
            return updated
        self.helpers |= rendered.helpers
        self.changed(original, rule.code, f".{method}(...) -> {_head(rendered.text)}", rule.get("safety", "safe"))
        return self._expr(rendered.text)

    def _device_move(self, original: cst.Call, updated: cst.Call, method: str, receiver) -> cst.BaseExpression:
        args, kwargs = self._args(updated)
        if method == "to":
            # `dtype=` always casts, whatever it names; a positional one when it reads as a dtype
            dtype = kwargs["dtype"].source if "dtype" in kwargs else None
            for arg in args:
                q = self.qualname(cst.parse_expression(arg.source))
                if q in self.rules.dtypes:
                    dtype = self.rules.dtypes[q]
                elif arg.source.startswith("jnp.") or is_dtype_text(arg.source):  # converted, or `y.dtype`
                    dtype = arg.source
            if dtype is not None:
                self.changed(original, "PTJ302", f".to(dtype) -> .astype({dtype})")
                return cst.parse_expression(f"{paren_code(receiver)}.astype({dtype})")
            if not args and not kwargs:
                return updated
        self.changed(original, "PTJ302", f".{method}(...) removed (JAX places arrays itself)")
        return receiver.with_changes(lpar=[], rpar=[]) if isinstance(receiver, (cst.Name, cst.Attribute)) else receiver

    def _torch_only_method(self, original: cst.Call, updated: cst.Call, method: str) -> cst.BaseExpression:
        """A method only torch tensors/modules have (core.constructs, shared with lint)."""
        if method in DECIDED_ELSEWHERE:
            return updated
        if method in CONSUMED_BY_TORCH_CALLS and self.call_stack and self.call_stack[-1][1]:
            return updated  # torch.optim.SGD(model.parameters(), ...): the optimizer decides
        arg_kinds = ["str" if isinstance(a.value, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString))
                     else "other" for a in original.args if a.keyword is None]
        keywords = [a.keyword.value for a in original.args if a.keyword is not None]
        reason = torch_only_method(method, arg_kinds, keywords, _receiver_text(original.func.value))  # type: ignore[attr-defined]
        if reason is not None:
            self.todo(original, construct_code(method), reason)
        return updated

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if original.attr.value in ATTRIBUTE_NAMES and id(original) not in self.called_attributes \
                and self.qualname(original) is None \
                and not (self.call_stack and self.call_stack[-1][2] in DEVICE_MOVES):  # x.to(y.device) goes whole
            reason = torch_only_attribute(original.attr.value, _receiver_text(original.value))
            if reason is not None:
                self.todo(original, construct_code(original.attr.value), reason)
        if id(original) in self.handled_refs:
            return updated
        return self._reference(original, updated)
