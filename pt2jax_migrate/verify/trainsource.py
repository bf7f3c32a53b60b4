"""The original script's own training step, as a function verify --train can call.

The rewrite lifts a `zero_grad / forward / loss / backward / step` group into
`train_step(model, optimizer, <batch>...)`; the original keeps those statements inline (usually
inside a `train_epoch` loop). This module finds the same group with the planner lint and
rewrite share (trainstep.plan) and writes the torch statements as a function with the same
calling convention:

    def <name>(model, optimizer, xb, yb):
        optimizer.zero_grad()
        logits = model(xb)                      # the group, as written
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizer.step()                        # (clip_grad_norm_ kept before it)
        return loss

The batch parameters are the names the group reads that are neither the model, the optimizer,
values the group computes, builtins nor module-level names, in order of first use (the
rewrite's lifter orders its parameters the same way). No torch import here (ast only).
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from .. import trainstep
from ..names import module_aliases, qualname_of
from .loader import parse_source, read_source
from .report import VerifyError

STEP_FUNCTION = "__pt2jax_script_step__"


@dataclass
class ScriptStep:
    """A training step found in a script, as source text of a function."""

    path: str
    lines: tuple[int, int]  # first and last line of the statements it came from
    function: str  # the def's text, named STEP_FUNCTION
    batch: list[str]  # its batch parameters, in order
    reads: set[str] = field(default_factory=set)  # module-level names the step needs
    model: str = "model"  # the step's names for the model and the optimizer
    optimizer: str = "optimizer"
    stepped_beside: tuple[str, ...] = ()  # other `NAME.step()` calls in the step's block (per-batch schedulers)

    @property
    def where(self) -> str:
        first, last = self.lines
        return f"{self.path}:{first}" if first == last else f"{self.path}:{first}-{last}"


def _module_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
    return names


def _optimizer_facts(tree: ast.Module, aliases: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """(optimizer variable -> the model it was built from, loss-module variables), as
    trainstep.train_step_analysis collects them."""
    from ..mapping import optimizer_model
    from ..rules import load_rules

    rules = load_rules()
    optimizers: dict[str, str] = {}
    loss_vars: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)):
            q = qualname_of(node.value.func, aliases)
            rule = rules.by_name.get(q) if q else None
            if rule is None:
                continue
            if rule.kind == "loss":
                loss_vars.add(node.targets[0].id)
            elif rule.kind == "optimizer" and node.value.args:
                model = optimizer_model(ast.unparse(node.value.args[0]))
                if model is not None:
                    optimizers[node.targets[0].id] = model
    return optimizers, loss_vars


def _loads_in_order(stmts: list[ast.stmt]) -> list[ast.Name]:
    names = [n for s in stmts for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return sorted(names, key=lambda n: (n.lineno, n.col_offset))


def find_script_steps(path: str) -> list[ScriptStep]:
    """Every training step of `path` the planner recognises, in source order."""
    tree = parse_source(path, read_source(path))
    aliases = module_aliases(tree)
    module_names = _module_names(tree)
    optimizers, loss_vars = _optimizer_facts(tree, aliases)
    not_models = module_names | loss_vars
    found: list[ScriptStep] = []
    for body in trainstep._blocks(tree):
        units = trainstep._physical_lines(body)
        infos = [trainstep.ast_info(u[0], lambda node: qualname_of(node, aliases)) if len(u) == 1
                 else trainstep._joined_info(u) for u in units]
        for b, info in enumerate(infos):
            if info.method is None or info.method[1] != "backward":
                continue
            plan = trainstep.plan(infos, b, optimizers=optimizers, not_models=not_models)
            if isinstance(plan, trainstep.StepPlan):
                step = _as_function(path, units, plan, module_names)
                step.stepped_beside = tuple(dict.fromkeys(
                    i.method[0] for j, i in enumerate(infos)
                    if j != plan.step and i.method is not None and i.method[1] == "step" and i.method[0] != plan.opt))
                found.append(step)
    return sorted(found, key=lambda s: s.lines)


def _as_function(path: str, units: list[list[ast.stmt]], plan: trainstep.StepPlan,
                 module_names: set[str]) -> ScriptStep:
    group = [s for i in plan.group for s in units[i]]
    clip = [s for i in plan.clip for s in units[i]]
    defined = {n.id for s in group for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    callees = {n.func.id for s in group + clip for n in ast.walk(s)
               if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    skip = {plan.model, plan.opt, *defined, *module_names, *dir(builtins)}
    batch: list[str] = []
    for name in _loads_in_order(group + clip):
        if name.id not in skip and name.id not in batch:
            if name.id in callees:
                raise VerifyError(
                    f"{path}:{name.lineno}: the training step calls {name.id}, which is not defined at module "
                    "level, so verify cannot rebuild the step; name a loss function (--loss-fn) or a step "
                    "function (--step) defined in both files")
            batch.append(name.id)
    lines = [f"def {STEP_FUNCTION}({', '.join([plan.model, plan.opt, *batch])}):",
             f"    {plan.opt}.zero_grad()"]
    lines += [f"    {line}" for s in group for line in ast.unparse(s).splitlines()]
    lines.append(f"    {plan.loss}.backward()")
    lines += [f"    {line}" for s in clip for line in ast.unparse(s).splitlines()]
    lines += [f"    {plan.opt}.step()", f"    return {plan.loss}"]
    reads = ({n.id for n in _loads_in_order(group + clip)} & module_names) - {plan.model, plan.opt}
    all_lines = [s.lineno for i in (*plan.zero, *plan.group, plan.backward, *plan.clip, plan.step) for s in units[i]]
    return ScriptStep(path, (min(all_lines), max(all_lines)), "\n".join(lines) + "\n", batch, reads,
                      plan.model, plan.opt)


@dataclass(frozen=True)
class Construction:
    """`NAME = <call>` somewhere in a file: how the script builds its optimizer."""

    path: str
    line: int
    expression: str  # the call's source text
    reads: frozenset[str]  # every name the expression mentions

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


SCHEDULERS = "torch.optim.lr_scheduler."


@dataclass(frozen=True)
class SchedulerUse:
    """An lr scheduler the script builds on the step's optimizer."""

    name: str
    construction: Construction
    per_step: bool  # its step() sits in the training step's block: once per optimizer step


def find_schedulers(path: str, step: ScriptStep) -> list[SchedulerUse]:
    """`NAME = torch.optim.lr_scheduler.X(<the step's optimizer>, ...)` in `path`, in source order."""
    tree = parse_source(path, read_source(path))
    aliases = module_aliases(tree)
    found: dict[str, SchedulerUse] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)):
            continue
        q = qualname_of(node.value.func, aliases) or ""
        call = node.value
        first = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "optimizer"), None)
        if not q.startswith(SCHEDULERS) or not (isinstance(first, ast.Name) and first.id == step.optimizer):
            continue
        name = node.targets[0].id
        names = frozenset(n.id for n in ast.walk(call) if isinstance(n, ast.Name))
        found.setdefault(name, SchedulerUse(name, Construction(path, node.lineno, ast.unparse(call), names),
                                            name in step.stepped_beside))
    return sorted(found.values(), key=lambda use: use.construction.line)


def find_construction(path: str, name: str) -> Construction | None:
    """The one call assigned to `name` in `path` (`optimizer = build_optimizer(model)`,
    `optimizer = torch.optim.SGD(model.parameters(), lr=0.1)`); None when there is none, or
    several different ones (the user names the set-up then)."""
    tree = parse_source(path, read_source(path))
    found: dict[str, Construction] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == name and isinstance(node.value, ast.Call)):
            text = ast.unparse(node.value)
            names = frozenset(n.id for n in ast.walk(node.value) if isinstance(n, ast.Name))
            found.setdefault(text, Construction(path, node.lineno, text, names))
    return next(iter(found.values())) if len(found) == 1 else None
