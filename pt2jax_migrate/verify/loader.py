"""Load only what a model needs from a script, without running the script's top-level work.

A training script usually does more at import time than define a model: parse arguments,
download data, train, plot. verify must not run any of that. So the file is parsed with `ast`,
and only a *slice* of its top-level statements is executed:

* start from the root names (the model name plus the names used in --init and --loss);
* a name is resolved to the top-level statements that bind it: imports, `def`, `class`,
  assignments (`device = torch.device(...)`, `pair = lambda t: ...`, constants), and `if`/`try`/
  `with` blocks that bind it (other than the `if __name__ == "__main__":` guard);
* each selected statement adds the global names it reads: directly at module level, and inside
  the functions, lambdas, comprehensions and classes it defines (found with `symtable`, so a
  method's local `x` is not confused with a top-level `x = next(iter(loader))`);
* statements that mutate a selected non-module name are kept too (`CONFIG["depth"] = 3`,
  `LAYERS.append(64)`);
* loops, other top-level calls, `if __name__ == "__main__":` blocks and everything no root
  reaches are dropped. An import whose names nothing needs is never executed, so a missing
  torchvision/matplotlib does not stop verify; a needed one that fails is a VerifyError with
  the file and line.

The slice runs, statement by statement in source order, in a fresh module object registered in
sys.modules under a unique name (dataclasses and typing look their module up there).
"""

from __future__ import annotations

import ast
import builtins
import itertools
import re
import sys
import symtable
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .report import VerifyError

_COUNTER = itertools.count()
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_TRIES = (ast.Try, ast.TryStar) if hasattr(ast, "TryStar") else (ast.Try,)
_BLOCKS = (ast.If, ast.With, ast.AsyncWith, *_TRIES)


@dataclass
class LoadedFile:
    """A file's executed slice. `module` stays in sys.modules until `unload()`."""

    path: str
    module: types.ModuleType
    lines: list[int] = field(default_factory=list)  # first lines of the executed statements

    @property
    def namespace(self) -> dict:
        return self.module.__dict__

    def unload(self) -> None:
        if sys.modules.get(self.module.__name__) is self.module:
            del sys.modules[self.module.__name__]


@dataclass
class _Stmt:
    node: ast.stmt
    binds: set[str] = field(default_factory=set)  # names this statement defines
    mutates: set[str] = field(default_factory=set)  # non-import names it changes in place
    reads: set[str] = field(default_factory=set)  # global names it reads (also inside defs)
    is_import: bool = False
    is_star: bool = False
    is_future: bool = False


def read_source(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise VerifyError(f"{path}: no such file")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VerifyError(f"{path}: cannot read: {exc}") from exc


def parse_source(path: str, source: str) -> ast.Module:
    try:
        return ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise VerifyError(f"{path}:{exc.lineno or 1}: syntax error: {exc.msg}") from exc


def expression_names(text: str, *, what: str, call_args: bool = False) -> set[str]:
    """Global names an --init (call arguments) or --loss (expression) text reads."""
    source = f"_pt2jax_call_({text})" if call_args else text
    try:
        tree = ast.parse(source.strip() or "None", mode="eval")
    except SyntaxError as exc:
        kind = "call arguments" if call_args else "a Python expression"
        raise VerifyError(f"{what} {text!r} is not {kind}: {exc.msg}") from exc
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names.discard("_pt2jax_call_")
    return names


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    parts = [test.left, *test.comparators]
    has_name = any(isinstance(p, ast.Name) and p.id == "__name__" for p in parts)
    has_main = any(isinstance(p, ast.Constant) and p.value == "__main__" for p in parts)
    return has_name and has_main


def _target_names(target: ast.expr, binds: set[str], mutates: set[str]) -> None:
    if isinstance(target, ast.Name):
        binds.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _target_names(elt, binds, mutates)
    elif isinstance(target, ast.Starred):
        _target_names(target.value, binds, mutates)
    elif isinstance(target, (ast.Attribute, ast.Subscript)):
        base = target.value
        while isinstance(base, (ast.Attribute, ast.Subscript)):
            base = base.value
        if isinstance(base, ast.Name):
            mutates.add(base.id)


def _import_binds(node: ast.Import | ast.ImportFrom) -> tuple[set[str], bool]:
    names, star = set(), False
    for alias in node.names:
        if alias.name == "*":
            star = True
        elif alias.asname:
            names.add(alias.asname)
        else:
            names.add(alias.name.split(".")[0])
    return names, star


def _block_binds(body: list[ast.stmt], binds: set[str]) -> None:
    """Names bound at module level anywhere inside an if/try/with block."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            binds |= _import_binds(node)[0]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds.add(node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                _target_names(t, binds, set())
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            _target_names(node.target, binds, set())
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            _target_names(node.target, binds, set())
            _block_binds(node.body + node.orelse, binds)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    _target_names(item.optional_vars, binds, set())
            _block_binds(node.body, binds)
        elif isinstance(node, (ast.If, ast.While)):
            _block_binds(node.body + node.orelse, binds)
        elif isinstance(node, _TRIES):
            for handler in node.handlers:
                if handler.name:
                    binds.add(handler.name)
                _block_binds(handler.body, binds)
            _block_binds(node.body + node.orelse + node.finalbody, binds)


def _module_level_reads(node: ast.AST, out: set[str]) -> None:
    """Names read at module scope by `node`, not descending into nested scopes' bodies."""
    if isinstance(node, ast.Name):
        if isinstance(node.ctx, ast.Load):  # (`x[0] = 1` loads x; `x += 1` is handled below)
            out.add(node.id)
        return
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        parts: list[ast.AST] = [*node.decorator_list, node.args]
        if node.returns is not None:
            parts.append(node.returns)
        for part in parts:
            _module_level_reads(part, out)
        return
    if isinstance(node, ast.Lambda):
        _module_level_reads(node.args, out)
        return
    if isinstance(node, ast.ClassDef):
        for part in [*node.decorator_list, *node.bases, *node.keywords]:
            _module_level_reads(part, out)
        return
    if isinstance(node, _COMPREHENSIONS):
        _module_level_reads(node.generators[0].iter, out)  # evaluated in the enclosing scope
        return
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        out.add(node.target.id)
    for child in ast.iter_child_nodes(node):
        _module_level_reads(child, out)


def _scope_reads(table: symtable.SymbolTable, out: set[str]) -> None:
    """Global names read anywhere inside a nested scope (function, lambda, class, comprehension)."""
    for sym in table.get_symbols():
        if not sym.is_referenced():
            continue
        if table.get_type() == "class":
            # a class body looks names up in the class namespace, then in globals
            if not sym.is_free():
                out.add(sym.get_name())
        elif sym.is_global():
            out.add(sym.get_name())
    for child in table.get_children():
        _scope_reads(child, out)


def _analyse(path: str, source: str, tree: ast.Module) -> list[_Stmt]:
    try:
        top = symtable.symtable(source, path, "exec")
    except SyntaxError as exc:
        raise VerifyError(f"{path}:{exc.lineno or 1}: syntax error: {exc.msg}") from exc
    # nested scopes by the line they start on, to attribute their reads to a statement
    children = [(child.get_lineno(), child) for child in top.get_children()]
    stmts: list[_Stmt] = []
    for node in tree.body:
        st = _Stmt(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            st.binds, st.is_star = _import_binds(node)
            st.is_import = True
            st.is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            st.binds.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                _target_names(target, st.binds, st.mutates)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            _target_names(node.target, st.binds, st.mutates)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            # `LAYERS.append(64)` / `CONFIG.update(...)`: mutates LAYERS when it is needed
            func = node.value.func
            if isinstance(func, ast.Attribute):
                base = func.value
                while isinstance(base, (ast.Attribute, ast.Subscript)):
                    base = base.value
                if isinstance(base, ast.Name):
                    st.mutates.add(base.id)
        elif isinstance(node, _BLOCKS) and not _is_main_guard(node):
            _block_binds([node], st.binds)
        else:
            continue  # loops, bare expressions, the __main__ guard, ...: never executed
        _module_level_reads(node, st.reads)
        end = getattr(node, "end_lineno", node.lineno) or node.lineno
        for lineno, child in children:
            if node.lineno <= lineno <= end:
                _scope_reads(child, st.reads)
        stmts.append(st)
    return stmts


def select_statements(path: str, source: str, tree: ast.Module, roots: set[str]) -> list[ast.stmt]:
    """The top-level statements needed to define `roots`, in source order."""
    stmts = _analyse(path, source, tree)
    imported = set().union(*(s.binds for s in stmts if s.is_import)) if stmts else set()
    binders: dict[str, list[int]] = {}
    for i, st in enumerate(stmts):
        for name in st.binds:
            binders.setdefault(name, []).append(i)
        for name in st.mutates - imported:
            binders.setdefault(name, []).append(i)
    selected = {i for i, st in enumerate(stmts) if st.is_future}
    seen: set[str] = set()
    todo = list(roots)
    star_used = False
    while True:
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for i in binders.get(name, ()):
                if i not in selected:
                    selected.add(i)
                    todo.extend(stmts[i].reads - seen)
        # names nothing binds (and that are not builtins) may come from a star import
        unresolved = {n for n in seen if n not in binders and not hasattr(builtins, n)}
        stars = [i for i, st in enumerate(stmts) if st.is_star and i not in selected]
        if star_used or not unresolved or not stars:
            break
        star_used = True
        for i in stars:
            selected.add(i)
            todo.extend(stmts[i].reads - seen)
    return [stmts[i].node for i in sorted(selected)]


def _future_flags(nodes: list[ast.stmt]) -> int:
    import __future__

    flags = 0
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                if feature is not None:
                    flags |= feature.compiler_flag
    return flags


@contextmanager
def _on_sys_path(directory: str):
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        try:
            sys.path.remove(directory)
        except ValueError:
            pass


def _package_of(path: str) -> tuple[str, str]:
    """(package name, folder to put on sys.path) for a file inside a package (its folder and
    the ones above holding an __init__.py), so its relative imports (`from ..ops import x`)
    resolve; ("", the file's folder) for a loose script."""
    folder = Path(path).resolve().parent
    parts: list[str] = []
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts), str(folder)


@contextmanager
def _own_package(package: str, search_root: str):
    """While a file of `package` loads, set aside a package of the same name loaded from another
    folder (the original beside its converted copy: `src/pkg/m.py` and `jax_src/pkg/m.py`), so
    the file's relative imports find its own siblings; put back afterwards."""
    top = package.split(".")[0] if package else ""
    loaded = sys.modules.get(top)
    origin = list(getattr(loaded, "__path__", None) or [])
    mine = str(Path(search_root, top).resolve())
    if not top or loaded is None or any(str(Path(p).resolve()) == mine for p in origin):
        yield
        return
    names = [name for name in sys.modules if name == top or name.startswith(top + ".")]
    aside = {name: sys.modules.pop(name) for name in names}
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
        sys.modules.update(aside)


def _describe(node: ast.stmt) -> str:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "import"
    if isinstance(node, ast.ClassDef):
        return f"class {node.name}"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return f"def {node.name}"
    return "statement"


def load_slice(path: str, roots: set[str], *, label: str = "file") -> LoadedFile:
    """Execute the part of `path` that defines `roots` in a fresh module (see module docstring)."""
    source = read_source(path)
    tree = parse_source(path, source)
    nodes = select_statements(path, source, tree, roots)
    stem = re.sub(r"\W", "_", Path(path).stem)
    name = f"_pt2jax_verify_{label}_{next(_COUNTER)}_{stem}"
    module = types.ModuleType(name)
    module.__file__ = str(Path(path).resolve())
    module.__dict__["__builtins__"] = builtins
    package, search_root = _package_of(path)
    if package:
        module.__package__ = package
    loaded = LoadedFile(path=path, module=module, lines=[n.lineno for n in nodes])
    flags = _future_flags(nodes)
    sys.modules[name] = module
    try:
        # the file's own folder stays first: a script in a package folder may import its siblings
        with _on_sys_path(search_root), _on_sys_path(str(Path(path).resolve().parent)), \
                _own_package(package, search_root):
            for node in nodes:
                code = compile(ast.Module(body=[node], type_ignores=[]), path, "exec", flags=flags, dont_inherit=True)
                try:
                    exec(code, module.__dict__)
                except (Exception, SystemExit) as exc:
                    what = _describe(node)
                    raise VerifyError(
                        f"{path}:{node.lineno}: {what} failed while loading the model's definitions: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
    except BaseException:
        loaded.unload()
        raise
    return loaded
