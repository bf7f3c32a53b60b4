"""Torch calls through the rules/ tables, nn containers, nn.Parameter, and passing the target's
randomness (`rngs`) to converted classes; replacement expressions parenthesised only where needed."""

from __future__ import annotations

import libcst as cst

from ..core import parallel
from ..core.constructs import NO_GRAD, kept_layer, mapping_argument
from ..core.data import ARRAY_DATASET, ARRAY_LOADER, DATA_LOADER, is_data_pipeline
from ..core.decide import CLIPS, SEEDS, CallSite, ReferenceSite, decide_call, decide_reference
from ..core.statements import ASSIGN, VALUE
from ..mapping import Arg, CallContext, Refused, check_rule, make_arg, render_call
from .cst_util import _head, code_of, keep_parens, layers_of_mapping, parse_expr, unnamed_layers
from .todos import Remark

_ATOMIC_EXPR = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float, cst.SimpleString,
                cst.List, cst.Tuple, cst.Dict, cst.Set, cst.ListComp)


class CallsMixin:
    """`torch.*(...)` calls, containers, Parameter, instantiation of converted classes."""

    def _ctx(self, receiver: str | None = None) -> CallContext:
        scope = self._fscope()
        target = self.target
        rngs = scope.rngs or target.rngs_expr()
        # random sampling without a seed: this scope gets its own stream (see needs_rngs)
        key = target.key_expr(scope.rngs or target.rngs_name)
        return CallContext(rngs=rngs, key=key, receiver=receiver)

    def _args(self, call: cst.Call) -> tuple[list[Arg], dict[str, Arg]]:
        args: list[Arg] = []
        kwargs: dict[str, Arg] = {}
        for arg in call.args:
            text = code_of(arg.value)
            if arg.keyword is not None:
                kwargs[arg.keyword.value] = make_arg(text)
            elif arg.star == "**" and "**" not in kwargs:  # as lint passes it (core.calls.arguments_from_text)
                kwargs["**"] = make_arg(text, starred=True)
            else:
                args.append(make_arg(text, starred=arg.star != ""))
        return args, kwargs

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.call_stack and self.call_stack[-1][0] == id(original):
            self.call_stack.pop()
        new = self._convert_call(original, updated)
        return new if not updated.lpar or new is updated else keep_parens(updated, new, self.wrapped)

    def _convert_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        q = self.qualname(original.func)
        if q is not None:
            return self._torch_call(original, updated, q)
        line, col = self._pos(original)
        if (line, col - 1) in self.mapping_sequentials and original.args:  # super().__init__(layers), Sequential
            return layers_of_mapping(updated)
        partial_layer = self._partial_layer(original, updated)
        if partial_layer is not None:
            return partial_layer
        if self._builds_with_rngs(original):  # self._make_layer(...), block(...)
            return self._instantiate(original, updated)
        if isinstance(original.func, cst.Name) and original.func.value in self.rngs_classes:
            return self._instantiate(original, updated)
        if isinstance(original.func, cst.Attribute) and self.aliases:
            return self._method_call(original, updated)
        return updated

    def _partial_layer(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        """`partial(nn.BatchNorm2d, eps=1e-3)` -> `lambda num_features, *, rngs: TorchBatchNorm(
        num_features, epsilon=1e-3, ..., rngs=rngs)`: the bound keywords rendered once, as the
        table renders them in a call (the class itself, as a value, is decided by _reference)."""
        func = original.func  # `partial` or `x.partial` only: the text of a chain's head costs O(n)
        short = isinstance(func, cst.Name) or isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
        if not short or code_of(func) not in ("partial", "functools.partial") or not original.args:
            return None
        first, rest = original.args[0], original.args[1:]
        q = self.qualname(first.value)
        if q is None or first.keyword is not None or first.star or any(a.keyword is None or a.star for a in rest):
            return None
        rule = self.rules.by_name.get(q)
        if decide_reference(ReferenceSite(q), self.rules).action != "layer_value":
            return None
        keywords = {a.keyword.value: code_of(u.value) for a, u in zip(rest, updated.args[1:])}
        text = self._layer_constructor(rule, q, keywords)
        if text is None:  # the constructor would reject these keywords at run time: say so now
            self.todo(original, rule.code, f"partial({q}, ...): its keywords are not converted")
            return None
        return self._expr(text)

    def _expr(self, text: str, stand_in: tuple[str, cst.BaseExpression] | None = None) -> cst.BaseExpression:
        """A replacement expression. A compound one (`a == b`, `x ** 2`, a lambda) is wrapped
        in parentheses so it keeps its meaning wherever it lands (`(a == b).sum()`); the
        parentheses are dropped again where the expression stands alone (_unwrap_ours).
        `stand_in`: (name, node): the name in `text` stands for that node (methods.py)."""
        expr = parse_expr(text)
        if stand_in is not None:
            from .methods import _PutBack

            expr = expr.visit(_PutBack(*stand_in))
        if not isinstance(expr, _ATOMIC_EXPR) and not expr.lpar:
            expr = expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            self.wrapped.add(expr)
        return expr

    def _unwrap_ours(self, node):
        if node in self.wrapped and not isinstance(node, (cst.Tuple, cst.GeneratorExp)):
            return node.with_changes(lpar=[], rpar=[])
        return node

    # contexts where any expression stands alone: our parentheses are not needed there
    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(value=self._unwrap_ours(updated.value))

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        return updated.with_changes(value=self._unwrap_ours(updated.value))

    def leave_AugAssign(self, original: cst.AugAssign, updated: cst.AugAssign) -> cst.AugAssign:
        return updated.with_changes(value=self._unwrap_ours(updated.value))

    def leave_UnaryOperation(self, original: cst.UnaryOperation, updated: cst.UnaryOperation):
        """`not (not self.deterministic)` (a converted `not self.training`) -> self.deterministic."""
        inner = updated.expression
        if (isinstance(updated.operator, cst.Not) and inner in self.wrapped and isinstance(inner, cst.UnaryOperation)
                and isinstance(inner.operator, cst.Not)):
            return inner.expression.with_changes(lpar=updated.lpar, rpar=updated.rpar)
        return updated

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        return updated.with_changes(value=self._unwrap_ours(updated.value)) if updated.value is not None else updated

    def leave_Element(self, original: cst.Element, updated: cst.Element) -> cst.Element:
        return updated.with_changes(value=self._unwrap_ours(updated.value))

    def _torch_call(self, original: cst.Call, updated: cst.Call, q: str) -> cst.BaseExpression:
        """Facts about the call -> core.decide.decide_call (lint asks the same) -> rendering."""
        statement = self.call_statement.get(id(original), VALUE)
        if q in parallel.WRAPPERS:  # `model = W(net)[.to(device)]` only (parallel_facts, as lint asks)
            line, col = self._pos(original)
            statement = ASSIGN if (line, col - 1) in self.parallel.assigned else VALUE
        if id(original) in self.statement_level_calls and (q in NO_GRAD or q in SEEDS):
            return updated  # `with torch.no_grad():`, `@torch.no_grad()`, `torch.manual_seed(s)`: the statement
        init_site = self._init_site(original)
        if init_site is not None:  # nn.init.K(m.weight, ...): core.decide.decide_init
            return self._init_call(original, updated, init_site)
        args, kwargs = self._args(updated)
        line = self._pos(original)[0]
        built_as = self.optimizer_calls.get(id(original))
        site = CallSite(q, tuple((a.source, a.starred) for a in args), tuple((None if k == "**" else k, v.source) for k, v in kwargs.items()),
                        statement, data_parallel=self.target.converts_data_parallel, in_train_step=q in CLIPS and line in self.step_lines,
                        kept_optimizer=built_as if built_as is not None and line in self.kept_optimizers else None,
                        feeds_data=(line, self._pos(original)[1] - 1) in self.data_generators,
                        array_dataset=q == DATA_LOADER and (line, self._pos(original)[1] - 1) in self.array_loaders,
                        **self._schedule_facts(q, line))
        decision = decide_call(site, self.rules, check_rule)
        if decision.action in (ARRAY_DATASET, ARRAY_LOADER, "note") and is_data_pipeline(q):
            return self._data_call(original, updated, q, decision)
        if not decision.fixable:
            self.todo(original, decision.code, decision.message)
            if kept_layer(q):  # every enclosing class keeps a torch layer (lint counts by line range)
                for kept in self.class_kept_layers:
                    kept.add(q)
            return updated
        if decision.action in ("data_parallel", "process_group"):
            return self._parallel_call(original, updated, q, decision)
        if decision.action == "clip":
            return updated  # folded into the optimizer by the training-step rewrite
        if decision.action == "scheduler":  # the helper of the same name, same arguments
            name = q.rsplit(".", 1)[1]
            self.helpers.add(name)
            self.changed(original, "PTJ205", f"{q} -> {name} (helper: exact lr sequence, in the optimizer's state)")
            return updated.with_changes(func=cst.Name(name))
        if decision.action == "device":
            if q == "torch.device":
                self.changed(original, "PTJ302", "torch.device(...) -> jax.devices()[0] (JAX places arrays itself)")
                return cst.parse_expression("jax.devices()[0]")
            self.changed(original, "PTJ302", 'torch.cuda.is_available() -> jax.default_backend() == "gpu"')
            return self._expr('jax.default_backend() == "gpu"')
        if decision.action == "parameter":
            self.changed(original, "PTJ102", f"nn.Parameter -> {self.target.parameter_class}")
            return parse_expr(self.target.render_parameter(args[0].source))
        if decision.action == "container":
            return self._container(original, updated, q)
        rule = decision.rule
        if self.skip_unsafe(rule):
            return updated
        ctx = self._ctx()
        if rule.kind == "optimizer" and built_as is not None and line in self.clips:
            ctx.clip = self.clips[line]  # its training step clips gradients
        if rule.kind == "optimizer" and self.schedules is not None and line in self.schedules.slots:
            ctx.lr_slot = self.schedules.slots[line]  # an lr scheduler (or param_groups) sets its lr
        try:
            rendered = render_call(rule, args, kwargs, name=q, ctx=ctx)
        except Refused as why:  # the check said yes: a rendering gap, reported as the table's code
            self.todo(original, rule.code, f"{q}: {why}")
            return updated
        if rule.get("needs_key") and self._fscope().rngs is None:
            self._fscope().needs_rngs = True
        self.helpers |= rendered.helpers
        self.changed(original, rule.code, f"{q} -> {_head(rendered.text)}", rule.get("safety", "safe"))
        return self._expr(rendered.text)

    def _schedule_facts(self, q: str, line: int) -> dict:
        """CallSite facts from the schedule plan (lint asks the same: lint.schedule_facts)."""
        if self.schedules is None or not q.startswith("torch.optim."):
            return {}
        if q.startswith("torch.optim.lr_scheduler."):
            return {"scheduler": self.schedules.schedulers.get(line)}
        return {"kept_reason": self.schedules.kept.get(line)}

    def _data_call(self, original: cst.Call, updated: cst.Call, q: str, decision) -> cst.BaseExpression:
        """core.data's verdicts: TensorDataset -> the target's array dataset, a DataLoader over
        one -> its array loader (shuffled: with an explicit key); a DataLoader kept by the
        data-pipeline policy hands its batches over as numpy arrays (collate_fn)."""
        if decision.action == "note":
            self.note(original, decision.code, decision.message)
            if q != DATA_LOADER or not updated.args or any(
                    a.keyword is not None and a.keyword.value == "collate_fn" for a in updated.args):
                return updated
            self.helpers.add("numpy_collate")
            args = list(updated.args)
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            return updated.with_changes(args=[*args, cst.Arg(cst.Name("numpy_collate"), keyword=cst.Name("collate_fn"),
                                                             equal=cst.AssignEqual(cst.SimpleWhitespace(""),
                                                                                   cst.SimpleWhitespace("")))])
        if decision.safety == "unsafe" and not self.unsafe_fixes:
            return updated  # a shuffle drawn from JAX's stream: left for --unsafe-fixes
        name = "ArrayDataset" if decision.action == ARRAY_DATASET else "ArrayLoader"
        args = list(updated.args)
        if decision.safety == "unsafe" and args:  # shuffled: the permutation's key, from this scope's stream
            if self._fscope().rngs is None:
                self._fscope().needs_rngs = True
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            args.append(cst.Arg(cst.parse_expression(self._ctx().key), keyword=cst.Name("key"),
                                equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
            if self.todo_stack:
                self.todo_stack[-1].append(Remark("shuffled by a JAX key: each epoch's order differs from torch's "
                                                  "generator (the same samples per epoch)"))
        self.helpers.add(name)
        self.changed(original, decision.code, f"{decision.message} -> {name}", decision.safety)
        return updated.with_changes(func=cst.Name(name), args=args)

    def _container(self, original: cst.Call, updated: cst.Call, q: str) -> cst.BaseExpression:
        target = self.target
        if q.endswith("Sequential"):
            self.changed(original, "PTJ102", f"nn.Sequential -> {target.sequential_class}")
            args = unnamed_layers(updated.args)
            line, col = self._pos(original)
            if (line, col - 1) in self.mapping_sequentials and target.named_sequential_class:
                self.helpers.add(target.named_sequential_class)  # an OrderedDict's layers, read by name too
                return updated.with_changes(func=cst.parse_expression(target.named_sequential_class), args=args)
            mapped = (line, col - 1) in self.mapping_sequentials and bool(updated.args)  # not `Sequential()`
            if mapped or (args is updated.args and len(args) == 1 and mapping_argument(code_of(args[0].value))):
                args = layers_of_mapping(updated).args  # a mapping of named layers: its layers
            if target.sequential_class in target.helpers:  # a helper of the target's (Linen's Sequential)
                self.helpers.add(target.sequential_class)
            return updated.with_changes(func=cst.parse_expression(target.sequential_class), args=args)
        if q.endswith("ModuleDict"):
            if target.module_dict_class is None:
                self.todo(original, "PTJ102", f"nn.ModuleDict: not converted for target {target.name}")
                return updated
            self.changed(original, "PTJ102", f"nn.ModuleDict -> {target.module_dict_class}")
            return updated.with_changes(func=cst.parse_expression(target.module_dict_class))
        if target.module_list_class is None:
            self.todo(original, "PTJ102", f"nn.ModuleList: not converted for target {target.name}")
            return updated
        self.changed(original, "PTJ102", f"nn.ModuleList -> {target.module_list_class}")
        if target.module_list_class == "list" and (not updated.args or isinstance(updated.args[0].value, (cst.List, cst.ListComp))):
            return updated.args[0].value if updated.args else cst.List([])  # a plain list (Linen): the literal
        if not updated.args:
            return cst.parse_expression(f"{target.module_list_class}([])")
        return updated.with_changes(func=cst.parse_expression(target.module_list_class))

    def _instantiate(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        rngs = self._ctx().rngs
        keyword_text = self.target.instantiate_keyword(rngs)
        # the target's `keyword=value`, parsed as a call's argument so its spelling is kept
        keyword = cst.parse_expression(f"f({keyword_text})").args[0]  # type: ignore[attr-defined]
        if any(arg.keyword is not None and arg.keyword.value == keyword.keyword.value for arg in updated.args):
            return updated
        args = list(updated.args)
        if args:
            last = args[-1]
            args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        args.append(keyword)
        self.changed(original, "PTJ101", f"{code_of(original.func)}(...) gets {keyword_text}")
        return updated.with_changes(args=args)
