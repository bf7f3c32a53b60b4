"""A converted module class as a Linen dataclass (libcst; the rewrite calls it through
LinenTarget.finish_class once the class body is converted).

    class MLP(nn.Module):                       class MLP(linen.Module):
        def __init__(self, d=4, p=0.1):             d: int = 4
            super().__init__()                      p: float = 0.1
            self.fc = nn.Linear(d, d)      ->
            self.drop = nn.Dropout(p)               def setup(self):
                                                        d, p = self.d, self.p
        def forward(self, x):                           self.fc = linen.Dense(d, ...)
            return self.drop(self.fc(x))                self.drop = linen.Dropout(p)

                                                    def __call__(self, x, *, train: bool = False):
                                                        return self.drop(self.fc(x), deterministic=not train)

The body of __init__ stays as it is (the parameters are read into locals of the same names
first), so setup() builds what torch's __init__ built, in the same order. What cannot be put
in this shape is reported by facts.py (lint asks the same) and left as it is. The pieces of
that shape (fields, setup()'s statements) are init_to_setup.py's; here they are put together and
`train` is threaded through __call__.
"""

from __future__ import annotations

import libcst as cst

from ...core.constructs import CONTAINER_BASES
from .containers import TAKE_TRAIN, container_keywords, deferred
from .init_hook import HOOK, add_hook, split_init
from .init_hook_facts import REFUSED
from .init_to_setup import (_Parameters, _Rename, _annotation, _assigned_attributes, _init_convertible, _is_copy,
                            _rebound)
from .facts import train_helpers
from .module_structure import _code, _names, _self_attr, class_ast, defer
from .train_threading import thread_train

# the keyword a submodule built by this callable takes at call time (train threading)
TRAIN_KEYWORDS = {"linen.Dropout": "deterministic=not train", "TorchBatchNorm": "use_running_average=not train",
                  "Sequential": "train=train", **{f"Torch{name}": "train=train" for name in TAKE_TRAIN}}




def _train_keywords(setup_body: list[cst.BaseStatement], classes: set[str]) -> dict[str, str]:
    out = {}
    for stmt in setup_body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                func = _code(small.value.func)
                keyword = TRAIN_KEYWORDS.get(func) or ("train=train" if func in classes else None)
                if keyword is not None:
                    for target in small.targets:
                        attr = _self_attr(target.target)
                        if attr is not None:
                            out[attr] = keyword
    return out


def _inherits_fields(original: cst.ClassDef, body, transformer) -> bool:
    """A converted class with its own __init__ whose base is a converted class of this file."""
    own_init = any(isinstance(s, cst.FunctionDef) and s.name.value == "__init__" for s in body)
    return own_init and any(isinstance(b.value, cst.Name) and b.value.value in transformer.converted_classes
                            for b in original.bases)


def _hook_possible(body) -> bool | None:
    """A __call__ to run init_parameters from, and no method of that name already (None: no
    __call__)."""
    names = {s.name.value for s in body if isinstance(s, cst.FunctionDef)}
    return (HOOK not in names) if "__call__" in names else None


def _field_markers(transformer, original: cst.ClassDef, leading, fields: list):
    """The __init__ header's TODO / NOTE lines for a parameter (`input_fmt: F = 'NCHW'`, a torch
    name in its annotation) go above that parameter's field, where a second rewrite puts them."""
    init = next(s for s in original.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "__init__")
    starts = [transformer._pos(p) for p in [*list(init.params.params)[1:], *init.params.kwonly_params]]
    if len(starts) != len(fields) or not all(starts):
        return leading, fields
    by_text = {}
    for f in transformer.findings:
        by_text.setdefault(f"{f.code} {f.message}", []).append((f.line, f.col))
    kept, placed = [], {}
    for line in leading:
        comment = line.comment.value if line.comment is not None else ""
        # `# TODO(pt2jax): CODE message`: the first finding of that text from the header on
        spot = min((p for p in by_text.get(comment.split(": ", 1)[-1], ()) if p >= starts[0]), default=None) \
            if "(pt2jax): " in comment else None
        at = max((i for i, start in enumerate(starts) if spot is not None and start <= spot), default=None)
        if at is None:
            kept.append(line)
        else:
            placed.setdefault(at, []).append(line)
    fields = [f.with_changes(leading_lines=[*placed.get(i, []), *f.leading_lines]) for i, f in enumerate(fields)]
    return kept, fields


def _reported_stuck(transformer, original) -> bool:
    """facts.module_sites reported torch init code this class leaves in setup()."""
    first, last = (transformer._pos(original)[0], transformer._pos(original)[0] + len(_code(original).splitlines()))
    return any(first <= line <= last and any(isinstance(m, tuple) and m[0] == "PTJ103" for m in messages)
               for line, messages in transformer.target_sites.items())


def finish_class(target, transformer, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
    if any(transformer.qualname(b.value) in CONTAINER_BASES for b in original.bases):
        return updated  # a subclass of nn.Sequential/ModuleList/ModuleDict is not converted (a TODO)
    body = list(updated.body.body)
    if _inherits_fields(original, body, transformer):
        return updated  # facts.py reports it: Linen fields are inherited, setup() overridden
    init_at = next((i for i, s in enumerate(body) if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"),
                   None)
    classes = set(transformer.converted_classes) | set(transformer.imported_classes)
    torch_class = class_ast(original)
    containers = {a: next(iter(k)) for a, k in container_keywords(torch_class, set(transformer.converted_classes),
                                                                  transformer.aliases).items() if len(k) == 1}
    keywords: dict[str, str] = {}
    renames: dict[str, str] = {}
    moved: list = []
    if init_at is not None and _init_convertible(body[init_at]):
        init: cst.FunctionDef = body[init_at]
        params = [*list(init.params.params)[1:], *init.params.kwonly_params]
        fields = []
        for p in params:
            annotation = _annotation(p)
            default = f" = {_code(p.default)}" if p.default is not None else ""
            fields.append(cst.parse_statement(f"{p.name.value}: {annotation}{default}\n"))
        statements = list(init.body.body)
        statements = [s for s in statements if not (isinstance(s, cst.SimpleStatementLine)
                                                     and all(isinstance(x, cst.Pass) for x in s.body))]
        new_body: list[cst.BaseStatement] = []
        names = {p.name.value for p in params}
        rebound = _rebound(statements)
        kept = [stmt for stmt in statements if not _is_copy(stmt, names, rebound)]
        if len(kept) < len(statements):
            transformer.changed(original, "PTJ101", "`self.p = p` of a constructor argument: the Linen field holds it")
        statements = kept
        taken = {a for a, _ in _assigned_attributes(statements)} | names
        for attr, _ in _assigned_attributes(statements):
            if attr in names and attr not in renames:
                new = attr + "_"
                while new in taken:
                    new += "_"
                taken.add(new)
                renames[attr] = new
        if renames:  # a Linen field is frozen: the attribute of the same name gets another
            transformer.changed(original, "PTJ101", "attributes named like a constructor argument (a Linen "
                                                    "field) renamed: " + ", ".join(f"self.{a} -> self.{b}"
                                                                                   for a, b in renames.items()))
            rename = _Rename(renames)
            statements = [s.visit(rename) for s in statements]
            body = [s.visit(rename) if i != init_at else s for i, s in enumerate(body)]
        if statements:
            parameters = _Parameters(target.rngs_name)
            statements = [s.visit(parameters) for s in statements]
            later = deferred(torch_class, transformer.aliases)[0]
            statements = defer(statements, [renames.get(a, a) for a in later])
            statements, moved, moved_read, refused = split_init(
                statements, set(transformer.init_facts.init_calls.values()), set(names), _hook_possible(body))
            statements = statements or [cst.parse_statement("pass\n")]
            if refused and not _reported_stuck(transformer, original):  # lint's fact missed it: say so
                transformer.todo(original, "PTJ103", REFUSED.format(why=next(iter(refused.values()))))
            used = set().union(*(_names(s) for s in statements))
            read = [p.name.value for p in params if p.name.value in used]
            if read:
                head = cst.parse_statement(f"{', '.join(read)} = {', '.join('self.' + n for n in read)}\n")
                statements.insert(0, head)
            setup = init.with_changes(name=cst.Name("setup"), params=cst.parse_statement(
                "def setup(self): pass\n").params, body=init.body.with_changes(body=statements))  # type: ignore
            keywords = _train_keywords(statements, classes)
            new_body.append(setup)
        transformer.changed(original, "PTJ101", f"class {original.name.value}: __init__ parameters -> Linen "
                                                "fields, its body -> setup()")
        leading = init.leading_lines
        if fields:
            leading, fields = _field_markers(transformer, original, leading, fields)
            fields[0] = fields[0].with_changes(leading_lines=[*leading, *fields[0].leading_lines])
            if new_body:
                new_body[0] = new_body[0].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        elif new_body:
            new_body[0] = new_body[0].with_changes(leading_lines=leading)
        body[init_at:init_at + 1] = [*fields, *new_body]
        if moved:  # torch's init code on the built parameters: init_parameters, run under init
            body = add_hook(body, init_at + len(fields), moved, moved_read, transformer)
    else:  # inherited fields and setup: the submodules a base's setup() builds
        keywords = {}
    helpers = train_helpers(transformer.tree, original.name.value) if transformer.tree is not None else frozenset()
    body = thread_train(body, keywords, {renames.get(a, a): k for a, k in containers.items()}, helpers,
                        transformer, original)
    return updated.with_changes(body=updated.body.with_changes(body=body))

