"""nn.Module classes -> the target's module base: which classes convert, their bases, the
target's randomness parameter (`rngs`) on __init__,
forward -> __call__, super().__init__() recognised for removal."""

from __future__ import annotations

import libcst as cst

from ..core.constructs import CONTAINER_BASES, MODULE_BASES
from ..names import is_torch_name
from .cst_util import _all_params, _is_docstring, _target_names, code_of
from .scopes import _Scope
from ..core.constructs import keeps_layers_message
from ..core.decide import ReferenceSite, decide_reference, layer_base
from ..core.structure import TRAIN_FLAG
from .todos import _with_todos

def _init_params(text: str) -> list[cst.Param]:
    """The keyword-only parameters of a target's `init_param()` text (`*, rngs: nnx.Rngs`)."""
    header = cst.parse_statement(f"def f({text}): pass\n")
    params = header.params  # type: ignore[attr-defined]
    if params.params or params.posonly_params or not isinstance(params.star_arg, cst.ParamStar) or params.star_kwarg:
        raise ValueError(f"a target's init_param must be keyword-only parameters after `*, `: {text!r}")
    return list(params.kwonly_params)


class ClassesMixin:
    """Class conversion; `class_stack` (is the enclosing class converted?)."""

    def _find_module_classes(self, module: cst.Module) -> set[str]:
        classes: set[str] = set()
        changed = True
        while changed:  # subclasses of converted classes are converted too
            changed = False
            for stmt in module.body:
                if isinstance(stmt, cst.ClassDef) and stmt.name.value not in classes:
                    for base in stmt.bases:
                        q = self.qualname(base.value)
                        name = base.value.value if isinstance(base.value, cst.Name) else None
                        if q in MODULE_BASES or q in CONTAINER_BASES or name in classes \
                                or layer_base(self.rules, q) or (
                                name in self.imported_classes and not self.shadowed(name)):
                            classes.add(stmt.name.value)
                            changed = True
                            break
        return classes

    def _classes_taking_rngs(self, module: cst.Module) -> set[str]:
        """Converted classes whose __init__ (own or inherited in this file) gains `rngs`."""
        if not self.target.modules_take_rngs:
            return set()
        classes = {s.name.value: s for s in module.body if isinstance(s, cst.ClassDef) and s.name.value in self.converted_classes}
        imported = {name for name, rngs in self.imported_classes.items() if rngs and name not in classes}
        out: set[str] = set(imported)
        changed = True
        while changed:
            changed = False
            for name, node in classes.items():
                if name in out:
                    continue
                own_init = any(isinstance(s, cst.FunctionDef) and s.name.value == "__init__" for s in node.body.body)
                inherits = any((isinstance(b.value, cst.Name) and b.value.value in out)
                               or layer_base(self.rules, self.qualname(b.value)) for b in node.bases)
                if own_init or inherits:
                    out.add(name)
                    changed = True
        return out

    def _bases_taking_rngs(self, module: cst.Module) -> set[str]:
        """Converted classes with a base whose __init__ takes rngs (a converted class of this file,
        or one imported from a converted module): their super().__init__(...) passes rngs on."""
        out = set()
        for stmt in module.body:
            if isinstance(stmt, cst.ClassDef) and stmt.name.value in self.converted_classes:
                if any((isinstance(b.value, cst.Name) and b.value.value in self.rngs_classes)
                       or layer_base(self.rules, self.qualname(b.value)) for b in stmt.bases):
                    out.add(stmt.name.value)
        return out

    def _keeps_super_init(self, call: cst.Call) -> bool:
        """super().__init__(...) in a converted __init__ stays when it does something: it has
        arguments, the base is a converted container (nnx.Sequential(*layers)) or a converted
        class whose __init__ builds layers. Only nn.Module's own `super().__init__()` goes."""
        facts = self._class_facts()
        cls = self.class_names[-1] if self.class_names else None
        return bool(call.args) or (facts is not None and bool(facts.container)) or cls in self.super_rngs_classes

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        converted = node.name.value in self.converted_classes
        self.class_stack.append(converted)
        self.class_names.append(node.name.value)
        self.todo_stack.append([])  # the header's TODOs (bases, decorators) go above the class
        self._target_sites(node)
        self.class_kept_layers.append(set())  # torch layers built inside that stay PyTorch
        for base in node.bases:
            self.handled_refs.add(id(base.value))
            q = self.qualname(base.value)
            if q is not None and is_torch_name(q):
                decision = decide_reference(ReferenceSite(q, base_of=node.name.value), self.rules)
                if not decision.fixable:  # a torch base other than nn.Module (a fixable one: leave_ClassDef)
                    self.report(base.value, decision)
        bound: set[str] = set()
        for stmt in node.body.body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                bound.add(stmt.name.value)
            elif isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    for target in getattr(small, "targets", []):
                        bound |= _target_names(target.target)
                    if isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                        bound |= _target_names(small.target)
        self.scopes.append(_Scope(bound=bound, kind="class"))

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        kept = self.class_kept_layers.pop()
        self.class_names.pop()
        if kept and any(self.qualname(base.value) in MODULE_BASES for base in original.bases):
            # a converted class that still builds torch layers says so on its class line
            self.todo(original, "PTJ102", keeps_layers_message(original.name.value, kept))
        converted = self.class_stack[-1]
        updated = self._leave_class(original, updated)
        if converted:  # the target's shape of a module (Linen: fields and setup())
            updated = self.target.finish_class(self, original, updated)
        return _with_todos(updated, self.todo_stack.pop())

    def _leave_class(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        converted = self.class_stack.pop()
        self.scopes.pop()
        if not converted:
            return updated
        bases = []
        for original_base, base in zip(original.bases, updated.bases):
            q = self.qualname(original_base.value)
            if q in MODULE_BASES:
                module_base = self.target.module_base
                self.changed(original_base, "PTJ101", f"class {original.name.value}: nn.Module -> {module_base}")
                base = base.with_changes(value=cst.parse_expression(module_base))
            elif layer_base(self.rules, q):  # class LayerNorm2d(nn.LayerNorm): the table's base helper
                helper = layer_base(self.rules, q)
                self.helpers.add(helper)
                self.changed(original_base, "PTJ101", f"class {original.name.value}: {q} -> {helper}")
                base = base.with_changes(value=cst.parse_expression(helper))
            elif q in CONTAINER_BASES:
                kind = CONTAINER_BASES[q]
                container = ((self.target.sequential_base if self.target.sequential_base != "" else
                              self.target.sequential_class) if kind == "sequential" else self.target.module_dict_class)
                if container is None:
                    self.todo(original, "PTJ101", f"class {original.name.value} subclasses {q}: not converted for "
                                                  f"target {self.target.name}")
                else:
                    self.changed(original_base, "PTJ101", f"class {original.name.value}: {q} -> {container}")
                    base = base.with_changes(value=cst.parse_expression(container))
            bases.append(base)
        return updated.with_changes(bases=bases)

    def _convert_method(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        """A method of a converted class: forward -> __call__, __init__ takes rngs."""
        if original.name.value == "forward":
            self.changed(original.name, "PTJ101", "forward -> __call__")
            updated = updated.with_changes(name=cst.Name("__call__"))
        if self.target.modules_take_rngs and (original.name.value == "__init__" or self._is_builder(original.name.value)):
            updated = self._add_rngs_param(original, updated)
        if original.name.value == "__init__":
            updated = self._set_train_flag(updated)
        return updated

    def _set_train_flag(self, updated: cst.FunctionDef) -> cst.FunctionDef:
        """A class reading torch's `self.training` (structure_facts) starts in train mode, as a
        torch module does: `self.deterministic = False`, after super().__init__(...) if any."""
        facts = self.structure.classes.get(self.class_names[-1]) if self.class_names else None
        if facts is None or not facts.sets_train_flag or not isinstance(updated.body, cst.IndentedBlock) \
                or "training" not in self.target.structure_kinds:
            return updated
        body = list(updated.body.body)
        at = 1 if body and _is_docstring(body[0]) else 0
        for i, stmt in enumerate(body):
            if isinstance(stmt, cst.SimpleStatementLine) and "super().__init__(" in code_of(stmt):
                at = i + 1
                break
        body.insert(at, cst.parse_statement(f"self.{TRAIN_FLAG} = False  # torch's .training is `not deterministic`; "
                                            ".train() / .eval() set it\n"))
        return updated.with_changes(body=updated.body.with_changes(body=body))

    def _add_rngs_param(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        params = updated.params
        added = _init_params(self.target.init_param())
        names = {p.name.value for p in _all_params(params)}
        if any(p.name.value in names for p in added):
            return updated
        self.changed(original.name, "PTJ101", f"{original.name.value} takes {', '.join(code_of(p).rstrip(', ') for p in added)}")
        star = params.star_arg
        if isinstance(star, cst.MaybeSentinel):
            star = cst.ParamStar()
        added = [p.with_changes(comma=cst.MaybeSentinel.DEFAULT) for p in added]
        return updated.with_changes(params=params.with_changes(star_arg=star, kwonly_params=[*params.kwonly_params, *added]))

    def _is_super_init(self, call: cst.Call) -> bool:
        func = call.func
        return (
            isinstance(func, cst.Attribute)
            and func.attr.value == "__init__"
            and isinstance(func.value, cst.Call)
            and isinstance(func.value.func, cst.Name)
            and func.value.func.value == "super"
        )
