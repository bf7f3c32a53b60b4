"""Module structure: buffers, buffer updates, index assignment on local arrays, weight tying
(statements found by structure_facts, decided by core.structure as lint decides them), and
`rngs` threaded through builder methods (`self._make_layer(...)`) and block classes passed as
constructor arguments (`block(inplanes, planes)`). No libcst hooks of its own: the owners of
leave_SimpleStatementLine, leave_Call and visit_FunctionDef call in here."""

from __future__ import annotations

import libcst as cst

from ..core.structure import AT_METHODS, chain_expression, decide_structure
from ..structure_facts import ClassFacts
from .cst_util import code_of


class StructureMixin:
    """State: `structure` (structure_facts.StructureFacts), `class_names` (enclosing classes)."""

    def _class_facts(self) -> ClassFacts | None:
        return self.structure.classes.get(self.class_names[-1]) if self.class_names else None

    def _is_builder(self, method: str) -> bool:
        """A method of the enclosing class that builds layers: it takes and passes on `rngs`."""
        facts = self._class_facts()
        return facts is not None and method in facts.builders

    def _builds_with_rngs(self, call: cst.Call) -> bool:
        """`self._make_layer(...)` (a builder) or `block(...)` (a block class passed in)."""
        scope = self._fscope()
        if scope.rngs is None or not self.target.modules_take_rngs:
            return False
        func = call.func
        if self._is_super_init(call):  # the base's __init__ builds layers: it takes rngs
            return bool(self.class_names) and self.class_names[-1] in self.super_rngs_classes \
                and scope.method == "__init__"
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            return self._is_builder(func.attr.value)
        facts = self._class_facts()
        if facts is None or scope.method is None:
            return False
        if isinstance(func, cst.Name) and func.value in facts.factories.get(scope.method, set()):
            return True  # a block class passed in by name
        # a parameter / local (or its field annotated as a module class: `cnf.block`) whose
        # result becomes a submodule
        return isinstance(func, (cst.Name, cst.Attribute)) and self._pos(call) in facts.factory_calls

    def _handled_by_structure(self, node: cst.CSTNode, method: str) -> bool:
        return (self._pos(node)[0], method) in self.structure.handled_calls

    def _decide_structure(self, site):
        """core.structure's verdict for this target (lint asks the same)."""
        return decide_structure(site, self.target.structure_kinds, self.target.name)

    def _freeze_loop(self, original: cst.For, updated: cst.For) -> cst.BaseStatement | None:
        """`for p in X.parameters(): p.requires_grad = False` -> `freeze(X)` (core.structure)."""
        site = self.structure.sites.get(self._pos(original)[0])
        if site is None or site.kind != "freeze_loop":
            return None
        decision = self._decide_structure(site)
        if not decision.fixable:
            self.todo(original, decision.code, decision.message)
            return None
        self.helpers.add("freeze")
        self.changed(original, decision.code, decision.message, decision.safety)
        statement = cst.parse_statement(f"freeze({site.name})\n")
        return statement.with_changes(leading_lines=updated.leading_lines)

    def _structure_statement(self, original: cst.SimpleStatementLine,
                             updated: cst.SimpleStatementLine) -> cst.SimpleStatementLine:
        """The statement rendered as core.structure decides it (a TODO when refused)."""
        site = self.structure.sites.get(self._pos(original)[0])
        if site is None:
            return self._optional_child(original, updated)
        if len(updated.body) != 1 or site.kind == "freeze_loop":  # a For: _freeze_loop
            return updated
        decision = self._decide_structure(site)
        if not decision.fixable:
            self.todo(original, decision.code, decision.message)
            return updated
        rendered = self._structure_text(site, updated.body[0])
        if rendered is None:  # the statement's shape differs from what the target renders
            self.todo(original, decision.code, f"{decision.message}: not converted for target {self.target.name}")
            return updated
        text, helpers = rendered
        self.helpers |= helpers
        self.changed(original, decision.code, decision.message, decision.safety)
        new = cst.parse_statement(text + "\n")
        return updated.with_changes(body=new.body)  # type: ignore[attr-defined]

    def _optional_child(self, original: cst.SimpleStatementLine,
                        updated: cst.SimpleStatementLine) -> cst.SimpleStatementLine:
        """`self.proj = None` where proj is assigned a module elsewhere in the class: the target's
        way to say the attribute may hold a submodule (structure_facts.ClassFacts.optional_children)."""
        facts = self._class_facts()
        small = updated.body[0] if len(updated.body) == 1 else None
        held = facts.optional_children.get(self._pos(original)[0], ()) if facts is not None else ()
        if (not any(name == "*" or name in self.rngs_classes or name in self.converted_classes
                    or name in self.imported_classes for name in held) or not isinstance(small, cst.Assign)
                or not (isinstance(small.value, cst.Name) and small.value.value == "None")):
            return updated
        text = self.target.render_optional_child("None")
        if text is None:
            return updated
        self.changed(original, "PTJ101", f"{code_of(small.targets[0].target)} = None -> {text}: "
                                         "the attribute also holds a submodule")
        return updated.with_changes(body=[small.with_changes(value=cst.parse_expression(text))])

    def _structure_text(self, site, small) -> tuple[str, set[str]] | None:
        """What the target writes for the statement (None: it does not convert it)."""
        target = self.target
        if site.kind == "buffer" and isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            value = [a for a in small.value.args if a.keyword is None][1].value
            return target.render_buffer(f"self.{site.name}", code_of(value))
        if site.kind == "buffer_update" and isinstance(small, (cst.AugAssign, cst.Assign)):
            op = code_of(small.operator).strip() if isinstance(small, cst.AugAssign) else "="
            return target.render_buffer_update(f"self.{site.name}", op, code_of(small.value))
        if site.kind == "buffer_chain" and isinstance(small, cst.Expr):
            steps = []
            node = small.value
            while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and len(node.args) == 1:
                steps.append((node.func.attr.value, code_of(node.args[0].value)))
                node = node.func.value
            attribute = f"self.{site.name}"
            if code_of(node) != attribute:
                return None
            return target.render_buffer_update(attribute, "=", chain_expression(attribute, steps[::-1]))
        if site.kind == "index_assign":
            if isinstance(small, cst.Assign) and isinstance(small.targets[0].target, cst.Subscript):
                subscript, op = small.targets[0].target, "="
            elif isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Subscript):
                subscript, op = small.target, code_of(small.operator).strip()
            elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) \
                    and isinstance(small.value.func, cst.Attribute) and isinstance(small.value.func.value, cst.Subscript):
                # `x[idx].zero_()` / `x[idx].fill_(v)`
                subscript, op = small.value.func.value, "="
                value = code_of(small.value.args[0].value) if small.value.args else "0"
                index = code_of(subscript.with_changes(value=cst.Name("_")))[1:]
                return target.render_index_update(site.name, index, AT_METHODS[op], value)
            else:
                return None
            index = code_of(subscript.with_changes(value=cst.Name("_")))[1:]  # `[:, 0::2]`
            return target.render_index_update(site.name, index, AT_METHODS[op], code_of(small.value))
        if site.kind == "add_module" and isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            name, module = (code_of(a.value) for a in small.value.args)
            owner = site.name if site.op == "named" else f"self.{site.name}" if site.name else "self"
            return target.render_add_module(site.op, name, module, owner)
        if site.kind == "sequential_child" and isinstance(small, cst.Assign):
            return target.render_add_module("sequential", None, code_of(small.value), "self")
        if site.kind == "weight_tie":
            return target.render_weight_tie(f"self.{site.name}", site.source)
        return None
