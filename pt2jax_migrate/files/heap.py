"""The garbage collector during a run over many files.

Every file's tree is hundreds of thousands of fresh objects, and allocating them keeps
triggering collections; each full one scans every object alive, most of which are the
modules, rule tables and caller's data that were there before the run and stay after it.
`frozen_heap()` moves those out of the collector's reach for the run (gc.freeze) and hands
them back at the end (gc.unfreeze). Nothing is kept longer than without it: what the run
itself leaves as garbage, cycles included, is collected as usual; only objects that were
already alive are not scanned. (Measured: 13% of lint's CPU on 150 files of torch, timm,
torchvision, in the full collections over the frozen objects.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_heap() -> Iterator[None]:
    """gc.freeze() for the block, undone after it; nothing when the collector is off or
    the caller (or an enclosing block) froze objects already: theirs stay as they are."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
