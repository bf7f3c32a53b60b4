"""Recognise a PyTorch training step in one block of statements.

The decision (is `zero_grad / forward / loss / backward / step` here a step the rewrite lifts
into a jitted `train_step`?) is made once, on a small summary of each statement, so that the
rewrite (libcst) and lint (`ast`, fast) share it: `lint` marks a step fixable exactly when
`rewrite` converts it. This module imports neither libcst nor torch.
"""

from __future__ import annotations

import ast
import builtins
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from .astwalk import children as _children, walk as _walk
from . import schedule_plan
from .names import qualname_of

BUILTINS = frozenset(dir(builtins))
# lines lint leaves unconverted, or a function giving them when first needed
Lines = frozenset[int] | Callable[[], frozenset[int]]
TRAIN_METHODS = {"zero_grad": "PTJ202", "backward": "PTJ203", "step": "PTJ204"}
# keywords of a training call that mean nothing once gradients are returned by a jitted step:
# the graph is never kept (retain_graph) and gradients are never stored (set_to_none)
DROPPED_KEYWORDS = {"backward": frozenset({"retain_graph"}), "zero_grad": frozenset({"set_to_none"})}


# functions that read or change gradients in place (clip_grad_norm_ of the model's parameters
# right before step() is folded into the optimizer instead: StmtInfo.clip)
GRAD_FUNCTIONS = frozenset({"clip_grad_value_", "clip_grad_norm_", "clip_grad_norm"})


def is_training_call(method: str, positional: int, keywords) -> bool:
    """`NAME.method(...)` with arguments the planner may drop: none, or only DROPPED_KEYWORDS."""
    return not positional and set(keywords) <= DROPPED_KEYWORDS.get(method, frozenset())


@dataclass(frozen=True)
class StmtInfo:
    """What the planner needs to know about one statement."""

    method: tuple[str, str] | None  # (receiver, method) of a statement `NAME.method()`
    targets: frozenset[str] | None  # names bound by a plain assignment; None if not one
    names: frozenset[str]  # every name the statement mentions
    called: frozenset[str]  # names it calls as functions: f(...)
    clip: tuple[str, str] | None = None  # clip_grad_norm_(MODEL.parameters(), MAX_NORM): (MODEL, MAX_NORM)
    unconverted: bool = False  # holds code the rewrite leaves in place (a TODO(pt2jax))
    reads_grad: bool = False  # mentions `.grad` (a gradient PyTorch stores and JAX returns)
    barrier: bool = False  # an already converted train step: a step before it is another step
    gated: str | None = None  # OPT of `if COND:` whose body is exactly OPT.step(); OPT.zero_grad()


@dataclass
class StepPlan:
    model: str
    opt: str
    loss: str
    backward: int
    step: int
    zero: list[int]  # zero_grad() statements (removed)
    group: list[int]  # forward + loss statements (moved into the loss function)
    after: list[int]  # statements that read the step's values (moved after the call)
    clip: list[int] = field(default_factory=list)  # clip_grad_norm_ statements (folded into the optimizer)
    clip_tx: str | None = None  # the optax transformation the clipping becomes
    accumulate: bool = False  # gradient accumulation: `step` is an `if` holding step(); zero_grad()

    def lines_removed(self) -> list[int]:
        return [*self.zero, *self.clip, self.backward, self.step]


def plan(stmts: list[StmtInfo], b: int, *, optimizers: dict[str, str], not_models: set[str],
         held: dict[str, str] | None = None, accumulation: bool = True) -> StepPlan | str:
    """The step around `stmts[b]` (a `LOSS.backward()`), or the reason it is not converted.

    optimizers: optimizer variable -> the model whose parameters it was built from.
    not_models: names that are called but are not the model (functions, loss modules).
    held: optimizers kept PyTorch for another reason (their lr scheduler) -> why.
    accumulation: the target converts gradient accumulation (Target.converts_accumulation).
    """
    loss = stmts[b].method[0]  # type: ignore[index]
    step = None
    clip: list[int] = []
    between: list[int] = []  # statements between backward() and step(): they run after the jitted step
    accumulate = False
    for j in range(b + 1, len(stmts)):
        method = stmts[j].method
        if method is not None and method[1] == "step":
            step = j
            break
        if stmts[j].gated is not None:
            step, accumulate = j, True  # micro-batches: gradients add up until the condition holds
            break
        if stmts[j].clip is not None:
            clip.append(j)
            continue
        if method is not None and method[1] in ("zero_grad", "backward"):
            if method[1] == "backward":
                return ("a second backward() before step() accumulates gradients; accumulate them explicitly "
                        "(one loss, or optax.MultiSteps) to convert")
            continue
        between.append(j)
    if step is None and any(stmts[j].reads_grad for j in between):
        return ("parameters are updated by hand from .grad after backward(); build an optimizer "
                "(torch.optim.SGD(model.parameters(), lr=...)) and call its step() to convert, or port the update by hand")
    if step is None:
        return ("no optimizer.step() after backward() in the same block (a step under a condition converts "
                "as `if COND:` holding exactly OPT.step() then OPT.zero_grad(): gradient accumulation)")
    if accumulate and not accumulation:
        return "gradient accumulation over micro-batches is not converted for this target yet"
    opt = stmts[step].gated if accumulate else stmts[step].method[0]  # type: ignore[index]
    if held and opt in held:
        return f"{opt} stays PyTorch: {held[opt]}"
    max_norm = None
    reason = _between_reason(stmts, between, opt, optimizers.get(opt))
    if reason is not None:
        return reason
    if clip:
        # clipping becomes optax.clip_by_global_norm at the head of the optimizer's chain, so
        # the optimizer must be built here, and the bound must be readable where it is built
        values = {stmts[j].clip[1] for j in clip}  # type: ignore[index]
        if len(clip) > 1 or opt not in optimizers or stmts[clip[0]].clip[0] != optimizers[opt]:  # type: ignore[index]
            return (f"gradient clipping is folded into the optimizer only when {opt} is built from the same "
                    "model's parameters() in this file, with one clip per step")
        max_norm = values.pop()
        if max_norm.startswith("?"):
            return (f"the clipping bound {max_norm[1:]} is not a number (it moves to the optimizer's "
                    "construction)")
    # the forward pass is looked for after the previous backward()/step() only: statements
    # before that belong to another step (a GAN's discriminator update, say)
    previous = max((i for i in range(b) if stmts[i].barrier or stmts[i].gated is not None
                    or stmts[i].method is not None and stmts[i].method[1] in ("backward", "step")),
                   default=-1)
    if previous >= 0 and stmts[previous].method is not None and stmts[previous].method[1] == "backward":
        return ("a backward() before this one with no step() between accumulates gradients into this step; "
                "accumulate them explicitly (one loss, or optax.MultiSteps) to convert")
    start = previous + 1
    model = optimizers.get(opt) or _called_model(stmts[start:b], not_models)
    if model is not None and between:
        reason = _between_reason(stmts, between, opt, model)
        if reason is not None:
            return reason
    if model is None:
        return (f"cannot tell which model {opt} optimizes (build it from model.parameters() "
                "in this file, or call exactly one model in the forward pass)")
    if "." in model:
        return f"the model {model} is an attribute; lift it into a local variable first"
    zero = [i for i, s in enumerate(stmts) if s.method is not None and s.method[1] == "zero_grad" and s.method[0] in (opt, model)]
    if accumulate and zero:
        return (f"{opt}.zero_grad() runs every micro-batch while {opt}.step() runs under a condition, so "
                "gradients never accumulate; zero them only after the step")
    if accumulate and clip:
        return "clip_grad_norm_ with gradient accumulation: clip inside the `if` before step() by hand"
    # forward taint: statements computed from model(...)
    tainted: set[str] = set()
    computed: dict[int, frozenset[str]] = {}
    for i in range(start, b):
        info = stmts[i]
        if i in zero or not (model in info.called or info.names & tainted):
            continue
        computed[i] = info.targets if info.targets is not None else frozenset()
        tainted |= computed[i]
    if loss not in tainted:
        return f"{loss} is not computed from {model}(...) in this block"
    # backward slice: the statements the loss needs
    needed, group = {loss}, []
    for i in sorted(computed, reverse=True):
        if computed[i] & needed:
            if stmts[i].targets is None:
                return f"statement {i + 1} of the block feeds the loss but is not a plain assignment"
            group.insert(0, i)
            needed |= stmts[i].names
    defined = set().union(*(computed[i] for i in group))
    for i in group:
        if stmts[i].unconverted:
            return f"statement {i + 1} of the block feeds the loss but keeps code that is not converted"
    # one definition per name: moving statements is only safe when every use sees the value it saw
    for name in sorted(defined):
        bound = [i for i in range(start, b) if stmts[i].targets is not None and name in stmts[i].targets
                 or stmts[i].targets is None and name in stmts[i].names and i not in zero]
        assigned = [i for i in bound if stmts[i].targets is not None]
        # `loss = loss / accum`: several assignments move together into the loss function,
        # unless a statement that stays outside reads the name between them
        if len(assigned) > 1 and (not set(assigned) <= set(group) or any(
                i not in group and name in stmts[i].names for i in range(assigned[0], assigned[-1]))):
            return f"{name} is assigned more than once before backward()"
    # statements before backward() that read values the step now computes run after it
    after = [i for i in range(group[0], b) if i not in group and i not in zero and stmts[i].names & defined]
    for i in after:
        later_uses = set().union(*(stmts[g].names for g in group if g > i))
        if stmts[i].targets is None and stmts[i].names & later_uses or (stmts[i].targets or set()) & later_uses:
            return f"statement {i + 1} of the block sits inside the forward pass and cannot move after the step"
    return StepPlan(model, opt, loss, b, step, zero, group, after, clip, max_norm, accumulate)


def _between_reason(stmts: list[StmtInfo], between: list[int], opt: str, model: str | None) -> str | None:
    """Why a statement between backward() and step() cannot run after the jitted step, or None.

    It moves after the step, so it may read the step's values (the loss, the forward pass's
    outputs) but not the gradients, the parameters (they are updated by then) or the optimizer."""
    for j in between:
        info = stmts[j]
        where = f"statement {j + 1} of the block, between backward() and step(),"
        if info.reads_grad:
            return (f"{where} reads or clips gradients (.grad, clip_grad_value_); gradients exist only inside the "
                    "jitted step: clip all of the model's gradients with clip_grad_norm_/clip_grad_value_("
                    "model.parameters(), bound) right before step() (folded into the optimizer's chain), or "
                    "write the optax transformation into the chain by hand")
        if info.unconverted:
            return f"{where} keeps code that is not converted"
        if info.method is not None and info.method[1] == "step":
            return f"{where} steps {info.method[0]}; move it after {opt}.step()"
        touched = info.names & {opt, *([model] if model else [])}
        if touched:
            return (f"{where} uses {', '.join(sorted(touched))}, which the step updates; move it after "
                    f"{opt}.step() (it then sees the updated values)")
        if info.barrier:
            return f"{where} is another training step"
    return None


def _is_number(text: str) -> bool:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool)


CLIP = "torch.nn.utils.clip_grad_norm_"
CLIP_VALUE = "torch.nn.utils.clip_grad_value_"
# gradient clipping right before step() -> the optax transformation at the head of the
# optimizer's chain (torch clips before the optimizer, and its weight decay, sees the gradient).
# clip_grad_norm_ scales by max_norm / (norm + 1e-6), optax by max_norm / norm: 1e-6 relative.
CLIPS = {CLIP: ("max_norm", "optax.clip_by_global_norm"), CLIP_VALUE: ("clip_value", "optax.clip")}


def clip_info(args: list[str], keywords: dict[str, str], function: str = CLIP) -> tuple[str, str] | None:
    """(model, transformation) of `clip_grad_norm_(model.parameters(), max_norm)` (default norm
    type) or `clip_grad_value_(model.parameters(), clip_value)`."""
    from .mapping import optimizer_model

    bound, transformation = CLIPS[function]
    if bound in keywords:
        args = [*args, keywords.pop(bound)]
    if "parameters" in keywords:
        args = [keywords.pop("parameters"), *args]
    if len(args) != 2 or set(keywords) - {"error_if_nonfinite", "foreach"}:
        return None
    model = optimizer_model(args[0])
    if model is None:
        return None
    return model, f"{transformation}({args[1]})" if _is_number(args[1]) else f"?{args[1]}"


def _called_model(stmts: list[StmtInfo], not_models: set[str]) -> str | None:
    """The one local name called like a model in a forward pass."""
    called: set[str] = set()
    for info in stmts:
        called |= info.called
    candidates = called - not_models - BUILTINS
    return candidates.pop() if len(candidates) == 1 else None


# --------------------------------------------------------------------------- ast front end


def ast_info(stmt: ast.stmt, qualname=None, unconverted_lines: frozenset[int] = frozenset()) -> StmtInfo:
    method = None
    end = getattr(stmt, "end_lineno", None) or stmt.lineno
    unconverted = any(line in unconverted_lines for line in range(stmt.lineno, end + 1))
    clip = None
    if (qualname is not None and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and qualname(stmt.value.func) in CLIPS):
        call = stmt.value
        clip = clip_info([ast.unparse(a) for a in call.args],
                         {k.arg: ast.unparse(k.value) for k in call.keywords if k.arg}, qualname(call.func))
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        if (isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
                and is_training_call(call.func.attr, len(call.args), [k.arg for k in call.keywords])):
            method = (call.func.value.id, call.func.attr)
    targets = None
    if isinstance(stmt, ast.Assign) and all(isinstance(t, (ast.Name, ast.Tuple, ast.List)) for t in stmt.targets):
        targets = frozenset(n.id for t in stmt.targets for n in _walk(t) if isinstance(n, ast.Name))
    elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        targets = frozenset({stmt.target.id})
    names, called = set(), set()
    reads_grad = False
    for node in _walk(stmt):
        if (isinstance(node, ast.Attribute) and (node.attr == "grad" or node.attr in GRAD_FUNCTIONS)
                or isinstance(node, ast.Name) and node.id in GRAD_FUNCTIONS):
            reads_grad = True
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
    return StmtInfo(method, targets, frozenset(names), frozenset(called), clip, unconverted, reads_grad,
                    gated=_ast_gated(stmt) if not unconverted else None)


def _ast_gated(stmt: ast.stmt) -> str | None:
    """OPT of `if COND:` (no else) whose body is OPT.step() then OPT.zero_grad(), one per line."""
    if not isinstance(stmt, ast.If) or stmt.orelse or len(stmt.body) != 2:
        return None
    receivers = []
    line = stmt.lineno
    for inner, method in zip(stmt.body, ("step", "zero_grad")):
        if inner.lineno <= line or not (isinstance(inner, ast.Expr) and isinstance(inner.value, ast.Call)):
            return None
        call, line = inner.value, inner.lineno
        if not (isinstance(call.func, ast.Attribute) and call.func.attr == method and isinstance(call.func.value, ast.Name)
                and is_training_call(method, len(call.args), [k.arg for k in call.keywords])):
            return None
        receivers.append(call.func.value.id)
    return receivers[0] if receivers[0] == receivers[1] else None


def _blocks(tree: ast.Module):
    """Every statement list (module, function, loop, branch bodies), as the rewrite sees them."""
    stack: list[list[ast.stmt]] = [tree.body]
    while stack:
        body = stack.pop()
        yield body
        for stmt in body:
            for part in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, part, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    stack.append(inner)
            for handler in getattr(stmt, "handlers", []):
                stack.append(handler.body)


def _physical_lines(body: list[ast.stmt]) -> list[list[ast.stmt]]:
    """Statements grouped as the rewrite sees them: `a(); b()` on one line is one statement,
    except in a block with a backward() call, where a line holding a training call
    (`opt.zero_grad(); loss.backward()`) is split into its statements (rewrite.trainsteps
    splits it the same way)."""
    units: list[list[ast.stmt]] = []
    for stmt in body:
        if units and not isinstance(stmt, _COMPOUND) and not isinstance(units[-1][-1], _COMPOUND) \
                and stmt.lineno == (units[-1][-1].end_lineno or units[-1][-1].lineno):
            units[-1].append(stmt)
        else:
            units.append([stmt])
    if not any(_training_method(s) == "backward" for s in body):
        return units
    split: list[list[ast.stmt]] = []
    for unit in units:
        if len(unit) > 1 and any(_training_method(s) is not None for s in unit):
            split.extend([s] for s in unit)
        else:
            split.append(unit)
    return split


def _training_method(stmt: ast.stmt) -> str | None:
    """`NAME.zero_grad()` / `.backward()` / `.step()` as a statement: the method, else None."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        if (isinstance(call.func, ast.Attribute) and call.func.attr in TRAIN_METHODS
                and isinstance(call.func.value, ast.Name)
                and is_training_call(call.func.attr, len(call.args), [k.arg for k in call.keywords])):
            return call.func.attr
    return None


_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While,
             ast.With, ast.AsyncWith, ast.Try)


def _joined_info(unit: list[ast.stmt], unconverted_lines: frozenset[int] = frozenset()) -> StmtInfo:
    """Several statements on one line: never a plain assignment or a clean method call."""
    parts = [ast_info(stmt, unconverted_lines=unconverted_lines) for stmt in unit]
    return StmtInfo(None, None, frozenset().union(*(p.names for p in parts)),
                    frozenset().union(*(p.called for p in parts)),
                    unconverted=any(p.unconverted for p in parts), reads_grad=any(p.reads_grad for p in parts))


class OptimizersInOrder:
    """Optimizer variable -> model variable as the rewrite knows them when it plans a block's
    steps: it records `opt = torch.optim.X(model.parameters())` as it meets it and plans a block
    on leaving it, so a block sees every such assignment up to its own end (the last one of a
    name wins), and not those after it. A map of the whole file instead let a later function's
    `optimizer` decide an earlier function's step for lint but not for the rewrite."""

    def __init__(self, assigned: list[tuple[int, str, str]]):
        self.assigned = sorted(assigned, key=lambda entry: entry[0])  # (line, variable, model)

    def up_to(self, line: int | None) -> dict[str, str]:
        """As known on leaving a block that ends on `line` (None: the module, after everything)."""
        return {name: model for at, name, model in self.assigned if line is None or at <= line}


def fixable_lines(tree: ast.Module, *, optimizers: OptimizersInOrder, not_models: set[str],
                  qualname=None, clips: dict[int, str] | None = None,
                  unconverted_lines: Lines = frozenset(), held: dict[str, str] | None = None,
                  plans: list | None = None, accumulation: bool = True) -> set[int]:
    """Lines of zero_grad()/clip_grad_norm_()/backward()/step() statements the rewrite
    converts; `clips` collects step() line -> max_norm for the steps that clip, `plans` each
    converted step as (its block's statements grouped as the planner saw them, StepPlan).
    `unconverted_lines` may be a function giving them: called only for a block that holds a
    `NAME.backward()` statement (the only blocks planned)."""
    lines: set[int] = set()
    for body in _blocks(tree):
        # a step is planned from a backward() statement of the block: none, nothing to plan
        if not any(_training_method(s) == "backward" for s in body):
            continue
        if callable(unconverted_lines):
            unconverted_lines = unconverted_lines()
        units = _physical_lines(body)
        infos = [ast_info(unit[0], qualname, unconverted_lines) if len(unit) == 1 else _joined_info(unit, unconverted_lines)
                 for unit in units]
        known = None
        for b, info in enumerate(infos):
            if info.method is not None and info.method[1] == "backward":
                if known is None:  # the module's steps are planned last, the others on leaving their block
                    known = optimizers.up_to(None if body is tree.body else body[-1].end_lineno)
                result = plan(infos, b, optimizers=known, not_models=not_models, held=held,
                              accumulation=accumulation)
                if isinstance(result, StepPlan):
                    if plans is not None:
                        plans.append((units, result))
                    lines.update(units[i][0].lineno for i in result.lines_removed() if i != result.step
                                 or not result.accumulate)
                    if result.accumulate:  # the step() and zero_grad() inside the `if`
                        lines.update(inner.lineno for inner in units[result.step][0].body)
                    if result.clip_tx is not None and clips is not None:
                        clips[units[result.step][0].lineno] = result.clip_tx
    return lines


def train_step_analysis(source: str, unconverted_lines: Lines | None = None, *, target: str | None = None,
                        tree: ast.Module | None = None) -> tuple[set[int], dict[int, int], dict[int, str]]:
    """What the rewrite does to the training steps of a file, decided with `ast` (fast enough
    for lint) by the same planner the rewrite uses; tests/test_lint_rewrite_agree.py holds the
    two to one answer. Returns (lines of the zero_grad()/clip/backward()/step() statements
    converted, {line of an optimizer construction kept in PyTorch: line of a step() that stays},
    {line of an optimizer construction that gains clipping: max_norm}). `tree`: the caller's
    ast.parse of `source` (only read), when it has one."""
    tree = ast.parse(source) if tree is None else tree
    from .mapping import TORCH_ROOTS, optimizer_model
    from .rules import load_rules
    from .targets import get_target

    emit = get_target(target)  # the names its converted code and helpers define are not models
    rules = load_rules(target=emit.table)
    aliases: dict[str, str] = {}
    module_names: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in TORCH_ROOTS:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module.split(".")[0] in TORCH_ROOTS:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            module_names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            module_names |= {n.id for t in stmt.targets for n in _walk(t) if isinstance(n, ast.Name)}
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            module_names |= {(a.asname or a.name).split(".")[0] for a in stmt.names}

    optimizers: list[tuple[int, str, str]] = []  # (line, variable, model), see OptimizersInOrder
    optimizer_vars: set[str] = set()
    loss_vars: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call):
            q = qualname_of(node.value.func, aliases)
            rule = rules.by_name.get(q) if q else None
            if rule is not None and rule.kind == "loss":
                loss_vars.add(node.targets[0].id)
            if rule is not None and rule.kind == "optimizer":
                optimizer_vars.add(node.targets[0].id)
            if rule is not None and rule.kind == "optimizer" and node.value.args:
                model = optimizer_model(ast.unparse(node.value.args[0]))
                if model is not None:
                    optimizers.append((node.lineno, node.targets[0].id, model))
    not_models = module_names | set(emit.converted_imports) | set(emit.helpers) | loss_vars
    if unconverted_lines is None:  # the caller passes the lines lint leaves unconverted (lint.unconverted_lines)
        raise TypeError("train_step_analysis needs unconverted_lines (lint.unconverted_lines(source))")
    if callable(unconverted_lines):  # asked at most once, however many times the plan is redone
        unconverted_lines = functools.cache(unconverted_lines)
    held: dict[str, str] = {}  # optimizers kept PyTorch for their schedulers: their steps stay too
    while True:
        lines, kept, clips, schedules, plans = _analyse(tree, aliases, rules, OptimizersInOrder(optimizers),
                                                        optimizer_vars,
                                                        not_models, unconverted_lines, held,
                                                        emit.converts_accumulation)
        if set(schedules.held) <= set(held):
            break
        held = {**held, **schedules.held}
    return TrainStepAnalysis(lines, kept, clips, schedules, plans)


def _analyse(tree, aliases, rules, optimizers, optimizer_vars, not_models, unconverted_lines, held,
             accumulation=True):
    step_clips: dict[int, str] = {}
    plans: list = []
    lines = fixable_lines(tree, optimizers=optimizers, not_models=not_models,
                          qualname=lambda node: qualname_of(node, aliases), clips=step_clips, held=held,
                          accumulation=accumulation,
                          unconverted_lines=unconverted_lines, plans=plans)
    # per scope, each optimizer built here (keyed by the line of its construction call):
    # kept in PyTorch when one of its step() calls stays PyTorch (converting only the
    # construction would leave `opt.zero_grad()` on an nnx.Optimizer); given clipping when
    # its converted step clips
    kept: dict[int, int] = {}
    clips: dict[int, str] = {}
    scopes = list(_scopes(tree))
    built_per_scope: list[dict[str, tuple[int, str]]] = []  # optimizer variable -> (line, torch name)
    constructions: dict[int, tuple] = {}  # line -> (rule, torch name, ast.Call) of an optimizer construction
    for nodes in scopes:
        built: dict[str, tuple[int, str]] = {}
        built_per_scope.append(built)
        for node in nodes:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id in optimizer_vars and isinstance(node.value, ast.Call)):
                q = qualname_of(node.value.func, aliases)
                rule = rules.by_name.get(q) if q else None
                if rule is not None and rule.kind == "optimizer":
                    built[node.targets[0].id] = (node.value.lineno, q)
                    constructions[node.value.lineno] = (rule, q, node.value)
        for name, line in _named_steps(nodes):
            if name in built:
                construction = built[name][0]
                if line not in lines:
                    kept.setdefault(construction, line)
                elif line in step_clips:
                    clips[construction] = step_clips[line]
    _kept_through_calls(tree, scopes, built_per_scope, lines, kept)
    schedules = schedule_plan.plan_schedules(
        scopes, lambda node: qualname_of(node, aliases), built_per_scope, kept,
        lambda line, slot="lr": _schedule_refusal(constructions[line], slot), set(aliases), held)
    for line, why in schedules.kept.items():  # an optimizer whose scheduler stays PyTorch stays too
        kept.setdefault(line, line)
    return lines, kept, clips, schedules, plans


def _kept_through_calls(tree, scopes, built_per_scope, lines: set[int], kept: dict[int, int]) -> None:
    """An optimizer handed to a function of this file (`train_one_epoch(model, opt)`) stays
    PyTorch when that function's step() on the parameter it lands in stays: converting only the
    construction would leave `opt.zero_grad()` on the converted optimizer."""
    functions = {stmt.name: stmt for stmt in tree.body if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if not functions:
        return
    staying: dict[str, dict[str, int]] = {}  # function -> name -> line of the first step() on it that stays
    for nodes, built in zip(scopes, built_per_scope):
        for node in nodes if built else ():
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions):
                continue
            function = functions[node.func.id]
            if function.name not in staying:
                staying[function.name] = {}
                for name, line in _named_steps(ast.walk(function)):
                    if line not in lines:
                        staying[function.name].setdefault(name, line)
            params = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
            bound = [*zip(params, node.args), *((k.arg, k.value) for k in node.keywords if k.arg)]
            for param, arg in bound:
                if isinstance(arg, ast.Name) and arg.id in built and param in staying[function.name]:
                    kept.setdefault(built[arg.id][0], staying[function.name][param])


def _named_steps(nodes):
    """(receiver, line) of each `NAME.step()` call among `nodes`."""
    for node in nodes:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "step"
                and isinstance(node.func.value, ast.Name)):
            yield node.func.value.id, node.lineno


class TrainStepAnalysis(tuple):
    """(converted step lines, kept optimizers, clips), unpacked as before, plus `.schedules`
    (schedule_plan.ScheduleFacts: which lr schedulers convert, with their optimizers) and
    `.plans` (each converted step: (its block's statements as the planner grouped them, the
    StepPlan indexing them); benchmarks/bench_train.py times these statements in PyTorch)."""

    schedules: schedule_plan.ScheduleFacts
    plans: list

    def __new__(cls, lines, kept, clips, schedules, plans=()):
        self = super().__new__(cls, (lines, kept, clips))
        self.schedules = schedules
        self.plans = list(plans)
        return self


def _construction_converts(construction) -> bool:
    """Whether an optimizer construction's own arguments convert (core.decide's check)."""
    from .mapping import check_rule

    rule, name, call = construction
    args = tuple((ast.unparse(a.value), True) if isinstance(a, ast.Starred) else (ast.unparse(a), False)
                 for a in call.args)
    kwargs = tuple((k.arg, ast.unparse(k.value)) for k in call.keywords)
    return check_rule(rule, name, args, kwargs) is None


def _schedule_refusal(construction, slot: str = "lr") -> str | None:
    """Why an lr scheduler cannot drive this optimizer construction (None: it can): the rewrite
    renders it holding the scheduled `slot` (lr, or OneCycleLR's cycled b1 / momentum), so that is
    tried here too, and lint and rewrite never part ways over a rendering gap."""
    from .mapping import CallContext, Refused, make_arg, param_groups, render_call

    if not _construction_converts(construction):
        return "is not converted"
    call = construction[2]
    params = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "params"), None)
    if params is not None and param_groups(ast.unparse(params)) is not None:
        # the scheduler helpers hold one lr; each group's own would need its own (mapping refuses it too)
        return "has parameter groups (an lr scheduler over several groups is not converted)"
    rule, name = construction[0], construction[1]
    args = [make_arg(ast.unparse(a.value), True) if isinstance(a, ast.Starred) else make_arg(ast.unparse(a))
            for a in call.args]
    kwargs = {k.arg: make_arg(ast.unparse(k.value)) for k in call.keywords if k.arg}
    try:
        render_call(rule, args, kwargs, name=name, ctx=CallContext(lr_slot=slot))
    except Refused as why:
        return f"cannot be driven by it: {why}"
    return None


_SCOPE_NODES = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda})


def _scopes(tree: ast.Module):
    """The nodes of each scope (module, function, class body), nested scopes excluded
    (expression contexts left out)."""
    stack: list[ast.AST] = [tree]
    while stack:
        scope = stack.pop()
        nodes: list[ast.AST] = []
        todo = _children(scope)
        pop, extend = todo.pop, todo.extend
        while todo:
            node = pop()
            if node.__class__ in _SCOPE_NODES:
                stack.append(node)
                continue
            nodes.append(node)
            extend(_children(node))
        yield nodes
