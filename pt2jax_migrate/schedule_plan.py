"""Decide which lr schedulers convert, together with the optimizers they drive (`ast` only).

A scheduler and its optimizer convert as a unit: the scheduler becomes a host-side helper
(targets/nnx/helpers_schedule.py) that writes the learning rate into the optimizer's state, so
the optimizer must be built with a learning-rate slot (`with_learning_rate`). When either side
cannot convert, both stay PyTorch with a marker saying why -- never half. Called from
trainstep.train_step_analysis, so lint and rewrite share every answer.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

PREFIX = "torch.optim.lr_scheduler."

# scheduler -> torch's signature (positional order); the helper takes the same arguments
SIGNATURES: dict[str, tuple[str, ...]] = {
    "LambdaLR": ("optimizer", "lr_lambda", "last_epoch"),
    "MultiplicativeLR": ("optimizer", "lr_lambda", "last_epoch"),
    "StepLR": ("optimizer", "step_size", "gamma", "last_epoch"),
    "MultiStepLR": ("optimizer", "milestones", "gamma", "last_epoch"),
    "ConstantLR": ("optimizer", "factor", "total_iters", "last_epoch"),
    "LinearLR": ("optimizer", "start_factor", "end_factor", "total_iters", "last_epoch"),
    "ExponentialLR": ("optimizer", "gamma", "last_epoch"),
    "PolynomialLR": ("optimizer", "total_iters", "power", "last_epoch"),
    "CosineAnnealingLR": ("optimizer", "T_max", "eta_min", "last_epoch"),
    "CosineAnnealingWarmRestarts": ("optimizer", "T_0", "T_mult", "eta_min", "last_epoch"),
    "OneCycleLR": ("optimizer", "max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start",
                   "anneal_strategy", "cycle_momentum", "base_momentum", "max_momentum", "div_factor",
                   "final_div_factor", "three_phase", "last_epoch"),
    "SequentialLR": ("optimizer", "schedulers", "milestones", "last_epoch"),
    "ChainedScheduler": ("schedulers", "optimizer"),
    "ReduceLROnPlateau": ("optimizer", "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                          "min_lr", "eps"),
}

# optimizers whose learning rate is the last factor of every update in torch (so a final
# optax.scale by the scheduled lr is exact), with the hyperparameter OneCycleLR cycles
# ("b1" for torch's betas[0], "momentum"; None: torch refuses cycle_momentum for it)
LR_LAST: dict[str, str | None] = {
    "torch.optim.SGD": "momentum",
    "torch.optim.RMSprop": "momentum",
    "torch.optim.Adam": "b1",
    "torch.optim.AdamW": "b1",
    "torch.optim.Adamax": "b1",
    "torch.optim.NAdam": "b1",
    "torch.optim.RAdam": "b1",
    "torch.optim.Adagrad": None,
    "torch.optim.Adadelta": None,
}

# what a LambdaLR lambda may call: it runs on the host, as plain Python, in the converted file
LAMBDA_CALLS = frozenset({"min", "max", "abs", "float", "int", "pow", "round"})


@dataclass
class ScheduleFacts:
    """What the rewrite does about lr schedulers (lines are 1-based source lines)."""

    schedulers: dict[int, str] = field(default_factory=dict)  # scheduler call line -> "" (converts) or why not
    slots: dict[int, str] = field(default_factory=dict)  # optimizer construction line -> "lr" | "b1" | "momentum"
    kept: dict[int, str] = field(default_factory=dict)  # optimizer construction line -> why it stays PyTorch
    param_groups: set[tuple[int, int]] = field(default_factory=set)  # (line, col) of `opt.param_groups` rewritten
    held: dict[str, str] = field(default_factory=dict)  # optimizer variable kept for its scheduler -> why


@dataclass
class _Sched:
    call: ast.Call
    name: str  # StepLR, ...
    bound: dict[str, ast.expr]
    optimizer: str | None  # the optimizer variable it drives
    reason: str | None = None
    members: list[_Sched] = field(default_factory=list)  # SequentialLR / ChainedScheduler


def _bind(name: str, call: ast.Call) -> tuple[dict[str, ast.expr], str | None]:
    signature = SIGNATURES[name]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return {}, "*args / **kwargs are not converted"
    if len(call.args) > len(signature):
        return {}, "too many positional arguments"
    bound = dict(zip(signature, call.args))
    for keyword in call.keywords:
        if keyword.arg not in signature or keyword.arg in bound:
            return {}, f"argument {keyword.arg}= is not converted"
        bound[keyword.arg] = keyword.value
    last_epoch = bound.get("last_epoch")
    if last_epoch is not None and ast.unparse(last_epoch) != "-1":
        return {}, "last_epoch (resuming a schedule) is not converted: it needs the optimizer's checkpointed initial_lr"
    return bound, None


def lambda_refusal(node: ast.expr | None, torch_names: set[str]) -> str | None:
    """Why an lr_lambda is not kept as written (None: a plain-Python lambda the helper can call)."""
    lambdas = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
    for fn in lambdas:
        if not isinstance(fn, ast.Lambda):
            return "lr_lambda is converted only when it is a lambda written in the call"
        for sub in ast.walk(fn.body):
            if isinstance(sub, ast.Name) and sub.id in torch_names:
                return f"lr_lambda uses {sub.id} (PyTorch)"
            if isinstance(sub, ast.Call):
                func = sub.func
                plain = isinstance(func, ast.Name) and func.id in LAMBDA_CALLS and func.id in dir(builtins)
                mathematical = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and func.value.id == "math"
                if not (plain or mathematical):
                    return f"lr_lambda calls {ast.unparse(func)}, which may not be plain Python"
            if isinstance(sub, (ast.Attribute, ast.Subscript)) and not (
                    isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "math"):
                return f"lr_lambda reads {ast.unparse(sub)}, which may not be plain Python"
    return None


def plan_schedules(scopes, qualname, built: list[dict[str, tuple[int, str]]], kept: dict[int, int],
                   converts, torch_names: set[str], held: dict[str, str] | None = None) -> ScheduleFacts:
    """scopes: the node lists of each scope (trainstep._scopes); built[i]: optimizer variable ->
    (construction line, torch name) in scope i; kept: construction lines whose step stays PyTorch;
    converts(line) -> why a scheduler cannot drive that optimizer construction (None: it can); held: optimizer
    variables an earlier round kept for their schedulers -> why (their steps now stay too)."""
    held = held or {}
    facts = ScheduleFacts()
    everything: list[_Sched] = []
    refused_names: set[str] = set()  # optimizer names some unconverted scheduler (anywhere) drives
    for nodes, optimizers in zip(scopes, built):
        calls = [n for n in nodes if isinstance(n, ast.Call) and (qualname(n.func) or "").startswith(PREFIX)]
        by_var: dict[str, _Sched] = {}  # scheduler variable -> its construction
        scheds: dict[int, _Sched] = {}
        for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset)):
            name = qualname(call.func)[len(PREFIX):]
            if name not in SIGNATURES:
                scheds[id(call)] = _Sched(call, name, {}, _optimizer_arg(call), f"{PREFIX}{name} is not converted")
                continue
            bound, reason = _bind(name, call)
            optimizer = bound.get("optimizer")
            sched = _Sched(call, name, bound, optimizer.id if isinstance(optimizer, ast.Name) else _optimizer_arg(call),
                           reason)
            scheds[id(call)] = sched
        for node in nodes:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and isinstance(node.value, ast.Call) and id(node.value) in scheds:
                by_var[node.targets[0].id] = scheds[id(node.value)]
        for sched in scheds.values():
            _check(sched, scheds, by_var, optimizers, kept, converts, torch_names, held)
        everything += scheds.values()
        # optimizer side: a refused scheduler keeps its optimizer; a kept optimizer refuses its schedulers
        changed = True
        while changed:
            changed = False
            for sched in scheds.values():
                if sched.reason is None and any(m.reason is not None for m in sched.members):
                    sched.reason = "a scheduler it combines is not converted"
                    changed = True
                if sched.optimizer not in optimizers:
                    continue
                line = optimizers[sched.optimizer][0]
                own = line not in kept or sched.optimizer in held  # not already kept for its step
                if sched.reason is not None and line not in facts.kept and own:
                    facts.kept[line] = held.get(sched.optimizer) or (
                        f"its lr scheduler {sched.name} (line {sched.call.lineno}) is not converted: "
                        f"{sched.reason}; convert the two together")
                    changed = True
                if sched.reason is None and line in facts.kept:
                    sched.reason = f"its optimizer {sched.optimizer} stays PyTorch"
                    changed = True
        for sched in scheds.values():
            if sched.reason is None and sched.optimizer in optimizers:
                line = optimizers[sched.optimizer][0]
                wanted = "lr"
                if sched.name == "OneCycleLR" and _cycles_momentum(sched):
                    wanted = LR_LAST[optimizers[sched.optimizer][1]] or "lr"
                if facts.slots.get(line, "lr") == "lr":
                    facts.slots[line] = wanted
        # `opt.param_groups` of a converted optimizer: read through the helper (the optimizer gets a slot)
        for node in nodes:
            if isinstance(node, ast.Attribute) and node.attr == "param_groups" and isinstance(node.value, ast.Name) \
                    and node.value.id in optimizers:
                line, torch_name = optimizers[node.value.id]
                if line in kept or line in facts.kept or torch_name not in LR_LAST or converts(line) is not None:
                    continue
                facts.param_groups.add((node.lineno, node.col_offset))
                facts.slots.setdefault(line, "lr")
        refused_names |= {s.optimizer for s in scheds.values() if s.reason is not None and s.optimizer}
    # a scheduler refused in one scope (a function taking the optimizer) keeps an optimizer of
    # that name built in another: a converted optimizer handed to torch's scheduler would fail
    for optimizers in built:
        for name, (line, _) in optimizers.items():
            if name in refused_names and line not in facts.kept and (line not in kept or name in held):
                facts.kept[line] = held.get(name) or (
                    f"an lr scheduler of {name} is not converted; convert the two together")
                facts.slots.pop(line, None)
    for line in list(facts.slots):
        if line in facts.kept:
            del facts.slots[line]
    for optimizers in built:
        for name, (line, _) in optimizers.items():
            if line in facts.kept:
                facts.held[name] = facts.kept[line]
    facts.held = {**held, **facts.held}  # once held, an optimizer stays held (its steps stay PyTorch)
    for sched in everything:
        line = sched.call.lineno
        verdict = "" if sched.reason is None else sched.reason
        if facts.schedulers.get(line, "") == "":  # one verdict per line: any refusal on it wins
            facts.schedulers[line] = verdict
    return facts


def _optimizer_arg(call: ast.Call) -> str | None:
    """The optimizer a scheduler call names (first argument or optimizer=), bound or not."""
    for keyword in call.keywords:
        if keyword.arg == "optimizer":
            return keyword.value.id if isinstance(keyword.value, ast.Name) else None
    first = call.args[0] if call.args else None
    return first.id if isinstance(first, ast.Name) else None


def _cycles_momentum(sched: _Sched) -> bool:
    flag = sched.bound.get("cycle_momentum")
    return flag is None or ast.unparse(flag) != "False"


def _check(sched: _Sched, scheds: dict[int, _Sched], by_var: dict[str, _Sched],
           optimizers: dict[str, tuple[int, str]], kept: dict[int, int], converts, torch_names: set[str],
           held: dict[str, str]) -> None:
    if sched.reason is not None:
        return
    bound = sched.bound
    if sched.name in ("SequentialLR", "ChainedScheduler"):
        members = bound.get("schedulers")
        if not isinstance(members, (ast.List, ast.Tuple)) or not members.elts:
            sched.reason = "schedulers= is converted only as a list written in the call"
            return
        for element in members.elts:
            member = by_var.get(element.id) if isinstance(element, ast.Name) else scheds.get(id(element))
            if member is None:
                sched.reason = f"{ast.unparse(element)} is not an lr scheduler built in this scope"
                return
            if member.reason is not None:
                sched.reason = "a scheduler it combines is not converted"
                return
            if member.name == "ReduceLROnPlateau":
                sched.reason = "ReduceLROnPlateau cannot be combined (torch refuses it too)"
                return
            sched.members.append(member)
        if sched.optimizer is None and sched.name == "ChainedScheduler" and "optimizer" not in bound:
            sched.optimizer = sched.members[0].optimizer
        if any(m.optimizer != sched.optimizer for m in sched.members):
            sched.reason = "its schedulers drive different optimizers"
            return
    if sched.name in ("LambdaLR", "MultiplicativeLR"):
        reason = lambda_refusal(bound.get("lr_lambda"), torch_names)
        if reason is not None:
            sched.reason = reason
            return
    if sched.optimizer is None:
        sched.reason = "its optimizer is not a variable"
        return
    if sched.optimizer not in optimizers:
        sched.reason = f"its optimizer {sched.optimizer} is not a torch.optim optimizer built in this scope"
        return
    line, torch_name = optimizers[sched.optimizer]
    # its own reasons first (they are the same in every round), then its optimizer's state
    cycled = LR_LAST.get(torch_name) if sched.name == "OneCycleLR" and _cycles_momentum(sched) else None
    refusal = converts(line, cycled or "lr")
    if refusal is not None:
        sched.reason = f"its optimizer {sched.optimizer} {refusal}"
    elif torch_name not in LR_LAST:
        sched.reason = f"{torch_name} does not apply its lr as the last factor of the update"
    elif sched.name == "OneCycleLR" and _cycles_momentum(sched) and LR_LAST[torch_name] is None:
        sched.reason = f"cycle_momentum needs momentum or betas, which {torch_name} has not"
    elif sched.optimizer in held:
        sched.reason = f"its optimizer {sched.optimizer} stays PyTorch"
    elif line in kept:
        sched.reason = f"its optimizer {sched.optimizer} stays PyTorch (its training step is not converted)"
