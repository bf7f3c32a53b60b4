"""Property test (hypothesis) over generated programs: modules mixing torch calls, nn.Module
classes, arithmetic, method chains and comments (and torch-free ones).

For every generated program:
* `rewrite` gives text that parses, and rewriting that text again changes nothing;
* `lint` does not crash on the program nor on the rewrite's output;
* every torch construct left in the output carries a TODO(pt2jax) marker (core.residue);
* a program that uses no PyTorch comes back byte for byte identical.

Derandomized (the same examples on every run) and kept to a few dozen examples per property
so the file runs in well under 30 s.
"""

from __future__ import annotations

import ast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pt2jax_migrate.core.residue import find_residue
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

SETTINGS = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMES = ["x", "y", "h", "out"]
COMMENTS = ["", "  # keep", "  # torch.zeros here is only a comment", "  # TODO: later"]


def _sized(draw) -> str:
    return str(draw(st.integers(1, 8)))


@st.composite
def torch_expr(draw, depth: int = 0):
    """An expression mixing torch calls, arithmetic and method chains."""
    leaves = [
        lambda: draw(st.sampled_from(NAMES)),
        lambda: _sized(draw),
        lambda: f"torch.zeros({_sized(draw)})",
        lambda: f"torch.ones({_sized(draw)}, {_sized(draw)})",
        lambda: f"torch.randn({_sized(draw)})",
        lambda: f"torch.arange({_sized(draw)})",
        lambda: "torch.tensor([1.0, 2.0])",
    ]
    if depth >= 3:
        return draw(st.sampled_from(leaves))()
    sub = lambda: draw(torch_expr(depth + 1))  # noqa: E731
    nodes = leaves + [
        lambda: f"{sub()} {draw(st.sampled_from(['+', '-', '*', '/', '@', '**']))} {sub()}",
        lambda: f"({sub()})",
        lambda: f"torch.relu({sub()})",
        lambda: f"F.relu({sub()})",
        lambda: f"torch.cat([{sub()}, {sub()}], dim=0)",
        lambda: f"torch.stack([{sub()}, {sub()}])",
        lambda: f"torch.exp({sub()}).clamp(min=0.0)",
        lambda: f"{_receiver(sub())}.sum()",
        lambda: f"{_receiver(sub())}.mean(dim=0)",
        lambda: f"{_receiver(sub())}.view(-1)",
        lambda: f"{_receiver(sub())}.float()",
        lambda: f"{_receiver(sub())}.abs().max()",
        lambda: f"{_receiver(sub())}.to('cpu')",
        lambda: f"{_receiver(sub())}.detach().cpu().numpy()",
        lambda: f"{_receiver(sub())}.unsqueeze(0).squeeze(0)",
        lambda: f"{_receiver(sub())}.permute(0)",
        lambda: f"{_receiver(sub())}.transpose(0, 0)",
        lambda: f"{_receiver(sub())}.item()",
        lambda: f"max({sub()}, {sub()})",
    ]
    return draw(st.sampled_from(nodes))()


@st.composite
def plain_expr(draw, depth: int = 0):
    """An expression with no PyTorch at all (names that only look like torch's included)."""
    leaves = [lambda: draw(st.sampled_from(NAMES)), lambda: _sized(draw), lambda: "'a,b'", lambda: "[1, 2]"]
    if depth >= 3:
        return draw(st.sampled_from(leaves))()
    sub = lambda: draw(plain_expr(depth + 1))  # noqa: E731
    nodes = leaves + [
        lambda: f"{sub()} {draw(st.sampled_from(['+', '-', '*', '//', '%']))} {sub()}",
        lambda: f"({sub()})",
        lambda: f"math.sqrt({sub()})",
        lambda: "'a,b'.split(',')",
        lambda: f"len([{sub()}, {sub()}])",
        lambda: f"{draw(st.sampled_from(NAMES))}.view({sub()})",
        lambda: f"{draw(st.sampled_from(NAMES))}.sum()",
        lambda: f"zeros({sub()})",
        lambda: f"max({sub()}, {sub()})",
    ]
    return draw(st.sampled_from(nodes))()


def _receiver(text: str) -> str:
    """`text` as the receiver of a method call (`(a + b).sum()`, `(1).sum()`)."""
    return text if text.isidentifier() or (text.endswith(")") and not text[0].isdigit() and " " not in text) \
        else f"({text})"


def _indent(lines: list[str], by: str = "    ") -> list[str]:
    return [by + line if line else line for line in lines]


@st.composite
def module_class(draw, expr):
    name = draw(st.sampled_from(["Net", "Block", "Head"]))
    layers = draw(st.lists(st.sampled_from([
        "nn.Linear({a}, {b})", "nn.Conv2d({a}, {b}, 3, padding=1)", "nn.Dropout(0.1)",
        "nn.LayerNorm({a})", "nn.ReLU()", "nn.Embedding({a}, {b})", "nn.BatchNorm1d({a})",
        "nn.Sequential(nn.Linear({a}, {b}), nn.ReLU())"]), min_size=1, max_size=3))
    init = ["def __init__(self):", "    super().__init__()"]
    for index, layer in enumerate(layers):
        init.append(f"    self.l{index} = {layer.format(a=draw(st.integers(1, 9)), b=draw(st.integers(1, 9)))}"
                    f"{draw(st.sampled_from(COMMENTS))}")
    forward = ["def forward(self, x):"]
    for index in range(len(layers)):
        forward.append(f"    x = self.l{index}(x)")
    forward.append(f"    return {draw(expr)} + x")
    return [f"class {name}(nn.Module):", *_indent(init), "", *_indent(forward)]


@st.composite
def program(draw, with_torch: bool):
    expr = torch_expr() if with_torch else plain_expr()
    lines = (["import math", "import torch", "import torch.nn as nn", "import torch.nn.functional as F"]
             if with_torch else ["import math", "from numpy import zeros"])
    lines.append("")
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["assign", "def", "class", "comment", "if"] if with_torch
                                    else ["assign", "def", "comment", "if"]))
        if kind == "assign":
            lines.append(f"{draw(st.sampled_from(NAMES))} = {draw(expr)}{draw(st.sampled_from(COMMENTS))}")
        elif kind == "def":
            body = [f"h = {draw(expr)}", f"return {draw(expr)}"]
            lines += ["", "", f"def f{len(lines)}(x, y):", *_indent(body), "", ""]
        elif kind == "class":
            lines += ["", "", *draw(module_class(expr)), "", ""]
        elif kind == "comment":
            lines.append(draw(st.sampled_from(["# a comment", "# torch.relu(x) in a comment", "#"])))
        else:
            lines += [f"if {draw(st.sampled_from(NAMES))}:", f"    out = {draw(expr)}"]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines).rstrip() + newline


def _valid(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except SyntaxError:
        return False


@SETTINGS
@given(program(with_torch=True))
def test_rewrite_of_generated_torch_programs_parses_and_is_idempotent(source):
    assert _valid(source), source
    lint_source(source, "gen.py")
    first = rewrite_source(source, "gen.py")
    assert first.error is None, first.error
    new = first.new_source
    assert new is not None and _valid(new), new
    second = rewrite_source(new, "gen.py")
    assert second.new_source == new, f"not idempotent:\n{source}\n--- first ---\n{new}\n--- second ---\n{second.new_source}"
    lint_source(new, "gen.py")
    if new != source:
        unmarked = [r for r in find_residue(new) if not r.marked]
        assert not unmarked, f"{unmarked}\n{new}"


@SETTINGS
@given(program(with_torch=False))
def test_generated_torch_free_programs_come_back_byte_identical(source):
    assert _valid(source), source
    assert not [f for f in lint_source(source, "gen.py") if f.severity != "info"]
    result = rewrite_source(source, "gen.py")
    assert result.new_source == source
