"""Lists and dicts of submodules in a Linen setup(), read off the torch class's `ast` (facts.py
reports what does not fit, module.py writes what does: both ask these functions).

Linen freezes what setup() assigns (a list becomes a tuple, a dict a FrozenDict) and refuses a
second assignment to a submodule's name. So an attribute torch fills after assigning it
(`self.layers = nn.ModuleList()` then `self.layers.append(...)`, `self.d[k] = m`,
`self.d.add_module(k, m)`) or assigns again (a weight tie: `self.head.weight = self.embed.weight`
makes the head a TiedDense) is *deferred*: setup() builds it in a local and assigns it once, at
its end. That needs the first assignment to be a statement of __init__ itself (not inside an if
or a loop, where the local might stay unbound).

A list or dict whose elements take `train` (Dropout, BatchNorm, Sequential, a converted class)
gets it where forward calls an element: `for block in self.h: x = block(x)`, `for a, b in
self.layers`, `.values()`, `.items()`, `enumerate(...)`, or `self.h[i](x)`.
"""

from __future__ import annotations

import ast

FILLS = frozenset({"append", "extend", "insert", "update", "add_module", "setdefault"})
CONTAINERS = frozenset({"torch.nn.ModuleList", "torch.nn.ModuleDict"})
# torch layer -> the keyword its Linen form takes at call time
KEYWORDS = {"torch.nn.Dropout": "deterministic=not train", "torch.nn.BatchNorm1d": "use_running_average=not train",
            "torch.nn.BatchNorm2d": "use_running_average=not train",
            "torch.nn.BatchNorm3d": "use_running_average=not train", "torch.nn.Sequential": "train=train"}
# torch layers whose Linen helper (Torch<name>) takes `train` (dropout inside)
TAKE_TRAIN = ("LSTM", "GRU", "RNN", "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer",
              "TransformerEncoder", "TransformerDecoder")
KEYWORDS.update({f"torch.nn.{name}": "train=train" for name in TAKE_TRAIN})


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _init(cls: ast.ClassDef) -> ast.FunctionDef | None:
    return next((m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name == "__init__"), None)


def _later_changes(init: ast.FunctionDef) -> dict[str, list[ast.AST]]:
    """attribute -> the statements/calls that assign it again or fill it (its first assignment aside)."""
    seen: set[str] = set()
    out: dict[str, list[ast.AST]] = {}
    # ast.walk's order is not the source's: the events are sorted by position
    events: list[tuple[int, int, str, ast.AST, bool]] = []  # (line, col, attr, node, is_assign)
    for node in ast.walk(init):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                attr = _self_attr(t)
                if attr is not None:
                    events.append((node.lineno, node.col_offset, attr, node, not isinstance(node, ast.AugAssign)))
                elif isinstance(t, ast.Subscript) and _self_attr(t.value) is not None:
                    events.append((node.lineno, node.col_offset, _self_attr(t.value), node, False))
                elif isinstance(t, ast.Attribute) and t.attr == "weight" and _self_attr(t.value) is not None:
                    events.append((node.lineno, node.col_offset, _self_attr(t.value), node, False))  # a tie
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FILLS
              and _self_attr(node.func.value) is not None):
            events.append((node.lineno, node.col_offset, _self_attr(node.func.value), node, False))
    first: dict[str, ast.AST] = {}
    for _, _, attr, node, is_assign in sorted(events, key=lambda e: (e[0], e[1])):
        if attr not in seen:
            if is_assign:
                seen.add(attr)
                first[attr] = node
            continue
        if not _exclusive(init, first[attr], node):
            out.setdefault(attr, []).append(node)
    return out


def _exclusive(init: ast.FunctionDef, a: ast.AST, b: ast.AST) -> bool:
    """`a` and `b` sit in different branches of one `if` (only one of them runs)."""
    for node in ast.walk(init):
        if isinstance(node, ast.If) and node.orelse:
            body = {id(n) for s in node.body for n in ast.walk(s)}
            orelse = {id(n) for s in node.orelse for n in ast.walk(s)}
            if (id(a) in body and id(b) in orelse) or (id(a) in orelse and id(b) in body):
                return True
    return False


def _first_assign(init: ast.FunctionDef, attr: str) -> ast.Assign | None:
    found = [n for n in ast.walk(init) if isinstance(n, ast.Assign) and len(n.targets) == 1
             and _self_attr(n.targets[0]) == attr]
    return min(found, key=lambda n: (n.lineno, n.col_offset)) if found else None


def deferred(cls: ast.ClassDef, aliases: dict[str, str]) -> tuple[list[str], dict[str, tuple[ast.AST, str]]]:
    """(attributes setup() builds in a local and assigns at its end, attribute -> (node, why) of
    the ones that cannot be)."""
    from ...names import qualname_of

    init = _init(cls)
    if init is None:
        return [], {}
    ok: list[tuple[int, int, str]] = []
    refused: dict[str, tuple[ast.AST, str]] = {}
    for attr, changes in _later_changes(init).items():
        first = _first_assign(init, attr)
        if first is None:
            continue  # `self.x.append` of something built elsewhere: not this module's attribute
        fills = [c for c in changes if isinstance(c, ast.Call) or isinstance(c, (ast.Assign, ast.AugAssign))
                 and isinstance((c.targets[0] if isinstance(c, ast.Assign) else c.target), ast.Subscript)]
        value = first.value
        sequential = isinstance(value, ast.Call) and qualname_of(value.func, aliases) == "torch.nn.Sequential"
        if first not in init.body:
            refused[attr] = (changes[0], f"self.{attr} is changed after an assignment inside a block: Linen "
                                         "assigns a submodule once in setup(); build it in a local and "
                                         "assign it once by hand")
        elif sequential and fills:
            refused[attr] = (fills[0], f"self.{attr} (an nn.Sequential) is filled after its assignment: the "
                                       "Linen Sequential's layers are a tuple; pass every layer to it by hand")
        else:
            ok.append((first.lineno, first.col_offset, attr))
    return [attr for *_, attr in sorted(ok)], refused


def _element_calls(init: ast.FunctionDef, attr: str) -> list[ast.Call]:
    """The calls that may build an element of the container self.<attr>."""
    roots: list[ast.AST] = []
    names: set[str] = set()
    for node in ast.walk(init):
        if isinstance(node, ast.Assign) and any(_self_attr(t) == attr for t in node.targets):
            roots.append(node.value)
            if isinstance(node.value, ast.Call):
                names |= {a.id for a in node.value.args if isinstance(a, ast.Name)}
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Subscript) and _self_attr(t.value) == attr
                                                  for t in node.targets):
            roots.append(node.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FILLS
              and _self_attr(node.func.value) == attr):
            roots.extend(node.args)
            names |= {a.id for a in node.args if isinstance(a, ast.Name)}
    for node in ast.walk(init):  # a local list handed to the container: what it holds
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names for t in node.targets):
            roots.append(node.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FILLS
              and isinstance(node.func.value, ast.Name) and node.func.value.id in names):
            roots.extend(node.args)
    return [c for root in roots for c in ast.walk(root) if isinstance(c, ast.Call)]


def container_keywords(cls: ast.ClassDef, classes, aliases: dict[str, str]) -> dict[str, set[str]]:
    """ModuleList / ModuleDict attribute -> the train keywords its elements take (empty: none)."""
    from ...names import qualname_of

    init = _init(cls)
    if init is None:
        return {}
    out: dict[str, set[str]] = {}
    for node in ast.walk(init):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and qualname_of(node.value.func, aliases) in CONTAINERS):
            for attr in filter(None, map(_self_attr, node.targets)):
                keywords = out.setdefault(attr, set())
                for call in _element_calls(init, attr):
                    q = qualname_of(call.func, aliases)
                    if q in KEYWORDS:
                        keywords.add(KEYWORDS[q])
                    elif isinstance(call.func, ast.Name) and call.func.id in classes:
                        keywords.add("train=train")
    return out


def element_calls(method: ast.FunctionDef, attr: str) -> tuple[list[ast.Call], list[ast.AST]]:
    """(calls of an element of self.<attr> in `method` that get `train`, other uses of self.<attr>)."""
    calls: list[ast.Call] = []
    handled: set[int] = set()
    for node in ast.walk(method):
        if isinstance(node, ast.For):
            it = node.iter
            if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "enumerate" and it.args:
                it, bound = it.args[0], node.target.elts[1] if isinstance(node.target, ast.Tuple) else None
            elif (isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr == "items"
                  and not it.args):
                it, bound = it.func.value, node.target.elts[1] if isinstance(node.target, ast.Tuple) else None
            else:
                if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr == "values":
                    it = it.func.value
                bound = node.target
            if _self_attr(it) != attr or bound is None:
                continue
            handled.add(id(it))
            names = {n.id for n in ast.walk(bound) if isinstance(n, ast.Name)}
            for stmt in node.body:
                calls += [c for c in ast.walk(stmt) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
                          and c.func.id in names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript)
              and _self_attr(node.func.value) == attr):
            handled.add(id(node.func.value))
            calls.append(node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"
              and len(node.args) == 1 and _self_attr(node.args[0]) == attr):
            handled.add(id(node.args[0]))
    others = [n for n in ast.walk(method) if _self_attr(n) == attr and id(n) not in handled]
    return calls, others
