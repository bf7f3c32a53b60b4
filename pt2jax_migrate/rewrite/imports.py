"""Imports: which local names are torch names (`import_aliases`), the names a module binds, and
the final pass that prunes unused torch imports, adds JAX ones and emits helpers."""

from __future__ import annotations

import functools

import libcst as cst

from ..names import is_torch_name
from ..targets import Target, get_target
from .cst_util import (_after_imports, _dotted, _has_comment, _target_names, code_of, names_in,
                       statements_in)

# names the default target's converted code may use -> the import binding each (the rewrite
# itself asks its target: `target.converted_imports`)
IMPORTS = get_target().converted_imports


def import_aliases(module: cst.Module) -> dict[str, str]:
    """Local name -> qualified torch name, for every torch import in the file (inside functions
    too: one file-wide map, so a name two imports bind to different torch names is left out)."""
    aliases: dict[str, str] = {}
    clashes: set[str] = set()

    def bind(local: str, full: str) -> None:
        if aliases.setdefault(local, full) != full:
            clashes.add(local)

    for node in statements_in(module):  # imports are statements: no expression is entered
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = _dotted(alias.name)
                if not full or not is_torch_name(full):
                    continue
                if alias.asname is not None:
                    bind(alias.asname.name.value, full)
                else:
                    root = full.split(".")[0]
                    bind(root, root)
        elif isinstance(node, cst.ImportFrom):
            if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
                continue
            base = _dotted(node.module)
            if not base or not is_torch_name(base):
                continue
            for alias in node.names:
                name = alias.name.value
                local = alias.asname.name.value if alias.asname is not None else name
                bind(local, f"{base}.{name}")
    for name in clashes:
        del aliases[name]
    return aliases


def _module_level_names(module: cst.Module, assignments: bool = True) -> set[str]:
    """Names bound at module level by defs, classes, imports (and plain assignments)."""
    names: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and assignments:
                    for target in small.targets:
                        names |= _target_names(target.target)
                elif isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(getattr(small, "names", None), cst.ImportStar):
                    for alias in small.names:
                        if alias.asname is not None:
                            names |= _target_names(alias.asname.name)
                        else:
                            names.add(code_of(alias.name).split(".")[0])
    return names


def not_tensor_names(module: cst.Module, target: str | Target | None = None) -> set[str]:
    """Module-level names bound by imports, defs and classes, and the names the target's converted
    code imports: receivers that are not tensors."""
    return set(get_target(target).converted_imports) | _module_level_names(module, assignments=False)


def finish_imports(module: cst.Module, aliases: dict[str, str], helpers: set[str],
                   target: str | Target | None = None, helpers_module: str | None = None,
                   local_imports: bool = False) -> cst.Module:
    """Drop torch imports nothing uses any more, add the imports (the target's) the new code
    uses, and emit the target's helpers it needs: their definitions (once per file), or, given
    `helpers_module` (the module as an import names it, `._pt2jax_helpers`), one import of them
    from the package's shared helpers module. `local_imports`: torch is imported inside a
    function too: those imports are pruned the same way, by what their function still uses."""
    target = get_target(target)
    if local_imports:
        module = module.visit(_LocalImports(aliases))
    imports = target.converted_imports
    body = list(module.body)
    # a scheduler helper takes the name of the torch class it replaces (`from
    # torch.optim.lr_scheduler import StepLR`): the helper is written and the import goes
    replaced = {name for name in helpers if aliases.get(name, "").startswith("torch.optim.lr_scheduler.")}
    defined = _module_level_names(module) - replaced
    helper_stmts = []
    if helpers_module is not None:
        needed_helpers = []
        wanted = [name for name in sorted(helpers) if name not in defined]
        if wanted:
            helper_stmts = [cst.parse_statement(f"from {helpers_module} import {', '.join(wanted)}\n")]
    else:
        needed_helpers = [h for h in target.helper_closure(sorted(helpers)) if h.name not in defined]
    for helper in needed_helpers:
        stmts = list(_helper_statements(helper.source))
        if stmts:
            lines = [cst.EmptyLine(indent=False), cst.EmptyLine(indent=False)] if helper_stmts or True else []
            stmts[0] = stmts[0].with_changes(leading_lines=[*lines, *stmts[0].leading_lines])
        helper_stmts += stmts
    probe = module.with_changes(body=[*body, *helper_stmts])
    used = names_in(probe) - replaced
    first_import = None
    new_body = []
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], (cst.Import, cst.ImportFrom)):
            kept = _prune_import(stmt.body[0], aliases, used)
            if kept is not stmt.body[0]:
                if first_import is None:
                    first_import = len(new_body)
                if kept is None:
                    if _has_comment(stmt.leading_lines):
                        new_body.append(cst.SimpleStatementLine(body=[cst.Pass()], leading_lines=stmt.leading_lines))
                    continue
                stmt = stmt.with_changes(body=[kept])
        new_body.append(stmt)
    bound = _module_level_names(module.with_changes(body=new_body))
    missing = [name for name in imports if name in used and name not in bound]
    insert_at = first_import if first_import is not None else _after_imports(new_body)
    import_stmts = [cst.parse_statement(imports[name] + "\n") for name in missing]
    if import_stmts and insert_at < len(new_body) and insert_at == first_import:
        # keep the blank lines/comments that stood above the first torch import
        pass
    new_body[insert_at:insert_at] = import_stmts
    if helper_stmts and helpers_module is not None:
        new_body.insert(_after_imports(new_body), helper_stmts[0])  # last of the imports
    elif helper_stmts:
        at = _after_imports(new_body)
        header = cst.EmptyLine(comment=cst.Comment("# pt2jax helpers: PyTorch semantics with no one-call JAX equivalent"))
        first = helper_stmts[0]
        helper_stmts[0] = first.with_changes(leading_lines=[*first.leading_lines, header])
        new_body[at:at] = helper_stmts
        if at + len(helper_stmts) < len(new_body):
            nxt = new_body[at + len(helper_stmts)]
            if not nxt.leading_lines or len(nxt.leading_lines) < 2:
                new_body[at + len(helper_stmts)] = nxt.with_changes(
                    leading_lines=[cst.EmptyLine(indent=False), cst.EmptyLine(indent=False), *[l for l in nxt.leading_lines if l.comment is not None]])
    return module.with_changes(body=new_body)


@functools.lru_cache(maxsize=None)
def _helper_statements(source: str) -> tuple[cst.BaseStatement, ...]:
    """A helper's statements, parsed once per process (libcst nodes are immutable; parsing the
    helpers again for every file cost a tenth of a rewrite)."""
    return tuple(cst.parse_module(source).body)


class _LocalImports(cst.CSTTransformer):
    """Torch imports inside functions that nothing in the function uses any more are dropped
    (a block left empty gets `pass`); the others stay, as at module level."""

    def __init__(self, aliases: dict[str, str]) -> None:
        super().__init__()
        self.aliases = aliases
        self.used: list[set[str]] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.used.append(names_in(node))

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.used.pop()
        return updated

    def visit_SimpleStatementLine(self, node) -> bool:
        return False  # its imports are pruned whole (leave_SimpleStatementLine): nothing below to visit

    visit_SimpleStatementSuite = visit_SimpleStatementLine

    def leave_SimpleStatementLine(self, original, updated):
        if not self.used or len(updated.body) != 1 or not isinstance(updated.body[0], (cst.Import, cst.ImportFrom)):
            return updated
        kept = _prune_import(updated.body[0], self.aliases, self.used[-1])
        if kept is updated.body[0]:
            return updated
        if kept is not None:
            return updated.with_changes(body=[kept])
        if _has_comment(updated.leading_lines):
            return updated.with_changes(body=[cst.Pass()])
        return cst.RemovalSentinel.REMOVE

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        if updated.body or not original.body:
            return updated
        return updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])


def _prune_import(node, aliases: dict[str, str], used: set[str]):
    """The import with unused torch names removed (None if nothing is left)."""
    if isinstance(node, cst.Import):
        keep = []
        for alias in node.names:
            full = _dotted(alias.name) or ""
            local = alias.asname.name.value if alias.asname is not None else full.split(".")[0]
            if is_torch_name(full) and local not in used:
                continue
            keep.append(alias)
    else:
        base = _dotted(node.module) if node.module is not None else None
        if not base or not is_torch_name(base) or isinstance(node.names, cst.ImportStar):
            return node
        keep = [a for a in node.names if (a.asname.name.value if a.asname is not None else a.name.value) in used]
    if len(keep) == len(node.names):
        return node
    if not keep:
        return None
    keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return node.with_changes(names=keep)
