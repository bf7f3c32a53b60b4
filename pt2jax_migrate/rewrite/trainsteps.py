"""Block-level pass: zero_grad / forward / loss / backward / step groups planned by trainstep
and lifted into the target's jitted train step; leftover training calls get TODOs."""

from __future__ import annotations

import builtins
from dataclasses import replace

import libcst as cst

from .. import trainstep
from ..model import Finding
from .accumulation import AccumulationMixin, _gated_body
from .cst_util import (_after_imports, _contains, owning_statements, _indent, _method_call, _method_calls, _strip_leading_comments_kept,
                       code_of, names_in)
from .device_metrics import device_metrics
from .imports import finish_imports
from .lifting import _Lifter, _cst_info, defs_before
from .scopes import _Scope
from .step_group import _Group
from .todos import _has_todo, _with_todos

_BUILTINS = set(dir(builtins))
TRAIN_METHODS = trainstep.TRAIN_METHODS
TRAIN_STEP_CODES = set(TRAIN_METHODS.values())


def _joined_method(stmt, method: str) -> bool:
    """A small statement `NAME.method()` (a training call) on a line holding several."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) < 2:
        return False
    return any(_method_call(cst.SimpleStatementLine(body=[small]), method) is not None for small in stmt.body)


def _before_outer_loop(body: list, call: cst.BaseStatement, init: cst.BaseStatement) -> list:
    """body with `init` right before the outermost loop holding `call`, in the same block
    (inside `if __name__ == "__main__":` or `with` when the loop is there, where the model is)."""
    for index, stmt in enumerate(body):
        if not _contains(stmt, call):
            continue
        if isinstance(stmt, (cst.For, cst.While)) or not isinstance(getattr(stmt, "body", None), cst.IndentedBlock):
            # the statement's blank lines and comments go above the new line
            init = init.with_changes(leading_lines=stmt.leading_lines)
            return [*body[:index], init, stmt.with_changes(leading_lines=[]), *body[index + 1:]]
        if _contains(stmt.body, call):
            inner = _before_outer_loop(list(stmt.body.body), call, init)
            return [*body[:index], stmt.with_changes(body=stmt.body.with_changes(body=inner)), *body[index + 1:]]
        return [*body[:index], init, *body[index:]]  # in an else/except branch: before the whole statement
    return body


class TrainStepsMixin(AccumulationMixin):
    """Training-step rewriting over each block (`leave_IndentedBlock`, `leave_Module`)."""

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        if _gated_body(list(updated.body)) is not None:
            # `OPT.step(); OPT.zero_grad()` under an `if`: the enclosing block decides (gradient
            # accumulation) and reports what stays (_resolve_gated)
            self.gated_blocks.add(updated)
            return updated
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
            body.insert(at, cst.parse_statement(self.target.unseeded_statement() + "\n"))
        module = self.target.finish_module(self, updated.with_changes(body=body))
        return finish_imports(module, self.aliases, self.helpers, self.target, self.helpers_module, self.local_imports)

    def _insert_pending(self, scope: _Scope, body: list) -> list:
        """Put each lifted train step right before the top-level statement that uses it."""
        # one walk, not one a def (none without a lifted step)
        holders = owning_statements(body, [call for call, _ in scope.pending_defs]) if scope.pending_defs else {}
        texts: dict[int, list[str]] = {}  # id of a statement of body -> the defs to put before it, in order
        for call_stmt, text in scope.pending_defs:
            if id(call_stmt) in holders:
                texts.setdefault(id(holders[id(call_stmt)]), []).append(text)
        body = defs_before(body, texts, 2 if scope is self.scopes[0] else 1)
        for entry in [e for e in self.pending_inits if e[0] is scope]:
            self.pending_inits.remove(entry)
            body = _before_outer_loop(body, entry[1], cst.parse_statement(entry[2]))
        return device_metrics(body, self.step_outputs)

    def _not_models(self) -> set[str]:
        """Names called in a forward pass that are not the model: functions, loss modules."""
        return self.module_names | set(self.target.converted_imports) | set(self.target.helpers) | self.loss_vars

    def _unique(self, base: str) -> str:
        # names are only ever added to used_names: the search for a base goes on where it stopped
        i = self.unique_from.get(base, 1)
        name = base if i == 1 else f"{base}_{i - 1}"
        while name in self.used_names:
            name = f"{base}_{i}"
            i += 1
        self.unique_from[base] = i
        self.used_names.add(name)
        return name

    def _split_training_lines(self, body: list) -> list:
        """In a block with a backward() call, `opt.zero_grad(); loss.backward()` on one line
        becomes one statement per line, so the step can be planned (trainstep._physical_lines
        splits the same lines for lint)."""
        if not any(_method_call(stmt, "backward") is not None or _joined_method(stmt, "backward")
                   for stmt in body):
            return body
        out = []
        for stmt in body:
            if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) > 1
                    and any(_joined_method(stmt, m) for m in TRAIN_METHODS)):
                out.append(stmt)
                continue
            pos = self._pos(stmt)
            last = len(stmt.body) - 1
            for i, small in enumerate(stmt.body):
                line = cst.SimpleStatementLine(
                    body=[small.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)],
                    leading_lines=stmt.leading_lines if i == 0 else [],
                    trailing_whitespace=stmt.trailing_whitespace if i == last else cst.TrailingWhitespace())
                self._keep_pos(line, pos)
                out.append(line)
        return out

    def _train_steps(self, body: list) -> list:
        body = self._split_training_lines(body)
        index = 0
        refusals: list[tuple[int, str]] = []  # (id of a backward() statement, why it stays)
        calls: set[int] = set()  # ids of the train-step calls made here: a later step starts after them
        while index < len(body):
            loss_name = _method_call(body[index], "backward")
            if loss_name is None:
                index += 1
                continue
            plan = self._plan_group(body, index, loss_name, calls)
            if isinstance(plan, str):
                refusals.append((id(body[index]), f"training step not converted: {plan}"))
                index += 1
                continue
            for stmt, code, message in plan.lines:
                self.changed(stmt, code, message)
            kept = [stmt for i, stmt in enumerate(body) if i not in plan.remove or i == plan.call_index]
            position = kept.index(body[plan.call_index])
            kept[position:position + 1] = [plan.call, *plan.after]
            kept = [plan.replace.get(id(stmt), stmt) for stmt in kept]
            scope = self.scopes[0] if plan.at_module_level else self._fscope()
            scope.pending_defs.append((plan.call, plan.text_def))
            scope.pending_defs.extend((plan.call, text) for text in plan.extra_defs)
            if plan.init is not None:  # set up where the loop's scope starts
                self.pending_inits.append((self._fscope(), plan.call, plan.init))
            calls.add(id(plan.call))
            self.step_outputs[plan.call] = plan.outputs
            body = kept
            index = position + 1 + len(plan.after)
        out, reason = [], None
        reasons = dict(refusals)
        ahead: list[str | None] = [None] * (len(body) + 1)  # the first refusal at or after each position
        for position in range(len(body) - 1, -1, -1) if reasons else ():
            ahead[position] = reasons.get(id(body[position]), ahead[position + 1])
        for position, stmt in enumerate(body):
            if id(stmt) in reasons:
                reason = reasons[id(stmt)]
            elif reason is None or _method_call(stmt, "zero_grad") is not None:
                # a zero_grad() or early statement reports the next refused backward()'s reason
                reason = ahead[position] if ahead[position] is not None else reason
            out.append(self._resolve_gated(self._leftover_training_calls(stmt, reason), reason))
        return out

    def _resolve_gated(self, stmt, refusal: str | None):
        """An `if` whose step()/zero_grad() body was left to this block and not converted:
        its calls get their TODOs now (through elif chains too)."""
        if not isinstance(stmt, cst.If):
            return stmt
        if stmt.body in self.gated_blocks:
            body = [self._leftover_training_calls(inner, refusal) for inner in stmt.body.body]
            stmt = stmt.with_changes(body=stmt.body.with_changes(body=body))
        if isinstance(stmt.orelse, cst.If):
            stmt = stmt.with_changes(orelse=self._resolve_gated(stmt.orelse, refusal))
        return stmt

    def _leftover_training_calls(self, stmt, refusal: str | None):
        """backward()/zero_grad()/step() calls not part of a converted step: kept, with a TODO."""
        if not isinstance(stmt, cst.SimpleStatementLine) or id(stmt) in self.skipped:
            return stmt  # a statement line left unvisited holds no attribute named like a training call
        todos = []
        for call in _method_calls(stmt, TRAIN_METHODS):
            method = call.func.attr.value
            if method == "step" and not self._optimizer_step(call):
                continue
            if (self.qualname(call.func) or "").startswith("torch."):
                continue  # torch.distributed.autograd.backward(...): a torch function, reported as one
            code = TRAIN_METHODS[method]
            reason = self.target.reword(refusal) if refusal else "not part of a recognised training step (zero_grad / forward / loss / backward / step in one block)"
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

    def _gated_if(self, stmt) -> str | None:
        """OPT of `if COND:` (no else) holding exactly OPT.step() then OPT.zero_grad()."""
        if (isinstance(stmt, cst.If) and stmt.orelse is None and stmt.body in self.gated_blocks
                and not _has_todo(stmt)):
            return _gated_body(list(stmt.body.body))
        return None

    def _sharded_args(self, model: str, args: list[str]) -> list[str]:
        """A data-parallel model's step (parallel_facts) gets its batch split over the device mesh:
        `*shard_batch(xb, yb)` (helpers_parallel); any other step's arguments as they are."""
        if model not in self.parallel.wrapped or not args:
            return args
        self.helpers.add("shard_batch")
        return [f"*shard_batch({', '.join(args)})"]

    def _emit_train_step(self, *, name: str, loss_fn: str, model: str, optimizer: str, params: list[str],
                         args: list[str], body: str, loss: str, aux: list[str]) -> tuple[str, cst.SimpleStatementLine]:
        """The lifted step's definition (text) and the statement calling it. The target renders
        both; its step decorator is a helper (NNX: `@jit_train_step`, which splits the models
        once instead of on every call, as `@nnx.jit` does), written into the file with it."""
        text_def = self.target.train_step(name=name, loss_fn=loss_fn, model=model, optimizer=optimizer, params=params,
                                          body=body, loss=loss, aux=aux)
        self.helpers.update(self.target.train_step_helpers)
        args = self._sharded_args(model, args)
        call_text = self.target.train_step_call(name=name, model=model, optimizer=optimizer, args=args, loss=loss,
                                                aux=aux)
        return text_def, cst.parse_statement(call_text)

    def _plan_group(self, body: list, b: int, loss: str, calls: set[int]) -> _Group | str:
        if not self.target.converts_train_steps:
            return f"the {self.target.name} target does not convert training steps yet"
        infos = [_cst_info(stmt, self.qualname) for stmt in body]
        infos = [replace(info, barrier=True) if id(stmt) in calls else info for stmt, info in zip(body, infos)]
        infos = [replace(info, gated=self._gated_if(stmt)) for stmt, info in zip(body, infos)]
        plan = trainstep.plan(infos, b, optimizers=self.optimizers, not_models=self._not_models(),
                              held=self.schedules and self.schedules.held, accumulation=self.target.converts_accumulation)
        if isinstance(plan, str):
            return plan
        model, opt, step_index, zero, group, after = plan.model, plan.opt, plan.step, plan.zero, plan.group, plan.after
        clip = plan.clip
        tainted = set().union(*(infos[i].targets or set() for i in group))
        closure = set(self.module_names) | set(self.aliases) | set(self.target.converted_imports) | _BUILTINS | {"self"}
        lifter = _Lifter(model, tainted, closure)
        group_stmts = [body[i].visit(lifter) for i in group]
        later = set()
        for stmt in [*(body[i] for i in after), *body[b + 1:]]:
            later |= names_in(stmt)
        aux = sorted((tainted - {loss}) & later)
        free = set()
        for stmt in group_stmts:
            free |= names_in(stmt)
        free -= {model, opt, *tainted, *(name for name, _ in lifter.params), *_BUILTINS}
        # a step that reads only module-level names goes at module level: jitted once, not per call
        at_module_level = free <= (self.module_names | set(self.target.converted_imports)) and len(self.scopes) > 1
        train_step = self._unique("train_step")
        loss_fn = self._unique("loss_fn") if "loss_fn" not in self.used_names else self._unique("compute_loss")
        params = [name for name, _ in lifter.params]
        args = [code_of(expr) for _, expr in lifter.params]
        # another trained model the loss reads (a GAN's discriminator in the generator's loss) is
        # an argument: read from the closure, jit would bake its first weights in as constants
        for other in sorted(free & set(self.optimizers.values()) - {model, *params}):
            params.append(other)
            args.append(other)
        inner = "".join(code_of(s) for s in group_stmts)
        inner = _indent(_strip_leading_comments_kept(inner), "        ")
        if plan.accumulate:
            return self._accumulation_group(body, plan, lifter, inner, params, args, aux, train_step, loss_fn,
                                            at_module_level)
        text_def, call = self._emit_train_step(name=train_step, loss_fn=loss_fn, model=model, optimizer=opt,
                                               params=params, args=args, body=inner, loss=loss, aux=aux)
        comments = []  # comments above removed statements move to the call: nothing is dropped
        remove = set(group) | set(zero) | set(after) | set(clip) | {b, step_index}
        for i in sorted(set(zero) | set(clip) | {b, step_index}):  # group statements keep theirs in loss_fn
            comments += [line for line in body[i].leading_lines if line.comment is not None]
            trailing = body[i].trailing_whitespace.comment
            if trailing is not None:
                comments.append(cst.EmptyLine(comment=trailing))
        call = call.with_changes(leading_lines=comments)
        lines = [(body[i], "PTJ202", f"{opt}.zero_grad() removed (gradients are returned, not accumulated)") for i in zero]
        lines.append((body[b], "PTJ203", f"{loss}.backward() -> {self.target.gradient_step} {train_step}"))
        lines += [(body[i], "PTJ204", f"gradient clipping -> {plan.clip_tx} in {opt}'s chain")
                  for i in clip]
        lines.append((body[step_index], "PTJ204", f"{opt}.step() -> {self.target.update_text(opt, model)}"))
        return _Group(text_def, call, remove, b, lines, at_module_level, [body[i] for i in after],
                      frozenset({loss, *aux}))

