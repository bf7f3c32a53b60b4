"""Statement-level conversions: torch.manual_seed(s) -> the target's seeded randomness,
super().__init__() removed,
`model.to(device)` statements dropped, `with torch.no_grad():` unwrapped."""

from __future__ import annotations

import libcst as cst

from ..core import parallel
from ..core.constructs import NO_GRAD
from ..core.decide import SEEDS
from ..core.statements import ASSIGN, EXPR, WITH, WITH_AS
from ..mapping import optimizer_model
from .cst_util import _expr_call, _has_comment, _is_self_assignment, code_of
from .todos import _with_todos, keep_comments

def _seed_argument(call: cst.Call):
    """The seed of `torch.manual_seed(s)` / `torch.manual_seed(seed=s)` (None: another shape)."""
    if len(call.args) == 1 and call.args[0].star == "" and call.args[0].keyword in (None,) :
        return call.args[0].value
    if len(call.args) == 1 and call.args[0].keyword is not None and call.args[0].keyword.value == "seed":
        return call.args[0].value
    return None


class StatementsMixin:
    """Simple statements and `with` blocks; records optimizer, scheduler and loss variables."""

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self.todo_stack.append([])
        self._target_sites(node)
        for small in node.body:  # how each call stands in its statement: a fact for core.decide
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                self.call_statement[id(small.value)] = EXPR
            elif isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)) and isinstance(small.value, cst.Call):
                self.call_statement[id(small.value)] = ASSIGN
        call = _expr_call(node)
        if call is not None and self.qualname(call.func) in SEEDS and _seed_argument(call) is not None:
            self.statement_level_calls.add(id(call))
            if self.unsafe_fixes:
                self._fscope().rngs = self.target.rngs_name
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

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> None:
        """`if cond: dist.destroy_process_group()`: a process-group call there stands as a statement
        too, as lint sees it (it becomes `None`, a statement that does nothing)."""
        for small in node.body:
            if (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)
                    and self.qualname(small.value.func) in parallel.PROCESS_CALLS):
                self.call_statement[id(small.value)] = EXPR

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        new = self._leave_simple_line(original, updated)
        new = keep_comments(original, new) if self._may_hold_comments(original) else new
        self._keep_pos(new, self._pos(original))  # the statement as it leaves: TODOs, comments placed
        return new

    def _leave_simple_line(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        updated = self._structure_statement(original, updated)  # buffers, index assignment, weight tying
        todos = self.todo_stack.pop()
        self._keep_pos(updated, self._pos(original))
        call = _expr_call(original)
        if call is not None and id(call) in self.removed_calls:  # init_process_group(world_size=1), ...
            if not todos and not _has_comment(updated.leading_lines):
                return cst.RemovalSentinel.REMOVE
            return _with_todos(updated.with_changes(body=[cst.Pass()]), todos)
        if call is not None:
            q = self.qualname(call.func)
            if q in SEEDS and _seed_argument(call) is not None and self.unsafe_fixes:
                self.changed(original, "PTJ301", f"{q}(s) -> {self.target.seed_statement('s')}", "unsafe")
                seed = code_of(_seed_argument(updated.body[0].value))  # type: ignore[attr-defined]
                new = cst.parse_statement(self.target.seed_statement(seed) + "\n")
                return _with_todos(new.with_changes(leading_lines=updated.leading_lines), todos)
            reseeded = self._reseeded_generator(call, updated)
            if reseeded is not None:
                return _with_todos(reseeded.with_changes(leading_lines=updated.leading_lines), todos)
            in_class_init = self._fscope().in_converted_init
            if in_class_init and self._is_super_init(call) and not self._keeps_super_init(call):
                self.changed(original, "PTJ101", f"super().__init__() removed ({self.target.name} modules need none)")
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

    def visit_With(self, node: cst.With) -> None:
        self.todo_stack.append([])
        for item in node.items:
            if isinstance(item.item, cst.Call):
                self.call_statement[id(item.item)] = WITH if item.asname is None else WITH_AS
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

    def _reseeded_generator(self, call: cst.Call, updated: cst.SimpleStatementLine):
        """`g.manual_seed(s)` as a statement, converted to a fresh key stream: `g = nnx.Rngs(s)`
        (the generator is rebound; None when the statement is another one or was not converted)."""
        if not (isinstance(call.func, cst.Attribute) and call.func.attr.value == "manual_seed"
                and isinstance(call.func.value, cst.Name) and len(updated.body) == 1):
            return None
        new = updated.body[0]
        if not isinstance(new, cst.Expr) or not isinstance(new.value, cst.Call) or new.value.deep_equals(call):
            return None
        return cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(call.func.value.value))], new.value)])
