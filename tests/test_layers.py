"""The package's import graph: dependencies point one way (issue 7) and no new import cycle.

Every module under pt2jax_migrate/ is parsed with `ast`; every import counts, at any depth
(a function-level import is still a dependency, only a deferred one), relative or absolute;
`from . import x` resolves to the module x when x is a module, else to the package. A module
importing `a.b.c` depends on a.b.c only (not on the packages a and a.b it passes through).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "pt2jax_migrate"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Top to bottom: a module may import its own layer and those below, never one above. A
# module is placed by its longest listed prefix (relative to the package: "output" covers
# output/ and every module in it); every module must be placed.
LAYERS: list[tuple[str, set[str]]] = [
    # the command line: click options -> api call -> rendering -> exit code
    ("cli", {"cli"}),
    # what the commands do, as functions returning plain data
    ("api", {"api"}),
    # the engines: lint (ast), rewrite (libcst, with its train-step planning), verify (torch/jax)
    # (structure_facts, sequential_facts, param_reads and inits: facts the front ends read off the ast, like trainstep)
    ("engines", {"lint", "project", "baseline", "suppress", "rewrite", "trainstep", "structure_facts", "inits", "data_facts",
                 "sequential_facts", "param_reads", "verify", "data_generators", "project_classes", "schedule_plan",
                 "parallel_facts", "isinstance_facts"}),
    # shared services the engines use: rendering, file walking and writing, settings, code selection
    ("services", {"output", "files", "fsio", "config", "selection"}),
    # the target side: rendering through the tables' [x.nnx] sub-tables, the helpers written into
    # converted files (helpers.py re-exports targets/nnx/helpers.py)
    ("targets", {"targets", "mapping", "helpers"}),
    # framework-neutral decisions: argument binding (calls), one verdict per site (decide), the
    # hand-coded constructs, the residue check
    ("core", {"core"}),
    # data and tables: rule tables and their schema (targets register their helper names with
    # it), the data model, torch names, the package's version
    ("base", {"rules", "rules_schema", "model", "names", "astwalk", ""}),
]

# Pairs inside one layer that must not depend on each other anyway (first must not import second).
FORBIDDEN_WITHIN = [
    ("output", "lint"), ("output", "rewrite"), ("output", "verify"), ("output", "project"),
    ("files", "lint"), ("files", "rewrite"), ("files", "verify"), ("files", "output"),
    ("fsio", "output"), ("config", "output"),
]

# Today's import cycles, each a strongly connected set of modules. The list may only shrink:
# a cycle not listed fails (break it), and a listed cycle that no longer exists fails too
# (delete its entry, so it cannot quietly come back).
# none today: a cycle found later is a failure (or, if it must stay for a while, an entry here
# saying why; the test then fails again once it is gone)
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _modules() -> dict[str, Path]:
    """Dotted names relative to the package ("" is the package itself) -> file."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _known(dotted: str) -> str | None:
    """The module of the package that `dotted` (absolute, e.g. pt2jax_migrate.output.text.X)
    names, or the nearest enclosing one; None outside the package."""
    if dotted != PACKAGE and not dotted.startswith(PACKAGE + "."):
        return None
    name = dotted[len(PACKAGE) + 1:]
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(name: str, path: Path) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name)
                if target is not None:
                    yield target
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = [PACKAGE, *name.split(".")] if name else [PACKAGE]
                base = here if is_package else here[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                # `from . import x` / `from .output import text`: the module x when it is one
                target = _known(f"{module}.{alias.name}")
                if target is None or target != f"{module}.{alias.name}"[len(PACKAGE) + 1:]:
                    target = _known(module)
                if target is not None:
                    yield target


def import_graph() -> dict[str, set[str]]:
    return {name: {t for t in _imports(name, path) if t != name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected sets of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.add(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(frozenset(members))
    return found


def _placed(name: str, table: list[tuple[str, set[str]]]) -> tuple[int, str] | None:
    """(layer index, the prefix that placed it) by the longest matching prefix."""
    best = None
    for rank, (_, prefixes) in enumerate(table):
        for prefix in prefixes:
            if name == prefix or (prefix and name.startswith(prefix + ".")) or (prefix == "" and name == ""):
                if best is None or len(prefix) > len(best[1]):
                    best = (rank, prefix)
    return best


def violations(graph: dict[str, set[str]], table=LAYERS, forbidden=FORBIDDEN_WITHIN) -> list[str]:
    found = []
    for name in sorted(graph):
        here = _placed(name, table)
        assert here is not None
        for target in sorted(graph[name]):
            there = _placed(target, table)
            assert there is not None
            if there[0] < here[0]:
                found.append(f"{name or PACKAGE} ({table[here[0]][0]}) imports {target} ({table[there[0]][0]}), "
                             "a layer above it")
            elif (here[1], there[1]) in forbidden:
                found.append(f"{name} imports {target}: {here[1]} must not depend on {there[1]}")
    return found


def test_the_graph_is_read_from_every_kind_of_import():
    # guards the parser the two tests below rely on: these edges exist in the code today
    graph = import_graph()
    assert "" in MODULES and "output.text" in MODULES and "verify.engine" in MODULES
    assert "api" in graph["cli"]  # `from .api import ...` inside a function
    assert "output.counts" in graph["output.text"]  # `from .counts import` in a subpackage
    assert "model" in graph["files.walk"]  # `from ..model import`
    assert "verify.report" in graph["verify"]  # `from .report import ...` in a package __init__
    assert "trainstep" in graph["lint"]  # function-level import in lint
    assert "lint" in graph["rewrite.engine"]  # function-level `from ..lint import` in a subpackage
    assert "" in graph["cli"]  # `from . import __version__`


def test_every_module_has_a_layer():
    unplaced = [name for name in MODULES if _placed(name, LAYERS) is None]
    assert not unplaced, f"add these modules to LAYERS in {__file__}: {unplaced}"


def test_lower_layers_never_import_higher_ones():
    found = violations(import_graph())
    assert not found, "imports against the layer order (cli -> api -> engines -> services -> targets -> " \
                      "core -> base):\n" + "\n".join(found)


def test_no_import_cycles_but_the_known_ones():
    current = set(cycles(import_graph()))
    new = [sorted(c) for c in current - set(KNOWN_CYCLES)]
    gone = [sorted(c) for c in set(KNOWN_CYCLES) - current]
    assert not new, f"new import cycles (break them; a function-level import is still a cycle): {new}"
    assert not gone, (f"these known cycles no longer exist: remove them from KNOWN_CYCLES in {__file__} "
                      f"so they cannot come back: {gone}")


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [frozenset({"a", "b"})]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "e"}, "e": {"d"}}, [frozenset("abc"), frozenset("de")]),
])
def test_cycles_finds_each_strongly_connected_set(graph, expected):
    assert sorted(cycles(graph), key=sorted) == sorted(expected, key=sorted)


def test_a_lower_layer_importing_a_higher_one_is_reported():
    table = [("top", {"cli"}), ("middle", {"output"}), ("bottom", {"model"})]
    assert violations({"cli": {"model"}, "output": {"model"}, "model": set()}, table, []) == []
    assert violations({"cli": set(), "output": set(), "model": {"output.text"}}, table, []) == [
        "model (bottom) imports output.text (middle), a layer above it"]
    assert violations({"output.text": {"cli"}, "cli": set()}, table, []) == [
        "output.text (middle) imports cli (top), a layer above it"]
    assert violations({"output": {"cli"}, "cli": set()}, [("one", {"output", "cli"})], [("output", "cli")]) == [
        "output imports cli: output must not depend on cli"]
