"""Data parallelism (core.parallel's verdicts, parallel_facts' sites): the wrapper call, the
process-group calls, `model.module`. No libcst hooks of its own: calls.py and methods.py call in."""

from __future__ import annotations

import libcst as cst

from ..core import parallel
from .cst_util import code_of, parse_expr


class ParallelMixin:
    """State: `parallel` (parallel_facts.ParallelFacts), `removed_calls`, `helpers`."""

    def _parallel_call(self, original: cst.Call, updated: cst.Call, q: str, decision) -> cst.BaseExpression:
        """core.parallel's verdicts: a data-parallel wrapper -> data_parallel(module) (the module,
        replicated over the mesh); a process-group call -> its single-host meaning."""
        self.changed(original, decision.code, decision.message)
        if decision.action == "data_parallel":
            module = next(a for a in updated.args if a.keyword is None or a.keyword.value == "module")
            self.helpers.add("data_parallel")
            return parse_expr(f"data_parallel({code_of(module.value)})")
        target = parallel.PROCESS_TARGETS[q]
        if target is None:  # a statement with nothing left to do: removed (leave_SimpleStatementLine)
            self.removed_calls.add(id(original))
            return cst.Name("None")
        return cst.parse_expression(target)

    def _wrapped_module(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression | None:
        """`model.module` of a converted data-parallel wrapper: the model itself (parallel_facts;
        None: another attribute)."""
        if original.attr.value != parallel.MODULE_ATTRIBUTE or not self.parallel.module_reads:
            return None
        line, col = self._pos(original)
        name = self.parallel.module_reads.get((line, col - 1))
        if name is None:
            return None
        self.changed(original, parallel.CODE, parallel.module_attribute_message(name))
        return updated.value
