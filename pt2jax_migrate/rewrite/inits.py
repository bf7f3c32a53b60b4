"""Parameter initialisation: `nn.init.K(m.weight, ...)` / `m.weight.data.K_(...)` -> the
target's init helper writing the converted parameter (`m.kernel`) through the weight table's
layout; `module.apply(fn)` over an init function -> `module_apply`; an init function that draws
random numbers takes the target's randomness (`rngs`). Facts from pt2jax_migrate.inits, verdicts
from core.decide (lint asks the same)."""

from __future__ import annotations

import libcst as cst

from ..core.decide import decide_init, decide_init_read, decide_layer_attribute, decide_layer_read
from ..core.inits import INIT_HELPER
from ..inits import site_at
from .cst_util import code_of


class InitsMixin:
    """Init calls and module.apply (called from calls/methods/scopes' hooks; no hooks of its own)."""

    def _init_site(self, original: cst.Call):
        line, col = self._pos(original)
        func = original.func
        return site_at(self.init_facts, line, col - 1, func.attr.value if isinstance(func, cst.Attribute) else None)

    def _init_read(self, original: cst.Attribute) -> cst.BaseExpression | None:
        """`m.weight` read in an init function -> `torch_init.value(m.kernel, layout=...)`, the
        parameter in torch's layout (so `.numel()`, `.shape`, `.size(0)` give torch's answers).
        No finding of its own: the init function's conversion is reported (apply, init calls)."""
        line, col = self._pos(original)
        reads = self.init_facts.reads  # mostly none: then no printing of the node
        read = reads.get((line, col - 1, code_of(original))) if reads else None
        if read is not None and read.reported:  # outside init code: a finding of its own
            decision = decide_layer_read(read, self.rules, self.target.converts_layer_reads)
            if decision is None:
                return None
            if not decision.fixable:
                self.todo(original, decision.code, decision.message)
                return None
            self.changed(original, decision.code, decision.message)
            target = decision.rule
        else:
            target = decide_init_read(read, self.rules) if read is not None else None
            if target is None and read is not None:  # `m.out_features`: a layer attribute, as the target has it
                decision = decide_layer_attribute(read, self.rules, self.target.layer_attributes)
                if decision is not None and not decision.fixable:
                    self.todo(original, decision.code, decision.message)
                    return None
                text = self.target.render_layer_attribute(read.owner, read.layers, read.attribute)
                if text is not None:
                    self.helpers.update(text[1])
                    return self._expr(text[0])
        if target is None:
            return None
        if read.test:  # `if m.bias is not None:`: the parameter as the target's init code reaches it
            text = self._receiver(target.receiver)
            return None if text == code_of(original) else self._expr(text)
        self.helpers.add(INIT_HELPER)
        layout = "" if target.layout == "copy" else f", layout={self._layout_text(target.layout, read.owner)}"
        return self._expr(f"{INIT_HELPER}.value({self._receiver(target.receiver)}{layout})")

    def _receiver(self, receiver: str) -> str:
        text, helpers = self.target.render_init_receiver(receiver)
        self.helpers.update(helpers)
        return text

    def _init_function_needs_rngs(self, name: str) -> bool:
        return self.init_facts.functions.get(name, False)

    def _init_method_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        """`self.init_weights()` in __init__, when that method draws random numbers: it gets rngs."""
        line, col = self._pos(original)
        name = self.init_facts.init_calls.get((line, col - 1))
        if name is None or not self._init_function_needs_rngs(name):
            return None
        return self._instantiate(original, updated)

    def _init_call(self, original: cst.Call, updated: cst.Call, site) -> cst.BaseExpression:
        decision = decide_init(site, self.rules)
        if not decision.fixable:
            self.todo(original, decision.code, decision.message)
            return updated
        if decision.safety == "unsafe" and not self.unsafe_fixes:
            return updated  # random draws differ from torch's: left for --unsafe-fixes
        target = decision.rule
        args, kwargs = self._args(updated)
        positional = [a.source for a in (args if site.method else args[1:])]
        keywords = [f"{k}={v.source}" for k, v in kwargs.items()]
        extra = [] if target.layout == "copy" else [f"layout={self._layout_text(target.layout, site.owner)}"]
        if target.random:
            extra.append(f"key={self.target.key_expr(self._fscope().rngs or self.target.rngs_name)}")
        helper = f"{INIT_HELPER}.{target.kind.rstrip('_')}"  # no trailing _: not read as a torch in-place method
        # a new tensor filled in place (`torch.empty(n).normal_()`): the converted creation call
        receiver = code_of(updated.func.value) if site.fresh else self._receiver(target.receiver)  # type: ignore[attr-defined]
        text = f"{helper}({', '.join([receiver, *positional, *keywords, *extra])})"
        if site.instance:  # `model.fc.weight.fill_(...)` on a model built in the file
            text = self.target.render_instance_init(site.instance, text)
        self.helpers.add(INIT_HELPER)
        self.changed(original, decision.code, f"{decision.message} -> {helper}", decision.safety)
        return self._expr(text)

    def _layout_text(self, layout, owner: str) -> str:
        """"conv", or by the module's class: `"conv" if isinstance(m, ConvNCHW) else "transpose"`."""
        if isinstance(layout, str):
            return f'"{layout}"'
        *tests, (_, last) = layout
        for cls, _ in layout:
            if cls in self.target.helpers:
                self.helpers.add(cls)
        return " ".join(f'"{t}" if isinstance({owner}, {cls}) else' for cls, t in tests) + f' "{last}"'

    def _apply_call(self, original: cst.Call, updated: cst.Call, function: str, decision) -> cst.BaseExpression:
        receiver = updated.func.value  # type: ignore[attr-defined]
        fn = updated.args[0].value
        arguments = [code_of(receiver), code_of(fn)]
        if self._init_function_needs_rngs(function):
            arguments.append(self.target.instantiate_keyword(self._ctx().rngs))
        self.helpers.add("module_apply")
        self.changed(original, decision.code, f"{decision.message} -> module_apply")
        return self._expr(f"module_apply({', '.join(arguments)})")
