"""`pt2jax verify --train`: K optimizer steps of the original's and the converted training code,
compared after each step, with real torch and JAX (in this process: one import per worker)."""

from __future__ import annotations

import json
import struct
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from pt2jax_migrate.cli import main
from pt2jax_migrate.verify import VerifyError, run_train_verify
from pt2jax_migrate.verify.plot import plot_path
from pt2jax_migrate.verify.trainsource import find_script_steps

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
MLP = dict(model="MLP", inputs=["float32[16,20]", "int64[16]:0..5"])
CNN = dict(model="ConvNet", inputs=["float32[8,1,16,16]", "int64[8]:0..4"])


def fixture(name: str) -> tuple[str, str]:
    return str(FIXTURES / f"{name}.in.py"), str(FIXTURES / f"{name}.out.py")


def altered_copy(tmp_path: Path, name: str, old: str, new: str) -> tuple[str, str]:
    """The fixture's original beside a copy of its converted file with `old` replaced by `new`."""
    original, converted = fixture(name)
    text = Path(converted).read_text()
    assert text.count(old) == 1, old
    (tmp_path / "orig.py").write_text(Path(original).read_text())
    (tmp_path / "conv.py").write_text(text.replace(old, new))
    return str(tmp_path / "orig.py"), str(tmp_path / "conv.py")


# ------------------------------------------------------------------ the script's own step


def test_script_step_is_rebuilt_with_the_converted_calling_convention():
    (step,) = find_script_steps(fixture("mlp_classifier")[0])
    assert step.batch == ["xb", "yb"]
    assert (step.model, step.optimizer) == ("model", "optimizer")
    assert step.function.splitlines()[0] == "def __pt2jax_script_step__(model, optimizer, xb, yb):"
    assert "loss.backward()" in step.function and "optimizer.step()" in step.function


def test_mlp_fixture_trains_like_the_original():
    report = run_train_verify(*fixture("mlp_classifier"), steps=3, **MLP)
    assert report.passed and report.status == "pass", report.summary()
    assert [s.step for s in report.steps] == [1, 2, 3]
    kinds = {c.kind for s in report.steps for c in s.comparisons}
    assert kinds == {"loss", "gradient", "parameter", "update"}  # no buffers in this model
    assert len([c for c in report.steps[0].comparisons if c.kind == "gradient"]) == 8  # every parameter
    # the losses are real and the model learns the same way on both sides
    for s in report.steps:
        assert s.torch_loss == pytest.approx(s.converted_loss, rel=1e-5)
    assert report.torch_losses[0] != report.torch_losses[1]
    assert report.dropout == (1, 1) and any("dropout" in n for n in report.notes)
    assert "build_optimizer(model)" in report.optimizer  # from `optimizer = build_optimizer(model)` in main()


def test_cnn_fixture_compares_batchnorm_statistics_too():
    report = run_train_verify(*fixture("cnn_classifier"), steps=2, **CNN)
    assert report.passed, report.summary()
    buffers = {c.name for c in report.steps[-1].comparisons if c.kind == "buffer"}
    assert {"buffer features.1.running_mean", "buffer features.1.running_var"} <= buffers


# ------------------------------------------------------------------ divergence is found and named


def test_a_different_learning_rate_fails_at_step_one(tmp_path):
    files = altered_copy(tmp_path, "mlp_classifier", "def build_optimizer(model, lr=1e-3)",
                         "def build_optimizer(model, lr=1.1e-3)")
    report = run_train_verify(*files, steps=2, **MLP)
    assert not report.passed and report.status == "mismatch"
    step, comparison = report.first_divergence
    assert step == 1 and comparison.kind in ("parameter", "update")
    assert report.float64 is not None and report.float64.numeric_failures  # not rounding
    assert "first divergence at step 1" in report.summary()
    # the loss before the first update is the same; the curves part afterwards
    assert report.steps[0].torch_loss == pytest.approx(report.steps[0].converted_loss, rel=1e-6)


def test_a_missing_weight_decay_fails(tmp_path):
    files = altered_copy(tmp_path, "mlp_classifier", "optax.adamw(lr, weight_decay=0.01)",
                         "optax.adamw(lr, weight_decay=0.0)")
    report = run_train_verify(*files, steps=2, float64_check=False, **MLP)
    assert not report.passed
    step, comparison = report.first_divergence
    assert step == 1
    # weight decay moves each update by lr * 0.01 * w: caught in the updates, not yet in the loss
    failing = {c.kind for c in report.steps[0].failures}
    assert "update" in failing and "loss" not in failing
    assert comparison.name.split()[-1] in {"fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight",
                                           "fc2.bias", "head.weight", "head.bias"}


def test_momentum_dropped_from_the_converted_sgd_fails_only_from_step_two(tmp_path):
    files = altered_copy(tmp_path, "cnn_classifier", "optax.sgd(lr, momentum=0.9)", "optax.sgd(lr)")
    report = run_train_verify(*files, steps=2, float64_check=False, **CNN)
    assert not report.passed
    assert not report.steps[0].failures  # the first SGD step has no momentum yet
    assert report.first_divergence[0] == 2


# ------------------------------------------------------------------ a program of our own, end to end

PROGRAM = '''
import torch
import torch.nn as nn


class Regressor(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, width), nn.BatchNorm1d(width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def train(model, batches):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for features, targets in batches:
        optimizer.zero_grad()
        prediction = model(features)
        loss = nn.functional.mse_loss(prediction, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
'''


def test_own_program_rewritten_then_verified(tmp_path):
    from pt2jax_migrate.rewrite import rewrite_source

    original = tmp_path / "regress.py"
    original.write_text(PROGRAM)
    result = rewrite_source(PROGRAM, str(original))
    assert result.error is None
    converted = tmp_path / "regress_jax.py"
    converted.write_text(result.new_source)
    assert "def train_step(model, optimizer, features, targets)" in result.new_source
    report = run_train_verify(str(original), str(converted), model="Regressor", init="8",
                              inputs=["float32[16,4]", "float32[16]"], steps=4)
    assert report.passed, report.summary()
    # the optimizer came from each file's own construction in train(), clipping folded in on the JAX side
    assert "torch.optim.SGD" in report.optimizer and "clip_by_global_norm" in report.optimizer
    assert report.batch == ["features=float32[16,4]", "targets=float32[16]"]
    assert any(c.kind == "buffer" for c in report.steps[0].comparisons)


def test_program_whose_step_reads_module_level_data(tmp_path):
    """fixtures/programs/sgd_momentum_tanh.py: a top-level script; its step reads the module's
    x and y (no batch arguments) and its optimizer is built inline at module level."""
    from pt2jax_migrate.rewrite import rewrite_source

    source = (FIXTURES / "programs" / "sgd_momentum_tanh.py").read_text()
    (tmp_path / "prog.py").write_text(source)
    (tmp_path / "prog_jax.py").write_text(rewrite_source(source, "prog.py").new_source)
    report = run_train_verify(str(tmp_path / "prog.py"), str(tmp_path / "prog_jax.py"), model="Net", inputs=[],
                              steps=3)
    assert report.passed, report.summary()
    assert report.batch == [] and "torch.optim.SGD" in report.optimizer and "optax.sgd" in report.optimizer
    assert report.torch_losses[0] > report.torch_losses[2]  # the same data every step: it learns
    # float64: the module-level float32 x, y are made float64 with the models on both sides
    report64 = run_train_verify(str(tmp_path / "prog.py"), str(tmp_path / "prog_jax.py"), model="Net", inputs=[],
                                steps=2, dtype="float64")
    assert report64.passed and report64.status == "pass", report64.summary()


def test_a_converted_step_nested_in_a_function_asks_for_a_name(tmp_path):
    original, converted = fixture("mlp_classifier")
    text = Path(converted).read_text().replace("def train_step(", "def _renamed_step(")
    (tmp_path / "conv.py").write_text(text)
    with pytest.raises(VerifyError, match="no module-level train_step.*--step NAME or --loss-fn NAME"):
        run_train_verify(original, str(tmp_path / "conv.py"), steps=1, **MLP)


SCHEDULED = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


def train(model, batches):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    for x, y in batches:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
'''

SCHEDULED_JAX = '''
import optax
from flax import nnx


class Net(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.fc = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        return self.fc(x)


@nnx.jit
def train_step(model, optimizer, x, y):
    def loss_fn(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def train(model, batches):
    optimizer = nnx.Optimizer(model, optax.sgd({lr}), wrt=nnx.Param)
    for x, y in batches:
        loss = train_step(model, optimizer, x, y)
'''


def test_a_per_batch_scheduler_is_stepped_on_the_torch_side(tmp_path):
    (tmp_path / "sched.py").write_text(SCHEDULED)
    (tmp_path / "sched_jax.py").write_text(SCHEDULED_JAX.format(lr="optax.exponential_decay(0.5, 1, 0.5)"))
    (tmp_path / "const_jax.py").write_text(SCHEDULED_JAX.format(lr="0.5"))
    args = dict(model="Net", inputs=["float32[6,3]", "int64[6]:0..2"], steps=3)
    report = run_train_verify(str(tmp_path / "sched.py"), str(tmp_path / "sched_jax.py"), **args)
    assert report.passed, report.summary()
    assert any("scheduler scheduler" in n and "every optimizer step" in n for n in report.notes)
    # a converted optimizer that forgot the schedule: the same first step, then different updates
    constant = run_train_verify(str(tmp_path / "sched.py"), str(tmp_path / "const_jax.py"), float64_check=False,
                                **args)
    assert not constant.steps[0].failures and constant.first_divergence[0] == 2


TORCH_FNS = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=0.01)


def objective(model, x, y):
    return nn.functional.cross_entropy(model(x), y)


def step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = objective(model, x, y)
    loss.backward()
    optimizer.step()
    return loss.item()
'''

JAX_FNS = '''
import optax
from flax import nnx


class Net(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.fc = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        return self.fc(x)


def make_optimizer(model):
    return nnx.Optimizer(model, optax.adam({lr}), wrt=nnx.Param)


def objective(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(objective)(model, x, y)
    optimizer.update(model, grads)
    return loss
'''


@pytest.mark.parametrize("named", [{"loss_fn": "objective"}, {"step": "step"}])
def test_named_functions_in_both_files(tmp_path, named):
    (tmp_path / "net.py").write_text(TORCH_FNS)
    (tmp_path / "net_jax.py").write_text(JAX_FNS.format(lr="0.01"))
    (tmp_path / "net_bad.py").write_text(JAX_FNS.format(lr="0.02"))
    args = dict(model="Net", inputs=["float32[6,3]", "int64[6]:0..2"], steps=3, optimizer="make_optimizer", **named)
    good = run_train_verify(str(tmp_path / "net.py"), str(tmp_path / "net_jax.py"), **args)
    assert good.passed, good.summary()
    assert len([c for c in good.steps[0].comparisons if c.kind == "gradient"]) == 2
    bad = run_train_verify(str(tmp_path / "net.py"), str(tmp_path / "net_bad.py"), float64_check=False, **args)
    assert not bad.passed and bad.first_divergence[0] == 1


# ------------------------------------------------------------------ set-up errors


def test_the_number_of_inputs_must_match_the_step(tmp_path):
    with pytest.raises(VerifyError, match=r"takes 2 batch arguments \(xb, yb\) but 1 --input"):
        run_train_verify(*fixture("mlp_classifier"), model="MLP", inputs=["float32[16,20]"], steps=1)


def test_a_file_without_a_training_step_asks_for_one(tmp_path):
    (tmp_path / "net.py").write_text(TORCH_FNS.replace("    loss.backward()\n", ""))
    (tmp_path / "net_jax.py").write_text(JAX_FNS.format(lr="0.01"))
    with pytest.raises(VerifyError, match="no training step found.*--step NAME"):
        run_train_verify(str(tmp_path / "net.py"), str(tmp_path / "net_jax.py"), model="Net",
                         inputs=["float32[6,3]", "int64[6]:0..2"])


def test_plot_path(tmp_path):
    assert plot_path("src/jax_model.py", None) == Path("src/jax_model.train-loss.png")
    assert plot_path("src/jax_model.py", str(tmp_path)) == tmp_path / "jax_model.train-loss.png"
    assert plot_path("src/jax_model.py", "out/curves/") == Path("out/curves/jax_model.train-loss.png")
    assert plot_path("src/jax_model.py", "loss.png") == Path("loss.png")


def test_train_options_need_train():
    result = CliRunner().invoke(main, ["verify", "a.py", "b.py", "--model", "M", "--input", "float32[2]",
                                       "--steps", "3"])
    assert result.exit_code == 2 and "--steps: options of --train" in result.output
    # --model is optional only with --train (nothing named: the scripts' own loops)
    missing = CliRunner().invoke(main, ["verify", "a.py", "b.py", "--input", "float32[2]"])
    assert missing.exit_code == 2 and "Missing option '--model'" in missing.output


# ------------------------------------------------------------------ the command: reports and the PNG


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_cli_writes_json_report_and_loss_png(tmp_path):
    original, converted = fixture("mlp_classifier")
    args = ["verify", original, converted, "--model", "MLP", "--train", "--steps", "2",
            "--input", "float32[16,20]", "--input", "int64[16]:0..5", "--plot", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] and data["status"] == "pass"
    assert len(data["losses"]["torch"]) == len(data["losses"]["converted"]) == 2
    assert data["losses"]["torch"] == [s["torch_loss"] for s in data["steps"]]
    assert data["first_divergence"] is None
    png = tmp_path / "mlp_classifier.out.train-loss.png"
    assert data["plot"] == str(png)
    width, height = png_size(png)
    assert (width, height) == (640, 520) and png.stat().st_size > 10_000

    text = CliRunner().invoke(main, [*args, "--no-plot", "--in-process"])  # the first ran in a child
    assert text.exit_code == 0
    assert "PASS: 2 steps" in text.output and "torch loss" in text.output and "dropout disabled" in text.output


def test_cli_names_the_divergence_and_exits_1(tmp_path):
    files = altered_copy(tmp_path, "mlp_classifier", "def build_optimizer(model, lr=1e-3)",
                         "def build_optimizer(model, lr=2e-3)")
    result = CliRunner().invoke(main, ["verify", *files, "--model", "MLP", "--train", "--steps", "2",
                                       "--in-process", "--input", "float32[16,20]", "--input", "int64[16]:0..5"])
    assert result.exit_code == 1, result.output
    assert "first divergence at step 1" in result.output
    assert (tmp_path / "conv.train-loss.png").is_file()  # the default: beside the converted file


def test_cli_reports_bad_setup_with_exit_2():
    original, converted = fixture("mlp_classifier")
    result = CliRunner().invoke(main, ["verify", original, converted, "--model", "MLP", "--train", "--no-plot",
                                       "--in-process", "--input", "float32[16,20]",
                                       "--optimizer", "no_such_factory"])
    assert result.exit_code == 2
    assert "no_such_factory" in result.output


# ------------------------------------------------------------------ nothing named: the scripts' own loops


def rewritten_program(tmp_path: Path, name: str, old: str = "", new: str = "") -> tuple[str, str]:
    """fixtures/programs/NAME.py and its conversion (with `old` replaced by `new`) in tmp_path."""
    from pt2jax_migrate.rewrite import rewrite_source

    source = (FIXTURES / "programs" / f"{name}.py").read_text()
    text = rewrite_source(source, f"{name}.py").new_source
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "prog.py").write_text(source)
    (tmp_path / "prog_jax.py").write_text(text)
    return str(tmp_path / "prog.py"), str(tmp_path / "prog_jax.py")


def test_the_loop_is_the_first_top_level_statement_reaching_a_training_call():
    import ast

    from pt2jax_migrate.verify.trainprogram import _converted_marker, _torch_marker, find_loop

    torch_src = textwrap.dedent("""
        import torch
        def train(model, opt, x):
            opt.zero_grad(); model(x).sum().backward(); opt.step()
        model = make()
        print("set-up")
        for epoch in range(3):
            train(model, opt, x)
        for epoch in range(3):
            model(x).sum().backward()
    """)
    assert find_loop(ast.parse(torch_src), _torch_marker) == 4
    jax_src = textwrap.dedent("""
        @nnx.jit
        def step(model, opt, x):
            grads = nnx.grad(lambda m: m(x).sum())(model)
            opt.update(model, grads)
        def run():
            step(model, opt, x)
        model = make()
        run()
    """)
    assert find_loop(ast.parse(jax_src), _converted_marker) == 3
    assert find_loop(ast.parse("x = 1\nprint(x)\n"), _torch_marker) is None


def test_nothing_named_runs_the_scripts_own_loops_and_writes_the_png(tmp_path):
    original, converted = rewritten_program(tmp_path, "sgd_momentum_tanh")
    result = CliRunner().invoke(main, ["verify", original, converted, "--train", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "PASS: 2 steps" in result.output
    assert "the scripts' own set-up and training loops (" in result.output and "prog.py:28" in result.output
    assert "each script's own data" in result.output
    assert png_size(tmp_path / "prog_jax.train-loss.png") == (640, 520)


def test_nothing_named_finds_a_wrong_learning_rate_at_step_one(tmp_path):
    files = rewritten_program(tmp_path, "sgd_momentum_tanh", "optax.sgd(0.1, momentum=0.9)",
                              "optax.sgd(0.11, momentum=0.9)")
    report = run_train_verify(*files, steps=2)
    assert not report.passed and report.status == "mismatch"
    step, worst = report.first_divergence
    assert step == 1 and worst.kind in ("parameter", "update")
    assert report.steps[0].comparisons[0].passed  # the loss before the first update still agrees


def test_a_model_built_inside_the_loop_statement_cannot_be_driven(tmp_path):
    source = textwrap.dedent("""
        import torch
        def main():
            model = torch.nn.Linear(2, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            x = torch.ones(4, 2)
            for _ in range(3):
                loss = model(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        if __name__ == "__main__":
            main()
    """)
    from pt2jax_migrate.rewrite import rewrite_source

    (tmp_path / "m.py").write_text(source)
    (tmp_path / "m_jax.py").write_text(rewrite_source(source, "m.py").new_source)
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "m.py"), str(tmp_path / "m_jax.py"), "--train"])
    assert result.exit_code == 2, result.output
    assert "cannot drive the scripts: no model is built at module level before the training loop" in result.output
    assert "m.py:12" in result.output  # the `if __name__ == "__main__"` statement


def test_a_model_renamed_in_the_conversion_cannot_be_driven(tmp_path):
    import re

    original, converted = rewritten_program(tmp_path, "sgd_momentum_tanh")
    Path(converted).write_text(re.sub(r"\bmodel\b", "net", Path(converted).read_text()))
    with pytest.raises(VerifyError, match=r"has no nnx.Module named `model`"):
        run_train_verify(original, converted, steps=1)


def test_set_up_options_without_a_model_are_refused(tmp_path):
    with pytest.raises(VerifyError, match="--input name a set-up: give --model too"):
        run_train_verify("a.py", "b.py", inputs=["float32[2]"])
