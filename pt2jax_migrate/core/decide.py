"""One verdict per torch call site, for lint and rewrite alike.

The front ends only extract facts (`CallSite`: the qualified name, the arguments as source text,
how the call stands in its statement, what the training-step planner found) and ask `decide_call`.
Lint turns the `Decision` into a Finding; rewrite renders a fixable one (through the target) or
writes a TODO with the same code and reason. The hand-coded constructs (no_grad forms, seeding,
device queries, nn.Parameter, containers, gradient clipping, schedulers, data pipelines) are
decided here once; table entries (checkpoints among them) go through mapping.check_call.

Framework-neutral: no ast, no libcst, no target names in the logic (messages may say what the
default target writes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from .calls import arguments_from_text, tensor_method_applies
from . import parallel
from .data import KEPT, MANUAL, data_verdict, is_data_pipeline, kept_message
from .inits import (COPY, INIT_FUNCTIONS, INIT_LAYOUTS, PARAMETER_LAYER, InitRead, InitSite, InitTarget, is_random,
                    KEPT_LAYER, kept_layer_reason)
from .constructs import (CONTAINER_BASES, container_base_message, CONSUMED_BY_TORCH_CALLS, CONTAINERS, DECIDED_ELSEWHERE, MODULE_BASES, NO_GRAD, PARAMETER, TORCHSCRIPT_DECORATORS,
                         construct_code, isinstance_message, parameter_refusal, torch_only_method)

DEVICE = frozenset({"torch.device", "torch.cuda.is_available"})
CLIP = "torch.nn.utils.clip_grad_norm_"
CLIPS = (CLIP, "torch.nn.utils.clip_grad_value_")  # trainstep.CLIPS says what each becomes
SEED = "torch.manual_seed"
SCHEDULER_PREFIX = "torch.optim.lr_scheduler."
SEEDS = frozenset({SEED, "torch.random.manual_seed"})  # the global generator's seed, under either name
GENERATOR = "torch.Generator"
DISTRIBUTIONS = ("of torch.distributions only Categorical, Normal and Bernoulli are converted; write this one "
                 "with jax.random and its closed-form log_prob by hand")
KEPT_OPTIMIZER = ("kept in PyTorch: the training step that calls {name}.step() is not converted; "
                  "convert the two together")

# how lint names what a fixable table entry converts (`torch.nn.Linear layer construction`)
NOUNS = {
    "PTJ102": "layer construction",
    "PTJ103": "call",
    "PTJ104": "tensor creation",
    "PTJ105": "tensor method",
    "PTJ106": "loss",
    "PTJ201": "optimizer",
    "PTJ301": "global seeding",
    "PTJ302": "device placement",
    "PTJ402": "checkpoint",
}

# how a call stands in its statement (set by the front end)
from .statements import DECORATOR, EXPR, VALUE, WITH, WITH_AS  # noqa: E402


@dataclass(frozen=True)
class CallSite:
    """The facts about one call of a torch name, as either front end sees them."""

    qualname: str
    args: tuple[tuple[str, bool], ...] = ()  # (source text, starred) per positional argument
    kwargs: tuple[tuple[str | None, str], ...] = ()  # (keyword or None for **, source text)
    statement: str = VALUE  # EXPR | WITH | WITH_AS | DECORATOR | ASSIGN | VALUE
    in_train_step: bool = False  # on a line the training-step planner converts
    kept_optimizer: str | None = None  # `opt = torch.optim.X(...)` whose training step stays PyTorch
    kept_reason: str | None = None  # why that optimizer stays (default: its training step is not converted)
    scheduler: str | None = None  # an lr scheduler: "" converts with its optimizer, else why not (None: unknown)
    feeds_data: bool = False  # builds a generator handed to torch.utils.data (data_generators.py)
    array_dataset: bool = False  # DataLoader(ds, ...): ds is a TensorDataset built in this file (core.data)
    data_parallel: bool = True  # the target converts data-parallel wrappers (it converts train steps)


@dataclass(frozen=True)
class Decision:
    code: str
    fixable: bool
    message: str  # lint's message: what the call becomes, or why it is left for a person
    safety: str = "safe"  # safe | unsafe (fixable), manual (not)
    action: str = "rule"  # how a fixable call is rendered: no_grad | seed | device | parameter | container | clip | rule
    rule: object = None  # the table entry (rules.Rule) for action "rule"/"container"


def manual(code: str, message: str) -> Decision:
    return Decision(code, False, message, "manual", "")


def note(code: str, message: str) -> Decision:
    """Kept as it is, by policy: nothing for a person to do (reported as a note)."""
    return Decision(code, False, message, "", "note")


def decide_scheduler(q: str, verdict: str) -> Decision:
    """An lr scheduler, called or referenced: the schedule plan's verdict ("" converts)."""
    if verdict:
        return manual("PTJ205", f"{q}: {verdict}")
    name = q[len(SCHEDULER_PREFIX):]
    return Decision("PTJ205", True, f"{q}: becomes the {name} helper (host-side, torch's exact lr sequence, "
                    "written into the optimizer's state)", action="scheduler")


def decide_data(site: CallSite) -> Decision:
    """A data-pipeline call (core.data): an array dataset/loader, or kept by the policy."""
    kind, message, safety = data_verdict(site.qualname, site.args, site.kwargs, site.array_dataset)
    if kind == KEPT:
        return note("PTJ401", message)
    if kind == MANUAL:
        return manual("PTJ401", message)
    return Decision("PTJ401", True, message, safety, kind)


def category(qualname: str) -> Decision | None:
    """Whole families with no JAX counterpart to convert to."""
    if qualname.startswith("torch.optim.lr_scheduler."):
        return manual("PTJ205", f"{qualname}: write an optax schedule (a function of the step) by hand")
    if qualname.startswith(("torch.utils.data.", "torchvision")) or qualname == "torch.utils.data":
        return manual("PTJ401", f"{qualname}: data loading has no JAX counterpart; feed numpy arrays")
    return None


def unsupported(qualname: str, why: str = "") -> Decision:
    return manual("PTJ901", f"{qualname}: {why}" if why else f"{qualname} has no automatic conversion; port it by hand")


# How a front end asks whether a table entry converts these arguments for its target:
# check(rule, name, args, kwargs) -> None (converts) or the reason it is left (mapping.check_rule).
Check = Callable[[object, str, tuple, tuple], "str | None"]


def decide_call(site: CallSite, rules, check: Check) -> Decision:
    """The verdict on one torch call (`rules` is a rules.RuleSet)."""
    q = site.qualname
    if q == GENERATOR and site.feeds_data:
        return manual("PTJ401", f"{q}: feeds the data pipeline (torch.utils.data stays PyTorch), so it stays a "
                                "torch.Generator; the converted code draws from its own keys")
    if q in NO_GRAD:
        if site.statement in (WITH, DECORATOR):
            return Decision("PTJ304", True, f"{q}(): JAX computes gradients only when asked", action="no_grad")
        if site.statement == WITH_AS:
            return manual("PTJ304", f"`with {q}() as ...`: the bound context is used; remove it by hand")
        return unsupported(q, "only `with` blocks and decorators are converted")
    if q in SEEDS:
        if site.statement == EXPR:
            rule = rules.by_name.get(q)
            return Decision("PTJ301", True, f"{q}(): becomes an explicit random-key stream",
                            rule.get("safety", "safe") if rule is not None else "unsafe", "seed", rule)
        return manual("PTJ301", f"{q}() used as a value: only the statement `torch.manual_seed(s)` is converted")
    if q in parallel.WRAPPERS:
        if not site.data_parallel:
            return manual(parallel.CODE, f"{q}: not converted for this target, which has no converted train "
                                         "step to shard yet (the default target, nnx, converts it)")
        reason = parallel.wrapper_refusal(q, site.args, site.kwargs, site.statement)
        if reason is not None:
            return manual(parallel.CODE, f"{q}: {reason}")
        return Decision(parallel.CODE, True, parallel.wrapper_message(q), action="data_parallel")
    if q in parallel.PROCESS_CALLS:
        reason = parallel.process_refusal(q, site.args, site.kwargs, site.statement)
        if reason is not None:
            return manual(parallel.CODE, f"{q}: {reason}")
        return Decision(parallel.CODE, True, parallel.process_message(q), action="process_group")
    if q.startswith(parallel.DISTRIBUTED_PREFIX):
        return manual(parallel.CODE, parallel.distributed_refusal(q))
    if q in DEVICE:
        return Decision("PTJ302", True, f"{q}(): JAX places arrays on its default device itself", action="device")
    if q in PARAMETER:
        reason = parameter_refusal(list(site.args), {k: v for k, v in site.kwargs if k is not None})
        if reason is not None:
            return manual("PTJ901", f"{q}: {reason}")
        return Decision("PTJ102", True, f"{q}(): becomes a parameter of the converted module", action="parameter")
    if q in CLIPS:  # folded into the optimizer when its training step is converted
        short = q.rsplit(".", 1)[1]
        if site.in_train_step:
            into = "optax.clip_by_global_norm" if q == CLIP else "optax.clip"
            return Decision("PTJ204", True, f"{short}(): becomes {into} in the optimizer", action="clip")
        return manual("PTJ204", f"{short}(): converted only inside a recognised training step")
    if q.startswith(SCHEDULER_PREFIX) and site.scheduler is not None:  # decided with its optimizer
        return decide_scheduler(q, site.scheduler)
    if is_data_pipeline(q):
        return decide_data(site)
    found = category(q)
    if found is not None:
        return found
    rule = rules.by_name.get(q)
    if rule is None:
        return unsupported(q, DISTRIBUTIONS if q.startswith("torch.distributions.") else "")
    noun = NOUNS.get(rule.code, "call")
    reason = check(rule, q, site.args, site.kwargs)
    if reason is None and rule.kind == "optimizer" and site.kept_optimizer is not None:
        reason = (f"kept in PyTorch: {site.kept_reason}" if site.kept_reason
                  else KEPT_OPTIMIZER.format(name=site.kept_optimizer))
    if reason is not None:
        return Decision(rule.code, False, f"{q}: {reason}", "manual", "", rule)
    action = "container" if q in CONTAINERS else "rule"
    return Decision(rule.code, True, f"{q} {noun}", rule.get("safety", "safe"), action, rule)


# ------------------------------------------------------------------------------ references

# torch names used as values (not called) that are renamed wherever they stand, besides dtypes
VALUE_NAMES = {"torch.Tensor": "jax.Array"}
UNSAFE_VALUE_NAMES = frozenset({"torch.int64", "torch.long"})  # 64-bit ints become JAX's 32-bit ones


@dataclass(frozen=True)
class ReferenceSite:
    """A torch name used without calling it: a base class, a decorator, a dtype, an annotation,
    a function passed around, the type in isinstance(x, T)."""

    qualname: str
    base_of: str | None = None  # the class it is a base of
    decorator: bool = False
    in_isinstance: bool = False
    in_annotation: bool = False  # a type (`-> nn.Conv2d`), never a value
    file_names: frozenset[str] = frozenset()  # every torch name the file names (isinstance_facts)
    tested_with: tuple[str, ...] = ()  # the torch names the same isinstance(x, (A, B)) tests


def converted_as_value(rule) -> bool:
    """A function rule substituted when it is passed around uncalled (F.relu -> jax.nn.relu)."""
    return (rule.kind == "function" and bool(rule.get("target")) and rule.get("templates") is None
            and rule.status == "exact")


_RENDERS: dict[tuple[int, tuple[str, ...]], bool] = {}
# Whether the target's renderer builds a layer from these arguments alone; mapping.py registers it
# when imported (core never imports the layers above it; both front ends import mapping).
render_probe: Callable[[object, tuple[str, ...]], bool] | None = None


def _renders_from(rule, params: tuple[str, ...]) -> bool:
    """Whether the table renders the layer from `params` alone (nn.Conv2d needs kernel_size too):
    asked of the renderer itself so that lint and rewrite cannot differ."""
    key = (id(rule), params)
    if key not in _RENDERS:
        if render_probe is None:
            raise RuntimeError("core.decide.render_probe is not registered (import pt2jax_migrate.mapping)")
        _RENDERS[key] = render_probe(rule, params)
    return _RENDERS[key]


def layer_value_params(rule) -> tuple[str, ...] | None:
    """A torch layer class passed around uncalled (`norm_layer=nn.BatchNorm2d`,
    `activation_layer=nn.ReLU`) becomes a constructor taking `rngs`: for a layer that becomes a
    module, one taking its first parameter (`lambda num_features, *, rngs: TorchBatchNorm(...)`);
    for one that becomes a function, one taking only the parameters JAX ignores (`inplace`).
    Those shapes convert exactly; any other call of the constructor fails loudly (TypeError).
    The parameters of the constructor, or None when the layer is not converted this way."""
    if rule is None or rule.kind != "layer" or rule.status != "exact" or rule.get("templates") is not None:
        return None
    signature = tuple(rule.get("signature") or ())
    if rule.get("kind") == "module" and signature:
        if _renders_from(rule, signature[:1]):
            return signature[:1]
        defaults = rule.get("value_defaults")  # conv_layer=nn.Conv2d: the whole signature, torch's defaults
        skip = set(rule.get("ignore") or ()) | set(rule.get("refuse") or ())
        params = tuple(p for p in signature if p not in skip)
        required = [p for p in params if p not in (defaults or {})]
        if defaults and params[:len(required)] == tuple(required) and _renders_from(rule, params):
            return params
        return None
    ignored = set(rule.get("ignore") or ())
    if rule.get("kind") == "function" and set(signature) <= ignored:
        return signature
    if rule.get("kind") == "function" and _defaults_written(rule, ignored) and _renders_from(rule, ()):
        # activation_layer=nn.GELU: called with no argument it is torch's default (written out by
        # the table's `set`); any argument other than the ignored ones fails loudly (TypeError)
        return tuple(p for p in signature if p in ignored)
    return None


def _defaults_written(rule, ignored: set[str]) -> bool:
    """Every parameter JAX does not ignore has torch's default written by the table (`set`)."""
    args, written = rule.get("args") or {}, rule.get("set") or {}
    for param in rule.get("signature") or ():
        if param in ignored:
            continue
        to = args.get(param)
        to = to.get("to") if isinstance(to, dict) else to
        if not isinstance(to, str) or to not in written:
            return False
    return True


def layer_base(rules, q: str | None) -> str | None:
    """The helper class a user class subclassing torch layer `q` gets as its base (the table's
    `subclass_base`), or None: that layer is not converted as a base class."""
    rule = rules.by_name.get(q) if q is not None else None
    return rule.get("subclass_base") if rule is not None else None


def decide_reference(site: ReferenceSite, rules) -> Decision:
    q = site.qualname
    if is_data_pipeline(q):  # a Dataset subclass, a transform passed around: the data pipeline stays
        return note("PTJ401", f"class {site.base_of} stays a {q}: torch.utils.data stays for data loading only "
                              "(data-pipeline policy)" if site.base_of is not None else kept_message(q))
    if site.base_of is not None:
        if q in MODULE_BASES:
            return Decision("PTJ101", True, f"class {site.base_of} subclasses torch.nn.Module", action="module_base")
        if q in CONTAINER_BASES:  # core.structure: the container's own class is the base
            return Decision("PTJ101", True, container_base_message(site.base_of, q), action="container_base")
        base = layer_base(rules, q)
        if base is not None:
            return Decision("PTJ101", True, f"class {site.base_of} subclasses {q}: its base becomes {base}, the "
                                            "converted layer with torch's constructor and attribute names",
                            action="layer_base")
        found = category(q) or unsupported(q)
        rule = rules.by_name.get(q)
        if rule is not None and rule.get("target"):  # a converted layer, but not as a base class
            return manual(found.code, f"class {site.base_of} subclasses {q}, converted as {rule.get('target')} whose "
                                      "constructor and attribute names differ from torch's: hold the layer instead "
                                      f"(self.inner = {q.rpartition('.')[2]}(...), called in forward) or port the "
                                      "class by hand")
        return manual(found.code, f"class {site.base_of} subclasses {q}, which is not converted: port the class "
                                  "by hand (or write it as a converted module)")
    if q in MODULE_BASES:  # an annotation, Callable[..., nn.Module], isinstance(m, nn.Module)
        return Decision("PTJ104", True, f"{q} used as a value becomes the target's module class", "safe", "rename")
    if q in NO_GRAD and site.decorator:
        return Decision("PTJ304", True, f"@{q}: JAX computes gradients only when asked", action="no_grad")
    if q in TORCHSCRIPT_DECORATORS and site.decorator:
        return Decision("PTJ103", True, f"@{q}: a TorchScript marker; eager PyTorch runs the function as written, "
                                        "so it is removed", action="drop_decorator")
    target = rules.dtypes.get(q) or VALUE_NAMES.get(q)
    if target is not None:
        return Decision("PTJ104", True, f"{q} becomes {target}", "unsafe" if q in UNSAFE_VALUE_NAMES else "safe",
                        "rename")
    rule = rules.by_name.get(q)
    if rule is not None and converted_as_value(rule):
        return Decision(rule.code, True, f"{q} used as a value becomes {rule.get('target')}",
                        rule.get("safety", "safe"), "value", rule)
    if q.startswith(SCHEDULER_PREFIX) and site.scheduler is not None:  # decided with its optimizer
        return decide_scheduler(q, site.scheduler)
    found = category(q)
    if found is not None:
        return found
    if not (site.in_isinstance or site.in_annotation) and layer_value_params(rule) is not None:
        return Decision(rule.code, True, f"{q} used as a value becomes a constructor taking rngs",
                        rule.get("safety", "safe"), "layer_value", rule)
    if site.in_annotation and rule is not None and rule.kind == "layer" and rule.get("kind") in ("module", "container"):
        # `-> nn.Conv2d`, `self.stage2: nn.Sequential`: a type, never run; it names the converted class
        # (or the target's module base class when the layer becomes a helper class)
        return Decision("PTJ104", True, f"{q} in an annotation becomes the converted layer's module class",
                        action="annotation", rule=rule)
    if site.in_isinstance:
        target = isinstance_class(rule)
        also = isinstance_also_matches(rules, q, site.file_names, site.tested_with)
        if target is not None and also:
            return manual("PTJ901", f"isinstance(..., {q}) would also match {' / '.join(also)} layers here: "
                                    f"they all become {target}; tell them apart another way (kernel_size, "
                                    "num_features) or port the check by hand")
        if target is not None:
            return Decision(rule.code, True, f"isinstance(..., {q}) tests the converted class {target}",
                            action="isinstance", rule=rule)
        return manual("PTJ901", isinstance_message(q))
    return unsupported(q)


# torch subclasses of another layer class: isinstance(m, nn.Linear) matches them in torch too
_TORCH_SUBCLASS_OF = {"torch.nn.NonDynamicallyQuantizableLinear": "torch.nn.Linear"}


def isinstance_target(rules, q: str) -> str | None:
    """The converted class other layers may share with `q` (None: the file's names do not matter
    to an isinstance test of `q`, and a front end need not gather them)."""
    rule = rules.by_name.get(q)
    return (rule.get("target") or None) if rule is not None and rule.kind == "layer" else None


def isinstance_also_matches(rules, q: str, file_names: frozenset[str], tested_with: tuple[str, ...]) -> list[str]:
    """The other torch layer classes the file names that become the same converted class as `q`
    (nn.Conv1d, nn.Conv2d -> one class) and that the same isinstance call does not test too:
    the converted test of `q` would match their layers as well, where torch's does not."""
    target = isinstance_target(rules, q)
    if not target:
        return []
    also = []
    for other in sorted(file_names - {q} - set(tested_with)):
        found = rules.by_name.get(other)
        if (found is not None and found.kind == "layer" and found.get("target") == target
                and _TORCH_SUBCLASS_OF.get(other) != q):
            also.append(other)
    return also


def isinstance_class(rule) -> str | None:
    """The class a converted layer is an instance of (None: it does not become one class)."""
    if rule is None or rule.kind != "layer" or rule.get("templates") is not None:
        return None
    target = rule.get("target") or ""
    return target if target.rpartition(".")[2][:1].isupper() else None


# ------------------------------------------------------------------------------ initialisation


def _init_layout(rules, layers: tuple[str, ...], attribute: str) -> tuple[str, str | tuple] | str:
    """(converted attribute, transform) from the weight tables for `attribute` of every class
    the module may be, or why there is none. Classes that store it under one name in different
    layouts (isinstance(m, (nn.Conv2d, nn.Linear))) give ((converted class, transform), ...):
    the layout is chosen by the module's class at run time."""
    found = set()
    per_class = []
    for q in layers:
        if q == PARAMETER_LAYER:
            found.add(("", "copy"))
            continue
        rule = rules.by_name.get(q)
        weights = rule.get("weights") if rule is not None else None
        entry = next((w for w in weights or () if w.get("torch") == attribute), None)
        if entry is None:  # `weight_ih_l*` -> `*`: every name with the prefix, kept as it is
            entry = next((dict(w, to=attribute if w.get("to") == "*" else w.get("to")) for w in weights or ()
                          if w.get("torch", "").endswith("*") and attribute.startswith(w["torch"][:-1])), None)
        if entry is None or not entry.get("to"):
            return f"{q} has no converted parameter for .{attribute}"
        found.add((entry["to"], entry.get("transform", "copy")))
        per_class.append((isinstance_class(rule), entry.get("transform", "copy")))
    if len({to for to, _ in found}) != 1 or (len(found) > 1 and any(c is None for c, _ in per_class)):
        return f"the classes in isinstance(...) store .{attribute} differently; test them one at a time"
    if len(found) > 1:
        return found.pop()[0], tuple(dict(per_class).items())  # one converted class may stand for several
    return found.pop()


def _weight_entry(rules, layer: str, attribute: str) -> bool:
    """Whether `layer`'s weight table names `attribute` (exactly or by a `weight_ih_l*` prefix)."""
    rule = rules.by_name.get(layer)
    return any(w.get("torch") == attribute or w.get("torch", "").endswith("*") and attribute.startswith(w["torch"][:-1])
               for w in (rule.get("weights") or () if rule is not None else ()))


def decide_init(site: InitSite, rules) -> Decision:
    """The verdict on one parameter init (an nn.init call or an in-place tensor method)."""
    kind = site.kind
    code = "PTJ105" if site.method else "PTJ103"
    tensor = f"{site.owner}.{site.attribute}" if site.attribute else site.owner
    name = f"in-place {kind.rstrip('_')} init of {tensor}" if site.method else f"torch.nn.init.{kind}({tensor})"
    if not site.layers:
        return manual(code, f"{name}: which layer this tensor belongs to is not known here; "
                            "narrow it with isinstance(m, nn.X) or build it as self.x = nn.X(...)")
    kept = kept_layer_reason(site.layers)
    if kept is not None:
        return manual(code, f"{name}: {kept}")
    layout = _init_layout(rules, site.layers, site.attribute)
    if isinstance(layout, str):
        return manual(code, f"{name}: {layout}")
    to, transform = layout
    transforms = [t for _, t in transform] if isinstance(transform, tuple) else [transform]
    if any(t not in INIT_LAYOUTS for t in transforms):
        return manual(code, f"{name}: an init through the layout {transforms[0]!r} is not converted")
    params = INIT_FUNCTIONS[kind][1] if kind != COPY else ("src",)
    keywords = [k for k, _ in site.kwargs]
    if any(k is None or k not in params for k in keywords) or any(s for _, s in site.args) \
            or len(site.args) > len(params) or "generator" in keywords:
        return manual(code, f"{name}: these arguments are not converted (a torch Generator, ** or unknown names)")
    random = is_random(kind)
    if random and not site.key_available:
        return manual(code, f"{name} draws random numbers: converted only in __init__, a method only "
                            "__init__ calls, or a function passed to module.apply (where a random key is at hand)")
    receiver = site.owner if site.attribute == "" else f"{site.owner}.{to}"
    message = f"{name}: writes {receiver} through the weight table's {'/'.join(sorted(set(transforms)))} layout"
    return Decision(code, True, message, "unsafe" if random else "safe", "init",
                    InitTarget(receiver, transform, kind, random))


def decide_init_read(read: InitRead, rules) -> InitTarget | None:
    """Where a parameter read in an init function (`m.weight.numel()`) reads the converted
    parameter, in torch's layout (None: no weight-table entry says; the read is left as is)."""
    if kept_layer_reason(read.layers) is not None:
        return None  # the layer stays PyTorch (its reads are reported: decide_layer_read)
    layout = _init_layout(rules, read.layers, read.attribute)
    if isinstance(layout, str):
        return None
    to, transform = layout
    transforms = [t for _, t in transform] if isinstance(transform, tuple) else [transform]
    if any(t not in INIT_LAYOUTS for t in transforms):
        return None
    return InitTarget(f"{read.owner}.{to}", transform, "read", False)


# nn.Module's own API, judged where it is called (core.constructs / the method tables)
_MODULE_API = frozenset({"apply", "modules", "named_modules", "children", "named_children", "parameters",
                         "named_parameters", "buffers", "named_buffers", "reset_parameters", "train", "eval",
                         "training", "to", "cuda", "cpu", "zero_grad", "register_buffer", "register_parameter",
                         "add_module", "state_dict", "load_state_dict", "extra_repr", "forward"})


def decide_layer_attribute(read: InitRead, rules, attributes: dict | None) -> Decision | None:
    """A layer's attribute that is no parameter read in init code (`m.out_channels`), for a
    target whose converted layers name their configuration otherwise (`attributes`:
    Target.layer_attributes, torch class -> {attribute: expression}; None: the same names, no
    finding). Fixable when every layer the owner may be gives it one way; otherwise a TODO."""
    if attributes is None or read.reported or kept_layer_reason(read.layers) is not None \
            or any(_weight_entry(rules, q, read.attribute) for q in read.layers):
        return None  # reported reads, kept layers and parameters: decide_layer_read / decide_init_read
    if read.attribute in _MODULE_API or not all((rules.by_name.get(q) or {}).get("weights") for q in read.layers):
        return None  # a method (judged as a call) or a layer without parameters (a container, ReLU)
    tensor = f"{read.owner}.{read.attribute}"
    texts = {attributes.get(q, {}).get(read.attribute) for q in read.layers}
    if len(texts) == 1 and None not in texts:
        return Decision("PTJ105", True, f"{tensor} read in init code -> the converted layer's", "safe",
                        "layer_attribute", texts.pop())
    names = "/".join(sorted(q.rpartition(".")[2] for q in read.layers))
    return manual("PTJ105", f"{tensor} read in init code: the converted {names} has no "
                            f".{read.attribute} for this target (read it off its variables or fields)")


def decide_layer_read(read: InitRead, rules, converts: bool = True) -> Decision | None:
    """A converted layer's parameter or statistic read outside init code (`self.emb.weight` in
    forward, `model.bn.running_var` in a script): the converted layer names and lays it out as the
    weight table says, so the read goes through the table to torch's layout. None: the converted
    layer holds it under the same name in the same layout (`self.fc.bias`), nothing to change."""
    tensor = f"{read.owner}.{read.attribute}"
    kept = kept_layer_reason(read.layers)
    if kept is not None:  # the layer stays PyTorch: its reads never go through the weight tables
        layers = tuple(q.removeprefix(KEPT_LAYER) for q in read.layers)
        if not any(_weight_entry(rules, q, read.attribute) for q in layers):
            return None
        return manual("PTJ105", f"{tensor} read: {kept}")
    if not any(_weight_entry(rules, q, read.attribute) for q in read.layers):
        return None  # not a parameter or statistic of the layer (`fc.in_features`, a tensor's `.shape`)
    layout = _init_layout(rules, read.layers, read.attribute)
    if isinstance(layout, str):
        return manual("PTJ105", f"{tensor} read: {layout}")
    to, transform = layout
    transforms = [t for _, t in transform] if isinstance(transform, tuple) else [transform]
    if any(t not in INIT_LAYOUTS for t in transforms):
        return manual("PTJ105", f"{tensor} read: the converted layer stores it as .{to} in the layout "
                                f"{transforms[0]!r}, which is not read back here")
    if to == read.attribute and transforms == ["copy"]:
        return None
    how = "" if transforms == ["copy"] else f" ({'/'.join(sorted(set(transforms)))} layout)"
    if not converts:  # the target (`converts`: Target.converts_layer_reads) has no such read yet
        return manual("PTJ105", f"{tensor} read: the converted layer holds it as .{to}{how}; not converted "
                                "for this target (read the layer's variables instead)")
    return Decision("PTJ105", True, f"{tensor} read -> the converted layer's .{to}{how}, in torch's layout",
                    "safe", "layer_read", InitTarget(f"{read.owner}.{to}", transform, "read", False))


def decide_apply(function: str) -> Decision:
    """`module.apply(fn)` where fn is an init function of this file."""
    return Decision("PTJ103", True, f"apply({function}): runs {function} on every submodule, children first",
                    action="module_apply")


# ------------------------------------------------------------------------------ methods

DEVICE_METHODS = frozenset({"to", "cuda", "cpu"})
MODE_METHODS = frozenset({"train", "eval"})
STEP_METHODS = {"zero_grad": "PTJ202", "backward": "PTJ203", "step": "PTJ204"}


@dataclass(frozen=True)
class MethodSite:
    """A method call on something that is not a torch name (`x.view(2, 3)`, `self.register_buffer(...)`)."""

    method: str
    args: tuple[tuple[str, bool], ...] = ()
    kwargs: tuple[tuple[str | None, str], ...] = ()
    arg_kinds: tuple[str, ...] = ()  # 'str' for a string-literal positional argument, 'other' otherwise
    receiver: str = "<expr>"  # dotted text of the receiver, '<str>' / '<const>' / '<expr>'
    bare_receiver: str | None = None  # the receiver when it is a plain name
    receiver_is_not_tensor: bool = False  # bound to something that is not an array (a list, a str, ...)
    inside_torch_call: bool = False  # an argument of a torch call (`SGD(model.parameters(), ...)`)
    training_call: bool = True  # for step(): an optimizer's step (not a scheduler's, not unrelated)
    in_train_step: bool = False  # on a line the training-step planner converts
    init_function: str | None = None  # apply(fn): fn is an init function of this file
    feeds_data: bool = False  # reseeds a generator handed to torch.utils.data (kept with it)


def decide_method(site: MethodSite, rules, check: Check) -> Decision | None:
    """The verdict on a method call, or None when it is not PyTorch's (as far as can be told)."""
    method = site.method
    if site.feeds_data:
        return None  # `g.manual_seed(s)` of a DataLoader's generator: PyTorch's, as the loader is
    if method in DEVICE_METHODS:
        return Decision("PTJ302", True, f".{method}(): JAX places arrays on its default device itself",
                        action="device_move")
    if method in MODE_METHODS:
        return Decision("PTJ303", False, f".{method}(): kept as is (converted modules have train() and eval() too)", "",
                        "note")
    code = STEP_METHODS.get(method)
    if code is not None:
        if not site.training_call:
            return None
        if site.in_train_step:
            return Decision(code, True, f".{method}(): part of a train step that becomes one jitted train_step "
                            "(value_and_grad + optimizer update)", action="train_step")
        return manual(code, f".{method}(): not part of a train step the rewrite recognises "
                            "(zero_grad / forward / loss / backward / step); port it by hand")
    if method == "apply" and site.init_function is not None:
        return decide_apply(site.init_function)
    if method in CONSUMED_BY_TORCH_CALLS and site.inside_torch_call:
        return None  # torch.optim.SGD(model.parameters(), ...), parameter groups: the optimizer decides
    rule = rules.methods.get(method)
    if rule is not None:
        found = _table_method(rule, method, site.args, site.kwargs, site.bare_receiver, site.receiver_is_not_tensor,
                              check)
        if found is not None:
            return found
    return decide_torch_only(site)


@functools.lru_cache(maxsize=16384)
def _table_method(rule, method: str, args: tuple, kwargs: tuple, bare: str | None, not_tensor: bool,
                  check: Check) -> Decision | None:
    """A tensor-method table entry's verdict (None: the entry does not apply to this call).
    Memoised on the arguments' text, which repeats a lot in real code (lint's speed)."""
    arg_list, kwarg_map = arguments_from_text(args, kwargs)
    not_tensors = {bare} if not_tensor and bare else set()
    if not tensor_method_applies(rule, arg_list, kwarg_map, receiver=bare, not_tensors=not_tensors):
        return None
    reason = check(rule, method, args, kwargs)
    if reason is None:
        return Decision(rule.code, True, f".{method}() tensor method", rule.get("safety", "safe"), "rule", rule)
    return Decision(rule.code, False, f".{method}(): {reason}", "manual", "", rule)


def decide_torch_only(site: MethodSite) -> Decision | None:
    """A method only torch tensors/modules have (core.constructs), when no table entry took it."""
    method = site.method
    if method in DECIDED_ELSEWHERE:
        return None
    if method in CONSUMED_BY_TORCH_CALLS and site.inside_torch_call:
        return None  # torch.optim.SGD(model.parameters(), ...): the optimizer decides
    reason = torch_only_method(method, list(site.arg_kinds), [k for k, _ in site.kwargs], site.receiver)
    if reason is not None and method == "modules" and not site.args and not site.kwargs:
        # `for m in self.modules():` (the init loop of most model code): every submodule
        return Decision("PTJ103", True, "modules(): every submodule and the module itself", action="modules")
    return None if reason is None else manual(construct_code(method), reason)
