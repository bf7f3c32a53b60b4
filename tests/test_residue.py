"""The residue check (core/residue.py) and the torch-only constructs table it shares with lint
and rewrite (core/constructs.py): what counts as PyTorch left over, and what counts as marked."""

from __future__ import annotations

import ast
import textwrap

import pytest

from pt2jax_migrate.core.residue import find_residue, mark_residue, unmarked_residue
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source


def residue(source: str) -> list[tuple[int, str, bool]]:
    return [(r.line, r.what, r.marked) for r in find_residue(textwrap.dedent(source))]


def test_torch_bound_names_anywhere_are_residue():
    found = residue("""\
        import torch.nn as nn
        from einops.layers.torch import Rearrange
        import jax.numpy as jnp

        class T(nn.Sequential):
            pass

        def f(m: nn.Module):
            return nn.Sequential(Rearrange("b c -> c b"))
        """)
    assert found == [(5, "torch.nn.Sequential", False), (8, "torch.nn.Module", False),
                     (9, "torch.nn.Sequential", False), (9, "einops.layers.torch.Rearrange", False)]


@pytest.mark.parametrize("code", [
    "self.register_buffer('pe', pe)", "a, b = x.chunk(2, dim=-1)", "x.split(2, dim=1)",
    "d = img.device", "y = x.new_zeros(3)", "p.requires_grad = False", "x.add_(1)",
    "model.apply(init_weights)", "n = sum(p.size for p in model.parameters())", "x.type(dtype)",
])
def test_torch_only_methods_and_attributes_are_residue(code):
    source = f"import torch\n\ndef f(self, x, img, p, model, pe, init_weights, dtype):\n    {code}\n"
    assert [r.line for r in find_residue(source)] == [4], code


@pytest.mark.parametrize("code", [
    "parts = 'a,b'.split(',')", "parts = line.split()", "parts = line.split(sep=';')", "y = self.norm(x)",
    "out = model.apply(params, x)", "d = args.device", "g = jax.grad(f)", "y = jnp.zeros(3).T",
    "device = cfg.device",
])
def test_lookalikes_are_not_residue(code):
    source = f"import torch\nimport jax\nimport jax.numpy as jnp\n\ndef f(self, x, line, model, params, args, cfg):\n    {code}\n"
    assert find_residue(source) == [], code


def test_a_local_name_shadows_a_torch_import():
    assert residue("""\
        from torch.nn import init

        def helper():
            def init(key):
                return key
            return init

        class Holder:
            init = None
            value = init
        """) == []


@pytest.mark.parametrize("layout", [
    "# TODO(pt2jax): PTJ901 port by hand\nx = torch.zeros(3)\n",
    "x = torch.zeros(3)  # TODO(pt2jax): PTJ901 port by hand\n",
    "# TODO(pt2jax): PTJ901 port by hand\n# (why: the shapes differ)\nx = torch.zeros(3)\n",
    "# TODO(pt2jax): PTJ901 port by hand\n@torch.jit.unused\ndef f():\n    pass\n",
    "# TODO(pt2jax): PTJ901 port by hand\nclass T(torch.nn.Sequential):\n    pass\n",
    "x = torch.cat(\n    [a, b],  # TODO(pt2jax): PTJ901 port by hand\n)\n",
])
def test_marked_residue(layout):
    found = find_residue("import torch\n" + layout)
    assert found and all(r.marked for r in found)


def test_a_marker_covers_its_statement_only():
    source = "import torch\n# TODO(pt2jax): PTJ901 port by hand\nx = torch.zeros(3)\n\ny = torch.ones(3)\n"
    assert [(r.line, r.marked) for r in find_residue(source)] == [(3, True), (5, False)]
    # a marker on a class line does not cover the statements inside it
    source = "import torch\n# TODO(pt2jax): X\nclass A(torch.nn.Sequential):\n    x = torch.zeros(3)\n"
    assert [(r.line, r.marked) for r in find_residue(source)] == [(3, True), (4, False)]


def test_mark_residue_marks_everything_and_is_valid_python():
    source = textwrap.dedent("""\
        import torch

        class Net:
            def f(self, x):
                if x: y = x.chunk(2, dim=0)
                return torch.jit.annotate(int, y)
        """)
    marked = mark_residue(source, unmarked_residue(source))
    ast.parse(marked)
    assert unmarked_residue(marked) == []
    assert marked.count("TODO(pt2jax): PTJ920") == 2
    assert mark_residue(marked, unmarked_residue(marked)) == marked  # idempotent


def test_rewrite_marks_what_it_leaves_and_lint_reports_the_same():
    source = textwrap.dedent("""\
        import torch
        import torch.nn as nn

        class Block(nn.Linear):  # a torch layer subclassed (nn.Sequential subclasses convert)
            pass

        @torch.jit.script  # (TorchScript's markers, @torch.jit.unused, are dropped: tests/test_tv_blockers3.py)
        def helper(m: nn.Module) -> nn.Module:
            return m

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.register_buffer("scale", torch.ones(4))

            def forward(self, x):
                a, b = x.unbind(-1)  # (x.chunk is converted now; unbind is not)
                return self.fc(x).to(x.device, dtype=b.dtype)
        """)
    result = rewrite_source(source)
    new = result.new_source
    assert unmarked_residue(new) == []
    assert not [f for f in result.findings if f.code == "PTJ920"]  # the engine marked it all itself
    assert "self.fc(x).astype(b.dtype)" in new  # the dtype cast is kept, the device move goes
    todos = {(f.line, f.code) for f in result.findings if not f.fixable}
    # (line 15's register_buffer is converted: self.scale = Buffer(...), tests/test_structure.py;
    # line 8's nn.Module annotations become nnx.Module, tests/test_tv_blockers.py)
    assert todos == {(4, "PTJ901"), (7, "PTJ901"), (18, "PTJ105")}
    lint_manual = {(f.line, f.code) for f in lint_source(source) if not f.fixable and f.severity != "info"}
    assert lint_manual == todos
    assert rewrite_source(new).new_source == new  # idempotent


def test_safety_net_marks_and_counts_what_the_engine_missed(monkeypatch):
    """If the engine ever leaves torch unmarked, the residue check writes PTJ920 and counts it."""
    from pt2jax_migrate import rewrite

    source = "import torch\n\nx = torch.zeros(3)\ny = torch.fft.rfft(x)\n"
    monkeypatch.setattr(rewrite.TorchToNNX, "todo", lambda self, node, code, message: None)
    result = rewrite.rewrite_source(source)
    residue_findings = [f for f in result.findings if f.code == "PTJ920"]
    assert [(f.line, f.fixable) for f in residue_findings] == [(4, False)]
    assert "# TODO(pt2jax): PTJ920 torch.fft.rfft is PyTorch and was not converted" in result.new_source
    assert unmarked_residue(result.new_source) == []


def test_isinstance_checks_get_their_own_message_in_lint_and_rewrite():
    # a layer the tables do not convert to one class: the check is left, with its own message
    source = "import torch.nn as nn\n\ndef init(m):\n    if isinstance(m, (nn.Bilinear, nn.Conv2d)):\n        pass\n"
    lint = [f.message for f in lint_source(source) if f.code == "PTJ901"]
    todos = [f.message for f in rewrite_source(source).findings if not f.fixable]
    assert lint == todos == [
        "isinstance(..., torch.nn.Bilinear): the type check remains (converted layers are flax classes); "
        "test for the flax class or port the code it guards"]
    # the converted layer is tested as the converted class (tests/test_init.py has more)
    assert "isinstance(m, (nn.Bilinear, ConvNCHW))" in rewrite_source(source).new_source


def test_torch_imported_inside_functions_is_converted_or_marked_by_the_engine():
    """`import torch.nn.functional as F` inside a function is one of the file's torch names, not a
    local shadowing one: the engine converts its uses (or marks them with the construct's own
    reason), and drops the import once its function no longer uses it. PTJ920 is not needed."""
    source = textwrap.dedent("""\
        import numpy as np


        def f(x):
            import torch
            return torch.relu(torch.zeros(3)) + x


        def g(x):
            from torch import nn
            import torch.nn.functional as F
            return F.relu(x), F.unfold(x, 2)


        def h():
            import torch.distributed as dist
            return dist.get_rank()


        def only_the_import():
            import torch


        def k(x):
            import numpy as F
            return F.abs(x)
        """)
    result = rewrite_source(source)
    new = result.new_source
    assert not [f for f in result.findings if f.code == "PTJ920"]
    assert unmarked_residue(new) == []
    assert "import torch\n" not in new and "from torch import nn" not in new
    assert "    return jax.nn.relu(jnp.zeros((3,))) + x\n" in new
    assert "    return jax.process_index()\n" in new
    assert "def only_the_import():\n    pass\n" in new
    assert "    import numpy as F\n    return F.abs(x)\n" in new  # a local non-torch import shadows
    # F.unfold is not converted: marked with its own reason, and g keeps the import it needs
    assert "    import torch.nn.functional as F\n    # TODO(pt2jax): PTJ" in new
    assert "jax.nn.relu(x)" in new
    lint_manual = {(f.line, f.code) for f in lint_source(source) if not f.fixable and f.severity != "info"}
    assert lint_manual == {(f.line, f.code) for f in result.findings if not f.fixable}
    assert rewrite_source(new).new_source == new
