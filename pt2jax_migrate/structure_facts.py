"""Facts about module structure, read off the `ast` once for lint and rewrite alike.

Lint reports each `core.structure.StructureSite` as a finding; rewrite renders the same sites
by line, so the two agree by construction (like trainstep.py for training steps). Also the
facts the rewrite needs to thread `rngs` through builder methods (`self._make_layer(...)`) and
block classes passed as constructor arguments (`ResNet(BasicBlock, [2, 2])`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from .astwalk import walk as _walk
from .core.constructs import CONTAINER_BASES, MODULE_BASES
from .core.forward_helpers import forward_helpers
from .core.structure import (CHAIN_OPS, CHILD_READ_REFUSAL, INDEX_TARGET_REFUSAL, TIE_REFUSAL,
                             TRAIN_FLAG, TRAINING_NO_INIT_REFUSAL, TRAINING_STORE_REFUSAL, TRAINING_TAKEN_REFUSAL,
                             StructureSite, buffer_chain_refusal)
from .names import dotted_text as _dotted, module_aliases, qualname_of
from .sequential_facts import _own_nodes, filled_sequentials

_OPS = {ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.Div: "/="}


@dataclass
class ClassFacts:
    buffers: set[str] = field(default_factory=set)
    builders: set[str] = field(default_factory=set)  # methods that build layers: they take rngs
    factories: dict[str, set[str]] = field(default_factory=dict)  # method -> parameters holding block classes
    # (line, column) of calls of a parameter or local whose result becomes a submodule
    # (`self.bn = norm_layer(planes)`, `layers.append(block(...))`): module constructions
    factory_calls: set[tuple[int, int]] = field(default_factory=set)
    # the torch container the class subclasses, itself or through a class of this file
    # (core.constructs.CONTAINER_BASES: "sequential" / "dict"), "" for a plain nn.Module
    container: str = ""
    sets_train_flag: bool = False  # its __init__ gains `self.deterministic = False` (it reads self.training)
    # line of `self.x = None` -> what x is elsewhere in the class assigned: "*" a module (`self.proj
    # = None; if c: self.proj = nn.Conv2d(...)`), else the names of the classes called (`Conv(...)`,
    # a module if the run converts that class): an attribute that may hold a submodule (a target
    # whose modules tell data attributes from static ones marks the None as data)
    optional_children: dict[int, set[str]] = field(default_factory=dict)


@dataclass
class StructureFacts:
    sites: dict[int, StructureSite] = field(default_factory=dict)  # by statement line
    classes: dict[str, ClassFacts] = field(default_factory=dict)
    handled_calls: set[tuple[int, str]] = field(default_factory=set)  # (line, method) decided here
    # `self.training` in a module class, by (line, column offset) of the attribute (several per line)
    training: dict[tuple[int, int], StructureSite] = field(default_factory=dict)


def _self_attr(node: ast.AST) -> str | None:
    """`self.name` -> name."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _torch_roots(tree: ast.Module) -> set[str]:
    return torch_roots(n for n in _walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))


def torch_roots(imports) -> set[str]:
    """The names torch imports bind (`nn` of `from torch import nn`), of the file's import statements."""
    roots = set()
    for node in imports:
        if isinstance(node, ast.Import):
            roots.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "torch")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            roots.update(a.asname or a.name for a in node.names)
    return roots


def _buffer_registration(call: ast.Call) -> tuple[str, bool] | None:
    """(name, persistent) of `self.register_buffer("name", value[, persistent=True|False])`."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "register_buffer"
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "self"):
        return None
    if len(call.args) != 2 or any(isinstance(a, ast.Starred) for a in call.args):
        return None
    name = call.args[0]
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.isidentifier()):
        return None
    persistent = True
    for keyword in call.keywords:
        if keyword.arg != "persistent" or not isinstance(keyword.value, ast.Constant) \
                or not isinstance(keyword.value.value, bool):
            return None
        persistent = keyword.value.value
    return name.value, persistent


def _layer_kind(value: ast.AST, roots: set[str]) -> str | None:
    """`nn.Linear(...)` -> "Linear" (a torch layer construction), else None."""
    if isinstance(value, ast.Call):
        text = _dotted(value.func)
        if text and text.split(".")[0] in roots:
            last = text.rsplit(".", 1)[-1]
            # classes only: nn.init.zeros_(...), torch.arange(...) and F.relu(...) build no layer
            return last if last[:1].isupper() else None
    return None


# cheap test on the text: only files with one of these constructs are analysed (lint's speed)
_MAY_HAVE = re.compile(r"register_buffer|add_module|requires_grad|self\.training\b|\.weight\s*=|\]\s*[-+*/]?=(?!=)|(?:Sequential|ModuleDict)\s*\)\s*:")
# (lint reports no finding for builder methods: the rewrite analyses every file)


# the same test, alternative by alternative: each starts with a literal the regex engine scans for
# fast, where the alternation as a whole tries every position of the text
_MAY_HAVE_WORDS = ("register_buffer", "add_module", "requires_grad")
_MAY_HAVE_PARTS = [re.compile(p) for p in (r"self\.training\b", r"\.weight\s*=", r"\]\s*[-+*/]?=(?!=)",
                                           r"(?:Sequential|ModuleDict)\s*\)\s*:")]


def may_have_structure(source: str) -> bool:
    return any(word in source for word in _MAY_HAVE_WORDS) or any(
        part.search(source) is not None for part in _MAY_HAVE_PARTS)


def analyse(tree: ast.Module, *, sites_only: frozenset[str] | None = None, imports=None,
            scopes=None) -> StructureFacts:
    """The facts of the module. Lint passes `sites_only` (site_names of the text; only sites, training
    reads and handled calls are found, none of the rewrite's builder facts), the file's import
    statements and its functions and `for` loops (`scopes`), which its own walk has collected."""
    facts = StructureFacts()
    roots = _torch_roots(tree) if imports is None else torch_roots(imports)
    if not roots:
        return facts
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    class_names = {c.name for c in classes}
    functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    containers = _container_kinds(classes, module_aliases(tree))
    passed: dict[str, set[str]] = {}
    callables: set[str] = set()
    if sites_only is None:  # the rewrite's builder facts
        passed, callables = _passed_classes(tree, classes, class_names), module_callables(tree, class_names)
    for cls in classes:
        facts.classes[cls.name] = _analyse_class(cls, roots, class_names, passed.get(cls.name, set()), facts,
                                                 functions, callables, sites_only)
        facts.classes[cls.name].container = containers.get(cls.name, "")
        _module_children(cls, containers.get(cls.name), roots, class_names, facts, sites_only)
        if cls.name in containers and (sites_only is None or "training" in sites_only):
            _training_reads(cls, facts, tree)
    for node in _walk(tree) if scopes is None else scopes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _index_assignments(node, roots, facts)
        elif isinstance(node, ast.For):
            _freeze_loop(node, facts)
    return facts


_SITE_NAMES = ("register_buffer", "weight", "add_module", "training")


def site_names(source: str) -> frozenset[str]:
    """The names some structure sites need that `source` may hold (`analyse`'s `sites_only`): those
    in its text, or all of them in a non-ASCII text (an identifier may be spelt otherwise there)."""
    if not source.isascii():
        return frozenset(_SITE_NAMES)
    return frozenset(name for name in _SITE_NAMES if name in source)


def _passed_classes(tree: ast.Module, classes: list[ast.ClassDef], class_names: set[str]) -> dict[str, set[str]]:
    """Block classes passed to a class of this file: `ResNet(BasicBlock, [2, 2])` -> its parameters."""
    init_params = {}
    for cls in classes:
        for stmt in cls.body:
            if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                init_params[cls.name] = [a.arg for a in stmt.args.args[1:]]
    passed: dict[str, set[str]] = {}
    for node in _walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in init_params:
            params = init_params[node.func.id]
            for i, arg in enumerate(node.args):
                if isinstance(arg, ast.Name) and arg.id in class_names and i < len(params):
                    passed.setdefault(node.func.id, set()).add(params[i])
            for keyword in node.keywords:
                if isinstance(keyword.value, ast.Name) and keyword.value.id in class_names and keyword.arg:
                    passed.setdefault(node.func.id, set()).add(keyword.arg)
    return passed


def _freeze_loop(loop: ast.For, facts: StructureFacts) -> None:
    """`for p in X.parameters(): p.requires_grad = False` (or `p.requires_grad_(False)`), the
    fine-tuning idiom: the whole loop is `freeze(X)`, as `X.requires_grad_(False)` is."""
    it = loop.iter
    if not (isinstance(loop.target, ast.Name) and isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute)
            and it.func.attr == "parameters" and not it.args and not it.keywords and not loop.orelse
            and len(loop.body) == 1):
        return
    owner = _dotted(it.func.value)
    p = loop.target.id
    body = loop.body[0]
    if owner is None or owner.split(".")[0] == p:
        return
    sets = (isinstance(body, ast.Assign) and len(body.targets) == 1 and isinstance(body.value, ast.Constant)
            and body.value.value is False and isinstance(body.targets[0], ast.Attribute)
            and body.targets[0].attr == "requires_grad" and isinstance(body.targets[0].value, ast.Name)
            and body.targets[0].value.id == p)
    call = body.value if isinstance(body, ast.Expr) else None
    calls = (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "requires_grad_"
             and isinstance(call.func.value, ast.Name) and call.func.value.id == p
             and [ast.unparse(a) for a in call.args] + [f"{k.arg}={ast.unparse(k.value)}" for k in call.keywords]
             in (["False"], ["requires_grad=False"]))
    if not (sets or calls):
        return
    facts.sites[loop.lineno] = StructureSite("freeze_loop", loop.lineno, loop.col_offset + 1, owner)
    facts.handled_calls |= {(loop.lineno, "parameters"), (body.lineno, "requires_grad_"),
                            (body.lineno, "requires_grad")}


def _analyse_class(cls: ast.ClassDef, roots: set[str], class_names: set[str], init_factories: set[str],
                   facts: StructureFacts, functions: set[str] = frozenset(),
                   callables: set[str] = frozenset(), sites_only: frozenset[str] | None = None) -> ClassFacts:
    out = ClassFacts()
    methods = {s.name: s for s in cls.body if isinstance(s, ast.FunctionDef)}
    layers: dict[str, str] = {}  # self attribute -> torch layer kind built in __init__
    init = methods.get("__init__")
    out.factories["__init__"] = set(init_factories)
    if sites_only is None:
        scanned = list(methods.values())
    else:  # sites only: buffers need register_buffer, the layers matter to a weight tie in __init__
        scanned = list(methods.values()) if "register_buffer" in sites_only else \
            [init] if init is not None and "weight" in sites_only else []
    for method in scanned:
        for node in _walk(method):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                found = _buffer_registration(node.value)
                if found is not None:
                    out.buffers.add(found[0])
                    facts.handled_calls.add((node.value.lineno, "register_buffer"))
                    facts.sites[node.lineno] = StructureSite("buffer", node.lineno, node.col_offset + 1, found[0],
                                                             persistent=found[1])
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and method is init:
                name = _self_attr(node.targets[0])
                kind = _layer_kind(node.value, roots)
                if name and kind:
                    layers[name] = kind
    if sites_only is None:
        _builders(methods, roots, class_names, out, functions, callables)
    if sites_only is not None and not out.buffers:  # no buffer: only a weight tie in __init__ is a site
        scanned = [init] if init is not None and "weight" in sites_only else []
    else:
        scanned = list(methods.values())
    for method in scanned:
        for node in _walk(method):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                _buffer_chain(node, out.buffers, facts)
            if isinstance(node, ast.AugAssign) and type(node.op) in _OPS:
                name = _self_attr(node.target)
                if name in out.buffers:
                    facts.sites[node.lineno] = StructureSite("buffer_update", node.lineno, node.col_offset + 1, name,
                                                             _OPS[type(node.op)])
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                _assign_site(node, method is init, out.buffers, layers, facts)
    return out


def _assign_site(node: ast.Assign, in_init: bool, buffers: set[str], layers: dict[str, str],
                 facts: StructureFacts) -> None:
    """A buffer's update or item assignment, a weight tie in __init__ (`self.head.weight = self.emb.weight`)."""
    target = node.targets[0]
    name = _self_attr(target)
    if name in buffers and not in_init:
        facts.sites[node.lineno] = StructureSite("buffer_update", node.lineno, node.col_offset + 1, name, "=")
    if isinstance(target, ast.Subscript) and _self_attr(target.value) in buffers:
        what = f"buffer self.{_self_attr(target.value)}"
        facts.sites[node.lineno] = StructureSite("index_assign", node.lineno, node.col_offset + 1,
                                                 refusal=INDEX_TARGET_REFUSAL.format(what=what))
    if (in_init and isinstance(target, ast.Attribute) and target.attr == "weight"
            and isinstance(node.value, ast.Attribute) and node.value.attr == "weight"):
        head, embed = _self_attr(target.value), _self_attr(node.value.value)
        lhs, rhs = _dotted(target) or "?", _dotted(node.value) or "?"
        if head and embed and layers.get(head) == "Linear" and layers.get(embed) == "Embedding":
            facts.sites[node.lineno] = StructureSite("weight_tie", node.lineno, node.col_offset + 1, head,
                                                     source=f"self.{embed}")
        else:
            facts.sites[node.lineno] = StructureSite("weight_tie", node.lineno, node.col_offset + 1,
                                                     refusal=TIE_REFUSAL.format(lhs=lhs, rhs=rhs))


def _builders(methods: dict[str, ast.FunctionDef], roots: set[str], class_names: set[str], out: ClassFacts,
              functions: set[str], callables: set[str]) -> None:
    """The rewrite's builder facts: builder methods, factory parameters and calls, optional children."""
    factory_calls = {name: _factory_calls(method, functions, callables) for name, method in methods.items()
                     if name != "forward"}
    # builder methods: called as self.M(...) and building layers, blocks or other builders
    changed = True
    while changed:
        changed = False
        for name, method in methods.items():
            if name in ("__init__", "forward") or name in out.builders:
                continue
            factories = out.factories.get(name, set())
            if factory_calls.get(name):
                out.builders.add(name)
                changed = True
                continue
            for node in _walk(method):
                if isinstance(node, ast.Call) and (
                        _layer_kind(node, roots) is not None
                        or (isinstance(node.func, ast.Name) and (node.func.id in class_names or node.func.id in factories))
                        or (_self_attr(node.func) in out.builders)):
                    out.builders.add(name)
                    changed = True
                    break
        # block classes flow into builders' parameters: self._make_layer(block, ...)
        for caller, method in methods.items():
            given = out.factories.get(caller, set())
            if not given:
                continue
            for node in _walk(method):
                callee = _self_attr(node.func) if isinstance(node, ast.Call) else None
                if callee in methods and callee != caller:
                    params = [a.arg for a in methods[callee].args.args[1:]]
                    new = {params[i] for i, a in enumerate(node.args)
                           if isinstance(a, ast.Name) and a.id in given and i < len(params)}
                    new |= {k.arg for k in node.keywords if isinstance(k.value, ast.Name) and k.value.id in given and k.arg}
                    if not new <= out.factories.get(callee, set()):
                        out.factories.setdefault(callee, set()).update(new)
                        changed = True
    for name, calls in factory_calls.items():
        if name == "__init__" or name in out.builders:
            out.factory_calls |= calls
    _optional_children(methods.values(), roots, out)


_CONTAINER_METHODS = {"append", "extend", "insert", "add_module"}


def _optional_children(methods, roots: set[str], out: ClassFacts) -> None:
    """`self.x = None` where x is assigned a module elsewhere in the class: ClassFacts.optional_children."""
    nones: dict[str, list[int]] = {}
    modules: dict[str, set[str]] = {}
    for method in methods:
        for node in _walk(method):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and _self_attr(node.targets[0])):
                continue
            name, value = _self_attr(node.targets[0]), node.value
            if isinstance(value, ast.Constant) and value.value is None:
                nones.setdefault(name, []).append(node.lineno)
            elif _layer_kind(value, roots) is not None or (
                    isinstance(value, ast.Call) and ((value.lineno, value.col_offset + 1) in out.factory_calls
                                                     or _self_attr(value.func) in out.builders)):
                modules.setdefault(name, set()).add("*")
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                modules.setdefault(name, set()).add(value.func.id)  # a module if a converted class
    out.optional_children = {line: held for name, held in modules.items() for line in nones.get(name, ())}


def _training_reads(cls: ast.ClassDef, facts: StructureFacts, tree: ast.Module) -> None:
    """`self.training` in the methods of a module class (core.structure, kind "training"): read,
    it becomes `(not self.deterministic)` and __init__ sets the flag; assigned, it is refused."""
    reads, stores = [], []
    taken = False
    for stmt in cls.body:
        if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in _walk(stmt):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                if node.attr == "training":
                    (reads if type(node.ctx) is ast.Load else stores).append((node, stmt.name))
                elif node.attr == TRAIN_FLAG:
                    taken = True
    if not reads and not stores:
        return
    own_init = any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in cls.body)
    # no __init__ of its own: a base class of this file (analysed before it) that sets the flag will do
    inherited = any(isinstance(b, ast.Name) and b.id in facts.classes and facts.classes[b.id].sets_train_flag
                    for b in cls.bases)
    refusal = (TRAINING_TAKEN_REFUSAL if taken else TRAINING_NO_INIT_REFUSAL if not (own_init or inherited) else "")
    # op: "forward" in forward or a method only forward runs (core.forward_helpers), else the method
    # reading it (a target may convert it where forward's mode reaches only)
    helpers = forward_helpers(cls, tree) if any(m != "forward" for _, m in reads) else frozenset()
    for node, method in reads:
        facts.training[(node.lineno, node.col_offset)] = StructureSite(
            "training", node.lineno, node.col_offset + 1, "training", "forward" if method in helpers else method,
            refusal=refusal.format(cls=cls.name))
    for node, _ in stores:
        facts.training[(node.lineno, node.col_offset)] = StructureSite(
            "training", node.lineno, node.col_offset + 1, "training", refusal=TRAINING_STORE_REFUSAL)
    facts.classes[cls.name].sets_train_flag = bool(reads) and not refusal and own_init


def _container_kinds(classes: list[ast.ClassDef], aliases: dict[str, str]) -> dict[str, str]:
    """Class name -> the torch container it subclasses ("sequential", "dict"; "" for nn.Module),
    for every class of the file with a torch module base, directly or through another class."""
    out: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls.name in out:
                continue
            for base in cls.bases:
                q = qualname_of(base, aliases)
                if q in CONTAINER_BASES or q in MODULE_BASES:
                    kind = CONTAINER_BASES.get(q, "")
                elif isinstance(base, ast.Name) and base.id in out:
                    kind = out[base.id]
                else:
                    continue
                out[cls.name] = kind
                changed = True
                break
    return out


def _module_children(cls: ast.ClassDef, container: str | None, roots: set[str], class_names: set[str],
                     facts: StructureFacts, sites_only: frozenset[str] | None = None) -> None:
    """Children registered the torch way in a converted class: `self.add_module(name, m)` (any
    class), and in an nn.Sequential subclass `self.name = layer` in __init__ (torch appends it)."""
    if container is None or (sites_only is not None and container != "sequential"
                             and "add_module" not in sites_only):
        return
    # containers built in __init__ (`self.features = nn.Sequential(...)`): their add_module appends too
    owned: dict[str, str] = {}
    for method in cls.body:
        if isinstance(method, ast.FunctionDef) and method.name == "__init__":
            for stmt in _own_statements(method.body):
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and _self_attr(stmt.targets[0]):
                    kind = {"Sequential": "sequential", "ModuleDict": "dict"}.get(_layer_kind(stmt.value, roots) or "")
                    if kind:
                        owned[_self_attr(stmt.targets[0])] = kind
    reads: set[str] = set()  # self.x read anywhere in the class
    for node in _walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and _self_attr(node):
            reads.add(node.attr)
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef):
            continue
        filled = filled_sequentials(_own_nodes(method))  # `seq = nn.Sequential()` + seq.add_module(...)
        for stmt in _own_statements(method.body):
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                shape_ok = len(call.args) == 2 and not call.keywords and not any(
                    isinstance(a, ast.Starred) for a in call.args)
                func = call.func
                if _self_attr(func) == "add_module" and shape_ok:
                    facts.handled_calls.add((call.lineno, "add_module"))
                    facts.sites[stmt.lineno] = StructureSite("add_module", stmt.lineno, stmt.col_offset + 1,
                                                             op=container)
                elif (isinstance(func, ast.Attribute) and func.attr == "add_module" and shape_ok
                      and _self_attr(func.value) in owned):  # self.features.add_module(name, m)
                    facts.handled_calls.add((call.lineno, "add_module"))
                    facts.sites[stmt.lineno] = StructureSite("add_module", stmt.lineno, stmt.col_offset + 1,
                                                             _self_attr(func.value), op=owned[_self_attr(func.value)])
                elif (isinstance(func, ast.Attribute) and func.attr == "add_module" and shape_ok
                      and isinstance(func.value, ast.Name) and func.value.id in filled):
                    facts.handled_calls.add((call.lineno, "add_module"))
                    facts.sites[stmt.lineno] = StructureSite("add_module", stmt.lineno, stmt.col_offset + 1,
                                                             func.value.id, op="named")
            elif (container == "sequential" and method.name == "__init__" and isinstance(stmt, ast.Assign)
                  and len(stmt.targets) == 1 and _self_attr(stmt.targets[0])
                  and _constructs_layer(stmt.value, roots, class_names)):
                name = _self_attr(stmt.targets[0])
                refusal = CHILD_READ_REFUSAL.format(cls=cls.name, name=name) if name in reads else ""
                facts.sites[stmt.lineno] = StructureSite("sequential_child", stmt.lineno, stmt.col_offset + 1, name,
                                                         refusal=refusal)


def _constructs_layer(value: ast.AST, roots: set[str], class_names: set[str]) -> bool:
    """`nn.BatchNorm2d(c)`, `Block(c)` (a class of this file): a layer torch registers in order."""
    if _layer_kind(value, roots) is not None:
        return True
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in class_names


def _local_item(target: ast.AST) -> bool:
    """`layers["pre_norm"]` (an item of a local mapping or list), not `self.x[...]`."""
    return isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id != "self"


# an annotation saying that calling the value builds a module: `Callable[..., nn.Module]`,
# `type[nn.Module]`, `Optional[Callable[..., Block]]` (a class of the file named Block)
_MODULE_ANNOTATION = re.compile(r"(?:Callable\[\s*\.\.\.\s*,|\b[Tt]ype\[)\s*([\w.]+)\s*\]")


def module_callables(tree: ast.Module, class_names: set[str]) -> set[str]:
    """Names (fields, attributes, parameters) annotated anywhere in the file as holding a module
    class or factory (`block: Callable[..., nn.Module]` in a config dataclass): a call of such a
    field of a local value (`cnf.block(cnf, p, norm_layer)`) whose result becomes a submodule
    constructs a module, so it gets `rngs` as a parameter called so does."""
    out: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.AnnAssign):
            name = node.target.id if isinstance(node.target, ast.Name) else _self_attr(node.target)
            annotation = node.annotation
        elif isinstance(node, ast.arg) and node.annotation is not None:
            name, annotation = node.arg, node.annotation
        else:
            continue
        if name is None:
            continue
        for match in _MODULE_ANNOTATION.finditer(ast.unparse(annotation)):
            held = match.group(1)
            if held.rsplit(".", 1)[-1] == "Module" or held in class_names:
                out.add(name)
    return out


def _factory_calls(method: ast.FunctionDef, functions: set[str],
                   module_callables: set[str] = frozenset()) -> set[tuple[int, int]]:
    """Calls of a parameter or local of `method` whose result becomes a submodule: assigned to
    `self.x`, appended to / listed in a layers list, passed to a container or a class, returned.
    Such a callable is a layer class (a block passed in, `norm_layer = nn.BatchNorm2d`, a
    `partial(...)` of one): it is constructed, so it gets `rngs`. A name bound to a plain function
    of the file (`conv_fn = conv3x3`, or defaulting to one) is not a class and is left alone."""
    args = method.args
    params = [a.arg for a in [*args.posonlyargs, *args.args[1:], *args.kwonlyargs]]
    plain: set[str] = set()
    defaults = list(zip(reversed([*args.posonlyargs, *args.args]), reversed(args.defaults)))
    defaults += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    for arg, default in defaults:
        if isinstance(default, ast.Name) and default.id in functions:
            plain.add(arg.arg)
    names = set(params)
    for node in _own_statements(method.body):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, (ast.AnnAssign, ast.For)) else []
        for target in targets:
            for leaf in _walk(target):
                if isinstance(leaf, ast.Name):
                    names.add(leaf.id)
                    value = getattr(node, "value", None)
                    if isinstance(value, ast.Name) and value.id in functions:
                        plain.add(leaf.id)
    names -= plain | {"self"}
    out: set[tuple[int, int]] = set()

    def module_position(expr: ast.AST | None) -> None:
        if isinstance(expr, (ast.List, ast.Tuple)):
            for element in expr.elts:
                module_position(element)
        elif isinstance(expr, ast.Starred):
            module_position(expr.value)
        elif isinstance(expr, ast.IfExp):
            module_position(expr.body)
            module_position(expr.orelse)
        elif isinstance(expr, ast.Call):
            if isinstance(expr.func, ast.Name) and expr.func.id in names:
                out.add((expr.lineno, expr.col_offset + 1))
            elif (isinstance(expr.func, ast.Attribute) and expr.func.attr in module_callables
                  and isinstance(expr.func.value, ast.Name) and expr.func.value.id in names):
                out.add((expr.lineno, expr.col_offset + 1))  # cnf.block(...): a field holding a module class

    for node in _own_statements(method.body):
        if isinstance(node, ast.Assign):
            if any(_self_attr(t) or isinstance(t, ast.Name) or _local_item(t) for t in node.targets):
                module_position(node.value)  # self.bn = norm_layer(c); layers = [block(...)]; d["n"] = norm(c)
        elif isinstance(node, ast.AnnAssign):
            module_position(node.value)
        elif isinstance(node, ast.Return):
            module_position(node.value)
        for sub in _walk(node) if isinstance(node, (ast.Expr, ast.Assign, ast.AnnAssign, ast.Return)) else ():
            if not isinstance(sub, ast.Call):
                continue
            method_name = sub.func.attr if isinstance(sub.func, ast.Attribute) else None
            callee = _dotted(sub.func) or ""
            if method_name in _CONTAINER_METHODS or callee.rsplit(".", 1)[-1][:1].isupper():
                for arg in [*sub.args, *(k.value for k in sub.keywords)]:
                    module_position(arg)  # layers.append(block(...)), nn.Sequential(norm_layer(c))
    return out


def _buffer_chain(stmt: ast.Expr, buffers: set[str], facts: StructureFacts) -> None:
    """`self.running.mul_(m).add_(x)` as a statement, on a registered buffer."""
    calls = []
    node = stmt.value
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.endswith("_"):
        calls.append(node)
        node = node.func.value
    name = _self_attr(node)
    if not calls or name not in buffers:
        return
    methods = [call.func.attr for call in reversed(calls)]  # type: ignore[attr-defined]
    for method in methods:
        facts.handled_calls.add((stmt.value.lineno, method))
    convertible = all(call.func.attr in CHAIN_OPS and len(call.args) == 1 and not call.keywords  # type: ignore[attr-defined]
                      and not isinstance(call.args[0], ast.Starred) for call in calls)
    facts.sites[stmt.lineno] = StructureSite("buffer_chain", stmt.lineno, stmt.col_offset + 1, name,
                                             "".join(f".{m}()" for m in methods),
                                             refusal="" if convertible else buffer_chain_refusal(name, methods))


def _index_assignments(func: ast.FunctionDef | ast.AsyncFunctionDef, roots: set[str], facts: StructureFacts) -> None:
    """`pe[:, 0::2] = v` where `pe` is a local array the function built with torch (`pe =
    torch.zeros(...)`, rebound by its own methods `pe = pe.float()`) and shared with nothing yet.

    Aliasing: once the array is stored elsewhere (`self.register_buffer("pe", pe)`, `self.x = pe`,
    `nn.Parameter(pe)`, a view `row = pe[0]`, a list), a torch write through one name shows through
    the others, and `pe = pe.at[...].set(v)` would only rebind the local: refused from then on.
    Nested functions are analysed on their own."""
    arrays: set[str] = set()
    shared: dict[str, int] = {}  # array -> line where it was stored elsewhere
    for stmt in _own_statements(func.body):
        target = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, op = stmt.targets[0], "="
        elif isinstance(stmt, ast.AugAssign) and type(stmt.op) in _OPS:
            target, op = stmt.target, _OPS[type(stmt.op)]
        elif _fill_call(stmt) is not None:  # `qkv_bias[n:2 * n].zero_()`: an index assignment of 0
            target, op = stmt.value.func.value, "="  # type: ignore[attr-defined]
            if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id in arrays:
                facts.handled_calls.add((stmt.lineno, _fill_call(stmt)))
        if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id in arrays:
            name = target.value.id
            if name in shared:
                what = f"local array `{name}`, which line {shared[name]} shares (a buffer, parameter, view or container)"
                facts.sites[stmt.lineno] = StructureSite("index_assign", stmt.lineno, stmt.col_offset + 1, name, op,
                                                         refusal=INDEX_TARGET_REFUSAL.format(what=what))
            else:
                facts.sites[stmt.lineno] = StructureSite("index_assign", stmt.lineno, stmt.col_offset + 1, name, op)
            continue
        for name in _escaping(stmt, arrays, roots):
            shared.setdefault(name, stmt.lineno)
        if isinstance(target, ast.Name):
            rebinds_itself = _is_method_of(stmt.value, target.id)
            if op == "=" and (_torch_call(stmt.value, roots) or _new_array(stmt.value, arrays)
                              or (rebinds_itself and target.id in arrays)):
                if not rebinds_itself:
                    shared.pop(target.id, None)  # a fresh array under an old name
                arrays.add(target.id)
            elif not (op != "=" and target.id in arrays):
                arrays.discard(target.id)


def _fill_call(stmt: ast.stmt) -> str | None:
    """`x[idx].zero_()` / `x[idx].fill_(v)` as a statement -> the method's name."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute) \
            and isinstance(stmt.value.func.value, ast.Subscript) and not stmt.value.keywords \
            and ((stmt.value.func.attr == "zero_" and not stmt.value.args)
                 or (stmt.value.func.attr == "fill_" and len(stmt.value.args) == 1)):
        return stmt.value.func.attr
    return None


def _is_method_of(value: ast.AST, name: str) -> bool:
    """`x.float()`, `x.permute(1, 0).contiguous()`: x's own methods, chained."""
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)):
        return False
    base = value.func.value
    return (isinstance(base, ast.Name) and base.id == name) or _is_method_of(base, name)


# tensor methods that make a new tensor whatever their receiver is
_NEW_TENSOR_METHODS = frozenset({"new_zeros", "new_ones", "new_full", "new_empty", "clone"})


def _new_array(value: ast.AST, arrays: set[str]) -> bool:
    """A new array from arrays: arithmetic on one (`c[:, None] - c[None, :]`, a new tensor, no
    view of it), or `x.new_zeros(shape)` / `x.clone()`."""
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
        return value.func.attr in _NEW_TENSOR_METHODS
    if isinstance(value, ast.BinOp):
        for side in (value.left, value.right):
            while isinstance(side, (ast.Subscript, ast.Attribute, ast.Call)):  # `c.flatten(1)[:, None]`
                side = side.func if isinstance(side, ast.Call) else side.value
            if isinstance(side, ast.Name) and side.id in arrays:
                return True
    return False


def _escaping(stmt: ast.stmt, arrays: set[str], roots: set[str]) -> set[str]:
    """Arrays this statement stores elsewhere (shares memory with another name or object)."""
    if not arrays:
        return set()
    out: set[str] = set()
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        value = stmt.value
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        base = value
        while isinstance(base, (ast.Subscript, ast.Attribute)) or (
                isinstance(base, ast.Call) and isinstance(base.func, ast.Attribute)):
            base = base.func.value if isinstance(base, ast.Call) else base.value  # type: ignore[union-attr]
        if isinstance(base, ast.Name) and base.id in arrays and not (
                len(targets) == 1 and isinstance(targets[0], ast.Name) and targets[0].id == base.id):
            out.add(base.id)  # q = pe, self.pe = pe, row = pe[0], v = pe.view(...)
    headers = [stmt] if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Return)) else \
        [getattr(stmt, f) for f in ("iter", "test", "items") if getattr(stmt, f, None) is not None]
    for header in headers:
        for node in _walk(header) if isinstance(header, ast.AST) else ():
            if isinstance(node, ast.Call):
                text = _dotted(node.func) or ""
                fresh = text.split(".")[0] in roots and not text.rsplit(".", 1)[-1][:1].isupper()
                if not fresh:  # torch.sin(pe) makes a new array; register_buffer / nn.Parameter keep pe
                    out |= {a.id for a in node.args if isinstance(a, ast.Name) and a.id in arrays}
                    out |= {k.value.id for k in node.keywords if isinstance(k.value, ast.Name) and k.value.id in arrays}
            elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                out |= {e.id for e in node.elts if isinstance(e, ast.Name) and e.id in arrays}
            elif isinstance(node, ast.Dict):
                out |= {v.id for v in node.values if isinstance(v, ast.Name) and v.id in arrays}
    if isinstance(stmt, ast.For) and isinstance(stmt.iter, ast.Name) and stmt.iter.id in arrays:
        out.add(stmt.iter.id)  # for row in pe: rows are views
    return out


def _own_statements(body: list[ast.stmt]):
    """Statements in source order, into if/for/while/with/try blocks but not nested defs/classes."""
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield stmt
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list):
                yield from _own_statements(inner)
        for handler in getattr(stmt, "handlers", []) or []:
            yield from _own_statements(handler.body)


def _torch_call(value: ast.AST, roots: set[str]) -> bool:
    """A torch function call (`torch.zeros(...)`), which makes a new array (not `nn.Linear(...)`)."""
    if isinstance(value, ast.Call):
        text = _dotted(value.func)
        if text is not None and "." in text and text.split(".")[0] in roots:
            return not text.rsplit(".", 1)[-1][:1].isupper()
    return False
