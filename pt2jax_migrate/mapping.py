"""Turn one torch call into its JAX text, driven by a rules/ table entry.

Works on source text (not on libcst or ast nodes), so `lint` (ast) and `rewrite` (libcst)
share one decision: `check_call` says whether a call is converted, `render_call` writes it.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field, replace

from . import rules_schema
from .rules import Rule, load_rules
from .core.calls import (Arg, Refused, arguments_from_text, bind, check_arguments as _check_arguments, effective as _effective,
                         is_module_form, make_arg)  # noqa: F401 (re-exported)
from .core import decide as _decide
from .core.constructs import container_refusal
from .targets import Target, get_target

TORCH_ROOTS = ("torch", "torchvision")
# Names the converted code may use, and the import that binds each (the default target's;
# a rule renders with its own target's, see `target_of`).
CONVERTED_IMPORTS = get_target().converted_imports


def target_of(rule: Rule) -> Target:
    """The target a rule renders for: the one whose sub-tables its rule set resolved."""
    return get_target(rule.target)


@dataclass
class CallContext:
    """What the surrounding code provides to a rendered call."""

    rngs: str | None = None  # the randomness layers with parameters get (None: the target's fresh one)
    key: str | None = None  # expression giving a fresh PRNG key (None: drawn from the target's `rngs`)
    receiver: str | None = None  # tensor-method receiver
    clip: str | None = None  # optimizers: the clipping transformation folded in from the training step
    lr_slot: str | None = None  # optimizers an lr scheduler drives: "lr", or also cycled "b1" / "momentum"


@dataclass
class Rendered:
    text: str
    helpers: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=16384)
def check_rule(rule: Rule, name: str, args: tuple, kwargs: tuple) -> str | None:
    """check_call on arguments given as text ((source, starred), ...), ((keyword, source), ...):
    what core.decide asks (the front ends pass it in). Memoised: argument texts repeat a lot."""
    if rule.get("kind") == "container":  # nn.Sequential / nn.ModuleList: the engine rewrites them
        if not rule.supports():
            return f"no {rule.target} mapping in the rules tables"
        return container_refusal(name, list(args), [k for k, _ in kwargs])
    return check_call(rule, *arguments_from_text(args, kwargs), name)


def check_call(rule: Rule, args: list[Arg], kwargs: dict[str, Arg], name: str | None = None) -> str | None:
    """None if `render_call` converts this call; otherwise the reason it is left as a TODO."""
    try:
        render_call(rule, args, kwargs, name=name, ctx=CallContext(receiver="x"))
    except Refused as why:
        return str(why)
    return None


# --------------------------------------------------------------------------- text helpers

_ATOMIC = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Dict, ast.Set, ast.ListComp)


def _wrapped_in_parens(text: str) -> bool:
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(text) - 1:
            return False  # "(a) + (b)"
    return True


def _unwrap(text: str) -> str:
    """`(a - b)` -> `a - b` where it stands alone as an argument (never a tuple's parens)."""
    if not _wrapped_in_parens(text):
        return text
    inner = text.strip()[1:-1]
    try:
        node = ast.parse(inner.strip(), mode="eval").body
    except SyntaxError:
        return text
    return text if isinstance(node, (ast.Tuple, ast.GeneratorExp, ast.NamedExpr)) else inner.strip()


def _is_atomic(text: str) -> bool:
    if _wrapped_in_parens(text):
        return True
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return False
    if isinstance(node, ast.Tuple):
        stripped = text.strip()
        return stripped.startswith("(") and stripped.endswith(")")
    return isinstance(node, _ATOMIC)


def paren(text: str) -> str:
    return text if _is_atomic(text) else f"({text})"


def _fill(template: str, values: dict[str, str], raw: frozenset[str] = frozenset()) -> str:
    """Substitute {name} placeholders; a value goes in bare where it stands as a whole call
    argument, and parenthesised where precedence could change its meaning. `raw` keys are
    code fragments (".mean()") inserted as they are."""

    def repl(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(key)
        text = values[key]
        if key in raw:
            return text
        before = template[: match.start()].rstrip()
        after = template[match.end():].lstrip()
        as_argument = (before.endswith(("(", ",", "=", "[")) or before == "") and (after.startswith((",", ")", "]")) or after == "")
        if not as_argument:
            return paren(text)
        return _unwrap(text)

    return re.sub(r"\{(\*?\w+)\}", repl, template)


def _ntuple(arg: Arg, n: int, helpers: set[str]) -> str:
    if arg.literal is not None:
        value = ast.literal_eval(arg.literal)
        if isinstance(value, int):
            return repr((value,) * n)
        if isinstance(value, (tuple, list)):
            return repr(tuple(value))
    helpers.add("ntuple")
    return f"ntuple({arg.source}, {n})"


def _conv_padding(arg: Arg, n: int) -> str:
    if arg.literal is not None:
        value = ast.literal_eval(arg.literal)
        if isinstance(value, str):
            if value.lower() not in ("same", "valid"):
                raise Refused(f"padding={arg.source} is not converted")
            return repr(value.upper())
        if isinstance(value, int):
            return repr(((value, value),) * n)
        if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
            return repr(tuple((v, v) for v in value))
    return arg.source  # an int or a tuple of ints at run time: nnx.Conv reads them as torch does


def _conv_transpose_padding(bound: dict, n: int, helpers: set[str]) -> str:
    """torch ConvTranspose padding/output_padding as flax (low, high) pairs (facts sheet 3)."""
    names = ("kernel_size", "padding", "output_padding", "dilation")
    defaults = {"padding": "0", "output_padding": "0", "dilation": "1"}
    args = {k: bound[k] if k in bound else make_arg(defaults[k]) for k in names}
    values = []
    for k in names:
        literal = args[k].literal
        value = ast.literal_eval(literal) if literal is not None else None
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,) * n
        if not (isinstance(value, (tuple, list)) and len(value) == n):
            helpers.add("conv_transpose_padding")
            return f"conv_transpose_padding({', '.join(args[k].source for k in names)}, {n})"
        values.append(value)
    k, p, op, d = values
    return repr(tuple((d[i] * (k[i] - 1) - p[i], d[i] * (k[i] - 1) - p[i] + op[i]) for i in range(n)))


def _normalized_axes(bound: dict, n: int, helpers: set[str]) -> str:
    """nn.LayerNorm's normalized_shape -> the trailing axes a flax LayerNorm normalises over
    (reduction_axes and feature_axes): an int is the last axis, a shape of k sizes the last k."""
    arg = bound["normalized_shape"]
    value = ast.literal_eval(arg.literal) if arg.literal is not None else None
    if isinstance(value, int) and not isinstance(value, bool):
        return "-1"
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value):
        return repr(tuple(range(-len(value), 0)))
    helpers.add("normalized_axes")
    return f"normalized_axes({arg.source})"


def _one_minus(arg: Arg) -> str:
    if arg.literal is not None:
        value = ast.literal_eval(arg.literal)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return repr(float(f"{1 - value:.12g}"))
    return f"1 - {paren(arg.source)}"


# The named transforms of rules_schema.ARG_TRANSFORMS / COMPUTED ("consumed" is handled
# inline): (argument or bound call, ndim, helpers to emit) -> target text.
ARG_TRANSFORMS = {
    "ntuple": _ntuple,
    "conv_padding": lambda arg, n, helpers: _conv_padding(arg, n),
    "one_minus": lambda arg, n, helpers: _one_minus(arg),
}
COMPUTED = {"conv_transpose_padding": _conv_transpose_padding, "normalized_axes": _normalized_axes}
if set(ARG_TRANSFORMS) | {"consumed"} != set(rules_schema.ARG_TRANSFORMS) or set(COMPUTED) != set(rules_schema.COMPUTED):
    raise ImportError("mapping.py's named transforms differ from rules_schema's registry")


def _literal_int(arg: Arg | None, default: int) -> int | None:
    if arg is None:
        return default
    if arg.literal is None:
        return None
    value = ast.literal_eval(arg.literal)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _init_keywords(rule: Rule, bound: dict, helpers: set[str], name: str | None = None) -> list[str]:
    """PyTorch's default initialisers, written out (flax's differ: lecun_normal, zero bias)."""
    init = rule.get("init")
    if init is None:
        return []
    if init == "embedding":
        helpers.add("torch_embedding_init")
        return ["embedding_init=torch_embedding_init"]
    helpers.add("torch_kernel_init")
    out = ["kernel_init=torch_kernel_init"]
    bias = bound.get("bias")
    if isinstance(bias, Arg) and bias.literal == "False":
        return out
    helpers.add("torch_bias_init")
    if init == "linear":
        fan_in = bound["in_features"].source
    else:  # conv: in_channels / groups * prod(kernel_size); transposed: out_channels * prod(k)
        n = int(rule.get("ndim_by_name", {}).get(_short_name(name), rule.get("ndim", 2)))
        channels = "out_channels" if init == "conv_transpose" else "in_channels"
        in_ch, groups, kernel = bound[channels], bound.get("groups"), bound["kernel_size"]
        ic, g = _literal_int(in_ch, 0), _literal_int(groups, 1)
        k = ast.literal_eval(kernel.literal) if kernel.literal is not None else None
        if ic is not None and g is not None and isinstance(k, (int, tuple, list)):
            size = 1
            for v in ((k,) * n if isinstance(k, int) else k):
                size *= v
            fan_in = repr(ic // g * size)
        else:
            helpers.add("ntuple")
            group_text = f" // {paren(groups.source)}" if groups is not None else ""
            fan_in = f"{paren(in_ch.source)}{group_text} * math.prod(ntuple({kernel.source}, {n}))"
    out.append(f"bias_init=torch_bias_init({fan_in})")
    return out


# --------------------------------------------------------------------------- rendering


def render_call(rule: Rule, args: list[Arg], kwargs: dict[str, Arg], *, name: str | None = None,
                ctx: CallContext | None = None) -> Rendered:
    """The JAX expression replacing this call. Raises Refused when it is not converted."""
    ctx = ctx or CallContext()
    if rule.status == "refused":
        reason = rule.get("refuse", {}).get("<always>", "no automatic conversion")
        raise Refused(reason)
    if not rule.supports():
        raise Refused(f"no {rule.target} mapping in the rules tables")
    if rule.kind == "layer" and rule.get("kind") == "container":
        raise Refused("containers are rewritten by the engine")  # never reached for Sequential
    if rule.kind == "layer" and rule.get("value_defaults") and (
            any(a.starred for a in args) or any(a.starred for a in kwargs.values())):
        return _render_through_constructor(rule, args, kwargs, name, ctx)
    bound = bind(rule, args, kwargs, name)
    _check_arguments(rule, bound)
    if rule.kind == "optimizer":
        return _render_optimizer(rule, bound, ctx.clip, ctx.lr_slot)
    if rule.get("templates") is not None:
        return _render_template(rule, bound, name, ctx)
    return _render_target(rule, bound, name, ctx)


def _render_through_constructor(rule: Rule, args: list[Arg], kwargs: dict[str, Arg], name: str | None,
                                ctx: CallContext) -> Rendered:
    """`nn.Conv2d(cin, cout, bias=False, **kwargs)`: the arguments are known only at run time, so
    the call goes through the constructor a layer class used as a value becomes (torch's
    signature and defaults, `value_defaults`): Python binds them as torch would, and an argument
    the conversion refuses (padding_mode, dtype) fails loudly there (TypeError)."""
    params = _decide.layer_value_params(rule)
    defaults = rule.get("value_defaults")
    if params is None or len(params) < 2:  # nn.Dropout(p, **params): every parameter has torch's default
        params = tuple(p for p in rule.get("signature") or () if p not in (rule.get("refuse") or {}))
        if not params or any(p not in defaults for p in params):
            raise Refused("*args/**kwargs are not converted")
    emit = target_of(rule)
    rngs = emit.rngs_name
    inner = _render_target(rule, bind(rule, [make_arg(p) for p in params], {}, name), name, CallContext(rngs=rngs))
    head = ", ".join(f"{p}={defaults[p]}" if p in defaults else p for p in params)
    parts = [("*" if a.starred else "") + a.source for a in args]
    parts += [f"**{a.source}" if k == "**" else f"{k}={a.source}" for k, a in kwargs.items()]
    constructor = f"(lambda {head}, *, {rngs}: {inner.text})"
    return Rendered(emit.render_layer(constructor, parts, ctx.rngs or emit.rngs_expr()), inner.helpers)


def _short_name(name: str | None) -> str:
    return (name or "").rsplit(".", 1)[-1]


def jax_name(rule: Rule, name: str | None) -> str:
    """Per-name JAX spelling for entries that group several torch names (`jax_names`)."""
    short = _short_name(name)
    return rule.get("jax_names", {}).get(short, short)


def target_name(rule: Rule, name: str | None) -> str:
    """The entry's JAX callable for this torch name ({name}/{jax_name} filled in)."""
    return rule.get("target").replace("{name}", _short_name(name)).replace("{jax_name}", jax_name(rule, name))


def _values_for(rule: Rule, bound: dict, name: str | None, ctx: CallContext) -> dict[str, str]:
    key = ctx.key if ctx.key is not None else target_of(rule).key_expr(target_of(rule).rngs_name)
    values: dict[str, str] = {"name": _short_name(name), "key": key, "jax_name": jax_name(rule, name),
                              "op": rule.get("ops", {}).get(_short_name(name), "")}
    if ctx.receiver is not None:
        values["self"] = ctx.receiver
    for param, text in rule.get("defaults", {}).items():
        values[param] = text
    for param, arg in bound.items():
        if isinstance(arg, list):
            values[param] = ", ".join(a.source for a in arg)
            values["*" + param] = values[param]
            if len(arg) == 1:  # torch.zeros((2, 3)), torch.zeros(shape) and torch.zeros(n)
                values[param + "_tuple"] = arg[0].source if _looks_like_shape(arg[0]) else f"({arg[0].source},)"
            else:
                values[param + "_tuple"] = f"({values[param]})"
            # a sequence however it was passed: x.permute(0, 2, 1), x.permute(dims), x.permute(0)
            if len(arg) == 1 and not _is_int(arg[0]):
                values[param + "_seq"] = arg[0].source
            else:
                values[param + "_seq"] = f"({values[param]},)" if len(arg) == 1 else f"({values[param]})"
        else:
            values[param] = arg.source
    for param, table in rule.get("values", {}).items():
        arg = bound.get(param)
        literal = arg.literal if isinstance(arg, Arg) else rule.get("defaults", {}).get(param)
        values[param] = table[literal]
    return values


def _is_int(arg: Arg) -> bool:
    return arg.literal is not None and isinstance(ast.literal_eval(arg.literal), int)


def _looks_like_shape(arg: Arg) -> bool:
    """A single size argument that is already a sequence (a wrong guess fails loudly in JAX)."""
    if arg.literal is not None:
        return not isinstance(ast.literal_eval(arg.literal), int)
    text = arg.source.rstrip()
    return text.endswith(("shape", "size()", "size", ")", "]")) and not text.endswith(("len(", "numel()"))


def _render_template(rule: Rule, bound: dict, name: str | None, ctx: CallContext) -> Rendered:
    effective = _effective(rule, bound)
    present = {p for p in effective if p not in rule.get("values", {})}
    generator = effective.get(rule.get("key_from") or "")
    if isinstance(generator, Arg):  # torch.randn(..., generator=g): g became a key stream of its own
        present.discard(rule.get("key_from"))
        ctx = replace(ctx, key=target_of(rule).key_expr(paren(generator.source)))
    module_form = is_module_form(rule, name)
    if module_form:  # nn.CrossEntropyLoss(...) -> a function of (input, target)
        present |= {"input", "target"}
    key = ",".join(sorted(present))
    templates = rule.get("templates")
    if key not in templates:
        given = ", ".join(sorted(present)) or "no arguments"
        raise Refused(f"{_short_name(name) or rule.label} with {given} is not converted")
    values = _values_for(rule, bound, name, ctx)
    if module_form:
        values.update(input="input", target="target")
    raw = frozenset(rule.get("values", {})) | {"name", "key", "jax_name", "op"}
    text = _fill(templates[key].replace("{name}", values["name"]).replace("{jax_name}", values["jax_name"]), values, raw)
    if module_form:
        text = f"lambda input, target: {text}"
    return Rendered(text, set(rule.get("helpers", [])))


def _render_target(rule: Rule, bound: dict, name: str | None, ctx: CallContext) -> Rendered:
    helpers = set(rule.get("helpers", []))
    target = target_name(rule, name)
    effective = _effective(rule, bound)
    mapping = rule.get("args", {})
    positional: dict[int, str] = {}
    keywords: dict[str, str] = {}
    ndim = int(rule.get("ndim_by_name", {}).get(_short_name(name), rule.get("ndim", 2)))
    for param, alternative in rule.get("target_if_given", {}).items():
        if param in effective:  # nn.Embedding(padding_idx=...) needs more than nnx.Embed
            target = alternative
            helpers.add(alternative)
    extra_keywords = any(p.startswith("**") for p in rule.signature)
    for param, arg in effective.items():
        spec = mapping.get(param)
        if spec is None and extra_keywords and param not in rule.signature:
            keywords[param] = arg.source  # a **kwargs keyword (einops' axis lengths) passes through
            continue
        if spec is None:
            raise Refused(f"argument {param} is not converted")
        if isinstance(spec, int):
            positional[spec] = arg.source
            continue
        if isinstance(spec, str):
            keywords[spec] = arg.source
            continue
        if isinstance(spec, list):
            for kw in spec:
                keywords[kw] = arg.source
            continue
        text = arg.source
        transform = spec.get("transform")
        if "values" in spec:
            text = spec["values"][arg.literal]
        elif transform == "consumed":  # read by a `compute` keyword below
            continue
        elif transform is not None:
            text = ARG_TRANSFORMS[transform](arg, ndim, helpers)
        keywords[spec["to"]] = text
    for keyword, computation in rule.get("compute", {}).items():
        keywords[keyword] = COMPUTED[computation](bound, ndim, helpers)
    for key, text in rule.get("set", {}).items():
        if key.isdigit():
            positional.setdefault(int(key), text)
        else:
            keywords.setdefault(key, text)
    if sorted(positional) != list(range(len(positional))):
        raise Refused("a required argument is missing")
    parts = [positional[i] for i in sorted(positional)]
    parts += [f"{k}={v}" for k, v in keywords.items()]
    if rule.kind == "layer" and rule.get("kind") == "module":
        parts += _init_keywords(rule, bound, helpers, name)
        emit = target_of(rule)
        return Rendered(emit.render_layer(target, parts, ctx.rngs or emit.rngs_expr()), helpers)
    if rule.kind == "layer":  # parameter-free layer: the function itself, arguments bound
        if positional:
            raise Refused("positional arguments to a function layer are not converted")
        if not keywords:
            return Rendered(target, helpers)
        return Rendered(f"partial({target}, {', '.join(parts)})", helpers)
    return Rendered(f"{target}({', '.join(parts)})", helpers)


_PARAMETERS = re.compile(r"^\s*(?P<model>[A-Za-z_][\w.]*)\.parameters\(\s*\)\s*$")


# the trainable parameters: `filter(lambda p: p.requires_grad, model.parameters())` or
# `[p for p in model.parameters() if p.requires_grad]`. Converted, a frozen parameter (freeze(),
# from requires_grad_(False)) is no nnx.Param, so nnx.Optimizer(model, ..., wrt=nnx.Param)
# already leaves it out: the same set as model.parameters()
_TRAINABLE = re.compile(r"^\s*(?:filter\(\s*lambda\s+(?P<p>\w+)\s*:\s*(?P=p)\.requires_grad\s*,\s*"
                        r"(?P<model>[A-Za-z_][\w.]*)\.parameters\(\s*\)\s*\)"
                        r"|\[\s*(?P<q>\w+)\s+for\s+(?P=q)\s+in\s+(?P<model2>[A-Za-z_][\w.]*)\.parameters\(\s*\)\s+"
                        r"if\s+(?P=q)\.requires_grad\s*\])\s*$")


def optimizer_model(params_source: str) -> str | None:
    """The model an optimizer trains: `model.parameters()` -> 'model'; parameter groups
    (`[{'params': model.fc.parameters(), 'lr': ...}, ...]`) -> their one root model (see
    `param_groups`); anything else -> None."""
    match = _PARAMETERS.match(params_source) or _TRAINABLE.match(params_source)
    if match:
        return match.group("model") or match.group("model2")
    groups = param_groups(params_source)
    return groups[0] if isinstance(groups, tuple) else None


# names a parameter-group filter may call besides the parameter name's own str methods
_FILTER_BUILTINS = frozenset({"any", "all", "len", "str", "tuple", "list", "set"})


def param_groups(params_source: str) -> tuple[str, list[tuple[str, dict[str, str]]]] | str | None:
    """`[{'params': SELECTION, 'lr': 0.1}, ...]` -> (root model, [(converted selection, {torch
    argument: source})]); a reason (str) when it is a list of groups that is not converted; None
    when it is not a list of groups at all. A SELECTION is `model.sub.parameters()` or a
    comprehension filtering `model.named_parameters()` by name (or by `p.ndim`)."""
    text = params_source.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, (ast.List, ast.Tuple)) and node.elts and all(isinstance(e, ast.Dict) for e in node.elts)):
        return None
    roots: set[str] = set()
    groups = []
    for group in node.elts:
        keys = [k.value if isinstance(k, ast.Constant) and isinstance(k.value, str) else None for k in group.keys]
        if None in keys or "params" not in keys:
            return "each parameter group must be a dict literal with string keys and 'params'"
        options = {k: _segment(text, v) for k, v in zip(keys, group.values) if k != "params"}
        selection = _group_selection(group.values[keys.index("params")], text)
        if isinstance(selection, str):
            return selection
        root, converted = selection
        roots.add(root)
        groups.append((converted, options))
    if len(roots) != 1:
        return "parameter groups are converted when every group selects parameters of one model"
    return roots.pop(), groups


# what a group filter may read of a parameter: the nnx.Param has ndim/shape/size; torch's
# methods for them (which the rewrite may already have turned into these) -> the attribute
_PARAM_FACTS = {"ndim": "", "shape": "", "size": "", "dim": "ndim", "ndimension": "ndim", "numel": "size"}


def _param_facts(test: str, param: str) -> str:
    """`p.dim() == 1` -> `p.ndim == 1` (p: the parameter's name in the filter)."""
    for method, attribute in _PARAM_FACTS.items():
        if attribute:
            test = re.sub(rf"\b{param}\.{method}\(\s*\)", f"{param}.{attribute}", test)
    return test


def _segment(text: str, node: ast.expr) -> str:
    """The source of `node` as the user wrote it (quotes and parentheses kept)."""
    return ast.get_source_segment(text, node) or ast.unparse(node)


def _group_selection(node: ast.expr, text: str) -> tuple[str, str | tuple[str, str]] | str:
    """(root model, converted text) of one group's 'params', or why it is not converted."""
    unconverted = ("a group's 'params' is converted when it is model.sub.parameters() or "
                   "[p for n, p in model.named_parameters() if <test of n or p.ndim>]")
    if isinstance(node, ast.Call) and not node.args and not node.keywords and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "parameters":
        owner = ast.unparse(node.func.value)
        if not re.fullmatch(r"[A-Za-z_][\w.]*", owner):
            return unconverted
        return owner.split(".")[0], ("parameters", owner)  # the target spells it (render_parameters)
    if not (isinstance(node, (ast.ListComp, ast.GeneratorExp)) and len(node.generators) == 1):
        return unconverted
    loop = node.generators[0]
    source = loop.iter
    if not (isinstance(source, ast.Call) and not source.args and not source.keywords
            and isinstance(source.func, ast.Attribute) and source.func.attr == "named_parameters"
            and isinstance(loop.target, ast.Tuple) and len(loop.target.elts) == 2
            and all(isinstance(t, ast.Name) for t in loop.target.elts)
            and isinstance(node.elt, ast.Name) and node.elt.id == loop.target.elts[1].id and not loop.is_async):
        return unconverted
    owner = ast.unparse(source.func.value)
    if not re.fullmatch(r"[A-Za-z_][\w.]*", owner):
        return unconverted
    name, param = (t.id for t in loop.target.elts)
    bound = {name, param}
    for inner in ast.walk(node):  # names bound by nested comprehensions (any(k in n for k in ...))
        if isinstance(inner, ast.comprehension) and inner is not loop:
            bound |= {n.id for n in ast.walk(inner.target) if isinstance(n, ast.Name)}
    for test in loop.ifs:
        for sub in ast.walk(test):
            if isinstance(sub, ast.Name) and sub.id not in bound | _FILTER_BUILTINS:
                return f"{unconverted}; the test reads {sub.id}"
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == param \
                    and sub.attr not in _PARAM_FACTS:
                return f"{unconverted}; the test reads {param}.{sub.attr} (write {param}.ndim, .shape or .size)"
            if isinstance(sub, ast.Call) and not (isinstance(sub.func, ast.Name) and sub.func.id in _FILTER_BUILTINS
                                                  or isinstance(sub.func, ast.Attribute) and isinstance(sub.func.value, ast.Name)
                                                  and (sub.func.value.id == name or _PARAM_FACTS.get(sub.func.attr))):
                return f"{unconverted}; the test calls {ast.unparse(sub.func)}"
    tests = "".join(f" if {_param_facts(_segment(text, t), param)}" for t in loop.ifs)
    text = f"[{param} for {name}, {param} in torch_named_parameters({owner}){tests}]"
    return owner.split(".")[0], text


def _render_optimizer(rule: Rule, bound: dict, clip: str | None = None, lr_slot: str | None = None) -> Rendered:
    params = bound.get("params")
    groups = param_groups(params.source) if isinstance(params, Arg) else None
    if isinstance(groups, str):
        raise Refused(groups)
    model = optimizer_model(params.source) if isinstance(params, Arg) else None
    if model is None:
        raise Refused("only `model.parameters()` and parameter groups over one model are converted (for "
                      "filter(lambda p: p.requires_grad, ...) write model.parameters(): parameters frozen by "
                      "requires_grad_(False) are no longer trained parameters, so the converted optimizer leaves them out)")
    lr = None
    if lr_slot is not None:  # optax's own lr is 1.0: the scheduled lr is the final factor, as in torch
        if groups is not None:
            raise Refused("an lr scheduler over parameter groups is not converted (each group's lr needs its own "
                          "schedule); schedule one group, or port the scheduler by hand")
        given = bound.get("lr")
        lr = given.source if isinstance(given, Arg) else rule.get("defaults", {}).get("lr")
        if lr is None:
            raise Refused(f"{rule.label} has no learning rate for a scheduler to set")
        bound = {**bound, "lr": make_arg("1.0")}
    if groups is not None and "torch_param_groups" not in target_of(rule).helpers:
        raise Refused(f"parameter groups are not converted for the {target_of(rule).name} target yet")
    if groups is None:
        tx, helpers = _transformation(rule, bound)
    else:  # one transformation per group, from the call's arguments with the group's own on top
        selections, transforms, helpers = [], [], {"torch_param_groups"}
        for selection, options in groups[1]:
            unknown = sorted(set(options) - set(rule.signature))
            if unknown:
                raise Refused(f"parameter group option {unknown[0]!r} is not an argument of {rule.label}")
            merged = {**bound, **{k: make_arg(v) for k, v in options.items()}}
            group_tx, group_helpers = _transformation(rule, merged)
            if isinstance(selection, tuple):  # ("parameters", owner): all of a submodule's
                selection = target_of(rule).render_parameters(selection[1])
            else:
                helpers.add("torch_named_parameters")
            selections.append(selection)
            transforms.append(group_tx)
            helpers |= group_helpers
        tx = f"torch_param_groups({model}, [{', '.join(selections)}], [{', '.join(transforms)}])"
    if lr_slot in ("b1", "momentum"):  # OneCycleLR cycles it: held in the state too
        tx = inject_hyperparameter(tx, lr_slot)
    if clip is not None:  # torch clips the gradient before the optimizer (and its decay) sees it
        tx = f"optax.chain({clip}, {tx})"
    if lr_slot is not None:
        tx = f"with_learning_rate({tx}, {lr})"
        helpers = {*helpers, "with_learning_rate"}
    return Rendered(target_of(rule).render_optimizer(model, tx), helpers)


def _transformation(rule: Rule, bound: dict) -> tuple[str, set[str]]:
    """The optax transformation for these arguments (params aside), and the helpers it uses."""
    _check_arguments(rule, bound)
    effective = _effective(rule, bound)
    always = {"params", "lr", "weight_decay", *rule.get("params_in_templates", [])}
    present = sorted(p for p in effective if p not in always)
    key = ",".join(present)
    templates = rule.get("templates", {})
    if key not in templates:
        return _algorithm(rule, bound, effective, present)
    values = {p: a.source for p, a in bound.items() if isinstance(a, Arg)}
    for param, text in rule.get("defaults", {}).items():
        values.setdefault(param, text)
    template = templates[key]
    betas = bound.get("betas")
    if isinstance(betas, Arg):  # betas=(0.5, 0.999) -> b1=0.5, b2=0.999 rather than (0.5, 0.999)[0]
        pair = ast.literal_eval(betas.literal) if betas.literal is not None else None
        for i in (0, 1):
            value = repr(pair[i]) if isinstance(pair, (tuple, list)) and len(pair) == 2 else f"{paren(betas.source)}[{i}]"
            values[f"beta{i}"] = value
            template = template.replace(f"{{betas}}[{i}]", f"{{beta{i}}}")
    tx = _fill(template, values)
    decay = bound.get("weight_decay")
    has_decay = isinstance(decay, Arg) and decay.literal not in ("0", "0.0")
    if has_decay and not rule.get("weight_decay_in_template"):
        tx = _fill(rule.get("with_weight_decay"), {"weight_decay": decay.source, "optimizer": tx})
    return tx, set()


def inject_hyperparameter(tx: str, name: str) -> str:
    """`optax.adam(1.0, b1=0.8)` -> `optax.inject_hyperparams(optax.adam)(1.0, b1=0.8)`: the
    optax call taking `name` (b1 or momentum) keeps it in its state, where a scheduler sets it."""
    tree = ast.parse(tx, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == "optax" and node.func.attr in INJECTABLE.get(name, ()):
            keyword = "decay" if node.func.attr == "trace" else name  # torch's momentum buffer as its own step
            if not any(k.arg == keyword for k in node.keywords):
                node.keywords.append(ast.keyword(arg=keyword, value=ast.Constant(0.9 if name == "b1" else 0.0)))
            node.func = ast.parse(f"optax.inject_hyperparams({ast.unparse(node.func)})", mode="eval").body
            return ast.unparse(tree)
    raise Refused(f"cannot hold {name} of {tx} in the optimizer's state")


# optax optimizers taking the hyperparameter OneCycleLR cycles
INJECTABLE = {"b1": ("adam", "adamw", "adamax", "nadam", "radam"), "momentum": ("sgd", "rmsprop", "trace")}


def _algorithm(rule: Rule, bound: dict, effective: dict, present: list[str]) -> tuple[str, set[str]]:
    """Arguments no optax template covers: the entry's `algorithm` helper, torch's own update
    rule with torch's signature, called with the arguments as given."""
    algorithm = rule.get("algorithm")
    if algorithm is None:
        raise Refused(f"{rule.label} with {', '.join(present)} is not converted")
    lr = bound.get("lr")
    parts = [lr.source if isinstance(lr, Arg) else rule.get("defaults", {}).get("lr", "")]
    parts += [f"{p}={_unwrap(a.source)}" for p, a in effective.items() if p not in ("params", "lr")]
    return f"{algorithm}({', '.join(p for p in parts if p)})", {algorithm}


def dtype_target(qualname: str) -> str | None:
    return load_rules().dtypes.get(qualname)


def _renders_from(rule: Rule, params: tuple[str, ...]) -> bool:
    """Whether `rule` renders from these arguments alone (core.decide asks: a layer class used as
    a value becomes a constructor taking just them)."""
    try:
        render_call(rule, [make_arg(p) for p in params], {}, name=rule.names[0], ctx=CallContext(rngs="rngs"))
        return True
    except Exception:  # noqa: BLE001 -- Refused, or a template needing an argument not given
        return False


_decide.render_probe = _renders_from
