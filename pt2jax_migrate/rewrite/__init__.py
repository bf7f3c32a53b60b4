"""The rewrite engine: PyTorch source text -> Flax NNX + Optax source text.

A pure function over text (`rewrite_source`): one libcst pass driven by the rules/ tables,
returning the new text and one Finding per change or TODO. It never writes files and never
imports torch or jax. Files that do not import torch come back unchanged, byte for byte.

The pass is split by concern (see transformer.py for which module owns which hook and field);
the names below are the ones the rest of pt2jax and the tests import.
"""

from __future__ import annotations

from .cst_util import code_of, names_in, paren_code
from .engine import fixable_train_step_lines, parse, rewrite_source
from .imports import IMPORTS, finish_imports, import_aliases, not_tensor_names
from .references import SPECIAL_NAMES
from .todos import TODO_PREFIX
from .trainsteps import TRAIN_METHODS, TRAIN_STEP_CODES
from .transformer import TorchToNNX

__all__ = ["IMPORTS", "SPECIAL_NAMES", "TODO_PREFIX", "TRAIN_METHODS", "TRAIN_STEP_CODES", "TorchToNNX", "code_of",
           "finish_imports", "fixable_train_step_lines", "import_aliases", "names_in", "not_tensor_names", "paren_code",
           "parse", "rewrite_source"]
