"""`--target linen`: torch init code in __init__ moves into `init_parameters` (run after the
call under module.init) or, where it cannot (a local it reads is computed by a statement doing
more than compute locals, a block local read elsewhere in setup, no forward), stays in setup()
with one counted PTJ103 TODO, in lint and rewrite alike (init_hook_facts decides for both).
Every unmarked class really runs `init` + `apply` and matches torch's output."""

from __future__ import annotations

import runpy

import numpy as np

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

SOURCE = '''import torch
import torch.nn as nn


class Tuple(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.half, half = 0.5, 0.5
        nn.init.constant_(self.fc.weight, half)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x) * self.half


class Chained(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.std = std = d ** -0.5
        nn.init.constant_(self.fc.weight, std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x) + self.std


class PureLoop(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        s = 0.0
        for i in range(3):
            s = s + 0.1 * i
        nn.init.constant_(self.fc.weight, s)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x)


class PureIf(nn.Module):
    def __init__(self, d, big=True):
        super().__init__()
        self.fc = nn.Linear(d, d)
        if big:
            v = 0.3
        else:
            v = 0.1
        nn.init.constant_(self.fc.weight, v)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x)


class BusyLoop(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.sizes = []
        s = 0.0
        for i in range(3):
            s = s + 0.1
            self.sizes.append(i)
        nn.init.constant_(self.fc.weight, s)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x)


class BusyIf(nn.Module):
    def __init__(self, d, big=False):
        super().__init__()
        self.fc = nn.Linear(d, d)
        if big:
            self.extra = nn.Linear(d, d)
            v = 0.3
        else:
            v = 0.1
        nn.init.constant_(self.fc.weight, v)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x)


class BlockLocal(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        if d > 1:
            c = 0.2
            nn.init.constant_(self.fc.weight, c)
        self.c = c
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x) * self.c


class NoForward(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        nn.init.constant_(self.fc.weight, 0.25)
'''

RUNS = ["Tuple", "Chained", "PureLoop", "PureIf"]  # converted whole: init + apply match torch
STUCK = {"BusyLoop": "the local `s`", "BusyIf": "the local `v`", "BlockLocal": "its local c is read elsewhere",
         "NoForward": "no forward"}


def _lines(source: str, names) -> dict[str, int]:
    """class name -> the line of its first `nn.init.constant_` (where the TODO is reported)."""
    lines = source.splitlines()
    out = {}
    for name in names:
        start = lines.index(next(line for line in lines if line.startswith(f"class {name}(")))
        out[name] = next(i for i in range(start, len(lines)) if "nn.init.constant_" in lines[i]) + 1
    return out


def test_stuck_init_code_is_one_counted_todo_in_lint_and_rewrite():
    result = rewrite_source(SOURCE, "m.py", target="linen")
    todos = [f for f in result.findings if not f.fixable]
    want = _lines(SOURCE, STUCK)
    assert sorted((f.line, f.code) for f in todos) == sorted((line, "PTJ103") for line in want.values()), todos
    for name, line in want.items():
        message = next(f.message for f in todos if f.line == line)
        assert STUCK[name] in message and "module.init fails" in message, (name, message)
    lint = lint_source(SOURCE, "m.py", target="linen")
    for fixable in (True, False):
        assert {(f.line, f.code) for f in lint if f.fixable == fixable and f.code not in ("PTJ001", "PTJ101")} == \
            {(f.line, f.code) for f in result.findings if f.fixable == fixable and f.code != "PTJ101"}
    new = result.new_source
    assert new.count("# TODO(pt2jax): PTJ103 torch init code left in setup()") == len(STUCK)
    assert rewrite_source(new, "m.py", target="linen").new_source == new  # idempotent


def test_unmarked_linen_classes_init_and_apply_like_torch(tmp_path):
    import jax
    import jax.numpy as jnp
    import torch

    new = rewrite_source(SOURCE, "m.py", target="linen").new_source
    (tmp_path / "torch_side.py").write_text(SOURCE)
    (tmp_path / "linen_side.py").write_text(new)
    torch_ns = runpy.run_path(str(tmp_path / "torch_side.py"))
    linen_ns = runpy.run_path(str(tmp_path / "linen_side.py"))
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    for name in RUNS:
        body = new[new.index(f"class {name}("):]
        body = body[:body.index("\nclass ", 1)] if "\nclass " in body[1:] else body
        assert "TODO(pt2jax)" not in body and "def init_parameters" in body, body
        want = torch_ns[name](3)(torch.from_numpy(x)).detach().numpy()
        module = linen_ns[name](3)
        variables = module.init(jax.random.key(0), jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(module.apply(variables, jnp.asarray(x))), want, rtol=1e-6,
                                   atol=1e-7, err_msg=name)
    for name in STUCK:  # marked: setup() runs torch init code before the parameters exist
        body = new[new.index(f"class {name}("):]
        assert "# TODO(pt2jax): PTJ103 torch init code left in setup()" in body.split("\nclass ")[0]


HOOKED = '''import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.fc.register_forward_hook(lambda m, i, o: o)
        self.apply(self._init)

    def _init(self, m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.fc(x)
'''


def test_forward_hook_in_init_code_is_one_marker():
    """`self.fc.register_forward_hook(...)` beside init code: the module method's own PTJ901,
    not also a PTJ105 layer-attribute read (lint and rewrite alike)."""
    result = rewrite_source(HOOKED, "m.py", target="linen")
    assert [(f.line, f.code) for f in result.findings if not f.fixable] == [(8, "PTJ901")], result.findings
    assert result.new_source.count("# TODO(pt2jax):") == 1
    lint = lint_source(HOOKED, "m.py", target="linen")
    assert [(f.line, f.code) for f in lint if not f.fixable and f.code != "PTJ001"] == [(8, "PTJ901")]
