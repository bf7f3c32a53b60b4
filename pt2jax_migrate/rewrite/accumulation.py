"""Gradient accumulation over micro-batches, emitted apart from the plain train step."""

from __future__ import annotations

import libcst as cst

from .cst_util import _method_call
from .step_group import _Group


def _gated_body(stmts: list) -> str | None:
    """OPT of a block that is exactly `OPT.step()` then `OPT.zero_grad()`, else None."""
    if len(stmts) != 2:
        return None
    opt = _method_call(stmts[0], "step")
    return opt if opt is not None and _method_call(stmts[1], "zero_grad") == opt else None


class AccumulationMixin:
    """Gradient accumulation over micro-batches (`loss.backward()` every batch, `if COND:
    opt.step(); opt.zero_grad()`): a jitted step returns the loss and the gradients summed so
    far (PyTorch adds into .grad), the `if` applies them and zeroes the sum. Kept apart from
    the plain train step so each can change on its own."""

    def _accumulation_group(self, body, plan, lifter, inner, params, args, aux, train_step, loss_fn,
                            at_module_level) -> _Group:
        model, opt, loss, b, gate = plan.model, plan.opt, plan.loss, plan.backward, plan.step
        grads = self._unique(f"{model}_grads")
        apply_name = self._unique("apply_grads")
        text_def = self.target.accumulate_step(name=train_step, loss_fn=loss_fn, model=model, grads=grads,
                                               params=params, body=inner, loss=loss, aux=aux)
        call = cst.parse_statement(self.target.accumulate_call(name=train_step, model=model, grads=grads,
                                                               args=self._sharded_args(model, args),
                                                               loss=loss, aux=aux))
        apply_def = self.target.apply_grads(name=apply_name, model=model, optimizer=opt)
        self.helpers.update(self.target.train_step_helpers)  # both run under the plain step's decorator
        step_stmt, zero_stmt = body[gate].body.body
        new_step = cst.parse_statement(self.target.apply_grads_call(name=apply_name, model=model, optimizer=opt,
                                                                    grads=grads))
        new_zero = cst.parse_statement(self.target.zero_grads(grads))
        keep = {"leading_lines", "trailing_whitespace"}
        new_step = new_step.with_changes(**{k: getattr(step_stmt, k) for k in keep})
        new_zero = new_zero.with_changes(**{k: getattr(zero_stmt, k) for k in keep})
        gate_stmt = body[gate].with_changes(body=body[gate].body.with_changes(body=[new_step, new_zero]))
        comments = [line for line in body[b].leading_lines if line.comment is not None]
        if body[b].trailing_whitespace.comment is not None:
            comments.append(cst.EmptyLine(comment=body[b].trailing_whitespace.comment))
        call = call.with_changes(leading_lines=comments)
        backward = f"{loss}.backward() -> {self.target.gradient_step} {train_step}, summed into {grads}"
        lines = [(body[b], "PTJ203", backward),
                 (step_stmt, "PTJ204", f"{opt}.step() -> {opt}.update({model}, {grads}) in {apply_name}"),
                 (zero_stmt, "PTJ202", f"{opt}.zero_grad() -> {grads} set to zeros")]
        remove = set(plan.group) | set(plan.after) | {b}
        return _Group(text_def, call, remove, b, lines, at_module_level, [body[i] for i in plan.after],
                      frozenset({loss, *aux}), replace={id(body[gate]): gate_stmt}, extra_defs=[apply_def],
                      init=self.target.grads_init(model, grads))
