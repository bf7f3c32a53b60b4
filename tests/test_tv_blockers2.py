"""More constructs that stopped torchvision architectures (benchmarks/bench_models.py): container
subclasses (ops.misc.Conv2dNormActivation, densenet's _DenseBlock / _Transition), add_module,
a conv class passed as a value, super().__init__(...) of a converted base, and classes imported
from another converted file of the same run (ops.misc.Permute in convnext / swin)."""

from __future__ import annotations

from pathlib import Path

from pt2jax_migrate.api import rewrite_paths
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.project_classes import project_classes
from pt2jax_migrate.rewrite import rewrite_source
from pt2jax_migrate.verify import run_verify

# the shapes of torchvision's ops.misc.ConvNormActivation and densenet, small
CONTAINERS = '''
from typing import Callable, Optional
import torch
import torch.nn as nn


class ConvNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1,
                 norm_layer: Optional[Callable[..., nn.Module]] = nn.BatchNorm2d,
                 activation_layer: Optional[Callable[..., nn.Module]] = nn.ReLU,
                 conv_layer: Callable[..., nn.Module] = nn.Conv2d, inplace: Optional[bool] = True) -> None:
        padding = (kernel_size - 1) // 2
        layers = [conv_layer(cin, cout, kernel_size, stride, padding, bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(cout))
        if activation_layer is not None:
            params = {} if inplace is None else {"inplace": inplace}
            layers.append(activation_layer(**params))
        super().__init__(*layers)
        self.out_channels = cout


class Conv2dNormAct(ConvNormAct):
    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(cin, cout, kernel_size, stride, nn.BatchNorm2d, nn.ReLU6, nn.Conv2d)


class Transition(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, cout, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class Block(nn.ModuleDict):
    def __init__(self, layers: int, width: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module("layer%d" % (i + 1), nn.Conv2d(width * (i + 1), width, 3, padding=1))

    def forward(self, x):
        features = [x]
        for name, layer in self.items():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = Conv2dNormAct(3, 8, stride=2)
        self.body = ConvNormAct(8, 8, 1, activation_layer=None)
        self.block = Block(2, 8)
        self.add_module("trans", Transition(24, 4))
        self.tail = nn.Sequential(nn.Conv2d(4, 4, 1))
        self.tail.add_module("act", nn.Tanh())
        self.head = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = self.tail(self.trans(self.block(self.body(self.stem(x)))))
        return self.head(torch.flatten(x, 1))
'''


def _lint_agrees(source: str) -> None:
    lint = lint_source(source, "m.py")
    result = rewrite_source(source, "m.py")
    skip = {"PTJ001", "PTJ101", "PTJ303"}
    assert {(f.line, f.code, f.fixable) for f in lint if f.code not in skip} == \
        {(f.line, f.code, f.fixable) for f in result.findings if f.code not in skip}


def test_container_subclasses_convert_and_verify(tmp_path):
    original = tmp_path / "containers_torch.py"
    original.write_text(CONTAINERS)
    text = rewrite_source(CONTAINERS, str(original)).new_source
    converted = tmp_path / "containers_nnx.py"
    converted.write_text(text)
    assert "import torch" not in text and "TODO(pt2jax)" not in text, text
    assert "class ConvNormAct(nnx.Sequential):" in text and "class Block(nnx.Dict):" in text
    assert "        super().__init__(*layers)\n" in text  # nnx.Sequential(*layers): kept
    assert "super().__init__(cin, cout, kernel_size, stride," in text and "rngs=rngs)\n" in text
    assert "self.layers.append(TorchBatchNorm(cin" in text  # self.norm = nn.BatchNorm2d(cin), in order
    assert 'self["layer%d" % (i + 1)] = ConvNCHW(' in text  # ModuleDict.add_module: by key
    assert 'setattr(self, "trans", Transition(24, 4, rngs=rngs))' in text
    assert "self.tail.layers.append(jnp.tanh)" in text or "self.tail.layers.append(jax.nn.tanh)" in text
    # nn.Conv2d as a value: a constructor with torch's signature and defaults
    assert "lambda in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, " \
           "*, rngs: ConvNCHW(" in text
    _lint_agrees(CONTAINERS)
    report = run_verify(str(original), str(converted), model="Net", init="", inputs=["float32[2,3,16,16]"], jit=True)
    assert report.comparisons and all(c.passed for c in report.comparisons), report.comparisons
    assert report.jit_error is None and report.jit_comparisons and all(c.passed for c in report.jit_comparisons)


def test_a_subclass_keeps_its_super_init_with_arguments():
    source = ("import torch.nn as nn\n\nclass A(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
              "        self.fc = nn.Linear(n, n)\n\nclass B(A):\n    def __init__(self, n):\n        super().__init__(n)\n"
              "        self.g = nn.Linear(n, 2)\n")
    text = rewrite_source(source, "m.py").new_source
    assert "        super().__init__(n, rngs=rngs)\n" in text  # was dropped: B never built self.fc
    assert text.count("super().__init__()") == 0  # nn.Module's own: removed as before


def test_sequential_child_read_elsewhere_is_refused():
    source = ("import torch.nn as nn\n\nclass T(nn.Sequential):\n    def __init__(self, c):\n        super().__init__()\n"
              "        self.norm = nn.BatchNorm2d(c)\n        self.size = self.norm.num_features\n")
    result = rewrite_source(source, "m.py")
    assert "TODO(pt2jax): PTJ102 `self.norm = layer` in T, an nn.Sequential subclass" in result.new_source
    assert "self.layers.append(" not in result.new_source
    _lint_agrees(source)


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


PACKAGE = {
    "pkg/__init__.py": "",
    "pkg/ops/__init__.py": "from .misc import Permute as Permute\n",
    "pkg/ops/misc.py": (
        "import torch\nfrom torch import nn\n\n\nclass Permute(nn.Module):\n"
        "    def __init__(self, dims):\n        super().__init__()\n        self.dims = dims\n\n"
        "    def forward(self, x):\n        return torch.permute(x, self.dims)\n\n\n"
        "class Plain:\n    def __init__(self, n):\n        self.n = n\n"),
    "pkg/models/net.py": (
        "import torch.nn as nn\nfrom ..ops.misc import Permute, Plain\nfrom ..ops import Permute as P2\n"
        "from pkg.ops.misc import Permute as P3\n\n\nclass Swap(Permute):\n    pass\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.p = Permute([0, 2, 1])\n        self.q = P2([0, 2, 1])\n        self.r = P3([0, 1, 2])\n"
        "        self.s = Swap([0, 2, 1])\n        self.plain = Plain(3)\n        self.fc = nn.Linear(4, 2)\n\n"
        "    def forward(self, x):\n        return self.fc(self.s(self.r(self.q(self.p(x)))))\n"),
}


def test_project_classes_resolve_relative_absolute_and_reexported_imports():
    found = project_classes({k[len("pkg/"):]: v for k, v in PACKAGE.items()}, "pkg")
    assert found["models/net.py"] == {"Permute": True, "P2": True, "P3": True}  # not Plain: no nn.Module
    assert found["ops/misc.py"] == {}


def test_classes_imported_from_a_converted_file_get_rngs(tmp_path):
    _write(tmp_path, PACKAGE)
    out = tmp_path / "out"
    run = rewrite_paths([str(tmp_path / "pkg")], out=str(out))
    assert not run.errors
    text = (out / "models" / "net.py").read_text()
    for call in ("Permute([0, 2, 1], rngs=rngs)", "P2([0, 2, 1], rngs=rngs)", "P3([0, 1, 2], rngs=rngs)",
                 "Swap([0, 2, 1], rngs=rngs)"):
        assert call in text, text
    assert "Plain(3)\n" in text  # not a module: no rngs
    # a single file (no run around it) knows nothing of ops/misc.py: unchanged behaviour
    alone = rewrite_source(PACKAGE["pkg/models/net.py"], "net.py").new_source
    assert "Permute([0, 2, 1])\n" in alone


# googlenet / inception's BasicConv2d: the conv's kernel_size, stride, padding come in **kwargs
KWARGS = '''
from typing import Any
import torch
import torch.nn as nn


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = BasicConv2d(3, 4, kernel_size=3, stride=2, padding=1)
        self.b = BasicConv2d(4, 4, kernel_size=(1, 3), padding=(0, 1))
        args = (4, 2, 1)
        self.c = nn.Conv2d(*args)

    def forward(self, x):
        return self.c(self.b(self.a(x)))
'''


def test_conv_with_star_arguments_binds_them_at_run_time(tmp_path):
    original = tmp_path / "kw_torch.py"
    original.write_text(KWARGS)
    text = rewrite_source(KWARGS, str(original)).new_source
    converted = tmp_path / "kw_nnx.py"
    converted.write_text(text)
    assert "import torch" not in text and "TODO(pt2jax)" not in text, text
    assert "rngs=rngs))(in_channels, out_channels, bias=False, **kwargs, rngs=rngs)" in text
    assert "rngs=rngs))(*args, rngs=rngs)" in text
    _lint_agrees(KWARGS)
    report = run_verify(str(original), str(converted), model="Net", init="", inputs=["float32[2,3,12,12]"], jit=True)
    assert report.comparisons and all(c.passed for c in report.comparisons), report.comparisons
    assert report.jit_error is None and all(c.passed for c in report.jit_comparisons)


def test_star_arguments_to_a_layer_without_value_defaults_stay_refused():
    source = "import torch.nn as nn\n\ndef make(**kw):\n    return nn.LayerNorm(4, **kw)\n"
    result = rewrite_source(source, "m.py")
    assert "TODO(pt2jax): PTJ102 torch.nn.LayerNorm: *args/**kwargs are not converted" in result.new_source
    _lint_agrees(source)
