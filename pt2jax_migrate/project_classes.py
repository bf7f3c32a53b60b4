"""Which names a file imports from another file of the same rewrite run are converted module
classes, and whether their constructors take `rngs` (read off the `ast`; never imports a file).

A rewrite of one file knows its own classes only: `from ..ops.misc import Permute` is a class
torch builds with `Permute([0, 2, 3, 1])`, and once ops/misc.py is converted too its __init__
takes `rngs`. `rewrite_paths` reads every file of the run once (`facts_of`), resolves each
file's imports against the others (`imported_classes`) and hands the rewrite of each file the
names it imports that are converted classes: their constructions get `rngs`, a class deriving
from one is converted, and its `super().__init__(...)` passes `rngs` on.

The rule, kept narrow so it is safe: only names imported with `from M import C` where M is a
file of the same run (relative, or absolute through the run's top folder name) and C is a
top-level class of M that the rewrite converts (an nn.Module / nn.Sequential / nn.ModuleDict
subclass, directly or through classes of its own file or of other files of the run). Its
constructor takes `rngs` when it (or a converted base) defines __init__, as the rewrite does.
"""

from __future__ import annotations

import ast
import posixpath
from dataclasses import dataclass, field

from .core.constructs import CONTAINER_BASES, MODULE_BASES
from .names import module_aliases, qualname_of


@dataclass
class FileClasses:
    """The facts one file contributes: its classes and the names it imports from modules."""

    classes: dict[str, tuple[list[str], bool, bool]] = field(default_factory=dict)  # name -> (bases, torch base, own __init__)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (module, name)


def facts_of(source: str, module: str, package: str) -> FileClasses:
    """`module`: the file's dotted name under the run's folder (`models.convnext`; a package's
    __init__ is the package itself); `package`: the package its relative imports start from.
    A file that does not parse contributes nothing."""
    out = FileClasses()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return out
    aliases = module_aliases(tree)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base is None:
                continue
            for alias in node.names:
                if alias.name != "*":
                    out.imports[alias.asname or alias.name] = (base, alias.name)
        elif isinstance(node, ast.ClassDef):
            bases, torch_base = [], False
            for b in node.bases:
                q = qualname_of(b, aliases)
                if q in MODULE_BASES or q in CONTAINER_BASES:
                    torch_base = True
                elif isinstance(b, ast.Name):
                    bases.append(b.id)
            own_init = any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in node.body)
            out.classes[node.name] = (bases, torch_base, own_init)
    return out


def _absolute(node: ast.ImportFrom, package: str) -> str | None:
    if not node.level:
        return node.module
    parts = package.split(".") if package else []
    if node.level - 1 > len(parts):
        return None
    parts = parts[:len(parts) - (node.level - 1)]
    if node.module:
        parts.append(node.module)
    return ".".join(parts)


def module_name(relative: str) -> str:
    """`models/convnext.py` -> `models.convnext`; `ops/__init__.py` -> `ops`."""
    stem = posixpath.splitext(relative.replace("\\", "/"))[0]
    parts = [p for p in stem.split("/") if p]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def converted_classes(files: dict[str, FileClasses], top: str | None = None) -> dict[str, dict[str, bool]]:
    """module -> {class: takes rngs} for every converted class of the run. `top`: the run's
    folder name, under which absolute imports name its modules (`torchvision.ops.misc`)."""

    def resolve(module: str, name: str) -> tuple[str, str] | None:
        for _ in range(10):  # follow re-exports through package __init__ files
            target = _in_run(module, files, top)
            if target is None:
                return None
            if name in files[target].classes:
                return target, name
            if name not in files[target].imports:
                return None
            module, name = files[target].imports[name]
        return None

    found: dict[str, dict[str, bool]] = {m: {} for m in files}
    changed = True
    rounds = 0
    while changed and rounds < 50:  # a fixed point: bases converted in one round convert subclasses in the next
        changed, rounds = False, rounds + 1
        for module, facts in files.items():
            for cls, (bases, torch_base, own_init) in facts.classes.items():
                base_rngs = []
                for base in bases:
                    if base in facts.classes:
                        where = (module, base)
                    elif base in facts.imports:
                        where = resolve(*facts.imports[base])
                    else:
                        where = None
                    if where is not None and where[1] in found.get(where[0], {}):
                        base_rngs.append(found[where[0]][where[1]])
                if not (torch_base or base_rngs):
                    continue
                rngs = own_init or any(base_rngs)
                if found[module].get(cls) != rngs:
                    found[module][cls] = rngs
                    changed = True
    return found


def _in_run(module: str, files: dict, top: str | None) -> str | None:
    """The run's module an import names (`ops.misc`, or `torchvision.ops.misc` under top `torchvision`)."""
    if module in files:
        return module
    if top and module.startswith(top + ".") and module[len(top) + 1:] in files:
        return module[len(top) + 1:]
    return None


def imported_classes(facts: FileClasses, converted: dict[str, dict[str, bool]], files: dict[str, FileClasses],
                     top: str | None = None) -> dict[str, bool]:
    """The names `facts`' file imports that are converted classes of the run -> takes rngs."""
    out: dict[str, bool] = {}
    for local, (module, name) in facts.imports.items():
        for _ in range(10):  # follow re-exports through package __init__ files
            target = _in_run(module, files, top)
            if target is None:
                break
            if name in converted[target]:
                out[local] = converted[target][name]
                break
            if name not in files[target].imports:
                break
            module, name = files[target].imports[name]
    return out


def project_classes(sources: dict[str, str], top: str | None = None) -> dict[str, dict[str, bool]]:
    """relative path -> {imported local name: takes rngs} for each file of a run
    (sources: relative path -> text)."""
    modules = {module_name(rel): rel for rel in sources}
    files = {}
    for module, rel in modules.items():
        is_package = posixpath.basename(rel.replace("\\", "/")) == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        files[module] = facts_of(sources[rel], module, package)
    converted = converted_classes(files, top)
    return {rel: imported_classes(files[module], converted, files, top) for module, rel in modules.items()}
