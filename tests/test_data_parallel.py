"""Data parallel on JAX's own engine (PTJ403): nn.DataParallel / DistributedDataParallel become a
model replicated over a Mesh and a train step fed batches sharded along 'data'
(targets/nnx/helpers_parallel.py); the process group of a single-host program converts, a
multi-process one is left marked. The converted programs run on 4 CPU devices in one subprocess
and print the PyTorch original's losses (a --target linen port too:
fixtures/linen_programs/data_parallel_linen.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source
from tests.test_programs import converted, losses, run_program

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = [ROOT / "fixtures" / "programs" / "data_parallel.py", ROOT / "fixtures" / "programs" / "data_parallel_ddp.py"]
LINEN = ROOT / "fixtures" / "linen_programs" / "data_parallel_linen.py"  # run converted with --target linen

# what is not converted, and why: each stays PyTorch with a PTJ403 marker
REFUSED = textwrap.dedent("""\
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("nccl")
    net = nn.Linear(3, 2)
    run(nn.DataParallel(net))
    wide = nn.DataParallel(net, dim=1)
    ddp = DDP(net, process_group=None)
    total = dist.all_reduce(torch.ones(1))
    print(wide.module, ddp.module)
    dist.barrier()
    """)


# converted in other shapes: an attribute target with .cuda(), `if c: destroy_process_group()`
EDGES = textwrap.dedent("""\
    import torch
    import torch.distributed as dist
    import torch.nn as nn


    class Trainer:
        def __init__(self, net):
            self.model = nn.DataParallel(net).cuda()

        def inner(self):
            return self.model.module


    r = dist.get_rank(group=None)
    torch.cuda.set_device(0)
    if dist.is_initialized(): dist.destroy_process_group()
    """)


def keyed(findings, fixable):
    return {(f.line, f.code) for f in findings if f.fixable == fixable}


@pytest.mark.parametrize("name", ["data_parallel", "data_parallel_ddp", "refused", "edges"])
def test_lint_reports_what_rewrite_does(name):
    source = {"refused": REFUSED, "edges": EDGES}.get(name) or (ROOT / "fixtures" / "programs" / f"{name}.py").read_text()
    lint = lint_source(source, f"{name}.py")
    result = rewrite_source(source, f"{name}.py")
    skip = {"PTJ001", "PTJ101", "PTJ303"}
    assert {k for k in keyed(lint, True) if k[1] not in skip} == {k for k in keyed(result.findings, True)
                                                                    if k[1] not in skip}
    assert {k for k in keyed(lint, False) if k[1] not in skip} == keyed(result.findings, False)
    assert {k for k in keyed(lint, True) | keyed(lint, False) if k[1] == "PTJ403"}, "no PTJ403 reported"


def test_refused_constructs_stay_marked_with_reasons():
    result = rewrite_source(REFUSED, "m.py")
    todos = {f.line: f.message for f in result.findings if not f.fixable and f.code == "PTJ403"}
    assert set(todos) == {6, 8, 9, 10, 11, 13}, todos
    assert "world_size=1" in todos[6] and "jax.distributed.initialize" in todos[6]
    assert "as an assignment" in todos[8]
    assert "dim other than 0" in todos[9]
    assert "process_group" in todos[10]
    assert "jax.distributed.initialize" in todos[11] and "jax.distributed.initialize" in todos[13]
    new = result.new_source
    assert new.count("# TODO(pt2jax): PTJ403") == 6
    assert "print(wide.module, ddp.module)" in new  # the wrappers stay: so does their .module
    assert "data_parallel(" not in new and "shard_batch" not in new


def test_edges():
    result = rewrite_source(EDGES, "m.py")
    new = result.new_source
    assert "self.model = data_parallel(net)" in new and "return self.model\n" in new
    assert "if dist.is_initialized(): None" in new and "set_device" not in new
    todos = {f.line: f.message for f in result.findings if not f.fixable}
    assert set(todos) == {14, 16}, todos  # get_rank(group=...), is_initialized()
    assert "other than the default one" in todos[14]


def test_wrapper_becomes_a_replicated_model_and_a_sharded_step():
    new = converted(PROGRAMS[0]).new_source
    assert "model = data_parallel(Classifier(rngs=nnx.Rngs(0)))" in new
    assert "loss = train_step(model, optimizer, *shard_batch(xb, yb))" in new
    assert "model.module" not in new and "print(f\"final loss {criterion(model(x), labels).item():.6f}\")" in new
    assert "jax.pmap" not in new and "pmap(" not in new
    ddp = converted(PROGRAMS[1]).new_source
    for gone in ("init_process_group", "destroy_process_group", "set_device", "import torch", "dist."):
        assert gone not in ddp, gone
    assert "rank = jax.process_index()" in ddp and "world_size = jax.process_count()" in ddp
    assert "loss = train_step(model, optimizer, *shard_batch(xb, yb))" in ddp


_RUNNER = textwrap.dedent("""\
    import contextlib, io, json, os, runpy, sys
    import jax, jax.numpy as jnp
    from flax import nnx

    report = {"devices": jax.device_count(), "programs": {}}
    for path in sys.argv[1:]:
        os.chdir(os.path.dirname(path))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            found = runpy.run_path(path, run_name="__main__")
        (batch,) = found["shard_batch"](jnp.zeros((16, 3)))
        info = {"stdout": out.getvalue(), "spec": list(batch.sharding.spec),
                "shards": sorted({tuple(s.data.shape) for s in batch.addressable_shards}),
                "devices": len(batch.sharding.device_set)}
        if "model" in found:  # after training: the step's outputs, on every device
            model = found["model"]
            linen = type(model).__name__ == "LinenModel"
            params = jax.tree.leaves(model.variables["params"] if linen else nnx.state(model, nnx.Param))
            info["param_devices"] = sorted({len(p.sharding.device_set) for p in params})
            info["replicated"] = all(p.sharding.is_fully_replicated for p in params)
        report["programs"][os.path.basename(path)] = info
    print(json.dumps(report))
    """)


def test_converted_programs_train_on_four_devices_like_torch(tmp_path, monkeypatch):
    ports = []
    want = {}
    for path in [*PROGRAMS, LINEN]:
        (tmp_path / "torch" / path.stem).mkdir(parents=True)
        (tmp_path / "jax" / path.stem).mkdir(parents=True)
        original = tmp_path / "torch" / path.stem / path.name
        original.write_text(path.read_text())
        want[path.name] = losses(run_program(original, original.parent, monkeypatch))
        port = tmp_path / "jax" / path.stem / path.name
        port.write_text(rewrite_source(path.read_text(), str(path), target="linen").new_source if path == LINEN
                        else converted(path).new_source)
        ports.append(str(port))
    runner = tmp_path / "run_ports.py"
    runner.write_text(_RUNNER)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(runner), *ports], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4
    for name, info in report["programs"].items():
        assert info["spec"] == ["data"] and info["devices"] == 4 and info["shards"] == [[4, 3]], info
        got = losses(info["stdout"])
        assert want[name] and len(got) == len(want[name]), (name, want[name], got)
        for i, (w, g) in enumerate(zip(want[name], got)):
            assert abs(w - g) <= 1e-5 * max(1.0, abs(w)), f"{name} loss #{i}: torch {w} jax {g}"
    for name in ("data_parallel.py", LINEN.name):  # the Linen model's variables too (data_parallel)
        dp = report["programs"][name]
        assert dp["param_devices"] == [4] and dp["replicated"], (name, dp)
    # the last batch of each epoch (2 samples) does not split over 4 devices: replicated, said
    # once per program
    assert proc.stderr.count("a batch of 2 does not split over 4 devices") == 2, proc.stderr[-3000:]
