"""verify's child processes (verify/isolate.py): a hang, a crash, a dying process or a memory hog
in the user's model is reported with the side and the user's line, and no process is left.

These ARE subprocess tests (each run starts a torch and a JAX child), so there are few, on the
tiny MLP of tests/data/verify, each failure planted where it costs least (most in the torch
constructor, so the JAX child is killed early).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pt2jax_migrate.verify import VerifyError, run_verify

DATA = Path(__file__).parent / "data" / "verify"
ROOT = Path(__file__).resolve().parent.parent
MLP_TORCH, MLP_NNX = str(DATA / "mlp_torch.py"), str(DATA / "mlp_nnx.py")


@pytest.fixture(autouse=True)
def _own_compile_cache(tmp_path, monkeypatch):
    """The JAX child's compilation cache in the test's folder, not the user's ~/.cache (nor the
    suite's shared one from conftest: verify's own choice of folder is what is tested)."""
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("PT2JAX_JAX_CACHE", str(tmp_path / "jax-cache"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (reparented ones wait for init to reap them)


def _children() -> list[int]:
    """Our live child processes (verify's children must all be gone after a run)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _model(tmp_path: Path, name: str, body: str) -> tuple[str, int]:
    """A torch file whose MLP constructor runs `body` (a line marked `# HERE`): (path, that line)."""
    text = textwrap.dedent('''\
        import os, signal, subprocess, sys, time
        import torch
        import torch.nn as nn


        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
        ''') + textwrap.indent(textwrap.dedent(body), " " * 8)
    path = tmp_path / name
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "# HERE" in t)
    return str(path), line


def _fails(original: str, converted: str = MLP_NNX, **kw) -> str:
    before = set(_children())
    with pytest.raises(VerifyError) as info:
        run_verify(original, converted, model="MLP", inputs=["float32[4,6]"], isolate=True, **kw)
    assert set(_children()) <= before, "a verify child process was left behind"
    return str(info.value)


def test_isolated_pass_is_the_in_process_report_and_imports_no_user_code(tmp_path):
    code = textwrap.dedent(f"""
        import json, sys
        from pt2jax_migrate.verify import run_verify
        r = run_verify({MLP_TORCH!r}, {MLP_NNX!r}, model="MLP", inputs=["float32[4,6]"], isolate=True)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "jax", "flax")
                        or "_pt2jax_verify_" in m)
        print(json.dumps({{"report": r.to_dict(), "loaded": loaded, "timings": sorted(r.timings)}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))  # PT2JAX_JAX_CACHE: the fixture's
    isolated = json.loads(out.stdout.strip().splitlines()[-1])
    assert isolated["loaded"] == []  # the parent never imported torch, jax or the user's files
    assert {"import torch", "import jax", "jax jit (compile and run, alongside eager)"} <= set(isolated["timings"])
    assert any((tmp_path / "jax-cache").iterdir())  # the JAX child kept its compiled programs
    local = run_verify(MLP_TORCH, MLP_NNX, model="MLP", inputs=["float32[4,6]"]).to_dict()
    assert isolated["report"]["passed"] and local["passed"]
    assert isolated["report"] == json.loads(json.dumps(local))  # the same figures, bit for bit


def test_hang_is_stopped_at_the_timeout_with_its_line_and_no_process_left(tmp_path):
    pids = tmp_path / "pids"
    original, line = _model(tmp_path, "hang.py", f"""\
        helper = subprocess.Popen(["sleep", "300"])  # the user's own child: killed with the group
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{helper.pid}}")
        while True:
            time.sleep(0.05)  # HERE
        """)
    message = _fails(original, timeout=25)
    assert f"the torch side ({original}) timed out after 25 s while building MLP at {original}:{line}" in message
    assert all(not _alive(int(pid)) for pid in pids.read_text().split())


def test_exception_names_the_users_line(tmp_path):
    original, line = _model(tmp_path, "raises.py", """\
        self.fc = nn.Linear(6, 3)
        raise SystemExit(4)  # HERE (escapes verify's own handlers: reported by the child loop)
        """)
    message = _fails(original)
    assert message.startswith(f"the torch side ({original}) failed while building MLP: {original}:{line}: "
                              "SystemExit: 4")


@pytest.mark.parametrize("side", ["torch", "jax"])
def test_a_dying_child_is_reported_with_its_side(tmp_path, side):
    if side == "torch":  # a segfault: faulthandler's dump gives the line
        original, line = _model(tmp_path, "segv.py", "os.kill(os.getpid(), signal.SIGSEGV)  # HERE\n")
        message = _fails(original)
        assert f"the torch side ({original}) died while building MLP: killed by signal SIGSEGV at " \
               f"{original}:{line}" in message
    else:  # os._exit in the converted constructor: no traceback, the exit status
        converted = tmp_path / "exit_nnx.py"
        converted.write_text("import os\nfrom flax import nnx\n\n\nclass MLP(nnx.Module):\n"
                             "    def __init__(self, *, rngs):\n        os._exit(3)\n")
        message = _fails(MLP_TORCH, str(converted))
        assert f"the JAX side ({converted}) died while building MLP: exited with status 3" in message


def test_memory_hog_is_stopped_with_the_limit_in_the_message(tmp_path):
    original, line = _model(tmp_path, "hog.py", """\
        self.hoard = []
        for _ in range(400):  # 32 MB a step, 12.8 GB in all: stopped long before
            self.hoard.append(torch.ones(2**23))  # HERE
        """)
    message = _fails(original, memory_limit=1536 * 2**20)
    assert f"the torch side ({original}) used " in message
    assert "over the memory limit of 1536 MB (--memory-limit); stopped" in message
    assert f"while building MLP at {original}:{line}" in message


# ------------------------------------------------------------------ verify --train: one child, both files

TRAIN_TORCH = """\
import os, signal, subprocess, time
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)


def objective(model, x):
    {torch}
    return model(x).pow(2).mean()
"""

TRAIN_JAX = """\
import os, signal, subprocess, time
import optax
from flax import nnx


class Net(nnx.Module):
    def __init__(self, *, rngs):
        self.fc = nnx.Linear(6, 3, rngs=rngs)

    def __call__(self, x):
        return self.fc(x)


def make_optimizer(model):
    return nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)


def objective(model, x):
    {jax}
    return (model(x) ** 2).mean()
"""


def _train_files(tmp_path: Path, torch: str = "pass", jax: str = "pass") -> tuple[str, str, int, int]:
    """The torch and converted files of a one-Linear training step whose loss function first runs
    `torch` / `jax`: (original, converted, the planted line in each)."""
    original, converted = tmp_path / "net.py", tmp_path / "net_jax.py"
    original.write_text(TRAIN_TORCH.format(torch=torch))
    converted.write_text(TRAIN_JAX.format(jax=jax))
    lines = TRAIN_TORCH.splitlines().index("    {torch}") + 1, TRAIN_JAX.splitlines().index("    {jax}") + 1
    return str(original), str(converted), *lines


def _train_fails(original: str, converted: str, **kw) -> str:
    from pt2jax_migrate.verify import run_train_verify

    before = set(_children())
    with pytest.raises(VerifyError) as info:
        run_train_verify(original, converted, model="Net", inputs=["float32[4,6]"], steps=1, loss_fn="objective",
                         optimizer="make_optimizer", isolate=True, **kw)
    assert set(_children()) <= before, "a verify --train child process was left behind"
    return str(info.value)


def test_train_hang_in_the_converted_step_is_stopped_with_its_line(tmp_path):
    pids = tmp_path / "pids"
    hang = (f'helper = subprocess.Popen(["sleep", "300"]); open({str(pids)!r}, "w").write(str(helper.pid)); '
            "exec('while True: time.sleep(0.05)')")  # the loop's frame is <string>: the line is the caller's
    original, converted, _, line = _train_files(tmp_path, jax=hang)
    message = _train_fails(original, converted, timeout=25)
    assert message.startswith(f"the training comparison ({original} / {converted}) timed out after 25 s while "
                              f"comparing up to 1 training steps at {converted}:{line} (--timeout); stopped")
    assert not _alive(int(pids.read_text()))  # the user's own child went with the group


def test_train_crash_in_the_torch_step_names_the_line(tmp_path):
    original, converted, line, _ = _train_files(tmp_path, torch="os.kill(os.getpid(), signal.SIGSEGV)")
    message = _train_fails(original, converted)
    assert f"the training comparison ({original} / {converted}) died while comparing up to 1 training steps: " \
           f"killed by signal SIGSEGV at {original}:{line}" in message


def test_rewrite_verify_isolates_the_users_model_too(tmp_path):
    """api.verify_rewritten (`rewrite --verify`) runs the sides as `verify` does: a model that
    exits in its constructor is that file's error naming its line, not the end of the run."""
    from pt2jax_migrate import api

    original, line = _model(tmp_path, "exits.py", """\
        self.fc = nn.Linear(6, 3)
        raise SystemExit(3)  # HERE (in process, this would end the whole rewrite)
        """)
    with open(original, "a") as handle:
        handle.write("\n    def forward(self, x):\n        return self.fc(x)\n")
    run = api.rewrite_paths([original], write=False)
    before = set(_children())
    [outcome] = api.verify_rewritten(run, model="MLP", inputs=["float32[4,6]"])
    assert set(_children()) <= before
    assert not outcome.ran and outcome.error is not None
    assert f"the torch side ({original})" in outcome.error and f"{original}:{line}" in outcome.error, outcome.error


def test_rewrite_verify_has_verifys_memory_limit_by_default(tmp_path, monkeypatch):
    """api.verify_rewritten with no limits given uses `verify`'s defaults (a caller that forgot
    them got no memory limit): here a default shrunk to 64 MB stops the torch side."""
    from pt2jax_migrate import api
    from pt2jax_migrate.verify import isolate

    original, _ = _model(tmp_path, "small.py", "self.fc = nn.Linear(6, 3)  # HERE\n")
    with open(original, "a") as handle:
        handle.write("\n    def forward(self, x):\n        return self.fc(x)\n")
    monkeypatch.setattr(isolate, "default_memory_limit", lambda: 64 * 2**20)
    [outcome] = api.verify_rewritten(api.rewrite_paths([original], write=False), model="MLP",
                                     inputs=["float32[4,6]"])
    assert not outcome.ran and "over the memory limit of 64 MB" in (outcome.error or ""), outcome.error
