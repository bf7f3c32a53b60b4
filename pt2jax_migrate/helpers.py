"""The helper sources moved to targets/nnx/helpers.py (they are NNX code); re-exported here so
existing imports keep working. New code asks the target: `get_target(name).helpers`."""

from __future__ import annotations

from .targets.nnx.helpers import ALLOWED_IMPORTS, HELPERS, Helper, helper_closure, helper_imports

__all__ = ["ALLOWED_IMPORTS", "HELPERS", "Helper", "helper_closure", "helper_imports"]
