"""The schema of rules/*.toml: every key a table entry may have, its type and its meaning.

This is the one place the keys are documented (`python -m pt2jax_migrate.rules_schema` prints
them). `validate_table` checks a loaded TOML file against it; a mistake is a `TableError`
naming the file and the entry, so a misspelt key can never be silently ignored.

An entry has two sides. The source side (what the torch construct is and which calls of it
are converted) sits at the top of the entry; the target side (what is written for it) sits in
a sub-table named after the target, right after the entry:

    [[layer]]
    torch = "torch.nn.Linear"
    code = "PTJ102"
    ...
    [layer.nnx]
    target = "nnx.Linear"
    ...

An entry without a sub-table for a target has no mapping for that target.

Named transforms (argument transforms, computed keywords, weight transforms, initialisers) are
registered here by name and described; their code lives in mapping.py and verify/transfer.py,
which check at import time that they implement exactly these names. Lint never imports verify.
Imports nothing but the standard library. Helper names are registered by the targets that
provide them (`register_helpers`, called by targets.register_target): the tables sit below the
targets and never import one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# helper name -> the targets that provide it, filled by targets.register_target
HELPERS: dict[str, set[str]] = {}


def register_helpers(target: str, names) -> None:
    for name in names:
        HELPERS.setdefault(name, set()).add(target)

TARGETS = ("nnx", "linen")
DEFAULT_TARGET = "nnx"
# A target that reads another target's sub-table where it has none of its own, for the entries
# whose text is framework-neutral (jax / jnp / optax, no module API): functions, tensor methods,
# losses and parameter-free layers. Only when every helper that sub-table names is provided by
# the reading target too (a helper built on nnx.Module is not). Modules, containers and
# optimizers (their state is the module API's) always need the target's own sub-table.
SHARES_SIDES: dict[str, str] = {"linen": DEFAULT_TARGET}


def framework_neutral(kind: str, raw: dict) -> bool:
    """An entry whose target side is the same text for every target sharing it (SHARES_SIDES)."""
    # an optimizer's side is optax text (and torch-exact helpers); the target wraps it (render_optimizer)
    return kind in ("function", "method", "loss", "optimizer") or (kind == "layer" and raw.get("kind") == "function")
ENTRY_KINDS = ("layer", "function", "method", "loss", "optimizer")


class TableError(ValueError):
    """A rules/*.toml file does not match the schema (the message names the file and entry)."""


# --------------------------------------------------------------------------- named transforms

# args = { p = { to = ..., transform = NAME } }: how one torch argument's text becomes the target's
ARG_TRANSFORMS: dict[str, str] = {
    "ntuple": "an int or a sequence -> an n-tuple (n = the entry's ndim), as torch expands kernel sizes",
    "conv_padding": "torch conv padding (int, tuple, 'same'/'valid') -> flax (low, high) pairs or 'SAME'/'VALID'",
    "one_minus": "m -> 1 - m (BatchNorm momentum); None is refused (cumulative average)",
    "consumed": "read by a `compute` keyword of the same entry; not written on its own",
}
# compute = { keyword = NAME }: a keyword computed from several bound torch arguments
COMPUTED: dict[str, str] = {
    "conv_transpose_padding": "ConvTranspose (kernel_size, padding, output_padding, dilation) -> flax (low, high) pairs",
    "normalized_axes": "LayerNorm normalized_shape -> the trailing axes (-1, or (-k, ..., -1)) the layer normalises over",
}
# weights = [{ torch, to, transform = NAME }]: how verify copies a torch tensor (a linear re-arrangement)
WEIGHT_TRANSFORMS: dict[str, str] = {
    "copy": "as it is",
    "transpose": "Linear weight (out, in) -> kernel (in, out)",
    "conv": "Conv weight (O, I/groups, *k) -> kernel (*k, I/groups, O)",
    "conv_transpose": "ConvTranspose weight (I, O, *k) -> kernel (*k, O, I) with transpose_kernel=True",
}
# init = NAME: PyTorch's default initialiser, written out as kernel_init/bias_init keywords
INITIALISERS: dict[str, str] = {
    "linear": "kaiming-uniform kernel, uniform(1/sqrt(in_features)) bias",
    "conv": "as linear, fan_in = in_channels / groups * prod(kernel_size)",
    "conv_transpose": "as conv, fan_in = out_channels * prod(kernel_size)",
    "embedding": "standard normal",
}


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class Type:
    """A value type: `check(value)` is None when the value fits, else what is wrong."""

    name: str
    check: Callable[[Any], str | None]


def _is(cls: type, name: str) -> Type:
    def check(value: Any) -> str | None:
        ok = isinstance(value, cls) and not (cls is int and isinstance(value, bool))
        return None if ok else f"expected {name}, got {_show(value)}"

    return Type(name, check)


STR = _is(str, "string")
INT = _is(int, "integer")
BOOL = _is(bool, "true/false")


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def choice(*values: str) -> Type:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected one of {', '.join(values)}, got {_show(value)}"
        return None if value in values else f"{value!r} is not one of {', '.join(values)}"

    return Type(f"one of {' | '.join(values)}", check)


def named(registry: dict, what: str) -> Type:
    """A string naming an item of `registry` (a named transform, a helper ...)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected the name of {what}, got {_show(value)}"
        if value in registry or (not registry and registry is HELPERS):  # no target loaded: nothing to check
            return None
        close = difflib.get_close_matches(value, list(registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {what} {value!r}{hint}; known: {', '.join(registry)}"

    return Type(f"the name of {what}", check)


def list_of(item: Type) -> Type:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected list of {item.name}, got {_show(value)}"
        for i, v in enumerate(value):
            problem = item.check(v)
            if problem:
                return f"item {i + 1}: {problem}"
        return None

    return Type(f"list of {item.name}", check)


def table_of(item: Type) -> Type:
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"expected table of {item.name}, got {_show(value)}"
        for k, v in value.items():
            problem = item.check(v)
            if problem:
                return f"[{k!r}]: {problem}"
        return None

    return Type(f"table of {item.name}", check)


def one_of(*types: Type) -> Type:
    def check(value: Any) -> str | None:
        problems = [t.check(value) for t in types]
        if any(p is None for p in problems):
            return None
        # a table that was meant as a record: report its own problem, not "expected a string"
        fits = [p for t, p in zip(types, problems) if not p.startswith("expected ")]
        return fits[0] if fits else f"expected {' or '.join(t.name for t in types)}, got {_show(value)}"

    return Type(" or ".join(t.name for t in types), check)


def record(name: str, fields: dict[str, tuple[Type, bool]]) -> Type:
    """A table with fixed keys: fields maps key -> (type, required)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"expected {name}, got {_show(value)}"
        for key, v in value.items():
            if key not in fields:
                return f"unknown key {key!r} in {name}{_suggest(key, fields)}"
            problem = fields[key][0].check(v)
            if problem:
                return f"{key}: {problem}"
        missing = [k for k, (_, required) in fields.items() if required and k not in value]
        return f"{name} lacks required key {missing[0]!r}" if missing else None

    return Type(name, check)


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- keys

STR_TABLE = table_of(STR)
STR_LIST = list_of(STR)
ARG_SPEC = record("an argument mapping", {
    "to": (STR, True),
    "transform": (named(ARG_TRANSFORMS, "argument transform"), False),
    "values": (STR_TABLE, False),
})
WEIGHT = record("a weight mapping", {
    "torch": (STR, True),
    "to": (STR, True),
    "transform": (named(WEIGHT_TRANSFORMS, "weight transform"), False),
    "positive": (BOOL, False),
})
EXAMPLE = record("an example", {
    "torch": (STR, True),
    "input": (STR, False),
    "target": (STR, False),
    "train": (BOOL, False),
    "skip": (STR, False),
    "jax": (STR, False),
    "forward": (STR, False),
})

SOURCE, TARGET = "source", "target"
ALL = frozenset(ENTRY_KINDS)


@dataclass(frozen=True)
class Key:
    name: str
    type: Type
    side: str  # SOURCE (top of the entry) or TARGET (the per-target sub-table)
    kinds: frozenset[str]  # entry kinds that may use it
    doc: str
    required: frozenset[str] = frozenset()  # entry kinds that must have it


def _key(name, type_, side, kinds, doc, required=()):
    return Key(name, type_, side, frozenset(kinds), doc, frozenset(required))


KEYS: dict[str, Key] = {k.name: k for k in (
    # ---- source side: the torch construct and which of its calls are converted
    _key("torch", one_of(STR, STR_LIST), SOURCE, ALL - {"method"},
         "qualified torch name(s) the entry matches", required=ALL - {"method"}),
    _key("name", one_of(STR, STR_LIST), SOURCE, {"method"},
         "tensor method name(s) the entry matches (matched by name in files that import torch)", required={"method"}),
    _key("code", STR, SOURCE, ALL, "lint code reported for it (documented in rules/lint.toml)", required=ALL),
    _key("kind", choice("module", "function", "container"), SOURCE, {"layer"},
         "what the torch layer is: module (has parameters or state: built with rngs), function "
         "(parameter-free: the target function, its arguments bound with partial), container "
         "(Sequential/ModuleList: rewritten by the engine)", required={"layer"}),
    _key("status", choice("exact", "approximate", "refused"), SOURCE, ALL,
         "exact: proven equal by the generated parity test; approximate: close but not equal; "
         "refused: never converted (refuse['<always>'] says why). Default exact"),
    _key("signature", STR_LIST, SOURCE, ALL,
         "torch parameter names in order (binds positional arguments; '*name' takes the rest)"),
    _key("module_signature", STR_LIST, SOURCE, {"loss"},
         "the loss module's constructor parameters (nn.CrossEntropyLoss(...)), bound instead of `signature`"),
    _key("signature_by_arity", table_of(STR_LIST), SOURCE, {"function"},
         "torch overloads: number of positional arguments -> the parameters they bind first"),
    _key("int_args", STR_LIST, SOURCE, {"function"},
         "parameters converted only when given as a literal int (torch.max(x, 1) vs torch.max(a, b))"),
    _key("sizes_arg", STR, SOURCE, {"method"},
         "a method another type shares (str.split): the entry applies only when this parameter is an int "
         "or a list/tuple of ints as a literal, or dim= is given; otherwise the call is left to the "
         "torch-only check"),
    _key("defaults", STR_TABLE, SOURCE, ALL - {"layer"},
         "torch's default for a parameter (source text), used when the call does not give it"),
    _key("value_defaults", STR_TABLE, SOURCE, {"layer"},
         "torch's defaults (source text) of the parameters after the required ones: a layer class used "
         "as a value (conv_layer=nn.Conv2d) becomes a constructor taking rngs and every parameter of "
         "the signature that is neither ignored nor refused, these with their defaults"),
    _key("ignore", STR_LIST, SOURCE, ALL, "torch parameters dropped without changing numbers (device, inplace)"),
    _key("refuse", STR_TABLE, SOURCE, ALL,
         "torch parameter -> reason: given at all (unless its literal is listed in `allow`) -> TODO(pt2jax). "
         "'<missing>param': refused when param is absent; '<always>': the entry is never converted"),
    _key("refuse_literal", STR_TABLE, SOURCE, ALL,
         "torch parameter -> reason: refused when given as a literal not listed in `keep_literal` (it "
         "certainly takes the path that is not converted); any other expression is converted, the target "
         "checks it at run time"),
    _key("keep_literal", table_of(STR_LIST), SOURCE, ALL,
         "torch parameter -> literals (repr) `refuse_literal` accepts (passed on as written)"),
    _key("allow", table_of(STR_LIST), SOURCE, ALL,
         "torch parameter -> literals (repr) that are accepted and dropped: torch's default value"),
    _key("ndim", INT, SOURCE, {"layer"}, "number of spatial dimensions of the torch layer (Conv2d: 2); default 2"),
    _key("ndim_by_name", table_of(INT), SOURCE, {"layer"},
         "short torch name -> ndim, for entries grouping several names (ConvTranspose1d/2d)"),
    _key("example", EXAMPLE, SOURCE, ALL,
         "a generated test case: torch = the expression (a layer: its constructor call), input = spec of "
         "the tensor fed to it (float32[2,3], int64[6]:0..5), target = a loss target spec, train = true also "
         "compares a train-mode call and the state it updates, skip = why it is not run for parity, "
         "jax = text the rewrite must produce. Lint must report `code` on it, fixable as `status` says"),
    _key("valid", STR_LIST, SOURCE, ALL,
         "negative examples: code lines on which lint must report no finding with this entry's code"),
    # ---- target side: what is written for it ([kind.<target>] sub-table)
    _key("target", STR, TARGET, ALL - {"method", "loss", "optimizer"},
         "the target callable written into the output ({name}: the torch short name, {jax_name}: see jax_names)"),
    _key("args", table_of(one_of(INT, STR, STR_LIST, ARG_SPEC)), TARGET, {"layer", "function"},
         "torch param -> target: an int (positional slot), a keyword name, a list of keyword names "
         "(same value to each), or a table {to, transform (an argument transform), values (literal -> text)}"),
    _key("set", STR_TABLE, TARGET, {"layer", "function"},
         "target keywords (or positional slots '0', '1' ...) written even when the torch argument is absent: "
         "PyTorch's default where it differs from the target's (written out explicitly)"),
    _key("target_if_given", STR_TABLE, TARGET, {"layer"},
         "torch parameter -> the target (a helper, written into the output) used instead when that "
         "parameter is given (nn.Embedding(padding_idx=...) -> EmbedPaddingIdx)"),
    _key("compute", table_of(named(COMPUTED, "computed keyword")), TARGET, {"layer"},
         "target keyword -> a named computation over several bound torch arguments"),
    _key("templates", STR_TABLE, TARGET, ALL - {"layer"},
         "sorted, comma-joined set of the torch arguments given ('' = none) -> output expression; {p} is the "
         "argument's source (parenthesised where needed), {*p} a varargs list, {p_tuple} varargs as a tuple, {p_seq} varargs as one sequence (a lone non-int argument is taken as the sequence itself), "
         "{self} a method's receiver, {key} a fresh PRNG key, {name}/{jax_name}/{op} as for target"),
    _key("values", table_of(STR_TABLE), TARGET, ALL - {"layer"},
         "torch param -> {literal (repr) -> text} substituted for {param}; any other value is refused"),
    _key("jax_names", STR_TABLE, TARGET, {"layer", "function"},
         "short torch name -> target spelling, for {jax_name} in entries grouping several names"),
    _key("ops", STR_TABLE, TARGET, {"method"}, "short method name -> Python operator, for {op}"),
    _key("helpers", list_of(named(HELPERS, "helper")), TARGET, ALL,
         "helpers (pt2jax_migrate/helpers.py) written once into the output file"),
    _key("subclass_base", named(HELPERS, "helper"), TARGET, {"layer"},
         "a helper class written as the base of a user class subclassing this layer (`class LayerNorm2d("
         "nn.LayerNorm)`): the converted layer with torch's constructor and attribute names"),
    _key("init", named(INITIALISERS, "initialiser"), TARGET, {"layer"},
         "PyTorch's default initialiser to reproduce (kernel_init/bias_init keywords)"),
    _key("weights", list_of(WEIGHT), TARGET, {"layer"},
         "verify's weight transfer: each torch parameter/buffer {torch (a name, or 'prefix*' for every name "
         "starting with prefix), to (nnx attribute; '' drops it; '*' keeps the torch name), "
         "transform (a weight transform), positive (variance-like: perturbed by scaling)}"),
    _key("needs_key", BOOL, TARGET, {"function"}, "the output draws random numbers: it needs a PRNG key in scope"),
    _key("key_from", STR, TARGET, {"function"},
         "the torch parameter that passes a torch.Generator (converted to a key stream): given, {key} is drawn "
         "from it (`g()`) instead of the scope's stream, and it does not select a template"),
    _key("safety", choice("safe", "unsafe"), TARGET, ALL,
         "unsafe: the conversion changes numbers or semantics (applied only with --unsafe-fixes). Default safe"),
    _key("rewrite_only_keywords", BOOL, TARGET, {"method"},
         "the call is already valid on a jax array unless dim=/keepdim= are given (x.sum(1))"),
    _key("only_with_arguments", BOOL, TARGET, {"method"},
         "the call without arguments is already valid on a jax array (x.max(), x.flatten())"),
    _key("params_in_templates", STR_LIST, TARGET, {"optimizer"},
         "parameters every template writes (torch default if absent), so they do not select a template"),
    _key("with_weight_decay", STR, TARGET, {"optimizer"},
         "template wrapping {optimizer} when weight_decay is given and nonzero (L2 added to the gradient)"),
    _key("weight_decay_in_template", BOOL, TARGET, {"optimizer"},
         "the templates themselves write {weight_decay} (decoupled decay, AdamW)"),
    _key("algorithm", named(HELPERS, "helper"), TARGET, {"optimizer"},
         "a helper taking torch's own arguments (torch's defaults) and running torch's update rule, "
         "called with every argument given when no template covers them (it applies weight_decay itself)"),
)}

DTYPE = record("a dtype table", {"torch": (STR_TABLE, True)})
# a target's form of a rule's doc where it differs (`[rule.linen]`: pt2jax rule CODE --target linen)
RULE_DOC = record("a rule's doc for one target", {k: (STR, False) for k in ("what", "why", "example", "instead")})
LINT_RULE = record("a lint rule", {
    "code": (STR, True), "name": (STR, True), "summary": (STR, True), "what": (STR, True),
    "why": (STR, True), "example": (STR, True), "instead": (STR, True),
    "fix": (choice("safe", "unsafe", "manual"), True),
    **{t: (RULE_DOC, False) for t in TARGETS},
})

# file stem -> the arrays of tables it may hold
FILES: dict[str, tuple[str, ...]] = {
    "layers": ("layer",),
    "functional": ("function", "dtype"),
    "tensor_methods": ("method",),
    "losses": ("loss",),
    "optimizers": ("optimizer",),
    "lint": ("rule",),
}
SOURCE_KEYS = frozenset(k for k, key in KEYS.items() if key.side == SOURCE)
TARGET_KEYS = frozenset(k for k, key in KEYS.items() if key.side == TARGET)


# --------------------------------------------------------------------------- validation


def entry_label(kind: str, raw: dict, index: int) -> str:
    name = raw.get("name") if kind == "method" else raw.get("code") if kind == "rule" else raw.get("torch")
    if isinstance(name, list) and name:
        name = name[0]
    return f"[[{kind}]] {name}" if isinstance(name, str) else f"[[{kind}]] #{index + 1}"


def validate_table(path: str, stem: str, data: dict) -> None:
    """Raise TableError on the first entry of `data` (the loaded file `path`) that breaks the schema."""
    arrays = FILES.get(stem)
    if arrays is None:
        raise TableError(f"{path}: unknown rules table {stem!r} (known: {', '.join(FILES)})")
    for top, value in data.items():
        if top not in arrays:
            raise TableError(f"{path}: unknown table [[{top}]]{_suggest(top, arrays)}; this file holds "
                             + ", ".join(f"[[{a}]]" for a in arrays))
        if not isinstance(value, list):
            raise TableError(f"{path}: {top} must be an array of tables ([[{top}]])")
        for i, raw in enumerate(value):
            where = f"{path}: {entry_label(top, raw, i)}"
            if top == "dtype":
                problem = DTYPE.check(raw)
            elif top == "rule":
                problem = LINT_RULE.check(raw)
            else:
                problem = _entry_problem(top, raw)
            if problem:
                raise TableError(f"{where}: {problem}")


def _entry_problem(kind: str, raw: dict) -> str | None:
    admitted = {k for k, key in KEYS.items() if kind in key.kinds}
    for name, value in raw.items():
        if name in TARGETS:
            if not isinstance(value, dict):
                return f"{name} must be a sub-table ([{kind}.{name}])"
            for sub, sub_value in value.items():
                problem = _key_problem(kind, sub, sub_value, TARGET, admitted, f"[{kind}.{name}] ")
                if problem:
                    return problem
            continue
        problem = _key_problem(kind, name, value, SOURCE, admitted, "")
        if problem:
            return problem
    for name, key in KEYS.items():
        if kind in key.required and key.side == SOURCE and name not in raw:
            return f"required key {name!r} is missing"
    return _semantic_problem(kind, raw)


def _key_problem(kind: str, name: str, value: Any, side: str, admitted: set[str], prefix: str) -> str | None:
    key = KEYS.get(name)
    if key is None or kind not in key.kinds:
        known = [k for k in admitted if KEYS[k].side == side]
        what = "unknown key" if key is None else f"key not used by [[{kind}]] entries:"
        return f"{prefix}{what} {name!r}{_suggest(name, known)}"
    if key.side != side:
        if key.side == TARGET:
            return f"{name!r} describes the target side: put it in the [{kind}.{DEFAULT_TARGET}] sub-table"
        return f"{prefix}{name!r} describes the torch side: put it at the top of the entry"
    problem = key.type.check(value)
    return f"{prefix}{name}: {problem}" if problem else None


def _semantic_problem(kind: str, raw: dict) -> str | None:
    """Checks across keys: every parameter a key names is in the torch signature, templates are
    reachable, a refused entry says so."""
    params = {p.lstrip("*") for p in raw.get("signature", []) + raw.get("module_signature", [])}
    for overload in raw.get("signature_by_arity", {}).values():
        params |= set(overload)
    sides = [raw] + [raw[t] for t in TARGETS if t in raw]
    named_params: list[tuple[str, str]] = []
    for side in sides:
        for key in ("args", "allow", "defaults", "values"):
            named_params += [(key, p) for p in side.get(key, {})]
        for key in ("ignore", "int_args"):
            named_params += [(key, p) for p in side.get(key, [])]
        for p in side.get("refuse", {}):
            if p != "<always>":
                named_params.append(("refuse", p.removeprefix("<missing>")))
        for template_key in side.get("templates", {}):
            parts = [p for p in template_key.split(",") if p]
            if parts != sorted(parts):
                return (f"templates key {template_key!r} is never selected: write its arguments sorted "
                        f"({','.join(sorted(parts))!r})")
            named_params += [("templates", p) for p in parts]
    for key, p in named_params:
        if p not in params:
            return f"{key} names {p!r}, which is not in the torch signature{_suggest(p, params)}"
    if "<always>" in raw.get("refuse", {}) and raw.get("status") != "refused":
        return "refuse['<always>'] is given but status is not 'refused'"
    return None


def describe() -> str:
    """The key reference, as text (one entry per key)."""
    lines = []
    for side, title in ((SOURCE, "Source side (top of the entry)"),
                        (TARGET, f"Target side (the [kind.{DEFAULT_TARGET}] sub-table)")):
        lines.append(f"{title}:")
        for key in KEYS.values():
            if key.side == side:
                kinds = "all" if key.kinds == ALL else ", ".join(k for k in ENTRY_KINDS if k in key.kinds)
                req = " (required)" if key.required else ""
                lines.append(f"  {key.name}{req} [{kinds}]: {key.type.name}\n      {key.doc}")
        lines.append("")
    for title, registry in (("Argument transforms (args ... transform)", ARG_TRANSFORMS),
                            ("Computed keywords (compute)", COMPUTED),
                            ("Weight transforms (weights ... transform)", WEIGHT_TRANSFORMS),
                            ("Initialisers (init)", INITIALISERS)):
        lines.append(f"{title}:")
        lines += [f"  {name}: {doc}" for name, doc in registry.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(describe())
