"""Helpers for the data-pipeline boundary, written into converted files (source text only).

* `ArrayDataset` / `ArrayLoader`: `DataLoader(TensorDataset(a, b), batch_size=..., shuffle=...,
  drop_last=...)` over arrays the program built: the same batches in the same order (slices
  along the first axis); shuffling draws its permutation from an explicit key, a new one each
  epoch (a different order than torch's generator gives).
* `numpy_collate`: the collate_fn of a torch DataLoader kept by the data-pipeline policy (a
  user Dataset, torchvision datasets): torch's default_collate, but every batch comes out as
  numpy arrays, converted once where the batch is formed (safe in worker processes, where JAX
  must not run), so no torch tensor reaches the converted code.

Checked against torch's DataLoader in tests/test_data_boundary.py.
"""

from __future__ import annotations

ARRAY_DATASET = '''\
class ArrayDataset:
    """torch's TensorDataset over arrays: sample i is the tuple of every array's row i."""

    def __init__(self, *arrays):
        if any(len(a) != len(arrays[0]) for a in arrays):
            raise ValueError("Size mismatch between arrays")
        self.tensors = arrays  # torch's name, so `dataset.tensors` keeps working

    def __getitem__(self, index):
        return tuple(a[index] for a in self.tensors)

    def __len__(self):
        return len(self.tensors[0])
'''

ARRAY_LOADER = '''\
class ArrayLoader:
    """torch's DataLoader over an ArrayDataset: batches are slices of the arrays, in order (or
    in a permutation drawn from `key`, a new one each epoch); the last, smaller batch is kept
    unless drop_last. Worker and pinning options do not apply to arrays and are ignored."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, *, key=None,
                 **ignored):
        if shuffle and key is None:
            raise ValueError("shuffle=True needs an explicit key")
        self.dataset, self.batch_size, self.shuffle, self.drop_last, self.key = (
            dataset, batch_size, shuffle, drop_last, key)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        arrays = self.dataset.tensors
        order = None
        if self.shuffle:
            self.key, key = jax.random.split(self.key)
            order = jax.random.permutation(key, len(self.dataset))
        for i in range(len(self)):
            rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
            yield tuple(a[rows] if order is None else a[order[rows]] for a in arrays)
'''

NUMPY_COLLATE = '''\
def numpy_collate(batch):
    """torch's default_collate, to numpy arrays: samples (arrays, tensors, numbers, tuples or
    dicts of them) stacked along a new first axis."""
    first = batch[0]
    if isinstance(first, (tuple, list)):
        return [numpy_collate(list(field)) for field in zip(*batch)]
    if isinstance(first, dict):
        return {k: numpy_collate([sample[k] for sample in batch]) for k in first}
    return np.stack([np.asarray(sample) for sample in batch])
'''

# name -> (source, imports); helpers.py turns these into Helper entries
DATA_HELPERS = {
    "ArrayDataset": (ARRAY_DATASET, []),
    "ArrayLoader": (ARRAY_LOADER, ["import jax"]),
    "numpy_collate": (NUMPY_COLLATE, ["import numpy as np"]),
}
