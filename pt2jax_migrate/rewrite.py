"""The rewrite engine: PyTorch source text -> Flax NNX + Optax source text.

A pure function over text (`rewrite_source`): one libcst pass driven by the rules/ tables,
returning the new text and one Finding per change or TODO. It never writes files and never
imports torch or jax. Files that do not import torch come back unchanged, byte for byte.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from . import trainstep
from .helpers import HELPERS, helper_closure
from .names import is_torch_name
from .core.residue import RESIDUE_CODE, mark_residue, unmarked_residue
from .core.constructs import isinstance_message, isinstance_type_nodes
from .core.constructs import (ATTRIBUTE_NAMES, CONTAINERS, MODULE_BASES, NO_GRAD, PARAMETER, container_refusal,
                              parameter_refusal, CONSUMED_BY_TORCH_CALLS, DECIDED_ELSEWHERE, DEVICE_MOVES, construct_code, is_dtype_text,
                              may_be_torch_only_method, torch_only_attribute, torch_only_method)
from .mapping import (CONVERTED_IMPORTS, TORCH_ROOTS, Arg, CallContext, Refused, make_arg, optimizer_model, render_call, target_name,
                      tensor_method_applies)
from .model import FileResult, Finding, SourceError
from .rules import load_rules

_BUILTINS = set(dir(builtins))
TRAIN_METHODS = trainstep.TRAIN_METHODS
TRAIN_STEP_CODES = set(TRAIN_METHODS.values())
SPECIAL_NAMES = {"torch.Tensor": "jax.Array"}

IMPORTS = CONVERTED_IMPORTS  # names the converted code may use -> the import binding each
TODO_PREFIX = "# TODO(pt2jax): "
_EMPTY = cst.Module([])


def code_of(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def _receiver_text(node: cst.BaseExpression) -> str:
    """As core.residue.receiver_text on ast: dotted text, '<str>', '<const>' or '<expr>'."""
    if isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
        return "<str>"
    if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary)):
        return "<const>"
    return _dotted(node) or "<expr>"


def _manual_code(qualname: str) -> str:
    if qualname.startswith("torch.optim.lr_scheduler"):
        return "PTJ205"
    if qualname.startswith(("torch.utils.data", "torchvision")):
        return "PTJ401"
    if qualname in ("torch.save", "torch.load"):
        return "PTJ402"
    return "PTJ901"


# --------------------------------------------------------------------------- imports


def _dotted(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def import_aliases(module: cst.Module) -> dict[str, str]:
    """Local name -> qualified torch name, for every torch import in the file."""
    aliases: dict[str, str] = {}

    class Collect(cst.CSTVisitor):
        def visit_Import(self, node: cst.Import) -> None:
            for alias in node.names:
                full = _dotted(alias.name)
                if not full or not is_torch_name(full):
                    continue
                if alias.asname is not None:
                    aliases[alias.asname.name.value] = full
                else:
                    root = full.split(".")[0]
                    aliases[root] = root

        def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
            if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
                return
            base = _dotted(node.module)
            if not base or not is_torch_name(base):
                return
            for alias in node.names:
                name = alias.name.value
                local = alias.asname.name.value if alias.asname is not None else name
                aliases[local] = f"{base}.{name}"

    module.visit(Collect())
    return aliases


class _Bindings(cst.CSTVisitor):
    """Names bound in one function scope (parameters, assignments, loops, with, imports)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.depth = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.depth += 1
        if self.depth == 1:
            for param in _all_params(node.params):
                self.names.add(param.name.value)
            return True
        self.names.add(node.name.value)
        return False

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth -= 1

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.names.add(node.name.value)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self.names.update(_target_names(node.target))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self.names.update(_target_names(node.target))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.names.update(_target_names(node.target))

    def visit_For(self, node: cst.For) -> None:
        self.names.update(_target_names(node.target))

    def visit_AsName(self, node: cst.AsName) -> None:
        self.names.update(_target_names(node.name))


def _all_params(params: cst.Parameters) -> list[cst.Param]:
    out = list(params.posonly_params) + list(params.params) + list(params.kwonly_params)
    if isinstance(params.star_arg, cst.Param):
        out.append(params.star_arg)
    if params.star_kwarg is not None:
        out.append(params.star_kwarg)
    return out


def _target_names(node: cst.CSTNode) -> set[str]:
    if isinstance(node, cst.Name):
        return {node.value}
    if isinstance(node, (cst.Tuple, cst.List)):
        out: set[str] = set()
        for element in node.elements:
            out |= _target_names(element.value)
        return out
    if isinstance(node, cst.StarredElement):
        return _target_names(node.value)
    return set()


class _Names(cst.CSTVisitor):
    """Every Name read anywhere below a node (import statements excluded)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)  # the attribute name itself is not a reference
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)  # keyword= names are not references
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        pass


def names_in(node: cst.CSTNode) -> set[str]:
    visitor = _Names()
    node.visit(visitor)
    return visitor.names


def _calls_name(node: cst.CSTNode, name: str) -> bool:
    found = False

    class Find(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            nonlocal found
            if isinstance(call.func, cst.Name) and call.func.value == name:
                found = True

    node.visit(Find())
    return found


# --------------------------------------------------------------------------- statements


def _expr_call(stmt: cst.BaseStatement) -> cst.Call | None:
    """The call of a one-expression statement line (`x.backward()`), else None."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        expr = stmt.body[0]
        if isinstance(expr, cst.Expr) and isinstance(expr.value, cst.Call):
            return expr.value
    return None


def _method_call(stmt: cst.BaseStatement, method: str) -> str | None:
    """`NAME.method()` with no arguments -> NAME."""
    call = _expr_call(stmt)
    if call is None or call.args or not isinstance(call.func, cst.Attribute):
        return None
    if call.func.attr.value != method or not isinstance(call.func.value, cst.Name):
        return None
    return call.func.value.value


def _method_calls(node: cst.CSTNode, methods) -> list[cst.Call]:
    """Every call `<expr>.method(...)` below node, for the given method names."""
    found: list[cst.Call] = []

    class Find(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in methods:
                found.append(call)

    node.visit(Find())
    return found


def _has_comment(lines) -> bool:
    return any(line.comment is not None for line in lines)


def _with_todos(stmt, todos: list[str]):
    if not todos:
        return stmt
    existing = {line.comment.value for line in stmt.leading_lines if line.comment is not None}
    added = [
        cst.EmptyLine(comment=cst.Comment(TODO_PREFIX + text))
        for text in dict.fromkeys(todos)
        if TODO_PREFIX + text not in existing
    ]
    if not added:
        return stmt
    return stmt.with_changes(leading_lines=[*stmt.leading_lines, *added])


@dataclass
class _Scope:
    """One function (or the module) being rewritten."""

    bound: set[str]
    rngs: str | None = None  # an nnx.Rngs available here ("rngs")
    needs_rngs: bool = False  # random sampling without a seed: add `rngs = nnx.Rngs(0)`
    pending_defs: list[tuple[cst.BaseStatement, str]] = field(default_factory=list)
    in_converted_init: bool = False
    has_backward: bool = False  # a .backward() call somewhere in this function
    kind: str = "function"  # function | class | comprehension | module
    globals: set[str] = field(default_factory=set)  # names declared `global` here


@dataclass
class _Group:
    """A recognised zero_grad / forward / loss / backward / step group in one block."""

    text_def: str
    call: cst.SimpleStatementLine
    remove: set[int]
    call_index: int
    lines: list[tuple[cst.CSTNode, str, str]]  # (original statement, code, message)
    at_module_level: bool = False
    after: list = field(default_factory=list)  # statements moved after the call (they read its outputs)


class TorchToNNX(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, path: str, aliases: dict[str, str], module: cst.Module, unsafe_fixes: bool = True):
        super().__init__()
        self.path = path
        self.unsafe_fixes = unsafe_fixes
        self.rules = load_rules()
        self.aliases = aliases
        self.findings: list[Finding] = []
        self.helpers: set[str] = set()
        self.scopes: list[_Scope] = [_Scope(bound=set(), kind="module", has_backward=".backward(" in module.code)]
        self.todo_stack: list[list[str]] = []
        self.class_stack: list[bool] = []
        self.optimizers: dict[str, str] = {}  # optimizer variable -> model variable
        self.statement_pos: dict[int, tuple[int, int]] = {}
        self.statement_level_calls: set[int] = set()  # torch.manual_seed(...) statements, with torch.no_grad()
        self.optimizer_vars: set[str] = set()
        self.scheduler_vars: set[str] = set()  # names assigned a torch.optim optimizer
        self.wrapped: set[int] = set()  # replacement expressions we parenthesised
        self.handled_refs: set[int] = set()  # torch names reported by the construct around them
        self.loss_vars: set[str] = set()  # names bound to a loss module (criterion = nn.MSELoss())
        # optimizers whose step() stays PyTorch (see trainstep.train_step_analysis)
        self.step_lines, self.kept_optimizers, self.clips = (
            trainstep.train_step_analysis(module.code) if ".step(" in module.code else (set(), {}, {}))
        self.optimizer_calls: dict[int, str] = {}  # id of `X = torch.optim.Y(...)`'s call -> X
        self.isinstance_types: set[int] = set()  # ids of T in isinstance(x, T)
        self.todo_seen: set[tuple[int, str]] = set()  # (line, "CODE message") already reported
        self.called_attributes: set[int] = set()  # x.grad(...) is a method call, not the attribute .grad
        self.call_stack: list[tuple[int, bool, str | None]] = []  # calls lint records: (id, torch?, method)
        self.recorded_methods = frozenset(self.rules.methods) | {"to", "cuda", "cpu", "train", "eval", "zero_grad",
                                                                 "backward", "step"}
        self.converted_classes = self._find_module_classes(module)
        self.rngs_classes = self._classes_taking_rngs(module)
        self.module_names = self._module_level_names(module)
        self.not_tensors = not_tensor_names(module)
        self.used_names = names_in(module) | self.module_names

    # ---------------------------------------------------------------- resolution

    def _find_module_classes(self, module: cst.Module) -> set[str]:
        classes: set[str] = set()
        changed = True
        while changed:  # subclasses of converted classes are converted too
            changed = False
            for stmt in module.body:
                if isinstance(stmt, cst.ClassDef) and stmt.name.value not in classes:
                    for base in stmt.bases:
                        q = self.qualname(base.value)
                        if q in MODULE_BASES or (isinstance(base.value, cst.Name) and base.value.value in classes):
                            classes.add(stmt.name.value)
                            changed = True
                            break
        return classes

    def _classes_taking_rngs(self, module: cst.Module) -> set[str]:
        """Converted classes whose __init__ (own or inherited in this file) gains `rngs`."""
        classes = {s.name.value: s for s in module.body if isinstance(s, cst.ClassDef) and s.name.value in self.converted_classes}
        out: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, node in classes.items():
                if name in out:
                    continue
                own_init = any(isinstance(s, cst.FunctionDef) and s.name.value == "__init__" for s in node.body.body)
                inherits = any(isinstance(b.value, cst.Name) and b.value.value in out for b in node.bases)
                if own_init or inherits:
                    out.add(name)
                    changed = True
        return out

    @staticmethod
    def _module_level_names(module: cst.Module, assignments: bool = True) -> set[str]:
        """Names bound at module level by defs, classes, imports (and plain assignments)."""
        names: set[str] = set()
        for stmt in module.body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                names.add(stmt.name.value)
            elif isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign) and assignments:
                        for target in small.targets:
                            names |= _target_names(target.target)
                    elif isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(getattr(small, "names", None), cst.ImportStar):
                        for alias in small.names:
                            if alias.asname is not None:
                                names |= _target_names(alias.asname.name)
                            else:
                                names.add(code_of(alias.name).split(".")[0])
        return names

    def shadowed(self, name: str) -> bool:
        """Python's scoping: enclosing functions and comprehensions shadow a module-level
        import; a class body's names shadow only code directly in that body."""
        for depth, scope in enumerate(reversed(self.scopes[1:])):
            if scope.kind == "class" and depth > 0:
                continue
            if name in scope.bound and name not in scope.globals:
                return True
            if name in scope.globals:
                return False
        return False

    def qualname(self, node: cst.BaseExpression) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        root, _, rest = dotted.partition(".")
        if root not in self.aliases or self.shadowed(root):
            return None
        base = self.aliases[root]
        return f"{base}.{rest}" if rest else base

    # ---------------------------------------------------------------- reporting

    def _pos(self, node: cst.CSTNode) -> tuple[int, int]:
        if id(node) in self.statement_pos:
            return self.statement_pos[id(node)]
        try:
            pos = self.get_metadata(PositionProvider, node)
            return pos.start.line, pos.start.column + 1
        except KeyError:
            return 0, 0

    def changed(self, node: cst.CSTNode, code: str, message: str, safety: str = "safe") -> None:
        line, col = self._pos(node)
        self.findings.append(Finding(self.path, line, col, code, message, True, "info", safety))

    def skip_unsafe(self, rule) -> bool:
        """With unsafe fixes off, a conversion that changes numbers is left as it is."""
        return not self.unsafe_fixes and rule is not None and rule.get("safety") == "unsafe"

    def todo(self, node: cst.CSTNode, code: str, message: str) -> None:
        """A finding per line and text (as lint reports them), and a TODO(pt2jax) line above the
        statement per distinct text: `def f(a: nn.Module, b: nn.Module)` is one TODO; the same
        annotation on three lines of a signature is three findings under one marker line."""
        text = f"{code} {message}"
        line, col = self._pos(node)
        if (line, text) in self.todo_seen:
            return
        self.todo_seen.add((line, text))
        self.findings.append(Finding(self.path, line, col, code, message, False, "warning", "manual"))
        if self.todo_stack:
            self.todo_stack[-1].append(text)

    # ---------------------------------------------------------------- scopes and statements

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        bindings = _Bindings()
        node.visit(bindings)
        in_class = bool(self.class_stack) and self.class_stack[-1]
        is_init = in_class and node.name.value == "__init__"
        scope = _Scope(bound=bindings.names - {"rngs"} if is_init else bindings.names, in_converted_init=is_init,
                       has_backward=".backward(" in code_of(node))
        if is_init:
            scope.rngs = "rngs"
        self.scopes.append(scope)
        self.class_stack.append(False)
        self.todo_stack.append([])  # the header's TODOs (decorators, annotations) go above the def

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        converted = node.name.value in self.converted_classes
        self.class_stack.append(converted)
        self.todo_stack.append([])  # the header's TODOs (bases, decorators) go above the class
        for base in node.bases:
            self.handled_refs.add(id(base.value))
            q = self.qualname(base.value)
            if q is not None and is_torch_name(q) and not (converted and q in MODULE_BASES):
                self.todo(base.value, _manual_code(q), f"class {node.name.value} subclasses {q}, which is not "
                          "converted: port the class by hand (or write it as an nnx.Module)")
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

    def _visit_comprehension(self, node) -> None:
        bound: set[str] = set()
        comp = node.for_in
        while comp is not None:
            bound |= _target_names(comp.target)
            comp = comp.inner_for_in
        self.scopes.append(_Scope(bound=bound, kind="comprehension"))

    def _leave_comprehension(self, original, updated):
        self.scopes.pop()
        return updated

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension
    leave_ListComp = leave_SetComp = leave_DictComp = leave_GeneratorExp = _leave_comprehension

    def visit_Global(self, node: cst.Global) -> None:
        for item in node.names:
            self.handled_refs.add(id(item.name))
            self.scopes[-1].globals.add(item.name.value)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        for item in node.names:
            self.handled_refs.add(id(item.name))

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._stores(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._stores(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._stores(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._stores(node.target)
        self.todo_stack.append([])

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._stores(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._stores(node.name)

    def visit_Param(self, node: cst.Param) -> None:
        self.handled_refs.add(id(node.name))

    def _stores(self, target) -> None:
        """Names being bound are not uses of a torch import."""
        if isinstance(target, cst.Name):
            self.handled_refs.add(id(target))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._stores(element.value)
        elif isinstance(target, cst.StarredElement):
            self._stores(target.value)

    # ---------------------------------------------------------------- bare references

    def visit_Import(self, node: cst.Import) -> bool:
        return False  # import statements are pruned at the end, not converted

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

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

    def visit_Decorator(self, node: cst.Decorator) -> None:
        self.handled_refs.add(id(node.decorator))
        self.statement_level_calls.add(id(node.decorator))

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
        """A torch name used without calling it: a dtype, a type, a function passed around."""
        q = self.qualname(original)
        if q is None or not is_torch_name(q):
            return updated
        target = self.rules.dtypes.get(q) or SPECIAL_NAMES.get(q)
        if target is not None:
            # 64-bit integers become 32-bit ones (JAX's default without x64): that changes numbers
            safety = "unsafe" if q in ("torch.int64", "torch.long") else "safe"
            if safety == "unsafe" and not self.unsafe_fixes:
                return updated
            self.changed(original, "PTJ104", f"{q} -> {target}", safety)
            return self._expr(target)
        rule = self.rules.by_name.get(q)
        if rule is not None and rule.kind == "function" and rule.get("target") and rule.get("templates") is None and rule.status == "exact":
            keywords = ", ".join(f"{k}={v}" for k, v in rule.get("set", {}).items())
            function = target_name(rule, q)
            text = f"partial({function}, {keywords})" if keywords else function
            self.helpers |= set(rule.get("helpers", []))
            self.changed(original, rule.code, f"{q} (as a value) -> {text}")
            return self._expr(text)
        if id(original) in self.isinstance_types and _manual_code(q) == "PTJ901":
            self.todo(original, "PTJ901", isinstance_message(q))
            return updated
        self.todo(original, _manual_code(q), f"{q} has no automatic conversion")
        return updated

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        return _with_todos(self._leave_class(original, updated), self.todo_stack.pop())

    def _leave_class(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        converted = self.class_stack.pop()
        self.scopes.pop()
        if not converted:
            return updated
        bases = []
        for original_base, base in zip(original.bases, updated.bases):
            if self.qualname(original_base.value) in MODULE_BASES:
                self.changed(original_base, "PTJ101", f"class {original.name.value}: nn.Module -> nnx.Module")
                base = base.with_changes(value=cst.parse_expression("nnx.Module"))
            bases.append(base)
        return updated.with_changes(bases=bases)

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self.todo_stack.append([])
        call = _expr_call(node)
        if call is not None and self.qualname(call.func) == "torch.manual_seed":
            if len(call.args) == 1 and call.args[0].keyword is None:
                self.statement_level_calls.add(id(call))
            if self.unsafe_fixes:
                self._fscope().rngs = "rngs"
        for small in node.body:
            if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call) and len(small.targets) == 1:
                target = small.targets[0].target
                q = self.qualname(small.value.func)
                rule = self.rules.by_name.get(q) if q else None
                if q and q.startswith("torch.optim.lr_scheduler.") and isinstance(target, cst.Name):
                    self.scheduler_vars.add(target.value)
                if rule is not None and rule.kind == "loss" and isinstance(target, cst.Name):
                    self.loss_vars.add(target.value)
                if rule is not None and rule.kind == "optimizer" and isinstance(target, cst.Name):
                    self.optimizer_vars.add(target.value)
                    self.optimizer_calls[id(small.value)] = target.value
                if rule is not None and rule.kind == "optimizer" and isinstance(target, cst.Name) and small.value.args:
                    model = optimizer_model(code_of(small.value.args[0].value))
                    if model is not None:
                        self.optimizers[target.value] = model

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        todos = self.todo_stack.pop()
        self.statement_pos[id(updated)] = self._pos(original)  # block-level passes see only updated nodes
        call = _expr_call(original)
        if call is not None:
            q = self.qualname(call.func)
            if q == "torch.manual_seed" and len(call.args) == 1 and call.args[0].keyword is None and self.unsafe_fixes:
                self.changed(original, "PTJ301", "torch.manual_seed(s) -> rngs = nnx.Rngs(s)", "unsafe")
                seed = code_of(updated.body[0].value.args[0].value)  # type: ignore[attr-defined]
                new = cst.parse_statement(f"rngs = nnx.Rngs({seed})\n")
                return _with_todos(new.with_changes(leading_lines=updated.leading_lines), todos)
            in_class_init = self._fscope().in_converted_init
            if in_class_init and self._is_super_init(call):
                self.changed(original, "PTJ101", "super().__init__() removed (nnx modules need none)")
                if not _has_comment(updated.leading_lines) and not todos:
                    return cst.RemovalSentinel.REMOVE
                return _with_todos(updated.with_changes(body=[cst.Pass()]), todos)
            new_expr = updated.body[0]
            if (
                isinstance(new_expr, cst.Expr)
                and isinstance(new_expr.value, (cst.Name, cst.Attribute))
                and isinstance(call.func, cst.Attribute)
                and call.func.attr.value in ("to", "cuda", "cpu")
                and not todos
                and not _has_comment(updated.leading_lines)
            ):
                return cst.RemovalSentinel.REMOVE  # `model.to(device)`: nothing left to do
        if _is_self_assignment(updated) and not _is_self_assignment(original) and not todos \
                and not _has_comment(updated.leading_lines):
            return cst.RemovalSentinel.REMOVE  # `x, y = x.to(d), y.to(d)` became `x, y = x, y`
        return _with_todos(updated, todos)

    def _is_super_init(self, call: cst.Call) -> bool:
        func = call.func
        return (
            isinstance(func, cst.Attribute)
            and func.attr.value == "__init__"
            and isinstance(func.value, cst.Call)
            and isinstance(func.value.func, cst.Name)
            and func.value.func.value == "super"
        )

    def _compound_visit(self, node) -> None:
        self.todo_stack.append([])

    def _compound_leave(self, updated):
        return _with_todos(updated, self.todo_stack.pop())

    visit_While = visit_If = visit_Try = _compound_visit

    def leave_For(self, original, updated):
        return self._compound_leave(updated)

    leave_While = leave_If = leave_Try = leave_For

    def visit_With(self, node: cst.With) -> None:
        self.todo_stack.append([])
        for item in node.items:
            if isinstance(item.item, cst.Call) and item.asname is None:
                self.statement_level_calls.add(id(item.item))

    def leave_With(self, original: cst.With, updated: cst.With):
        todos = self.todo_stack.pop()
        keep = []
        for original_item, item in zip(original.items, updated.items):
            call = original_item.item
            if isinstance(call, cst.Call) and self.qualname(call.func) in NO_GRAD and original_item.asname is None:
                self.changed(original_item, "PTJ304", f"with {code_of(call.func)}(): removed (JAX computes gradients only when asked)")
                continue
            keep.append(item)
        if len(keep) == len(updated.items):
            return _with_todos(updated, todos)
        if keep:
            keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return _with_todos(updated.with_changes(items=keep), todos)
        body = updated.body
        if isinstance(body, cst.SimpleStatementSuite):
            statements = [cst.SimpleStatementLine(body=list(body.body))]
        else:
            statements = list(body.body)
        if not statements:
            statements = [cst.SimpleStatementLine(body=[cst.Pass()])]
        first = statements[0]
        statements[0] = _with_todos(first.with_changes(leading_lines=[*updated.leading_lines, *first.leading_lines]), todos)
        return cst.FlattenSentinel(statements)

    def leave_Decorator(self, original: cst.Decorator, updated: cst.Decorator):
        node = original.decorator
        func = node.func if isinstance(node, cst.Call) else node
        q = self.qualname(func)
        if q in NO_GRAD:
            self.changed(original, "PTJ304", f"@{code_of(func)} removed (JAX computes gradients only when asked)")
            return cst.RemovalSentinel.REMOVE
        if q is not None and is_torch_name(q):
            self.todo(func, _manual_code(q), f"@{q} has no automatic conversion")
        return updated

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        return _with_todos(self._leave_function(original, updated), self.todo_stack.pop())

    def _leave_function(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        self.class_stack.pop()
        scope = self.scopes.pop()
        in_class = bool(self.class_stack) and self.class_stack[-1]
        if in_class and original.name.value == "forward":
            self.changed(original.name, "PTJ101", "forward -> __call__")
            updated = updated.with_changes(name=cst.Name("__call__"))
        if in_class and original.name.value == "__init__":
            updated = self._add_rngs_param(original, updated)
        body = list(updated.body.body) if isinstance(updated.body, cst.IndentedBlock) else None
        if body is not None:
            body = self._insert_pending(scope, body)
            if scope.needs_rngs:
                at = 1 if body and _is_docstring(body[0]) else 0
                body.insert(at, cst.parse_statement("rngs = nnx.Rngs(0)  # pt2jax: JAX needs explicit keys (torch drew from its global generator)\n"))
            updated = updated.with_changes(body=updated.body.with_changes(body=body))
        return updated

    def _add_rngs_param(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        params = updated.params
        if any(p.name.value == "rngs" for p in _all_params(params)):
            return updated
        self.changed(original.name, "PTJ101", "__init__ takes rngs: nnx.Rngs")
        rngs = cst.Param(
            name=cst.Name("rngs"),
            annotation=cst.Annotation(cst.parse_expression("nnx.Rngs")),
        )
        star = params.star_arg
        if isinstance(star, cst.MaybeSentinel):
            star = cst.ParamStar()
        return updated.with_changes(params=params.with_changes(star_arg=star, kwonly_params=[*params.kwonly_params, rngs]))

    def _insert_pending(self, scope: _Scope, body: list) -> list:
        """Put each lifted train step right before the top-level statement that uses it."""
        for call_stmt, text in scope.pending_defs:
            for index, stmt in enumerate(body):
                if _contains(stmt, call_stmt):
                    new_def = cst.parse_statement(text)
                    if index > 0:
                        blank = [cst.EmptyLine(indent=False)] * (2 if scope is self.scopes[0] else 1)
                        new_def = new_def.with_changes(leading_lines=blank)
                    want = 2 if scope is self.scopes[0] else 1
                    blanks = 0
                    for line in stmt.leading_lines:
                        if line.comment is not None:
                            break
                        blanks += 1
                    if blanks < want:
                        extra = [cst.EmptyLine(indent=False)] * (want - blanks)
                        body[index] = stmt.with_changes(leading_lines=[*extra, *stmt.leading_lines])
                    body.insert(index, new_def)
                    break
        return body

    # ---------------------------------------------------------------- calls

    def _ctx(self, receiver: str | None = None) -> CallContext:
        scope = self._fscope()
        rngs = scope.rngs or "nnx.Rngs(0)"
        if scope.rngs is None:
            key = "rngs()"
            # random sampling without a seed: this scope gets its own stream
        else:
            key = f"{scope.rngs}()"
        return CallContext(rngs=rngs, key=key, receiver=receiver)

    def _args(self, call: cst.Call) -> tuple[list[Arg], dict[str, Arg]]:
        args: list[Arg] = []
        kwargs: dict[str, Arg] = {}
        for arg in call.args:
            text = code_of(arg.value)
            if arg.keyword is not None:
                kwargs[arg.keyword.value] = make_arg(text)
            else:
                args.append(make_arg(text, starred=arg.star != ""))
        return args, kwargs

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.call_stack and self.call_stack[-1][0] == id(original):
            self.call_stack.pop()
        q = self.qualname(original.func)
        if q is not None:
            return self._torch_call(original, updated, q)
        if isinstance(original.func, cst.Name) and original.func.value in self.rngs_classes:
            return self._instantiate(original, updated)
        if isinstance(original.func, cst.Attribute) and self.aliases:
            return self._method_call(original, updated)
        return updated

    def _expr(self, text: str) -> cst.BaseExpression:
        """A replacement expression. A compound one (`a == b`, `x ** 2`, a lambda) is wrapped
        in parentheses so it keeps its meaning wherever it lands (`(a == b).sum()`); the
        parentheses are dropped again where the expression stands alone (_unwrap_ours)."""
        expr = cst.parse_expression(text)
        if not isinstance(expr, _ATOMIC_EXPR) and not expr.lpar:
            expr = expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            self.wrapped.add(id(expr))
        return expr

    def _unwrap_ours(self, node):
        if id(node) in self.wrapped and not isinstance(node, (cst.Tuple, cst.GeneratorExp)):
            return node.with_changes(lpar=[], rpar=[])
        return node

    # contexts where any expression stands alone: our parentheses are not needed there
    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(value=self._unwrap_ours(updated.value))

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        return updated.with_changes(value=self._unwrap_ours(updated.value))

    def leave_AugAssign(self, original: cst.AugAssign, updated: cst.AugAssign) -> cst.AugAssign:
        return updated.with_changes(value=self._unwrap_ours(updated.value))

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        return updated.with_changes(value=self._unwrap_ours(updated.value)) if updated.value is not None else updated

    def leave_Element(self, original: cst.Element, updated: cst.Element) -> cst.Element:
        return updated.with_changes(value=self._unwrap_ours(updated.value))

    def _torch_call(self, original: cst.Call, updated: cst.Call, q: str) -> cst.BaseExpression:
        if q in NO_GRAD or q == "torch.manual_seed":
            if id(original) in self.statement_level_calls:
                return updated  # handled by the enclosing statement
            code = "PTJ304" if q in NO_GRAD else "PTJ301"
            self.todo(original, code, f"{q}() used as a value is not converted (only as a statement, `with` or decorator)")
            return updated
        if q == "torch.device":
            self.changed(original, "PTJ302", "torch.device(...) -> jax.devices()[0] (JAX places arrays itself)")
            return cst.parse_expression("jax.devices()[0]")
        if q == "torch.cuda.is_available":
            self.changed(original, "PTJ302", 'torch.cuda.is_available() -> jax.default_backend() == "gpu"')
            return self._expr('jax.default_backend() == "gpu"')
        if q in PARAMETER:
            args, kwargs = self._args(updated)
            reason = parameter_refusal([(a.source, a.starred) for a in args],
                                       {k: v.source for k, v in kwargs.items()})
            if reason is None:
                self.changed(original, "PTJ102", "nn.Parameter -> nnx.Param")
                return cst.parse_expression(f"nnx.Param({args[0].source})")
            self.todo(original, "PTJ901", f"{q}: {reason}")
            return updated
        if q in CONTAINERS:
            return self._container(original, updated, q)
        if q == trainstep.CLIP:
            if self._pos(original)[0] in self.step_lines:
                return updated  # folded into the optimizer by the training-step rewrite
            self.todo(original, "PTJ204", "clip_grad_norm_ is converted only inside a recognised training step "
                      "(as optax.clip_by_global_norm in the optimizer built in this file)")
            return updated
        rule = self.rules.by_name.get(q)
        if rule is None:
            self.todo(original, _manual_code(q), f"{q} has no automatic conversion")
            return updated
        if self.skip_unsafe(rule):
            return updated
        built_as = self.optimizer_calls.get(id(original))
        line = self._pos(original)[0]
        if rule.kind == "optimizer" and built_as is not None and line in self.kept_optimizers:
            self.todo(original, rule.code, trainstep.KEPT_OPTIMIZER.format(name=built_as))
            return updated
        args, kwargs = self._args(updated)
        ctx = self._ctx()
        if rule.kind == "optimizer" and built_as is not None and line in self.clips:
            ctx.clip_norm = self.clips[line]  # its training step clips gradients
        try:
            rendered = render_call(rule, args, kwargs, name=q, ctx=ctx)
        except Refused as why:
            self.todo(original, rule.code, f"{q}: {why}")
            return updated
        if rule.get("needs_key") and self._fscope().rngs is None:
            self._fscope().needs_rngs = True
        self.helpers |= rendered.helpers
        self.changed(original, rule.code, f"{q} -> {_head(rendered.text)}", rule.get("safety", "safe"))
        return self._expr(rendered.text)

    def _container(self, original: cst.Call, updated: cst.Call, q: str) -> cst.BaseExpression:
        args, kwargs = self._args(updated)
        reason = container_refusal(q, [(a.source, a.starred) for a in args], list(kwargs))
        if reason is not None:
            self.todo(original, "PTJ102", f"{q}: {reason}")
            return updated
        if q.endswith("Sequential"):
            self.changed(original, "PTJ102", "nn.Sequential -> nnx.Sequential")
            return updated.with_changes(func=cst.parse_expression("nnx.Sequential"))
        self.changed(original, "PTJ102", "nn.ModuleList -> nnx.List")
        if not updated.args:
            return cst.parse_expression("nnx.List([])")
        return updated.with_changes(func=cst.parse_expression("nnx.List"))

    def _instantiate(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if any(arg.keyword is not None and arg.keyword.value == "rngs" for arg in updated.args):
            return updated
        rngs = self._ctx().rngs
        args = list(updated.args)
        if args:
            last = args[-1]
            args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        args.append(cst.Arg(keyword=cst.Name("rngs"), value=cst.parse_expression(rngs), equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))))
        self.changed(original, "PTJ101", f"{original.func.value}(...) gets rngs={rngs}")  # type: ignore[attr-defined]
        return updated.with_changes(args=args)

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

    # ---------------------------------------------------------------- blocks: training step

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        body = self._train_steps(list(updated.body))
        if not body:
            body = [cst.SimpleStatementLine(body=[cst.Pass()])]
        return updated.with_changes(body=body)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        scope = self.scopes[0]
        body = self._train_steps(list(updated.body))
        body = self._insert_pending(scope, body)
        if scope.needs_rngs:
            at = _after_imports(body)
            body.insert(at, cst.parse_statement("rngs = nnx.Rngs(0)  # pt2jax: JAX needs explicit keys (torch drew from its global generator)\n"))
        module = updated.with_changes(body=body)
        return finish_imports(module, self.aliases, self.helpers)

    def _not_models(self) -> set[str]:
        """Names called in a forward pass that are not the model: functions, loss modules."""
        return self.module_names | set(IMPORTS) | set(HELPERS) | self.loss_vars

    def _unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.used_names:
            name = f"{base}_{i}"
            i += 1
        self.used_names.add(name)
        return name

    def _train_steps(self, body: list) -> list:
        index = 0
        refusals: list[tuple[int, str]] = []  # (id of a backward() statement, why it stays)
        while index < len(body):
            loss_name = _method_call(body[index], "backward")
            if loss_name is None:
                index += 1
                continue
            plan = self._plan_group(body, index, loss_name)
            if isinstance(plan, str):
                refusals.append((id(body[index]), f"training step not converted: {plan}"))
                index += 1
                continue
            for stmt, code, message in plan.lines:
                self.changed(stmt, code, message)
            kept = [stmt for i, stmt in enumerate(body) if i not in plan.remove or i == plan.call_index]
            position = kept.index(body[plan.call_index])
            kept[position:position + 1] = [plan.call, *plan.after]
            scope = self.scopes[0] if plan.at_module_level else self._fscope()
            scope.pending_defs.append((plan.call, plan.text_def))
            body = kept
            index = position + 1 + len(plan.after)
        out, reason = [], None
        reasons = dict(refusals)
        for position, stmt in enumerate(body):
            if id(stmt) in reasons:
                reason = reasons[id(stmt)]
            elif reason is None or _method_call(stmt, "zero_grad") is not None:
                # a zero_grad() or early statement reports the next refused backward()'s reason
                ahead = [reasons[id(s)] for s in body[position:] if id(s) in reasons]
                reason = ahead[0] if ahead else reason
            out.append(self._leftover_training_calls(stmt, reason))
        return out

    def _leftover_training_calls(self, stmt, refusal: str | None):
        """backward()/zero_grad()/step() calls not part of a converted step: kept, with a TODO."""
        if not isinstance(stmt, cst.SimpleStatementLine):
            return stmt
        todos = []
        for call in _method_calls(stmt, TRAIN_METHODS):
            method = call.func.attr.value
            if method == "step" and not self._optimizer_step(call):
                continue
            code = TRAIN_METHODS[method]
            reason = refusal or "not part of a recognised training step (zero_grad / forward / loss / backward / step in one block)"
            line, col = self._pos(stmt)
            self.findings.append(Finding(self.path, line, col, code, reason, False, "warning", "manual"))
            todos.append(f"{code} {reason}")
        return _with_todos(stmt, todos)

    def _optimizer_step(self, call: cst.Call) -> bool:
        receiver = call.func.value
        if isinstance(receiver, cst.Name) and receiver.value in self.optimizer_vars:
            return True
        if isinstance(receiver, cst.Name) and receiver.value in self.scheduler_vars:
            return False  # an lr scheduler's step: reported where the scheduler is built
        return self._fscope().has_backward

    def _fscope(self) -> _Scope:
        """The innermost function (or the module): where statements and variables live."""
        for scope in reversed(self.scopes):
            if scope.kind in ("function", "module"):
                return scope
        return self.scopes[0]

    def _plan_group(self, body: list, b: int, loss: str) -> _Group | str:
        infos = [_cst_info(stmt, self.qualname) for stmt in body]
        plan = trainstep.plan(infos, b, optimizers=self.optimizers, not_models=self._not_models())
        if isinstance(plan, str):
            return plan
        model, opt, step_index, zero, group, after = plan.model, plan.opt, plan.step, plan.zero, plan.group, plan.after
        clip = plan.clip
        tainted = set().union(*(infos[i].targets or set() for i in group))
        closure = set(self.module_names) | set(self.aliases) | set(IMPORTS) | _BUILTINS | {"self"}
        lifter = _Lifter(model, tainted, closure)
        group_stmts = [body[i].visit(lifter) for i in group]
        later = set()
        for stmt in [*(body[i] for i in after), *body[step_index + 1:]]:
            later |= names_in(stmt)
        aux = sorted((tainted - {loss}) & later)
        free = set()
        for stmt in group_stmts:
            free |= names_in(stmt)
        free -= {model, opt, *tainted, *(name for name, _ in lifter.params), *_BUILTINS}
        # a step that reads only module-level names goes at module level: jitted once, not per call
        at_module_level = free <= (self.module_names | set(IMPORTS)) and len(self.scopes) > 1
        train_step = self._unique("train_step")
        loss_fn = self._unique("loss_fn") if "loss_fn" not in self.used_names else self._unique("compute_loss")
        params = [name for name, _ in lifter.params]
        args = [code_of(expr) for _, expr in lifter.params]
        inner = "".join(code_of(s) for s in group_stmts)
        inner = _indent(_strip_leading_comments_kept(inner), "        ")
        header = ", ".join([model, opt, *params])
        if aux:
            aux_tuple = ", ".join(aux) + ("," if len(aux) == 1 else "")
            ret_inner = f"        return {loss}, ({aux_tuple})\n"
            grad_line = f"    ({loss}, ({aux_tuple})), grads = nnx.value_and_grad({loss_fn}, has_aux=True)({model})\n"
            ret = f"    return {loss}, {', '.join(aux)}\n"
            call_targets = f"{loss}, {', '.join(aux)}"
        else:
            ret_inner = f"        return {loss}\n"
            grad_line = f"    {loss}, grads = nnx.value_and_grad({loss_fn})({model})\n"
            ret = f"    return {loss}\n"
            call_targets = loss
        text_def = (
            "@nnx.jit\n"
            f"def {train_step}({header}):\n"
            f"    def {loss_fn}({model}):\n"
            f"{inner}{ret_inner}"
            f"{grad_line}"
            f"    {opt}.update({model}, grads)\n"
            f"{ret}"
        )
        call_text = f"{call_targets} = {train_step}({', '.join([model, opt, *args])})\n"
        call = cst.parse_statement(call_text)
        comments = []  # comments above removed statements move to the call: nothing is dropped
        remove = set(group) | set(zero) | set(after) | set(clip) | {b, step_index}
        for i in sorted(set(zero) | set(clip) | {b, step_index}):  # group statements keep theirs in loss_fn
            comments += [line for line in body[i].leading_lines if line.comment is not None]
            trailing = body[i].trailing_whitespace.comment
            if trailing is not None:
                comments.append(cst.EmptyLine(comment=trailing))
        call = call.with_changes(leading_lines=comments)
        lines = [(body[i], "PTJ202", f"{opt}.zero_grad() removed (gradients are returned, not accumulated)") for i in zero]
        lines.append((body[b], "PTJ203", f"{loss}.backward() -> nnx.value_and_grad in @nnx.jit {train_step}"))
        lines += [(body[i], "PTJ204", f"clip_grad_norm_ -> optax.clip_by_global_norm({plan.max_norm}) in {opt}'s chain")
                  for i in clip]
        lines.append((body[step_index], "PTJ204", f"{opt}.step() -> {opt}.update({model}, grads)"))
        return _Group(text_def, call, remove, b, lines, at_module_level, [body[i] for i in after])


_ATOMIC_EXPR = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float, cst.SimpleString,
                cst.List, cst.Tuple, cst.Dict, cst.Set, cst.ListComp)


def _head(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def paren_code(node: cst.BaseExpression) -> str:
    text = code_of(node)
    if isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or node.lpar:
        return text
    return f"({text})"


def _is_docstring(stmt) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _has_todo(stmt) -> bool:
    return any(line.comment is not None and line.comment.value.startswith(TODO_PREFIX) for line in stmt.leading_lines)


def _cst_info(stmt, qualname) -> trainstep.StmtInfo:
    """The planner's summary of one libcst statement (trainstep.ast_info is its twin)."""
    method = None
    call = _expr_call(stmt)
    clip = None
    if call is not None and qualname(call.func) == trainstep.CLIP:
        clip = trainstep.clip_info([code_of(a.value) for a in call.args if a.keyword is None],
                                   {a.keyword.value: code_of(a.value) for a in call.args if a.keyword is not None})
    if call is not None and not call.args and isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name):
        method = (call.func.value.value, call.func.attr.value)
    targets = _assign_targets(stmt)
    called: set[str] = set()

    class Calls(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            if isinstance(node.func, cst.Name):
                called.add(node.func.value)

    stmt.visit(Calls())
    return trainstep.StmtInfo(method, None if targets is None else frozenset(targets), frozenset(names_in(stmt)),
                              frozenset(called), clip, _has_todo(stmt))


def _is_self_assignment(stmt) -> bool:
    """`a = a` or `a, b = a, b`: nothing left to do."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return False
    target, value = small.targets[0].target, small.value
    if isinstance(target, cst.Tuple) and isinstance(value, cst.Tuple):
        return len(target.elements) == len(value.elements) and all(
            isinstance(t.value, cst.Name) and isinstance(v.value, cst.Name) and t.value.value == v.value.value
            for t, v in zip(target.elements, value.elements))
    return isinstance(target, cst.Name) and isinstance(value, cst.Name) and target.value == value.value


def _assign_targets(stmt) -> set[str] | None:
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if isinstance(small, cst.Assign):
        names: set[str] = set()
        for target in small.targets:
            if not isinstance(target.target, (cst.Name, cst.Tuple, cst.List)):
                return None
            names |= _target_names(target.target)
        return names
    if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) and small.value is not None:
        return {small.target.value}
    return None


def _train_statements(body: list, b: int):
    """backward() and the step()/zero_grad() calls around it, for TODO reports."""
    out = [(body[b], "PTJ203")]
    for stmt in body:
        if _method_call(stmt, "step") is not None:
            out.append((stmt, "PTJ204"))
        elif _method_call(stmt, "zero_grad") is not None:
            out.append((stmt, "PTJ202"))
    return out


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in text.splitlines(keepends=True))


def _strip_leading_comments_kept(text: str) -> str:
    return text


def _contains(tree: cst.CSTNode, target: cst.CSTNode) -> bool:
    if tree is target:
        return True
    found = False

    class Find(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            nonlocal found
            if node is target:
                found = True
            return not found

    tree.visit(Find())
    return found


def _after_imports(body: list) -> int:
    at = 0
    for i, stmt in enumerate(body):
        if _is_docstring(stmt) and i == 0:
            at = 1
        elif isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            at = i + 1
        else:
            break
    return at


class _Lifter(cst.CSTTransformer):
    """Turns the data a forward pass reads (batches, labels) into train-step parameters.

    Expressions that mention the model or values computed from it stay; callees, literals and
    module-level names stay; every other maximal sub-expression becomes a parameter.
    """

    def __init__(self, model: str, tainted: set[str], closure: set[str]):
        self.model, self.tainted, self.closure = model, tainted, closure
        self.params: list[tuple[str, cst.BaseExpression]] = []
        self.by_code: dict[str, str] = {}
        self.lifted: dict[int, str] = {}
        self.callees: set[int] = set()
        self.not_expressions: set[int] = set()  # attribute names and keyword names
        self.taken = {model, *tainted}

    def _free(self, node: cst.CSTNode) -> set[str]:
        return names_in(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if id(node) in self.not_expressions:
            return False
        if isinstance(node, cst.Attribute):
            self.not_expressions.add(id(node.attr))
        if isinstance(node, cst.Arg) and node.keyword is not None:
            self.not_expressions.add(id(node.keyword))
        if isinstance(node, cst.Call):
            self.callees.add(id(node.func))
        if isinstance(node, (cst.AssignTarget,)):
            return False
        if not isinstance(node, cst.BaseExpression) or isinstance(node, cst.Lambda):
            return not isinstance(node, cst.Lambda)
        if id(node) in self.callees:
            return bool(self._free(node) & (self.tainted | {self.model}))
        free = self._free(node)
        if free & (self.tainted | {self.model}):
            return True
        if not (free - self.closure):
            return False  # literals and module-level names: keep inline
        if isinstance(node, cst.Subscript) and not (names_in(node) - names_in(node.value) - {"None", "True", "False"}):
            return True  # `y[:, None]`: pass `y`, keep the constant indexing inside the step
        code = code_of(node).strip()
        if code not in self.by_code:
            name = _param_name(node)
            base, i = name, 1
            while name in self.taken:
                name = f"{base}_{i}"
                i += 1
            self.taken.add(name)
            self.by_code[code] = name
            self.params.append((name, node))
        self.lifted[id(node)] = self.by_code[code]
        return False

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode):
        name = self.lifted.get(id(original))
        if name is not None:
            return cst.Name(name)
        return updated


def _param_name(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Subscript):
        return _param_name(node.value)
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return "batch"


def not_tensor_names(module: cst.Module) -> set[str]:
    """Module-level names bound by imports, defs and classes: receivers that are not tensors."""
    return set(IMPORTS) | TorchToNNX._module_level_names(module, assignments=False)


# --------------------------------------------------------------------------- imports & helpers


def finish_imports(module: cst.Module, aliases: dict[str, str], helpers: set[str]) -> cst.Module:
    """Drop torch imports nothing uses any more, add the JAX imports the new code uses,
    and emit the helpers it needs (once per file)."""
    body = list(module.body)
    defined = TorchToNNX._module_level_names(module)
    needed_helpers = [h for h in helper_closure(sorted(helpers)) if h.name not in defined]
    helper_stmts = []
    for helper in needed_helpers:
        parsed = cst.parse_module(helper.source)
        stmts = list(parsed.body)
        if stmts:
            lines = [cst.EmptyLine(indent=False), cst.EmptyLine(indent=False)] if helper_stmts or True else []
            stmts[0] = stmts[0].with_changes(leading_lines=[*lines, *stmts[0].leading_lines])
        helper_stmts += stmts
    probe = module.with_changes(body=[*body, *helper_stmts])
    used = names_in(probe)
    first_import = None
    new_body = []
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], (cst.Import, cst.ImportFrom)):
            kept = _prune_import(stmt.body[0], aliases, used)
            if kept is not stmt.body[0]:
                if first_import is None:
                    first_import = len(new_body)
                if kept is None:
                    if _has_comment(stmt.leading_lines):
                        new_body.append(cst.SimpleStatementLine(body=[cst.Pass()], leading_lines=stmt.leading_lines))
                    continue
                stmt = stmt.with_changes(body=[kept])
        new_body.append(stmt)
    bound = TorchToNNX._module_level_names(module.with_changes(body=new_body))
    missing = [name for name in IMPORTS if name in used and name not in bound]
    insert_at = first_import if first_import is not None else _after_imports(new_body)
    import_stmts = [cst.parse_statement(IMPORTS[name] + "\n") for name in missing]
    if import_stmts and insert_at < len(new_body) and insert_at == first_import:
        # keep the blank lines/comments that stood above the first torch import
        pass
    new_body[insert_at:insert_at] = import_stmts
    if helper_stmts:
        at = _after_imports(new_body)
        header = cst.EmptyLine(comment=cst.Comment("# pt2jax helpers: PyTorch semantics with no one-call JAX equivalent"))
        first = helper_stmts[0]
        helper_stmts[0] = first.with_changes(leading_lines=[*first.leading_lines, header])
        new_body[at:at] = helper_stmts
        if at + len(helper_stmts) < len(new_body):
            nxt = new_body[at + len(helper_stmts)]
            if not nxt.leading_lines or len(nxt.leading_lines) < 2:
                new_body[at + len(helper_stmts)] = nxt.with_changes(
                    leading_lines=[cst.EmptyLine(indent=False), cst.EmptyLine(indent=False), *[l for l in nxt.leading_lines if l.comment is not None]])
    return module.with_changes(body=new_body)


def _prune_import(node, aliases: dict[str, str], used: set[str]):
    """The import with unused torch names removed (None if nothing is left)."""
    if isinstance(node, cst.Import):
        keep = []
        for alias in node.names:
            full = _dotted(alias.name) or ""
            local = alias.asname.name.value if alias.asname is not None else full.split(".")[0]
            if is_torch_name(full) and local not in used:
                continue
            keep.append(alias)
    else:
        base = _dotted(node.module) if node.module is not None else None
        if not base or not is_torch_name(base) or isinstance(node.names, cst.ImportStar):
            return node
        keep = [a for a in node.names if (a.asname.name.value if a.asname is not None else a.name.value) in used]
    if len(keep) == len(node.names):
        return node
    if not keep:
        return None
    keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return node.with_changes(names=keep)


# --------------------------------------------------------------------------- entry points


def parse(source: str, path: str) -> cst.Module:
    try:  # ast first: its messages and line numbers are the ones Python users know
        ast.parse(source)
    except SyntaxError as error:
        raise SourceError(path, f"syntax error: {error.msg}", error.lineno) from None
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as error:
        raise SourceError(path, f"syntax error: {error.message}", error.raw_line) from None


def rewrite_source(source: str, path: str = "<string>", *, target: str = "nnx", unsafe_fixes: bool = True) -> FileResult:
    """Rewrite one file's text. Unchanged text comes back as is (byte for byte).

    `unsafe_fixes=False` (what `lint --fix` uses) leaves alone the conversions that change
    numbers: random sampling and seeding (JAX's streams differ from torch's) and 64-bit
    integers becoming 32-bit ones.
    """
    if target != "nnx":
        raise ValueError(f"target {target!r} is not supported yet (only 'nnx')")
    if "torch" not in source:
        return FileResult(path, source, source)
    module = parse(source, path)
    aliases = import_aliases(module)
    if not aliases:
        return FileResult(path, source, source)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    transformer = TorchToNNX(path, aliases, module, unsafe_fixes)
    new_module = wrapper.visit(transformer)
    new_source = new_module.code
    try:
        ast.parse(new_source)
    except SyntaxError as error:  # an engine bug: never hand back text that does not parse
        raise SourceError(path, f"internal error: the rewrite produced invalid code ({error.msg})", error.lineno) from None
    findings = transformer.findings
    # with unsafe fixes off (`lint --fix`), conversions that change numbers are left for a later
    # `--unsafe-fixes` run, not for a person: no marker that would go stale then
    if new_source != source and unsafe_fixes:
        new_source, residue_findings = _mark_residue(source, new_source, path)
        findings = findings + residue_findings
    findings = sorted(findings, key=lambda f: (f.line, f.col, f.code))
    return FileResult(path, source, new_source, findings)


def _mark_residue(source: str, new_source: str, path: str) -> tuple[str, list[Finding]]:
    """The residue check (core.residue) over the output: torch left without a TODO(pt2jax)
    gets one (PTJ920) and a finding, so the summary never claims more than was done. The
    engine should have marked everything itself; a PTJ920 is an engine gap, reported as such."""
    unmarked = unmarked_residue(new_source)
    if not unmarked:
        return new_source, []
    to_input = _line_map(source, new_source)
    findings = [
        Finding(path, to_input(r.line), r.col, RESIDUE_CODE, f"left unconverted without a marker (residue "
                f"check): {r.message}", False, "warning", "manual")
        for r in unmarked
    ]
    marked = mark_residue(new_source, unmarked)
    ast.parse(marked)  # comment lines only: cannot fail, checked all the same
    return marked, findings


def _line_map(source: str, new_source: str):
    """Output line -> the input line it came from (the start of a changed block)."""
    import difflib

    old, new = source.splitlines(), new_source.splitlines()
    blocks = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()

    def to_input(line: int) -> int:
        for tag, i1, i2, j1, j2 in blocks:
            if j1 <= line - 1 < j2:
                return i1 + (line - 1 - j1) + 1 if tag == "equal" else min(i1 + 1, len(old))
        return line

    return to_input


# lint imports it from trainstep (no libcst there); kept here for callers of the engine
fixable_train_step_lines = trainstep.fixable_train_step_lines
