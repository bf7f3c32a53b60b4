"""Facts about parameter initialisation in one module, from its `ast` (lint and rewrite alike).

Finds the init calls (`nn.init.K(m.weight, ...)`, `m.weight.data.normal_(...)`) and what module
each one's tensor belongs to: a name narrowed by an enclosing `if isinstance(m, nn.Linear):`
or an attribute assigned a torch layer (`self.fc = nn.Linear(...)`) or an `nn.Parameter` in the
class's __init__; the init functions handed to `module.apply(fn)` or run only by __init__
(`self.init_weights()`) and whether they draw random numbers. The verdicts are core.decide.decide_init's.
"""

from __future__ import annotations

import ast
import io
from bisect import bisect_left
import re
from dataclasses import dataclass, field
from functools import lru_cache

from .astwalk import walk as _walk
from .core.constructs import MODULE_METHODS
from .core.decide import CallSite, decide_call
from .core.inits import (COPY, INIT_FUNCTIONS, INIT_HELPER, INPLACE_METHODS, KEPT_LAYER, PARAMETER_LAYER, InitRead,
                         InitSite, instance_read, is_random, kept_layer_reason, layer_read)
from .mapping import check_rule
from .names import dotted_text as _dotted, module_aliases, qualname_of
from .rules import load_rules

# an init function or in-place init can only be where one of these is written: torch.nn.init (or
# its functions imported by name: `from torch.nn.init import ...`), an in-place init method, apply(fn)
# (searched as two patterns: a leading \b costs the regex engine its fast literal scan)
_INIT_CALL = re.compile(r"\.(?:normal_|uniform_|zero_|fill_|copy_)\(|\.apply\(")
_INIT_WORD = re.compile(r"init\b")  # `init` as a whole word: checked for a word character before it

# torch calls that build a new tensor an in-place init may fill (`torch.empty(n).normal_()`)
FRESH_TENSORS = frozenset({"torch.empty", "torch.zeros", "torch.ones"})

Position = tuple[int, int]  # (line, column) of a call
ReadPosition = tuple[int, int, str]  # (line, column, source text) of a parameter read (`m.weight.data`)


@dataclass
class InitFacts:
    sites: dict[Position, InitSite] = field(default_factory=dict)
    functions: dict[str, bool] = field(default_factory=dict)  # init function -> draws random numbers
    applies: dict[Position, str] = field(default_factory=dict)  # `x.apply(fn)` -> fn's name
    # `self.init_weights()` in __init__ -> the method's name (a method only __init__ runs)
    init_calls: dict[Position, str] = field(default_factory=dict)
    # `m.weight` / `m.weight.data` read (not written by an init) where a random key is at hand
    # (an init function, a method only __init__ runs, __init__): the parameter in torch's layout
    reads: dict[ReadPosition, InitRead] = field(default_factory=dict)


def site_at(facts: InitFacts, line: int, col: int, attr: str | None) -> InitSite | None:
    """The init site of the call at (line, col) whose function is named `attr` (`torch.empty(n)`
    and `torch.empty(n).normal_()` start at the same place: only the second is the init)."""
    site = facts.sites.get((line, col))
    if site is None or attr is None:
        return site
    return site if (INPLACE_METHODS.get(attr) == site.kind if site.method else attr == site.kind) else None


def _isinstance_narrowing(test: ast.expr, aliases: dict[str, str],
                          own: frozenset[str] = frozenset()) -> tuple[str, tuple[str, ...]] | None:
    """`isinstance(m, nn.Linear)` / `isinstance(m, (nn.Conv2d, nn.Linear))` -> ("m", qualnames);
    `isinstance(m, A) or isinstance(m, B)` as the tuple form; `x is not None and isinstance(m, A)`:
    any conjunct narrows. The subject may be a `self.` attribute chain (`self.heads.head`).
    A class of this file (in `own`) is `.Block` (OWN_CLASS): its layers are read through it."""
    if isinstance(test, ast.BoolOp):
        parts = [_isinstance_narrowing(v, aliases, own) for v in test.values]
        if isinstance(test.op, ast.Or):
            if any(p is None for p in parts) or len({p[0] for p in parts}) != 1:  # type: ignore[index]
                return None
            return parts[0][0], tuple(q for p in parts for q in p[1])  # type: ignore[index]
        found = [p for p in parts if p is not None]
        return found[-1] if found and len({p[0] for p in found}) == 1 else None
    if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance"
            and len(test.args) == 2):
        return None
    subject = _dotted(test.args[0])
    if subject is None or ("." in subject and not subject.startswith("self.")):
        return None
    types = test.args[1].elts if isinstance(test.args[1], ast.Tuple) else [test.args[1]]
    names = tuple(OWN_CLASS + t.id if isinstance(t, ast.Name) and t.id in own else qualname_of(t, aliases)
                  for t in types)
    if any(n is None for n in names) or (any(n.startswith(OWN_CLASS) for n in names)  # type: ignore[union-attr]
                                          and not all(n.startswith(OWN_CLASS) for n in names)):  # type: ignore[union-attr]
        return None
    return subject, names  # type: ignore[return-value]


PARAMETERS = frozenset({PARAMETER_LAYER, KEPT_LAYER + PARAMETER_LAYER})  # an nn.Parameter, converted or kept
OWN_CLASS = "."  # prefix of a class of this file in a narrowing (`.Bottleneck`)


def _converts(rules, source: str, call: ast.Call, qualname: str) -> bool:
    """Whether the rewrite converts this construction (`nn.Linear(d, d, **kw)` stays PyTorch):
    core.decide.decide_call's verdict, on the argument texts lint passes it."""
    args = tuple((_text(source, a.value), True) if isinstance(a, ast.Starred) else (_text(source, a), False)
                 for a in call.args)
    kwargs = tuple((k.arg, _text(source, k.value)) for k in call.keywords)
    return decide_call(CallSite(qualname, args, kwargs), rules, check_rule).fixable


def _self_layers(cls: ast.ClassDef, aliases: dict[str, str], init_methods: frozenset[str] = frozenset(),
                 source: str = "", rules=None) -> dict[str, str]:
    """`self.x = nn.Linear(...)` / `self.p = nn.Parameter(...)` in __init__ (or a method only
    __init__ runs: `self.define_table()`) -> {x: torch class}; also `self.bn = norm_layer(c)`
    where __init__ gives `norm_layer` one torch class and nothing else (`if norm_layer is None:
    norm_layer = nn.BatchNorm2d`, or as its default): the class the file builds it with (a
    caller may hand in another class; the tables of norm layers agree). A construction the
    rewrite leaves in PyTorch (core.decide.decide_call, for `rules`' target) is recorded as
    KEPT_LAYER + class, once any assignment of that attribute is one: its inits and reads are
    then left, never written through the weight tables."""
    out: dict[str, str] = {}
    kept: set[str] = set()
    for item in cls.body:
        if isinstance(item, ast.FunctionDef) and (item.name == "__init__" or item.name in init_methods):
            factories = _factory_classes(item, aliases)
            for node in _walk(item):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call):
                    target = node.targets[0]
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                            and target.value.id == "self":
                        func = node.value.func
                        q = qualname_of(func, aliases)
                        if q is not None and q.startswith("torch.nn."):
                            out[target.attr] = "torch.nn.Parameter" if q.endswith(".Parameter") else q
                            if rules is not None and not _converts(rules, source, node.value, q):
                                kept.add(target.attr)
                        elif isinstance(func, ast.Name) and factories.get(func.id):
                            out[target.attr] = factories[func.id]  # type: ignore[assignment]
    return {name: KEPT_LAYER + q if name in kept else q for name, q in out.items()}


def _factory_classes(init: ast.FunctionDef, aliases: dict[str, str]) -> dict[str, str | None]:
    """Names of `init` bound to one torch layer class and otherwise only to None -> that class."""
    out: dict[str, str | None] = {}
    args = init.args
    defaults = list(zip(reversed([*args.posonlyargs, *args.args]), reversed(args.defaults)))
    defaults += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    bindings = [(a.arg, d) for a, d in defaults]
    for node in _walk(init):
        if isinstance(node, ast.Assign):
            bindings += [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.NamedExpr)) \
                and isinstance(node.target, ast.Name):
            bindings.append((node.target.id, None))  # anything else: not known
    for name, value in bindings:
        if isinstance(value, ast.Constant) and value.value is None:
            out.setdefault(name, None)
            continue
        q = qualname_of(value, aliases) if value is not None else None
        known = q is not None and q.startswith("torch.nn.") and q.rsplit(".", 1)[-1][:1].isupper()
        out[name] = q if known and out.get(name, q) in (None, q) else ""
    return {name: q for name, q in out.items() if q}


def _instances(tree: ast.Module, classes: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Names bound only to instances of one class of this file (`model = Net(...)`, anywhere in
    the file) -> that class's layers: `model.bn.running_var` reads a converted BatchNorm."""
    bound: dict[str, str | None] = {}
    for node in _walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            cls = (value.func.id if isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                   and value.func.id in classes and not isinstance(node, ast.AugAssign) else None)
            for target in targets:
                for name in _walk(target):
                    if isinstance(name, ast.Name):
                        single = cls is not None and target is name
                        bound[name.id] = cls if single and bound.get(name.id, cls) == cls else None
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.NamedExpr, ast.arguments,
                               ast.comprehension, ast.ExceptHandler, ast.Import, ast.ImportFrom)):
            # any other binding of a name makes it something else somewhere
            for name in _walk(node.target if isinstance(node, (ast.For, ast.AsyncFor, ast.NamedExpr,
                                                                   ast.comprehension)) else node):
                if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store):
                    bound[name.id] = None
            if isinstance(node, ast.arguments):
                for arg in node.posonlyargs + node.args + node.kwonlyargs + [node.vararg, node.kwarg]:
                    if arg is not None:
                        bound[arg.arg] = None
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound[node.name] = None
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound[(alias.asname or alias.name).partition(".")[0]] = None
    return {name: classes[cls] for name, cls in bound.items() if cls is not None and classes[cls]}


def _tensor_of(expr: ast.expr, narrow: dict[str, tuple[str, ...]], layers: dict[str, str],
               instances: dict[str, dict[str, str]] | None = None, classes: dict[str, dict[str, str]] | None = None):
    """(owner text, layers, attribute) for the tensor an init writes (None: not a recognised one)."""
    if isinstance(expr, ast.Attribute) and expr.attr == "data":
        expr = expr.value
    if not isinstance(expr, ast.Attribute):
        return None
    owner = expr.value
    if isinstance(owner, ast.Name) and any(n.startswith(OWN_CLASS) for n in narrow.get(owner.id, ())):
        return None  # `m.weight` of a class of this file: not a layer's parameter
    if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and classes \
            and any(n.startswith(OWN_CLASS) for n in narrow.get(owner.value.id, ())):
        # `m.bn3.weight` under isinstance(m, Bottleneck): the layer Bottleneck's __init__ builds as bn3
        kinds = {classes.get(n[len(OWN_CLASS):], {}).get(owner.attr) for n in narrow[owner.value.id]}
        if len(kinds) != 1 or None in kinds or kinds & PARAMETERS:
            return None
        return f"{owner.value.id}.{owner.attr}", (kinds.pop(),), expr.attr
    if instances and isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) \
            and owner.value.id in instances:
        kind = instances[owner.value.id].get(owner.attr)
        if kind is not None and kind not in PARAMETERS:
            return f"{owner.value.id}.{owner.attr}", (kind,), expr.attr
        return None
    if isinstance(owner, ast.Name) and owner.id in narrow:
        return owner.id, narrow[owner.id], expr.attr
    dotted = _dotted(owner) if isinstance(owner, ast.Attribute) and narrow else None
    if dotted is not None and dotted in narrow:  # `if isinstance(self.heads.head, nn.Linear):`
        return dotted, narrow[dotted], expr.attr
    if isinstance(owner, ast.Name) and owner.id == "self" and layers.get(expr.attr) in PARAMETERS:
        return f"self.{expr.attr}", (layers[expr.attr],), ""  # (KEPT_LAYER +) PARAMETER_LAYER
    if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and owner.value.id == "self" \
            and owner.attr in layers and layers[owner.attr] not in PARAMETERS:
        return f"self.{owner.attr}", (layers[owner.attr],), expr.attr
    return None


def _instance_root(owner: str, instances: dict[str, dict[str, str]]) -> str:
    """`model` for the owner `model.fc` of a model instance built in the file ("" otherwise)."""
    root = owner.partition(".")[0]
    return root if "." in owner and root in instances else ""


def _run_only_by_init(tree: ast.Module, facts: InitFacts, mentions: dict[str, int]) -> set[str]:
    """Methods that only their class's __init__ runs (`self.init_weights()`, as in pytorch/examples):
    a random key is at hand there, so they take it as init functions do. A method named anywhere
    else in the file (called from forward, passed as a value, another class's method of that name)
    is left alone."""
    out: set[str] = set()
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        methods = {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}
        init = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        if init is None:
            continue
        calls: dict[str, list[ast.Call]] = {}
        for node in _walk(init):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "self" \
                    and node.func.attr in methods and not node.func.attr.startswith("__"):
                calls.setdefault(node.func.attr, []).append(node)
        for name, sites in calls.items():
            if name != "forward" and mentions.get(name) == len(sites):
                out.add(name)
                facts.init_calls.update({(c.lineno, c.col_offset): name for c in sites})
    return out


@lru_cache(maxsize=1)
def _lines(source: str) -> list[str]:
    # the lines get_source_segment splits by (\r\n, \r, \n, ends kept; not \f or \v as
    # str.splitlines would), in C: ast._splitlines_no_ff is a Python loop per character
    return io.StringIO(source, newline="").readlines()


def _text(source: str, node: ast.AST) -> str:
    """ast.get_source_segment(source, node), the source split once per file rather than per call."""
    lines, first, last = _lines(source), node.lineno - 1, node.end_lineno - 1  # type: ignore[operator]
    if first == last:
        return lines[first].encode()[node.col_offset:node.end_col_offset].decode()
    return "".join([lines[first].encode()[node.col_offset:].decode(), *lines[first + 1:last],
                    lines[last].encode()[:node.end_col_offset].decode()])


def init_hint(source: str) -> bool:
    """Whether `source` may hold init code (the cheap test before building init facts)."""
    if _INIT_CALL.search(source) is not None:
        return True
    for match in _INIT_WORD.finditer(source):  # \binit\b: no word character (re's \w) before it
        start = match.start()
        if start == 0 or not (source[start - 1].isalnum() or source[start - 1] == "_"):
            return True
    return False


def init_facts(tree: ast.Module, source: str, rules=None) -> InitFacts:
    """The facts for `rules`' target (rules.RuleSet; default: the default target's tables)."""
    facts = InitFacts()
    layer_reads = layer_read(source)
    if not layer_reads and not init_hint(source):
        return facts  # nothing to find (`__init__` alone is no hint): keeps lint's speed
    aliases = module_aliases(tree)
    index = _TreeIndex(tree)
    init_methods = _run_only_by_init(tree, facts, index.mentions)
    rules = rules if rules is not None else load_rules()
    classes = {node.name: _self_layers(node, aliases, frozenset(init_methods), source, rules)
               for node in tree.body if isinstance(node, ast.ClassDef)}
    own = frozenset(classes)
    # reads outside init code (core.decide.decide_layer_read) only where a weight-table name is read;
    # `model.fc.weight` on an instance only where such a chain starts at another name than self
    instances = (_instances(tree, classes) if layer_reads and any(classes.values())
                 and instance_read(source) else {})
    applied: set[str] = set()
    # `model.apply(fn)` / `self.apply(self._init)`: fn is an init function
    for node in index.applies:
        if len(node.args) == 1 and not node.keywords:
            fn = node.args[0]
            name = fn.id if isinstance(fn, ast.Name) else (
                fn.attr if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name)
                and fn.value.id == "self" else None)
            if name is not None:
                facts.applies[(node.lineno, node.col_offset)] = name
                applied.add(name)
    defined: dict[str, ast.FunctionDef] = {}

    def may_work(statement: ast.stmt, layers: dict[str, str]) -> bool:
        """Whether `statement`'s lines hold a call that may be an init (a method ending in _, the
        helper's) or an attribute a read of a layer's tensor starts with (`self.fc`, `model.fc`:
        _tensor_of finds nothing else outside an isinstance narrowing)."""
        first, last = statement.lineno, statement.end_lineno
        return index.holds(index.calls, first, last) or (
            bool(layers or instances) and index.holds(index.layer_lines(layers, instances), first, last))

    def function(fn: ast.FunctionDef, layers: dict[str, str], in_class: bool) -> None:
        params = [a.arg for a in fn.args.args]
        is_init_fn = fn.name in applied and len(params) == (2 if in_class else 1)
        if is_init_fn:
            defined[fn.name] = fn
        init_method = in_class and fn.name in init_methods
        key_available = is_init_fn or init_method or (in_class and fn.name == "__init__")
        random = False

        def walk(statements: list[ast.stmt], narrow: dict[str, tuple[str, ...]]) -> None:
            nonlocal random
            for statement in statements:
                if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                if isinstance(statement, ast.If):
                    found = _isinstance_narrowing(statement.test, aliases, own)
                    inner = {**narrow, found[0]: found[1]} if found else narrow
                    if not found and key_available:  # `if m.bias is not None:` tests the parameter
                        _reads(statement.test, narrow, set(), False, test=True)
                    if found and isinstance(statement.test, ast.BoolOp) and (key_available or layer_reads):
                        for value in statement.test.values[1:]:  # `... and m.bn.weight is not None`
                            _reads(value, inner, set(), not key_available)
                    walk(statement.body, inner)
                    walk(statement.orelse, narrow)
                    continue
                if isinstance(statement, (ast.With, ast.For, ast.While, ast.Try)):
                    for block in ("body", "orelse", "finalbody"):
                        walk(getattr(statement, block, []), narrow)
                    for handler in getattr(statement, "handlers", []):
                        walk(handler.body, narrow)
                    continue
                if not narrow and not may_work(statement, layers):
                    continue  # no init call in it, and no tensor a read could be of (_tensor_of)
                written: set[int] = set()  # ids of the tensors init calls write (the init converts them)
                for node in _walk(statement):
                    if isinstance(node, ast.Call):
                        site = _site(node, narrow, layers, key_available)
                        if site is not None:
                            facts.sites[(node.lineno, node.col_offset)] = site
                            random = random or is_random(site.kind)
                            tensor = node.func.value if site.method else node.args[0]  # type: ignore[attr-defined]
                            written |= {id(n) for n in _walk(tensor)}
                        elif node.args and isinstance(node.func, ast.Attribute) \
                                and isinstance(node.func.value, ast.Name) and node.func.value.id == INIT_HELPER:
                            written |= {id(n) for n in _walk(node.args[0])}  # converted already
                if key_available or layer_reads:
                    _reads(statement, narrow, written, not key_available)

        def _reads(statement: ast.AST, narrow, written: set[int], reported: bool, test: bool = False) -> None:
            inner: set[int] = set()  # `m.weight` inside a recorded `m.weight.data`
            # `self.fc.register_forward_hook(...)`: a module method, core.constructs' verdict (one TODO)
            inner |= {id(n.func) for n in _walk(statement) if isinstance(n, ast.Call)
                      and isinstance(n.func, ast.Attribute) and n.func.attr in MODULE_METHODS}
            for node in _walk(statement):  # outer attributes come first
                if not isinstance(node, ast.Attribute) or id(node) in written or id(node) in inner \
                        or not isinstance(node.ctx, ast.Load):
                    continue
                if node.attr != "data" and isinstance(node.value, ast.Attribute) and node.value.attr == "data":
                    continue  # `m.weight.data.shape`: the read is `m.weight.data`
                found = _tensor_of(node, narrow, layers, instances, classes)
                if found is None or not found[2] or set(found[1]) <= PARAMETERS:
                    continue
                if node.attr == "data":
                    inner.add(id(node.value))
                # a layer that stays PyTorch: a finding of its own wherever it is read
                kept = kept_layer_reason(found[1]) is not None
                facts.reads[(node.lineno, node.col_offset, ast.unparse(node))] = InitRead(*found, reported or kept,
                                                                                            test and not kept)

        def _site(call: ast.Call, narrow, layers, key_available) -> InitSite | None:
            func = call.func
            if not isinstance(func, ast.Attribute) or not func.attr.endswith("_"):
                return None  # every init name ends in _ (cheap test first: lint runs this on every call)
            q = qualname_of(func, aliases)
            kwargs = tuple((k.arg, _text(source, k.value)) for k in call.keywords)
            if q is not None and q.startswith("torch.nn.init.") and q.rpartition(".")[2] in INIT_FUNCTIONS:
                if not call.args or isinstance(call.args[0], ast.Starred):
                    return None
                found = _tensor_of(call.args[0], narrow, layers, instances, classes)
                owner, kinds, attribute = found if found else (_text(source, call.args[0]), (), "")
                args = tuple((_text(source, a.value), True) if isinstance(a, ast.Starred) else (_text(source, a), False)
                             for a in call.args[1:])
                return InitSite(q.rpartition(".")[2], False, kinds, attribute, owner, key_available, args, kwargs,
                                instance=_instance_root(owner, instances))
            if q is None and func.attr in INPLACE_METHODS:
                found = _tensor_of(func.value, narrow, layers, instances, classes)
                fresh = found is None and isinstance(func.value, ast.Call) \
                    and qualname_of(func.value.func, aliases) in FRESH_TENSORS
                if fresh:  # `torch.empty(1, n, d).normal_(std=0.02)`: a new tensor's values, drawn
                    found = (_text(source, func.value), (PARAMETER_LAYER,), "")
                if found is None:
                    return None  # not a parameter we can place: the tensor-method verdicts apply
                args = tuple((_text(source, a), isinstance(a, ast.Starred)) for a in call.args)
                kind = INPLACE_METHODS[func.attr]
                return InitSite(kind if kind != COPY else COPY, True, found[1], found[2], found[0], key_available,
                                args, kwargs, fresh, _instance_root(found[0], instances))
            return None

        walk(fn.body, {})
        if is_init_fn or init_method:
            facts.functions[fn.name] = facts.functions.get(fn.name, False) or random

    script = ast.FunctionDef(name="<module>", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                                                                 kw_defaults=[], defaults=[]),
                             body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))],
                             decorator_list=[])  # module-level statements: a script's `model.bn.running_var`
    function(script, {}, False)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            function(node, {}, False)
        elif isinstance(node, ast.ClassDef):
            layers = classes[node.name]
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    function(item, layers, True)
    for position, name in list(facts.applies.items()):
        if name not in defined:
            del facts.applies[position]  # an apply of something that is not an init function here
    return facts


class _TreeIndex:
    """From one walk of a module's tree: how often each attribute name is used, its `x.apply(...)`
    calls, the lines of its calls that may be inits (a method ending in _, the helper's) and of
    its attributes on a name (`self.fc`, `model.fc`: where a read of a layer's tensor can be)."""

    def __init__(self, tree: ast.Module) -> None:
        calls: set[int] = set()
        self.mentions: dict[str, int] = {}  # attribute name -> uses in the file
        self.applies: list[ast.Call] = []
        self.on_name: list[ast.Attribute] = []  # `name.x`
        mentions, on_name = self.mentions, self.on_name
        for n in _walk(tree):
            t = type(n)
            if t is ast.Attribute:
                attr = n.attr  # type: ignore[attr-defined]
                mentions[attr] = mentions.get(attr, 0) + 1
                if type(n.value) is ast.Name:  # type: ignore[attr-defined]
                    on_name.append(n)  # type: ignore[arg-type]
            elif t is ast.Call:
                func = n.func  # type: ignore[attr-defined]
                if type(func) is ast.Attribute:
                    if func.attr.endswith("_") or (type(func.value) is ast.Name and func.value.id == INIT_HELPER):
                        calls.add(n.lineno)  # type: ignore[attr-defined]
                    elif func.attr == "apply":
                        self.applies.append(n)  # type: ignore[arg-type]
        self.calls = sorted(calls)
        self._layers: dict[frozenset[str], list[int]] = {}

    def layer_lines(self, layers: dict[str, str], instances: dict[str, dict[str, str]]) -> list[int]:
        """Lines of `self.x` for an attribute x in `layers`, and of a model instance's attributes."""
        key = frozenset(layers)
        found = self._layers.get(key)
        if found is None:
            found = self._layers[key] = sorted({
                n.lineno for n in self.on_name
                if (n.value.id == "self" and n.attr in key) or n.value.id in instances})  # type: ignore[attr-defined]
        return found

    @staticmethod
    def holds(lines: list[int], first: int, last: int | None) -> bool:
        i = bisect_left(lines, first)
        return i < len(lines) and lines[i] <= last  # type: ignore[operator]


def converted_init_calls(facts: InitFacts, rules) -> frozenset[Position]:
    """The positions of the init calls the rewrite converts (an init core.decide.decide_init
    fixes, `module.apply(fn)` over an init function, a method only __init__ runs)."""
    from .core.decide import decide_init

    sites = {p for p, site in facts.sites.items() if decide_init(site, rules).fixable}
    return frozenset(sites | set(facts.applies) | set(facts.init_calls))


def facts_for_target(tree: ast.Module, source: str, converts_inits: bool, rules=None) -> InitFacts:
    """init_facts for a target that converts inits; for one that does not, only the
    reads outside init code, which core.decide.decide_layer_read then leaves marked: a torch
    attribute the converted layer lacks must never stay unmarked (nn.init calls are judged as
    plain torch calls there)."""
    facts = init_facts(tree, source, rules)
    if converts_inits:
        return facts
    return InitFacts(reads={k: v for k, v in facts.reads.items() if v.reported})
