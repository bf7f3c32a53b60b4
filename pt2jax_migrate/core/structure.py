"""Module-structure constructs, decided once for lint and rewrite.

The front ends extract the facts (structure_facts.py reads them off the `ast` for both: lint
reports them, rewrite renders them by line); the verdicts and their wording live here:

* buffer registration `self.register_buffer("name", value[, persistent=...])` -> `self.name =
  Buffer(value)` (for NNX a non-trainable Variable subclass: the optimizer leaves it);
* a buffer updated in forward (`self.count += 1`) -> an explicit update of its value
  (`self.count[...] += 1`), and so is a chain of in-place arithmetic (`self.r.mul_(m).add_(x)`
  -> `self.r[...] = self.r * m + x`); other in-place methods on a buffer are refused;
* an index assignment on a local array built by torch (`pe[:, 0::2] = v`, `pe[i] += v`) ->
  `pe = pe.at[:, 0::2].set(v)` / `.at[i].add(v)` (only locals: a parameter or buffer is state,
  and the subscript of an unknown object may be a list or dict);
* children registered the torch way: `self.add_module(name, m)` and, in an nn.Sequential
  subclass, `self.name = layer` in __init__ (appended to the container's layers, in order);
* weight tying `self.head.weight = self.embed.weight` -> the head becomes a TiedLinear that reads
  the embedding's table (the tie is kept, never silently dropped).

Framework-neutral: no ast, no libcst; messages say what the default target writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .decide import Decision, manual

BUFFER_CLASS = "Buffer"
# the attribute nnx's Module.train() / .eval() set (False / True) on every submodule that has it:
# a converted module reads torch's `self.training` as `not self.deterministic`
TRAIN_FLAG = "deterministic"
TIED_CLASS = "TiedLinear"
# augmented operators on a local array -> the jnp `.at[]` method that does the same
AT_METHODS = {"=": "set", "+=": "add", "-=": "subtract", "*=": "multiply", "/=": "divide"}
# in-place tensor methods a buffer update chain may use -> the operator they apply (copy_: replace)
CHAIN_OPS = {"mul_": "*", "add_": "+", "sub_": "-", "div_": "/", "copy_": ""}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_SIMPLE = re.compile(r"[\w.]+")


@dataclass(frozen=True)
class StructureSite:
    """One statement the structure analysis found (structure_facts.StructureFacts)."""

    kind: str  # buffer | buffer_update | buffer_chain | index_assign | weight_tie | add_module | sequential_child | training
    #   | freeze_loop (a For statement: `for p in X.parameters(): p.requires_grad = False`)
    line: int
    col: int
    name: str = ""  # the buffer / local array / tied module attribute
    op: str = ""  # the assignment operator (`=`, `+=`); add_module: the container kind of the class
    source: str = ""  # the other side: the tied-to module attribute, the registered value
    persistent: bool = True
    refusal: str = ""  # why it is not converted ("" when it is)


def decide_structure(site: StructureSite, kinds: frozenset[str] | None = None, target: str = "") -> Decision:
    """The verdict on one structure site; `kinds`: the site kinds the target converts
    (Target.structure_kinds, named `target`; `kind:op` names one container of add_module, e.g.
    `add_module:dict`), any other is left for a person."""
    decision = _decide_structure(site)
    if kinds is not None and decision.fixable and site.kind == "training" and "training" not in kinds \
            and f"training:{site.op}" not in kinds:
        return manual("PTJ303", f"`self.training` in {site.op}(), not a method only forward calls: target "
                      f"{target}'s modules get their mode as forward's `train` argument only: pass it on by hand")
    if kinds is not None and decision.fixable and site.kind not in kinds and f"{site.kind}:{site.op}" not in kinds:
        # add_module left as it is: the module-API verdict's code (PTJ901), which a second run gives
        # the same call once its container is no longer torch's (one marker, the rewrite idempotent)
        code = "PTJ901" if site.kind == "add_module" else decision.code
        return manual(code, f"{decision.message}: not converted for target {target}")
    if kinds is not None and decision.fixable and site.kind == "training" and "training" not in kinds:
        # a target whose modules take their mode as forward's argument (`training:forward`)
        return Decision("PTJ303", True, "`self.training` in forward (or a method only forward calls) becomes "
                        "the `train` argument of the converted call", action="training")
    return decision


def _decide_structure(site: StructureSite) -> Decision:
    if site.refusal:
        code = {"buffer_chain": "PTJ105", "index_assign": "PTJ105", "training": "PTJ901"}.get(site.kind, "PTJ102")
        return manual(code, site.refusal)
    if site.kind == "buffer":
        kept = "" if site.persistent else " (non-persistent: recomputed by the constructor, not in the state_dict)"
        return Decision("PTJ102", True, f"register_buffer({site.name!r}) becomes self.{site.name} = "
                        f"{BUFFER_CLASS}(...), a variable that is not trained{kept}", action="buffer")
    if site.kind == "buffer_update":
        return Decision("PTJ105", True, f"buffer update `self.{site.name} {site.op} ...` becomes an explicit "
                        f"update of the {BUFFER_CLASS}'s value (`self.{site.name}[...] {site.op} ...`)",
                        action="buffer_update")
    if site.kind == "buffer_chain":
        return Decision("PTJ105", True, f"in-place update of buffer self.{site.name} ({site.op}) becomes an "
                        f"explicit update of the {BUFFER_CLASS}'s value (`self.{site.name}[...] = ...`)",
                        action="buffer_update")
    if site.kind == "index_assign":
        method = AT_METHODS[site.op]
        return Decision("PTJ105", True, f"index assignment `{site.name}[...] {site.op} v` on a local array becomes "
                        f"`{site.name} = {site.name}.at[...].{method}(v)` (jax arrays are immutable)",
                        action="index_assign")
    if site.kind == "add_module":
        where = {"sequential": "appended to the container's layers (torch runs them in registration order)",
                 "dict": "stored under its key (`self[name] = module`)",
                 "named": "appended to the local container's layers under its name (read by name, as in torch)"
                 }.get(site.op, "set as an attribute (`setattr(self, name, module)`)")
        owner = site.name if site.op == "named" else f"self.{site.name}" if site.name else "self"
        return Decision("PTJ102", True, f"{owner}.add_module(name, module): the module is {where}", action="add_module")
    if site.kind == "sequential_child":
        return Decision("PTJ102", True, f"`self.{site.name} = layer` in an nn.Sequential subclass registers the "
                        "layer in order: it is appended to the container's layers", action="sequential_child")
    if site.kind == "training":
        return Decision("PTJ303", True, f"`self.training` becomes `(not self.{TRAIN_FLAG})`: __init__ sets "
                        f"self.{TRAIN_FLAG} = False (torch modules start in train mode) and model.train() / "
                        f".eval() set it on every submodule that has it, as torch sets .training",
                        action="training")
    if site.kind == "weight_tie":
        return Decision("PTJ102", True, f"weight tying `self.{site.name}.weight = {site.source}.weight`: "
                        f"self.{site.name} becomes a {TIED_CLASS} reading {site.source}'s table (still tied)",
                        action="weight_tie")
    if site.kind == "freeze_loop":
        return Decision("PTJ105", True, f"for p in {site.name}.parameters(): p.requires_grad = False -> "
                        f"freeze({site.name}): its parameters stop training (build the optimizer afterwards, "
                        "as in torch)", action="freeze_loop")
    raise ValueError(f"unknown structure construct {site.kind!r}")


def chain_expression(current: str, steps: list[tuple[str, str]]) -> str:
    """`x.mul_(m).add_(y)` as one expression: steps are (method, argument text) in call order."""
    text, last = current, 3
    for method, arg in steps:
        op = CHAIN_OPS[method]
        if not op:  # copy_(v): the value is replaced (an argument over several lines keeps its parentheses)
            text, last = (f"({arg})" if "\n" in arg else arg), 3
            continue
        if _PRECEDENCE[op] > last:
            text = f"({text})"
        if not _SIMPLE.fullmatch(arg) and (op != "+" or " if " in arg or "lambda" in arg or "\n" in arg):
            arg = f"({arg})"
        text, last = f"{text} {op} {arg}", _PRECEDENCE[op]
    return text


def buffer_chain_refusal(name: str, methods: list[str]) -> str:
    chain = "".join(f".{m}(...)" for m in methods)
    return (f"in-place update of buffer self.{name}{chain}: jax arrays are immutable; write the new value "
            f"explicitly, e.g. `self.{name}[...] = self.{name}[...] * m + x`")


INDEX_TARGET_REFUSAL = ("index assignment on {what}: jax arrays are immutable; rebind a local "
                        "(`x = x.at[idx].set(v)`) or update the variable (`self.v[...] = new`)")
TIE_REFUSAL = ("weight tying `{lhs} = {rhs}`: only a Linear's weight tied to an Embedding's weight of the same "
               "module is converted; share one parameter between the two layers by hand")
CHILD_READ_REFUSAL = ("`self.{name} = layer` in {cls}, an nn.Sequential subclass: torch runs it as the next layer, "
                      "and the class also reads self.{name}; append the layer to the converted container's "
                      "layers by hand and read it from there")
TRAINING_STORE_REFUSAL = ("`self.training` is assigned: torch's mode flag is set by model.train() / .eval(); "
                          "the converted module's is self.deterministic (its negation), set it by hand")
TRAINING_NO_INIT_REFUSAL = ("`self.training` in {cls}, which has no __init__ of its own to set self.deterministic "
                            "(the flag model.train() / .eval() set): define __init__ or read it by hand")
TRAINING_TAKEN_REFUSAL = ("`self.training` in {cls}, which already uses self.deterministic for something else: "
                          "read the mode by hand")
