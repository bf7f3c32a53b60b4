"""What the Linen target does not convert in a module class, read off the `ast` (lint and the
rewrite both ask `LinenTarget.module_sites`, so they report the same lines).

A Linen module is a dataclass whose submodules are built in setup() and whose `train` flag is a
`__call__` argument; torch code that does not fit that shape is reported, never guessed:

* a converted class used outside a converted class other than as `model = MLP()` (which becomes
  a LinenModel handle, training.py): Linen needs `model.init(key, x)` / `model.apply(variables, x)`;
* an `__init__` taking *args / **kwargs, or a parameter Linen reserves (`name`, `parent`), or a
  keyword-only parameter without default after one with a default: no dataclass fields;
* a submodule that takes `train` (Dropout, BatchNorm, Sequential, a converted class) used in
  `forward` other than by calling it, or called in another method: `train` cannot be threaded;
* `self.training` outside forward: a Linen module has no mode; `train` reaches only __call__;
* a subclass with its own `__init__` of a converted class, and a subclass of nn.Sequential.
"""

from __future__ import annotations

import ast

from ...astwalk import walk as _walk
from ...core.constructs import CONTAINER_BASES, MODULE_BASES
from ...core.parallel import WRAPPERS
from ...core.forward_helpers import forward_helpers
from ...names import module_aliases, qualname_of
from .init_hook_facts import stuck_sites

CODE = "PTJ101"
INIT_CODE = "PTJ103"  # torch init code the hook cannot take (init_hook_facts)
RESERVED = frozenset({"name", "parent"})
# torch layers whose converted form takes the `train` flag at call time
from ...core.constructs import PARAMETER as PARAMETERS
# `.to(device)` / `.cuda()` / `.cpu()` / `.train()` after a construction: the model is the same
PLACEMENT = frozenset({"to", "cuda", "cpu", "train", "float"})
APPLY = ("builds a Linen module outside `NAME = {name}(...)`: create its variables with `variables = "
         "{name}(...).init(key, x)` and call `model.apply(variables, x, train=...)` (only `NAME = {name}(...)` "
         "becomes a LinenModel handle)")
from .containers import KEYWORDS, container_keywords, deferred, element_calls

TRAIN_LAYERS = frozenset(KEYWORDS)
HANDLE = "LinenModel"  # the handle class training.py wraps a construction in
LINEN_MODULE = "flax.linen.Module"


def linen_classes(tree: ast.Module, aliases: dict[str, str]) -> set[str]:
    """Classes that are Linen modules already (a converted file): their setup() builds
    submodules, as a converted class's does."""
    return {n.name for n in _walk(tree) if isinstance(n, ast.ClassDef)
            and any(qualname_of(b, aliases) == LINEN_MODULE for b in n.bases)}


def converted_classes(tree: ast.Module, aliases: dict[str, str]) -> dict[str, ast.ClassDef]:
    """Top-level classes with an nn.Module (or container) base, directly or through another."""
    found: dict[str, ast.ClassDef] = {}
    changed = True
    while changed:
        changed = False
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name not in found:
                for base in node.bases:
                    q = qualname_of(base, aliases)
                    if q in MODULE_BASES or q in CONTAINER_BASES or (isinstance(base, ast.Name) and base.id in found):
                        found[node.name] = node
                        changed = True
                        break
    return found


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def train_attributes(cls: ast.ClassDef, classes, aliases: dict[str, str]) -> set[str]:
    """`self.x = ...` in __init__ whose value's converted form takes `train`."""
    out = set()
    for method in cls.body:
        if isinstance(method, ast.FunctionDef) and method.name == "__init__":
            for node in _walk(method):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    func = node.value.func
                    takes = (qualname_of(func, aliases) in TRAIN_LAYERS
                             or (isinstance(func, ast.Name) and func.id in classes))
                    if takes:
                        out |= {a for a in map(_self_attr, node.targets) if a is not None}
    return out


def train_helpers(tree: ast.Module, name: str) -> frozenset[str]:
    """The methods of class `name` that get forward's `train` (module.py threads it, here no TODO):
    forward-only methods (core.forward_helpers) reading self.training, calling a submodule or the
    elements of a container taking `train`, or calling another such method."""
    aliases = module_aliases(tree)
    classes = converted_classes(tree, aliases)
    cls = classes.get(name)
    if cls is None:
        return frozenset()
    helpers = forward_helpers(cls, tree)
    if not helpers:
        return frozenset()
    wanted = {"training"} | train_attributes(cls, classes, aliases) | {
        a for a, k in container_keywords(cls, classes, aliases).items() if k}
    methods = {m.name: m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name in helpers}
    reads = {n: {_self_attr(x) for x in ast.walk(m)} - {None} for n, m in methods.items()}
    need = {n for n, attrs in reads.items() if attrs & wanted}
    while True:
        more = {n for n, attrs in reads.items() if n not in need and attrs & need}
        if not more:
            return frozenset(need)
        need |= more


def _report_line(statements: list[tuple[ast.stmt, ast.stmt | None]], node: ast.AST, cls: ast.ClassDef) -> int:
    """The line a finding on `node` is reported at: its simple statement's first line (the rewrite
    puts the TODO above that statement); inside a compound statement's header, the class line."""
    best = None
    for stmt, _ in statements:
        if stmt.lineno <= node.lineno <= (stmt.end_lineno or stmt.lineno):
            if best is None or stmt.lineno >= best.lineno:
                best = stmt
    return best.lineno if best is not None else cls.lineno


def _simple_statements(root: ast.AST) -> list[tuple[ast.stmt, ast.stmt | None]]:
    compound = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While,
                ast.With, ast.AsyncWith, ast.Try, ast.Match) + ((ast.TryStar,) if hasattr(ast, "TryStar") else ())
    return [(n, None) for n in _walk(root) if isinstance(n, ast.stmt) and not isinstance(n, compound)]


def _placed(value: ast.expr) -> ast.expr:
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in PLACEMENT:
        value = value.func.value
    return value


def handled_constructions(tree: ast.Module, classes, aliases: dict[str, str]) -> set[int]:
    """ids of the `Net(...)` calls of `NAME = Net(...)[.to(device)]` outside converted classes,
    also inside a data-parallel wrapper (`NAME = nn.DataParallel(Net())`, data_parallel(...)
    once converted): the rewrite makes them LinenModel handles (training.wrap_constructions); and
    of a builder's `def build(): return Net(...)`, which returns the Linen module definition, as it
    is (its caller runs `build().init(key, x)`, as verify's `--model build` does). A handle
    already (`NAME = LinenModel(Net(...), key)`, a converted file) is one too."""
    out = set()
    for node in _walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _placed(node.value)
            handle = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == HANDLE
            if isinstance(value, ast.Call) and (qualname_of(value.func, aliases) in WRAPPERS or handle):
                inner = [*value.args[:1], *(k.value for k in value.keywords if k.arg == "module")]
                value = _placed(inner[0]) if inner else value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in classes:
                out.add(id(value))
    for fn in tree.body:
        body = [s for s in getattr(fn, "body", ()) if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if isinstance(fn, ast.FunctionDef) and len(body) == 1 and isinstance(body[0], ast.Return) \
                and isinstance(body[0].value, ast.Call) and isinstance(body[0].value.func, ast.Name) \
                and body[0].value.func.id in classes:
            out.add(id(body[0].value))
    return out


def module_sites(tree: ast.Module, init_calls=None) -> dict[int, list]:
    """line -> messages (code PTJ101; `(code, message)` for another code) of what the Linen
    target leaves for a person. `init_calls()`: the positions of the init calls the rewrite
    converts (inits.converted_init_calls), for the init code it cannot move out of setup()."""
    aliases = module_aliases(tree)
    classes = converted_classes(tree, aliases)
    sites: dict[int, list[str]] = {}

    def add(line: int, message) -> None:
        if message not in sites.setdefault(line, []):
            sites[line].append(message)

    linen = linen_classes(tree, aliases)
    inside = {id(n) for cls in [*classes.values(), *(n for n in _walk(tree) if isinstance(n, ast.ClassDef)
                                                     and n.name in linen)] for n in _walk(cls)}
    inside |= handled_constructions(tree, classes, aliases)
    statements = _simple_statements(tree)
    for node in _walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in classes
                and id(node) not in inside):
            line = _report_line(statements, node, tree.body[0] if tree.body else node)
            add(line, f"{node.func.id}(...) " + APPLY.format(name=node.func.id))
    for cls in classes.values():
        container = any(qualname_of(base, aliases) in CONTAINER_BASES for base in cls.bases)
        for base in cls.bases:
            q = qualname_of(base, aliases)
            if q in CONTAINER_BASES:  # the rewrite's own words (rewrite/classes.py), so one TODO
                add(cls.lineno, f"class {cls.name} subclasses {q}: not converted for target linen")
        inherits = any(isinstance(b, ast.Name) and b.id in classes for b in cls.bases) and any(
            isinstance(m, ast.FunctionDef) and m.name == "__init__" for m in cls.body)
        if inherits:
            add(cls.lineno, f"class {cls.name} extends a converted class with its own __init__: Linen inherits "
                            "the fields and replaces setup(); write the subclass's fields and setup() by hand")
        takes_train = train_attributes(cls, classes, aliases)
        own = _simple_statements(cls)
        for attr, (node, why) in deferred(cls, aliases)[1].items():
            add(_report_line(own, node, cls), why)
        containers = {a: k for a, k in container_keywords(cls, classes, aliases).items() if k}
        threaded = train_helpers(tree, cls.name)  # forward's `train` reaches them (module.py)
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef):
                continue
            in_forward = method.name == "forward" or method.name in threaded
            if method.name == "__init__":
                args = method.args
                problem = None
                if args.vararg or args.kwarg:
                    problem = "__init__ takes *args/**kwargs: Linen fields cannot be read off it"
                elif any(a.arg in RESERVED for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]):
                    problem = "an __init__ parameter is named `name` or `parent`, which Linen modules reserve"
                elif args.kw_defaults and any(d is None for d in args.kw_defaults) and args.defaults:
                    problem = "a keyword-only __init__ parameter without default follows defaults: no dataclass order"
                elif args.posonlyargs:
                    problem = "__init__ has positional-only parameters: Linen fields are keywords"
                if problem:
                    add(cls.lineno, f"class {cls.name}: {problem}; write the fields and setup() by hand")
                elif init_calls is not None and not inherits and not container:
                    for line, message in stuck_sites(cls, init_calls()).items():
                        add(line, (INIT_CODE, message))
            if method.name == "__init__":
                direct = {id(n.value) for n in _walk(method) if isinstance(n, ast.Assign)
                          and len(n.targets) == 1 and _self_attr(n.targets[0]) is not None}
                for node in _walk(method):
                    if (isinstance(node, ast.Call) and qualname_of(node.func, aliases) in PARAMETERS
                            and id(node) not in direct):
                        add(_report_line(own, node, cls), "nn.Parameter not assigned as `self.name = "
                                                          "nn.Parameter(...)`: declare it with self.param by hand")
            else:
                for node in _walk(method):
                    if isinstance(node, ast.Call) and qualname_of(node.func, aliases) in PARAMETERS:
                        add(_report_line(own, node, cls), "nn.Parameter outside __init__: Linen declares "
                                                          "parameters in setup() (self.param)")
            for attr, keywords in containers.items():
                if method.name == "__init__":
                    continue
                calls, others = element_calls(method, attr)
                if not in_forward:
                    uses, why = others + calls, (f"the elements of self.{attr} take `train`, which only forward "
                                                 "(__call__) receives: pass it on by hand")
                elif len(keywords) > 1:
                    uses, why = others + calls, (f"the elements of self.{attr} take `train` differently "
                                                 f"({', '.join(sorted(keywords))}): pass it to each by hand")
                else:
                    uses, why = others, (f"the elements of self.{attr} take `train`, passed on only where forward "
                                         f"calls one (`for m in self.{attr}: m(x)`, `self.{attr}[i](x)`): pass "
                                         "it on by hand")
                for node in uses:
                    add(_report_line(own, node, cls), why)
            called = {id(n.func) for n in _walk(method) if isinstance(n, ast.Call)}
            for node in _walk(method):
                attr = _self_attr(node)
                if attr == "training":  # core.structure decides (kind training): one TODO, its own
                    continue
                if attr in takes_train and method.name != "__init__":
                    if not in_forward:
                        add(_report_line(own, node, cls), f"self.{attr} takes `train`, which only forward "
                                                          "(__call__) receives: pass it on by hand")
                    elif id(node) not in called:
                        add(_report_line(own, node, cls), f"self.{attr} takes `train` but is not called "
                                                          "directly here: pass `train` on by hand")
    return sites
