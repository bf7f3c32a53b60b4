"""Second `rewrite` changes nothing: minimal reproducers of what the corpus check
(benchmarks/corpus_check.py) found on real files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pt2jax_migrate.rewrite import rewrite_source


def _twice(source: str) -> tuple[str, str]:
    first = rewrite_source(source, "m.py").new_source
    assert first is not None
    return first, rewrite_source(first, "m.py").new_source


def test_an_init_site_already_marked_is_not_marked_again_with_another_reason():
    # timm maxxvit/bottleneck_attn, torchvision ssdlite: on the converted file the layer class is
    # nnx.Linear, so the second pass found a different reason for the same nn.init call
    source = (
        "import torch.nn as nn\n\n\n"
        "def init_weights(module):\n"
        "    if isinstance(module, nn.Linear):\n"
        "        nn.init.normal_(module.weight, std=.02)\n"
    )
    first, second = _twice(source)
    assert first.count("# TODO(pt2jax): PTJ103 torch.nn.init.normal_(module.weight)") == 1
    assert second == first


def test_distinct_constructs_on_one_statement_each_keep_their_marker():
    source = "import torch\n\nx = torch.manual_seed(0) or torch.get_rng_state()\n"
    first, second = _twice(source)
    assert "# TODO(pt2jax): PTJ301 torch.manual_seed()" in first
    assert "# TODO(pt2jax): PTJ901 torch.get_rng_state" in first
    assert second == first



def _installed(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # found, never imported
    if spec is None or spec.origin is None:
        pytest.skip(f"{package} is not installed")
    return Path(spec.origin).parent / relative


def test_in_place_buffer_updates_already_marked_are_not_marked_again():
    # the second pass named the same `.zero_()`/`.fill_()` on a buffer differently ("in-place
    # tensor updates..." beside "in-place update of buffer ...") and added a marker each
    path = _installed("torch", "nn/modules/batchnorm.py")
    first, second = _twice(path.read_text())
    assert "# TODO(pt2jax): PTJ105 in-place update of buffer self.running_mean.zero_(...)" in first
    assert second == first
