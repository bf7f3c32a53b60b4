"""Bare torch names (dtypes, torch.Tensor, functions passed as values) and decorators; and the
visit_ bookkeeping that marks which names are handled by the construct around them."""

from __future__ import annotations

import libcst as cst

from ..core.constructs import MODULE_BASES, NO_GRAD, isinstance_type_nodes, may_be_torch_only_method
from ..core.decide import (DECORATOR, VALUE_NAMES, ReferenceSite, decide_reference, isinstance_class,
                           layer_value_params)
from ..mapping import CallContext, Refused, make_arg, render_call, target_name
from ..names import is_torch_name
from .cst_util import code_of, is_torch_import

SPECIAL_NAMES = VALUE_NAMES  # torch.Tensor -> jax.Array (core.decide)


class ReferencesMixin:
    """Torch names used without being called, decorators, and the `handled_refs` / `call_stack` records."""

    def visit_Import(self, node: cst.Import | cst.ImportFrom) -> bool:
        """Import statements are pruned at the end, not converted; one inside a function is
        pruned there too (imports.prune_local_imports), so the engine notes that it saw one."""
        if not self.local_imports and self._fscope().kind == "function" and is_torch_import(node):
            self.local_imports = True
        return False

    visit_ImportFrom = visit_Import

    def visit_Call(self, node: cst.Call) -> None:
        self.handled_refs.add(id(node.func))
        if isinstance(node.func, cst.Name) and node.func.value == "isinstance":
            positional = [a.value for a in node.args if a.keyword is None and not a.star]
            self.isinstance_types.update(id(t) for t in isinstance_type_nodes(positional))
        # the calls lint records, innermost last (lint's `record.parent`): torch calls and the
        # method calls the tables or core.constructs know
        func = node.func
        if isinstance(func, cst.Attribute):
            self.called_attributes.add(id(func))
        if self.qualname(func) is not None:
            self.call_stack.append((id(node), True, None))
        elif isinstance(func, cst.Attribute) and (func.attr.value in self.recorded_methods
                                                  or may_be_torch_only_method(func.attr.value)):
            self.call_stack.append((id(node), False, func.attr.value))

    def visit_Annotation(self, node: cst.Annotation) -> None:
        self.annotation_depth += 1  # a type there, never a value (core.decide: ReferenceSite)

    def leave_Annotation(self, original: cst.Annotation, updated: cst.Annotation) -> cst.Annotation:
        self.annotation_depth -= 1
        return updated

    def visit_Decorator(self, node: cst.Decorator) -> None:
        self.handled_refs.add(id(node.decorator))
        self.statement_level_calls.add(id(node.decorator))
        if isinstance(node.decorator, cst.Call):
            self.call_statement[id(node.decorator)] = DECORATOR

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.handled_refs.add(id(node.value))  # only the outermost name of a chain is reported
        self.handled_refs.add(id(node.attr))  # `.nn` in torch.nn is not a use of the name nn

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.handled_refs.add(id(node.keyword))

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if original.value in self.aliases and id(original) not in self.handled_refs:
            return self._reference(original, updated)
        return updated

    def _reference(self, original, updated) -> cst.BaseExpression:
        """A torch name used without calling it: facts -> core.decide.decide_reference -> rendering."""
        q = self.qualname(original)
        if q is None or not is_torch_name(q):
            return updated
        in_isinstance = id(original) in self.isinstance_types
        facts = self.isinstance_facts if in_isinstance else None
        line, column = self._pos(original)
        site = ReferenceSite(q, in_isinstance=in_isinstance, in_annotation=self.annotation_depth > 0,
                             file_names=facts.named if facts else frozenset(),
                             tested_with=facts.groups.get((line, column - 1), ()) if facts else ())
        decision = decide_reference(site, self.rules)
        if not decision.fixable:
            self.report(original, decision)
            return updated
        if decision.action == "annotation":  # -> nn.Conv2d: the converted class, else the module base
            rule = decision.rule
            own = isinstance_class(rule) if not rule.get("helpers") else None
            target = own if own and "." in own else self.target.module_base
            self.changed(original, decision.code, f"{q} (annotation) -> {target}")
            return self._expr(target)
        if decision.action == "isinstance":  # isinstance(m, nn.Linear) tests the converted class
            target = decision.rule.get("target")
            self.helpers |= set(decision.rule.get("helpers", []))
            self.changed(original, decision.code, f"isinstance(..., {q}) -> {target}")
            return self._expr(target)
        if decision.action == "rename":  # dtypes, torch.Tensor
            if decision.safety == "unsafe" and not self.unsafe_fixes:
                return updated  # 64-bit integers become 32-bit ones: left for --unsafe-fixes
            target = self.target.module_base if q in MODULE_BASES else self.rules.dtypes.get(q) or VALUE_NAMES[q]
            self.changed(original, "PTJ104", f"{q} -> {target}", decision.safety)
            return self._expr(target)
        if decision.action == "layer_value":  # norm_layer = nn.BatchNorm2d
            rendered = self._layer_constructor(decision.rule, q, {})
            if rendered is None:
                self.todo(original, decision.code, f"{q} used as a value: not converted for target {self.target.name}")
                return updated
            self.changed(original, decision.code, f"{q} (as a value) -> a constructor taking rngs")
            return self._expr(rendered)
        rule = decision.rule  # action "value": a function passed around uncalled
        keywords = ", ".join(f"{k}={v}" for k, v in rule.get("set", {}).items())
        function = target_name(rule, q)
        text = f"partial({function}, {keywords})" if keywords else function
        self.helpers |= set(rule.get("helpers", []))
        self.changed(original, rule.code, f"{q} (as a value) -> {text}")
        return self._expr(text)

    def _layer_constructor(self, rule, q: str, keywords: dict[str, str]) -> str | None:
        """`lambda num_features, *, rngs: TorchBatchNorm(num_features, ..., rngs=rngs)` for the
        torch class `q` with `keywords` bound (functools.partial); None when it does not render."""
        params = layer_value_params(rule)
        rngs = self.target.rngs_name
        module = rule.get("kind") == "module"
        args = [make_arg(p) for p in params] if module else []
        try:
            rendered = render_call(rule, args, {k: make_arg(v) for k, v in keywords.items()}, name=q,
                                   ctx=CallContext(rngs=rngs))
        except (Refused, KeyError):
            return None
        self.helpers |= set(rendered.helpers)
        if module:
            defaults = rule.get("value_defaults") or {}
            head = ", ".join(f"{p}={defaults[p]}" if p in defaults else p for p in params)
            return f"lambda {head}, *, {rngs}: {rendered.text}"
        head = "".join(f"{p}=None, " for p in params)  # ignored by JAX (inplace)
        return f"lambda {head}*, {rngs}=None: {rendered.text}"

    def leave_Decorator(self, original: cst.Decorator, updated: cst.Decorator):
        node = original.decorator
        func = node.func if isinstance(node, cst.Call) else node
        q = self.qualname(func)
        if q in NO_GRAD:
            self.changed(original, "PTJ304", f"@{code_of(func)} removed (JAX computes gradients only when asked)")
            return cst.RemovalSentinel.REMOVE
        if q is not None and is_torch_name(q) and not isinstance(node, cst.Call):  # a call: leave_Call decided it
            decision = decide_reference(ReferenceSite(q, decorator=True), self.rules)
            if decision.action == "drop_decorator":
                self.changed(original, decision.code, decision.message)
                return cst.RemovalSentinel.REMOVE
            if not decision.fixable:
                self.todo(func, decision.code, decision.message)
        return updated
