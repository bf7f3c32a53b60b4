"""The linter: name resolution, every code, fixable marks, columns, errors, speed, cache."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pt2jax_migrate import lint as lint_module
from pt2jax_migrate.lint import LintCache, lint_paths, lint_source
from pt2jax_migrate.model import SourceError
from pt2jax_migrate.rules import load_rules

DATA = Path(__file__).parent / "data" / "lint"


def lint_data(name: str):
    path = DATA / name
    return lint_source(path.read_text(encoding="utf-8"), str(path))


def rows(findings):
    return [(f.line, f.col, f.code, f.fixable) for f in findings]


def lint_text(text: str):
    return lint_source(textwrap.dedent(text), "t.py")


def codes_by_line(findings, skip_imports=True):
    return {(f.line, f.code) for f in findings if not (skip_imports and f.code == "PTJ001")}


# ------------------------------------------------------------------------- name resolution


def test_every_alias_form_resolves_to_the_same_construct():
    findings = lint_data("aliases.py")
    body = [f for f in findings if f.code != "PTJ001"]
    # one finding per construct, at the call (column 5: after `a = `)
    assert rows(body) == [(line, 5, "PTJ102", True) for line in (9, 10, 11, 12)] + [
        (line, 5, "PTJ103", True) for line in (13, 14, 15)
    ]
    assert all("torch.nn.Linear" in f.message for f in body if f.code == "PTJ102")
    assert all("torch.nn.functional.relu" in f.message for f in body if f.code == "PTJ103")
    imports = [f for f in findings if f.code == "PTJ001"]
    assert [f.line for f in imports] == [1, 2, 3, 4, 5, 6]
    assert all(f.fixable for f in imports)
    assert "torch.nn.Linear" in imports[-1].message


def test_local_names_that_shadow_imports_do_not_resolve():
    findings = lint_data("shadowing.py")
    body = codes_by_line(findings)
    # parameter (7), assignment in the function (12), local def (19), class attribute (24),
    # comprehension variable (32) shadow; module-level use (28), `global` (37) and an import
    # whose except-fallback assigns None (47) resolve. (`F.relu(x)` on line 12 is then just a
    # `.relu()` method call, which the tables match by name in torch files, as the rewrite does.)
    assert body - {(12, "PTJ105")} == {(28, "PTJ103"), (37, "PTJ103"), (47, "PTJ103")}
    assert [f.line for f in findings if f.code == "PTJ001"] == [1, 2, 3, 41]


def test_shadowing_by_a_later_assignment_in_the_same_function():
    findings = lint_text(
        """
        import torch

        def f(x):
            y = torch.zeros(3)
            torch = x
            return y
        """
    )
    # Python makes `torch` local to f for the whole body: the call is not torch's
    assert codes_by_line(findings) == set()


def test_function_level_import_and_nested_functions():
    findings = lint_text(
        """
        def build():
            import torch.nn as nn

            def inner():
                return nn.Linear(2, 3)

            return inner
        """
    )
    assert rows(findings) == [(3, 5, "PTJ001", True), (6, 16, "PTJ102", True)]


def test_class_body_names_are_not_visible_in_methods():
    findings = lint_text(
        """
        import torch.nn as nn

        class A:
            nn = None

            def layer(self):
                return nn.Linear(2, 2)
        """
    )
    assert codes_by_line(findings) == {(8, "PTJ102")}


def test_relative_and_lookalike_imports_are_not_torch():
    assert lint_text("import torchmetrics\nfrom . import torch\ntorch.zeros(3)\ntorchmetrics.Accuracy()\n") == []
    assert lint_text("from torch_geometric import nn\nnn.GCNConv(2, 3)\n") == []


# ------------------------------------------------------------------------- codes


EXPECTED_CODES = [
    (1, 1, "PTJ001", False),  # torch: still used by torch.fft.rfft
    (2, 1, "PTJ001", False),  # torch.nn: nn.Embedding(max_norm=...) is not converted
    (3, 1, "PTJ001", True),
    (4, 1, "PTJ001", False),
    (5, 1, "PTJ001", False),
    (8, 1, "PTJ101", True),
    (8, 1, "PTJ102", False),  # class Net keeps a PyTorch layer (the Embedding with max_norm)
    (11, 19, "PTJ102", True),
    (12, 20, "PTJ102", False),
    (13, 22, "PTJ102", True),  # nn.Parameter
    (13, 35, "PTJ104", True),
    (16, 13, "PTJ103", True),
    (17, 13, "PTJ105", True),  # .mean(dim=0)
    (17, 13, "PTJ105", True),  # .transpose(0, 1)
    (19, 16, "PTJ901", False),
    (19, 31, "PTJ302", True),  # .to(...)
    (19, 36, "PTJ104", True),  # torch.float32 is renamed wherever it stands
    (22, 1, "PTJ301", True),
    (23, 8, "PTJ301", False),
    (24, 10, "PTJ302", True),
    (25, 9, "PTJ302", True),  # .cuda()
    (26, 7, "PTJ201", False),
    (27, 9, "PTJ205", False),
    (28, 10, "PTJ401", False),
    (29, 9, "PTJ104", True),  # dtype attribute
    (30, 1, "PTJ303", False),
    (31, 6, "PTJ304", True),
    (32, 17, "PTJ104", True),
    (33, 6, "PTJ304", False),  # with more than one item
    (37, 2, "PTJ304", True),  # decorator
    (39, 14, "PTJ104", True),
    (42, 1, "PTJ402", True),  # torch.save -> an Orbax checkpoint
    (42, 12, "PTJ402", True),  # .state_dict()
    (43, 9, "PTJ402", True),
    (45, 1, "PTJ204", False),  # opt.step() outside a recognised train step; sched.step() is not reported
    (46, 11, "PTJ403", True),  # nn.DataParallel(model) -> data_parallel(model)
]


def test_each_code_with_position_and_fixable_mark():
    findings = lint_data("codes.py")
    assert rows(findings) == EXPECTED_CODES
    eval_finding = next(f for f in findings if f.code == "PTJ303")
    assert eval_finding.severity == "info"
    assert "max_norm" in next(f for f in findings if f.line == 12).message  # the reason
    assert "torch.fft.rfft" in next(f for f in findings if f.code == "PTJ901").message


def test_messages_end_with_fixable_exactly_when_fixable():
    for name in ("codes.py", "aliases.py", "train_loop.py"):
        for f in lint_data(name):
            assert f.message.endswith(" [fixable]") == f.fixable, f
            assert f.message.strip() and len(f.message) < 200


def test_every_documented_code_is_reachable():
    from pt2jax_migrate.suppress import apply

    seen = {f.code for name in ("codes.py", "aliases.py", "train_loop.py") for f in lint_data(name)}
    # PTJ910 (unused-noqa) comes from the suppression pass over the engine's findings
    source = "import torch  # noqa: PTJ104\n"
    seen |= {f.code for f in apply("t.py", source, lint_source(source, "t.py")).findings}
    # PTJ920 (unmarked-residue) is the rewrite's residue check, never lint's
    assert seen | {"PTJ920"} == set(load_rules().lint_rules)


def test_fix_safety_matches_the_rewrite():
    findings = lint_data("codes.py")
    fix = {(f.line, f.col, f.code): f.fix for f in findings}
    assert all((f.fix == "manual") == (not f.fixable) for f in findings)
    assert fix[(22, 1, "PTJ301")] == "unsafe"  # torch.manual_seed: table says safety = "unsafe"
    assert fix[(32, 17, "PTJ104")] == "unsafe"  # torch.randn
    assert fix[(39, 14, "PTJ104")] == "safe"  # torch.zeros
    assert fix[(11, 19, "PTJ102")] == "safe"
    assert fix[(12, 20, "PTJ102")] == "manual"
    refs = lint_text("import torch\nx = torch.zeros(3, dtype=torch.long)\ny = x.long()\nz = torch.tensor([1])\n")
    got = {(f.line, f.col): f.fix for f in refs}
    assert got[(2, 26)] == "unsafe"  # torch.long -> jnp.int32
    assert got[(2, 5)] == "safe"
    assert got[(3, 5)] == "unsafe"  # .long()
    assert got[(4, 5)] == "unsafe"  # torch.tensor
    assert got[(1, 1)] == "unsafe"  # the import goes only with the unsafe fixes
    assert lint_text("import torch\nx = torch.zeros(3)\n")[0].fix == "safe"


@pytest.mark.parametrize("path", sorted(DATA.glob("*.py")) + sorted((Path(__file__).parent.parent / "fixtures").glob("*.in.py")),
                         ids=lambda p: p.name)
def test_safe_fixes_are_exactly_what_the_rewrite_applies_without_unsafe_fixes(path):
    from pt2jax_migrate.rewrite import rewrite_source

    source = path.read_text(encoding="utf-8")
    linted = [f for f in lint_source(source, str(path)) if f.code not in ("PTJ001", "PTJ101")]
    safe_changes = {(f.line, f.code) for f in rewrite_source(source, str(path), unsafe_fixes=False).findings
                    if f.fixable}
    all_changes = {(f.line, f.code): f.fix for f in rewrite_source(source, str(path)).findings if f.fixable}
    for f in linted:
        if f.fix == "safe":
            assert (f.line, f.code) in safe_changes, f
        if f.fix == "unsafe":
            assert all_changes.get((f.line, f.code)) in ("unsafe", "safe"), f  # same line may hold a safe one too


def test_train_step_calls_are_fixable_only_inside_a_recognised_step():
    findings = lint_data("train_loop.py")
    steps = [(f.line, f.code, f.fixable) for f in findings if f.code in ("PTJ202", "PTJ203", "PTJ204")]
    assert steps == [
        (9, "PTJ202", True), (11, "PTJ203", True), (12, "PTJ204", True),
        (16, "PTJ202", False), (17, "PTJ203", False), (19, "PTJ204", False),
    ]  # env.step() (line 23) is not an optimizer step: not reported


def test_step_needs_an_optimizer_or_a_backward():
    findings = lint_text(
        """
        import torch

        def simulate(env):
            env.step()

        class Agent:
            def __init__(self, model):
                self.opt = torch.optim.Adam(model.parameters())

            def update(self):
                self.opt.step()
        """
    )
    assert codes_by_line(findings) == {(9, "PTJ201"), (12, "PTJ204")}


def test_tensor_method_rules():
    findings = lint_text(
        """
        import torch

        def f(x):
            a = x.sum(1)
            b = x.sum(dim=1)
            c = x.mean(keepdim=True, dim=0)
            d = x.view(2, -1)
            e = x.clamp(min=0)
            g = x.view(*shape)  # arguments that do not fit the signature: not taken for a tensor method
            return x.train(), x.eval()
        """
    )
    got = [(f.line, f.code, f.fixable) for f in findings if f.code != "PTJ001"]
    assert got == [
        (6, "PTJ105", True), (7, "PTJ105", True), (8, "PTJ105", True), (9, "PTJ105", True),
        (11, "PTJ303", False), (11, "PTJ303", False),
    ]


def test_methods_on_modules_functions_classes_and_self_are_not_tensor_methods():
    findings = lint_text(
        """
        import math
        import numpy as np
        import torch.nn as nn

        def helper(x):
            return x

        class Net(nn.Module):
            def forward(self, x):
                return self.relu(x), np.exp(x), math.sqrt(2.0), helper.view(2), x.exp(), x.view(2, 3)
        """
    )
    got = [(f.line, f.message.split()[0]) for f in findings if f.code == "PTJ105"]
    assert got == [(11, ".exp()"), (11, ".view()")]


def test_not_tensor_names_match_the_rewrite():
    from pt2jax_migrate.rewrite import IMPORTS

    assert lint_module.CONVERTED_IMPORT_NAMES == set(IMPORTS)


def test_methods_are_only_matched_in_torch_files():
    assert lint_data("torch_free.py") == []
    assert lint_text("import numpy as np\nx = np.zeros(3)\ny = x.view(2).to('cuda')  # torch\n") == []


def test_references_that_are_not_calls():
    findings = lint_text(
        """
        import torch
        import torch.nn.functional as F
        from torch import Tensor

        def f(x: torch.Tensor, y: Tensor, act=F.relu):
            torch.backends.cudnn.benchmark = True
            return isinstance(x, torch.nn.Linear), F.dropout, torch.arange(3, dtype=torch.long)
        """
    )
    got = [(f.line, f.code, f.fixable, f.message.split(" ")[0]) for f in findings if f.code != "PTJ001"]
    assert got == [
        (6, "PTJ104", True, "torch.Tensor"),  # -> jax.Array
        (6, "PTJ104", True, "torch.Tensor"),
        (6, "PTJ103", True, "torch.nn.functional.relu"),  # passed as a value -> jax.nn.relu
        (7, "PTJ901", False, "torch.backends.cudnn.benchmark"),
        (8, "PTJ102", True, "isinstance(...,"),  # tests the converted class nnx.Linear
        (8, "PTJ901", False, "torch.nn.functional.dropout"),  # refused rule: no value conversion
        (8, "PTJ104", True, "torch.arange"),
        (8, "PTJ104", True, "torch.long"),
    ]
    assert [f.fixable for f in findings if f.code == "PTJ001"] == [False, False, True]


def test_import_fixable_only_when_every_use_is_fixable():
    unused = lint_text("import torch\n")
    assert rows(unused) == [(1, 1, "PTJ001", True)]
    star = lint_text("from torch.nn import *\nLinear(2, 3)\n")
    assert rows(star) == [(1, 1, "PTJ001", False)]
    assert "import *" in star[0].message
    mixed = lint_text("import torch\nimport torch.nn as nn\nx = torch.zeros(3)\ny = nn.Unfold(2)\n")
    assert rows(mixed) == [(1, 1, "PTJ001", True), (2, 1, "PTJ001", False), (3, 5, "PTJ104", True),
                           (4, 5, "PTJ901", False)]


def test_nested_calls_are_each_reported_once():
    findings = lint_text("import torch\nimport torch.nn.functional as F\ny = F.relu(torch.matmul(a, b))\n")
    assert rows(findings)[2:] == [(3, 5, "PTJ103", True), (3, 12, "PTJ103", True)]


def test_columns_count_characters_not_bytes():
    findings = lint_data("unicode_cols.py")
    assert rows(findings)[1:] == [(3, 25, "PTJ104", True), (4, 15, "PTJ901", False)]


def test_crlf_and_bom_sources():
    text = "\ufeffimport torch\r\nx = torch.zeros(3)\r\n"
    assert rows(lint_source(text, "t.py")) == [(1, 1, "PTJ001", True), (2, 5, "PTJ104", True)]


# ------------------------------------------------------------------------- errors, paths


def test_syntax_error_names_file_and_line():
    with pytest.raises(SourceError) as info:
        lint_source("import torch\nx = (\n", "bad.py")
    assert str(info.value).startswith("bad.py:2: syntax error")


def test_lint_paths_reports_unreadable_files_and_lints_the_rest(tmp_path):
    (tmp_path / "good.py").write_text("import torch\n")
    (tmp_path / "bad.py").write_text("import torch\ndef f(:\n")
    (tmp_path / "latin1.py").write_bytes(b"import torch\n# caf\xe9\n")
    findings, errors = lint_paths([tmp_path, tmp_path / "missing.py"])
    assert [f.path for f in findings] == [str(tmp_path / "good.py")]
    messages = sorted(str(e) for e in errors)
    assert messages[0].startswith(f"{tmp_path / 'bad.py'}:2: syntax error")
    assert messages[1].startswith(f"{tmp_path / 'latin1.py'}:2: not valid UTF-8")
    assert messages[2] == f"{tmp_path / 'missing.py'}: no such file or directory"


def test_torch_free_source_is_not_even_parsed():
    # the early exit: no "torch" substring, no parse (so no syntax error either)
    assert lint_source("def broken(:\n", "x.py") == []


def test_lint_never_imports_torch_jax_or_libcst_for_a_model_file():
    code = (
        "import sys; from pt2jax_migrate.lint import lint_paths; "
        f"f, e = lint_paths([{str(DATA / 'codes.py')!r}]); assert f and not e; "
        "print(sorted(m for m in ('torch', 'jax', 'flax', 'libcst') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------- speed, cache


def _synthetic(n_blocks: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    try:
        import bench_lint
    finally:
        sys.path.pop(0)
    model = bench_lint.MODEL_HEADER + "".join(bench_lint.MODEL.format(i=i, d=64, h=128) for i in range(n_blocks))
    plain = bench_lint.PLAIN_HEADER + "".join(bench_lint.PLAIN.format(i=i, d=8) for i in range(n_blocks))
    return [model, plain] * 10


def test_lint_runs_near_ast_speed():
    sources = _synthetic(40)
    lint_source(sources[0], "warm.py")

    def best(fn):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    def base():
        for s in sources:
            for _ in ast.walk(ast.parse(s)):
                pass

    t_base = best(base)
    t_lint = best(lambda: [lint_source(s, f"f{i}.py") for i, s in enumerate(sources)])
    # measured ~0.7x on model code; 2x leaves room for a noisy machine
    assert t_lint < 2.0 * t_base, (t_lint, t_base)


def test_cache_reuses_findings_until_the_content_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("PT2JAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    LintCache.fingerprint.cache_clear()
    src = tmp_path / "m.py"
    src.write_text("import torch\nx = torch.zeros(3)\n")
    first, _ = lint_paths([src], cache=True)
    assert len(first) == 2 and list((tmp_path / "cache").glob("lint-*.pickle"))

    calls = []
    real = lint_module.lint_source
    monkeypatch.setattr(lint_module, "lint_source", lambda s, p, *target: calls.append(p) or real(s, p, *target))
    again, _ = lint_paths([src], cache=True)
    assert again == first and calls == []  # served from the cache

    src.write_text("import torch\nx = torch.zeros(3)\ny = torch.fft.fft(x)\n")
    changed, _ = lint_paths([src], cache=True)
    assert calls == [str(src)] and len(changed) == 3
    nocache, _ = lint_paths([src], cache=False)
    assert nocache == changed and calls == [str(src)] * 2



def test_cache_fingerprint_covers_every_module_lint_runs():
    """A fact module left out of the fingerprint served stale findings after an upgrade."""
    import sys

    lint_source((Path(__file__).parent.parent / "fixtures" / "cnn_classifier.in.py").read_text(), "m.py")
    lint_source("import torch\nclass M(torch.nn.Module):\n    pass\n", "m.py", "linen")
    loaded = {str(Path(m.__file__).resolve()) for name, m in list(sys.modules.items())
              if name.startswith("pt2jax_migrate") and getattr(m, "__file__", None)}
    covered = set(LintCache.fingerprint_sources())
    assert any(p.endswith("structure_facts.py") for p in loaded)
    assert loaded - covered == set()


# ------------------------------------------------------------------------- agreement with rewrite

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures").glob("*.in.py"))


@pytest.mark.parametrize("path", FIXTURES + sorted(DATA.glob("*.py")), ids=lambda p: p.name)
def test_what_lint_marks_fixable_is_what_rewrite_changes(path):
    from pt2jax_migrate.rewrite import rewrite_source

    source = path.read_text(encoding="utf-8")
    linted = lint_source(source, str(path))
    changes = {(f.line, f.code) for f in rewrite_source(source, str(path)).findings if f.fixable}
    for f in linted:
        if f.code == "PTJ001":
            continue
        if f.fixable:
            assert (f.line, f.code) in changes, f"lint says fixable, rewrite does not change it: {f}"
        else:
            assert (f.line, f.code) not in changes, f"lint says manual, rewrite changes it: {f}"
    if path.parent.name == "fixtures":  # and the rewrite changes nothing lint did not report
        reported = {(f.line, f.code) for f in linted}
        missing = {c for c in changes if c not in reported and c[1] != "PTJ101"}
        assert not missing, f"rewrite changes what lint does not report: {sorted(missing)}"
