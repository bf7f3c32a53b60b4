"""The data-pipeline boundary (core.data): DataLoader(TensorDataset(...)) over the program's own
arrays becomes ArrayLoader (the same batches as torch's, in order); a DataLoader over a Dataset
subclass or torchvision dataset stays (the data-pipeline policy) and hands its batches over as
numpy arrays, marked with a counted NOTE(pt2jax) the residue check accepts for data-pipeline
names only. Helpers checked against real torch."""

from __future__ import annotations

import types

import numpy as np
import pytest

from pt2jax_migrate.core.residue import find_residue, unmarked_residue
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.output.counts import count_findings, count_todo_markers
from pt2jax_migrate.rewrite import rewrite_source
from pt2jax_migrate.targets.nnx.helpers import HELPERS

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")


def helpers(*names: str) -> types.SimpleNamespace:
    namespace = {"jax": jax, "np": np}
    for name in names:
        exec(HELPERS[name].source, namespace)
    return types.SimpleNamespace(**{n: namespace[n] for n in names})


def agree(source: str):
    """Rewrite and lint: the same fixes, the same TODOs, the same notes (kept by policy)."""
    result = rewrite_source(source, "prog.py")
    lint = lint_source(source, "prog.py")
    skip = {"PTJ001", "PTJ101", "PTJ303"}
    assert {(f.line, f.code) for f in lint if f.fixable and f.code not in skip} == \
        {(f.line, f.code) for f in result.findings if f.fixable and f.code not in skip}
    assert {(f.line, f.code, f.severity) for f in lint if not f.fixable and f.code not in skip} == \
        {(f.line, f.code, f.severity) for f in result.findings if not f.fixable and f.code not in skip}
    assert unmarked_residue(result.new_source) == []
    assert rewrite_source(result.new_source, "prog.py").new_source == result.new_source  # idempotent
    return result


# ------------------------------------------------------------------------- ArrayLoader vs torch


@pytest.mark.parametrize("n,batch_size,drop_last", [(50, 16, False), (50, 16, True), (48, 16, False), (5, 8, False),
                                                    (5, 8, True), (7, 1, False)])
def test_array_loader_gives_torchs_batches_in_order(n, batch_size, drop_last):
    h = helpers("ArrayDataset", "ArrayLoader")
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n) % 4
    want = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                       batch_size=batch_size, drop_last=drop_last)
    got = h.ArrayLoader(h.ArrayDataset(jax.numpy.asarray(x), jax.numpy.asarray(y)), batch_size=batch_size,
                        drop_last=drop_last, num_workers=2, pin_memory=True)
    assert len(got) == len(want) and len(got.dataset) == len(want.dataset) == n
    for _ in range(2):  # every epoch the same batches
        pairs = list(zip(got, want, strict=True))
        assert len(pairs) == len(want)
        for (gx, gy), (wx, wy) in pairs:
            np.testing.assert_array_equal(np.asarray(gx), wx.numpy())
            np.testing.assert_array_equal(np.asarray(gy), wy.numpy())
    assert got.dataset.tensors[0].shape == (n, 3)
    sample = got.dataset[2]
    assert isinstance(sample, tuple) and np.asarray(sample[0]).tolist() == x[2].tolist()


def test_shuffled_array_loader_draws_a_new_permutation_each_epoch_from_its_key():
    h = helpers("ArrayDataset", "ArrayLoader")
    x = jax.numpy.arange(20)
    loader = h.ArrayLoader(h.ArrayDataset(x), batch_size=6, shuffle=True, key=jax.random.key(0))
    epochs = [np.concatenate([np.asarray(b[0]) for b in loader]) for _ in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(20))  # each sample once
        assert [len(b[0]) for b in loader] == [6, 6, 6, 2]
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[0], np.arange(20))
    again = h.ArrayLoader(h.ArrayDataset(x), batch_size=6, shuffle=True, key=jax.random.key(0))
    assert np.array_equal(np.concatenate([np.asarray(b[0]) for b in again]), epochs[0])  # the key decides
    with pytest.raises(ValueError, match="explicit key"):
        h.ArrayLoader(h.ArrayDataset(x), shuffle=True)
    with pytest.raises(ValueError, match="Size mismatch"):
        h.ArrayDataset(x, x[:3])


class _Samples(torch.utils.data.Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": torch.full((2, 3), float(i)), "y": i, "w": np.float32(i) / 2}, (torch.tensor([i, -i]), float(i))


def test_numpy_collate_is_torchs_default_collate_as_numpy():
    h = helpers("numpy_collate")
    want = list(torch.utils.data.DataLoader(_Samples(), batch_size=3))
    got = list(torch.utils.data.DataLoader(_Samples(), batch_size=3, collate_fn=h.numpy_collate))
    assert len(got) == len(want) == 3
    for (gd, (ga, gb)), (wd, (wa, wb)) in zip(got, want):
        for key in ("x", "y", "w"):
            assert isinstance(gd[key], np.ndarray)
            np.testing.assert_array_equal(gd[key], wd[key].numpy())
            assert gd[key].dtype == wd[key].numpy().dtype
        np.testing.assert_array_equal(ga, wa.numpy())
        np.testing.assert_array_equal(gb, wb.numpy())


# ---------------------------------------------------------------------------------- rewrite

ARRAYS = '''\
import torch
from torch.utils.data import DataLoader, TensorDataset

x = torch.linspace(-1, 1, 40).reshape(20, 2)
y = torch.arange(20) % 2
train_set = TensorDataset(x, y)
loader = DataLoader(train_set, batch_size=8, drop_last=False, num_workers=0)
shuffled = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
print(len(loader), len(loader.dataset), len(shuffled))
for epoch in range(2):
    for xb, yb in loader:
        print(epoch, tuple(xb.shape), yb.sum().item())
'''


def test_dataloader_over_a_tensor_dataset_becomes_an_array_loader_without_torch():
    result = agree(ARRAYS)
    new = result.new_source
    assert "\nimport torch" not in new and "\nfrom torch" not in new and find_residue(new) == []
    assert "train_set = ArrayDataset(x, y)" in new
    assert "loader = ArrayLoader(train_set, batch_size=8, drop_last=False, num_workers=0)" in new
    assert "shuffled = ArrayLoader(ArrayDataset(x, y), batch_size=8, shuffle=True, key=rngs())" in new
    assert "# pt2jax: shuffled by a JAX key: each epoch's order differs from torch's generator" in new
    unsafe = [f for f in result.findings if f.code == "PTJ401" and f.fix == "unsafe"]
    assert [f.line for f in unsafe] == [8]  # the shuffle: a different order than torch's generator
    assert not [f for f in result.findings if not f.fixable]
    # --safe-only / lint --fix: the shuffled loader is left for --unsafe-fixes, the rest converts
    safe = rewrite_source(ARRAYS, "prog.py", unsafe_fixes=False).new_source
    assert "loader = ArrayLoader(train_set" in safe and "shuffled = DataLoader(ArrayDataset(x, y)" in safe


def test_the_converted_array_program_prints_what_torch_prints(capsys):
    exec(compile(ARRAYS, "torch_prog", "exec"), {})
    want = capsys.readouterr().out.splitlines()
    exec(compile(rewrite_source(ARRAYS, "prog.py").new_source, "jax_prog", "exec"), {})
    got = capsys.readouterr().out.splitlines()
    assert got == want and want[0] == "3 20 3" and len(want) == 7


KEPT = '''\
import torch
from torch.utils.data import DataLoader, Dataset


class Squares(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.full((3,), float(i)), i * i


loader = DataLoader(Squares(), batch_size=4, shuffle=False)
custom = DataLoader(Squares(), batch_size=4, collate_fn=lambda batch: batch)
for xb, yb in loader:
    xb = xb.to("cpu")
    print(xb.sum().item(), yb.tolist())
'''


def test_a_dataset_subclass_stays_as_the_data_pipeline_with_numpy_batches():
    result = agree(KEPT)
    new = result.new_source
    assert "from torch.utils.data import DataLoader, Dataset" in new and "import torch\n" not in new
    assert "loader = DataLoader(Squares(), batch_size=4, shuffle=False, collate_fn=numpy_collate)" in new
    assert "return jnp.full((3,), float(i)), i * i" in new  # __getitem__ converted by the tables
    assert "xb = xb" not in new and ".to(" not in new  # the device move on the batch is gone
    notes = [f for f in result.findings if f.code == "PTJ401" and f.severity == "info"]
    assert [f.line for f in notes] == [5, 13]  # the Dataset base, the kept loader
    assert all(not f.fixable for f in notes)
    # the loader with its own collate_fn: a TODO (its batches are whatever that returns)
    todos = [f for f in result.findings if not f.fixable and f.severity != "info"]
    assert [(f.line, f.code) for f in todos] == [(14, "PTJ401")] and "collate_fn" in todos[0].message
    assert count_todo_markers(new) == 1 and new.count("# NOTE(pt2jax): PTJ401") == 2
    # counted the same by lint and rewrite: a note each, one for a person
    lint = [f for f in lint_source(KEPT, "prog.py") if f.code == "PTJ401"]
    assert (count_findings(lint).notes, count_findings(lint).manual) == (2, 1)
    assert (count_findings(result.findings).notes, count_findings(result.findings).manual) == (2, 1)


def test_the_kept_pipeline_feeds_numpy_batches_to_the_converted_code(capsys):
    source = KEPT.replace("custom = DataLoader(Squares(), batch_size=4, collate_fn=lambda batch: batch)\n", "")
    exec(compile(source, "torch_prog", "exec"), {})
    want = capsys.readouterr().out
    exec(compile(rewrite_source(source, "prog.py").new_source, "jax_prog", "exec"), {})
    assert capsys.readouterr().out == want


def test_a_note_marks_only_data_pipeline_residue():
    text = ("import torch\nfrom torch.utils.data import DataLoader\n"
            "# NOTE(pt2jax): PTJ401 kept\nloader = DataLoader([1, 2])\n"
            "# NOTE(pt2jax): PTJ401 kept\ny = torch.fft.rfft(x)\n")
    residue = {r.what: r.marked for r in find_residue(text)}
    assert residue == {"torch.utils.data.DataLoader": True, "torch.fft.rfft": False}


def test_torchvision_datasets_and_transforms_are_kept_by_policy():
    source = ("import torchvision\nfrom torchvision import transforms\n"
              "tf = transforms.Compose([transforms.ToTensor()])\n"
              "train = torchvision.datasets.MNIST('data', train=True, transform=tf)\n")
    findings = [f for f in lint_source(source, "prog.py") if f.code == "PTJ401"]
    assert findings and all(f.severity == "info" and not f.fixable for f in findings)
    new = rewrite_source(source, "prog.py").new_source
    assert unmarked_residue(new) == [] and "TODO(pt2jax)" not in new and new.count("NOTE(pt2jax)") == 3  # one per construct
