"""`--target linen` on shapes found by `benchmarks/corpus_check.py --target linen` (timm,
torchvision): the rewrite is idempotent, every construct it leaves is marked by the engine
itself (no PTJ920 safety net) and lint reports the same TODOs."""

from __future__ import annotations

from pt2jax_migrate.core.residue import RESIDUE_CODE
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

SOURCE = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Pool(nn.Module):  # timm adaptive_avgmax_pool: a torch name as a parameter's annotation
    def __init__(self, flatten: bool = False, input_fmt: F = 'NCHW'):
        super().__init__()
        self.flatten = flatten
        self.fmt = input_fmt

    def forward(self, x):
        return x.mean((2, 3), keepdim=not self.flatten)


class Transition(nn.Sequential):  # torchvision densenet: a container subclass (left for Linen)
    def __init__(self, c):
        super().__init__()
        self.add_module("conv", nn.Conv2d(c, c, 1))


class Net(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("first", nn.Conv2d(c, c, 3))  # timm attention2d: add_module
        trans = Transition(c)
        self.features.add_module("transition", trans)
        self.head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        for layer in self.head.children():  # torchvision fcos: marked init code moved to the hook
            if isinstance(layer, nn.Conv2d):
                torch.nn.init.normal_(layer.weight, std=0.01)

    def forward(self, x):
        return self.head(self.features(x))


def build(c):
    box = Transition(c)  # torchvision faster_rcnn: a handle of a container subclass
    return box
'''


def test_linen_rewrite_of_corpus_shapes_is_idempotent_and_marked():
    first = rewrite_source(SOURCE, "m.py", target="linen")
    assert not [f for f in first.findings if f.code == RESIDUE_CODE], \
        [f"{f.line}: {f.message}" for f in first.findings if f.code == RESIDUE_CODE]
    new = first.new_source
    compile(new, "m.py", "exec")
    assert rewrite_source(new, "m.py", target="linen").new_source == new
    # the annotation's marker sits above its own field (where a second run puts it)
    fields = new[new.index("class Pool("):new.index("def setup", new.index("class Pool("))]
    assert "flatten: bool = False\n    # TODO(pt2jax): PTJ901 torch.nn.functional" in fields
    # the init block moved into init_parameters keeps its marker
    hook = new[new.index("def init_parameters"):]
    assert "# TODO(pt2jax): PTJ901 children()" in hook.split("for layer in")[0]
    # add_module left for Linen: one PTJ901 marker per call
    assert new.count("# TODO(pt2jax): PTJ901 self.features.add_module(name, module)") == 2
    assert "LinenModel(Transition(c)" not in new.split("def build")[0]  # a submodule stays one
    lint = lint_source(SOURCE, "m.py", target="linen")
    assert {(f.line, f.code) for f in lint if not f.fixable and f.code != "PTJ001"} == \
        {(f.line, f.code) for f in first.findings if not f.fixable}


DEF_NAMED_LIKE_AN_IMPORT = '''import torch.nn as nn
import torch.nn.init as init


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x)


class Runner:
    def init(self, x):  # binds `init` (torchvision squeezenet's output: LinenModel.init)
        return x
'''


def test_a_def_named_like_a_torch_import_is_not_a_use_of_it():
    for target in ("nnx", "linen"):
        result = rewrite_source(DEF_NAMED_LIKE_AN_IMPORT, "m.py", target=target)
        assert not [f for f in result.findings if not f.fixable], (target, result.findings)
        assert rewrite_source(result.new_source, "m.py", target=target).new_source == result.new_source


AMBIGUOUS_ISINSTANCE = '''import torch.nn as nn


def init_weights(module):  # timm weight_init: the Conv2d test is ambiguous while Conv1d is named
    if isinstance(module, nn.Linear):
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.zeros_(module.bias)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3)
        self.apply(init_weights)

    def forward(self, x):
        return self.conv(x)
'''


def test_an_ambiguous_isinstance_stays_marked_on_a_second_run():
    """The first run converts nn.Conv1d; the marker it leaves on the Conv2d test keeps the second
    run from converting the test it flagged (lint reads the same fact)."""
    for target in ("nnx", "linen"):
        new = rewrite_source(AMBIGUOUS_ISINSTANCE, "m.py", target=target).new_source
        assert "elif isinstance(module, nn.Conv2d):" in new and "would also match torch.nn.Conv1d" in new
        again = rewrite_source(new, "m.py", target=target)
        assert again.new_source == new, target
        lint = lint_source(new, "m.py", target=target)
        assert {(f.line, f.code) for f in lint if not f.fixable and f.code == "PTJ901"} == \
            {(f.line, f.code) for f in again.findings if not f.fixable and f.code == "PTJ901"} != set()
