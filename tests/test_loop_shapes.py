"""Training-loop shapes (issue 8, "Loop shapes"): what the rewrite emits for each, and the
converted loop run against real torch (same printed numbers: losses, metrics, final outputs).

Each program is deterministic: weights from formulas (a custom init applied by `self.apply`),
data from `torch.linspace`; the converted one is run in this process like tests/test_programs.py.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import sys
import textwrap

import pytest

from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

PRELUDE = textwrap.dedent('''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Net(nn.Module):
        def __init__(self, n_in=4, n_out=1):
            super().__init__()
            self.fc1 = nn.Linear(n_in, 8)
            self.fc2 = nn.Linear(8, n_out)
            self.apply(self._init)

        def _init(self, m):
            if isinstance(m, nn.Linear):
                with torch.no_grad():
                    m.weight.copy_(torch.linspace(-0.4, 0.5, m.out_features * m.in_features).reshape(m.out_features, m.in_features))
                    m.bias.fill_(0.01)

        def forward(self, x):
            return self.fc2(torch.tanh(self.fc1(x)))


    x = torch.linspace(-1, 1, 96).reshape(24, 4)
    y = torch.sin(x).sum(dim=1, keepdim=True)
    labels = (x.sum(dim=1) > 0).long()
    ''')
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def rewrite(source: str):
    result = rewrite_source(source, "t.py")
    assert result.error is None, result.error
    return result


def converted(source: str) -> str:
    result = rewrite(source)
    assert "TODO(pt2jax)" not in result.new_source, [f"{f.line}: {f.code} {f.message}" for f in result.findings
                                                     if not f.fixable]
    assert rewrite_source(result.new_source, "t.py").new_source == result.new_source, "not idempotent"
    return result.new_source


def run(source: str, tmp_path, name: str, monkeypatch) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    monkeypatch.setattr(sys, "argv", [str(path)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(path), run_name="__main__")
    return out.getvalue()


def same_output(source: str, tmp_path, monkeypatch, rtol: float = 1e-5) -> tuple[str, str]:
    """Run the torch program and its conversion; the printed lines match word for word, and
    numbers to rtol (a count printed as `7` must not come back as `7.0`)."""
    new = converted(source)
    want = run(source, tmp_path, "torch_prog", monkeypatch)
    got = run(new, tmp_path, "jax_prog", monkeypatch)
    assert want.strip(), "the program printed nothing"
    want_lines, got_lines = want.splitlines(), got.splitlines()
    assert len(want_lines) == len(got_lines), (want, got)
    for w, g in zip(want_lines, got_lines):
        assert NUMBER.sub("#", w) == NUMBER.sub("#", g), (w, g)
        for a, b in zip(NUMBER.findall(w), NUMBER.findall(g)):
            assert ("." in a) == ("." in b), (w, g)  # int stays int, float stays float
            assert abs(float(a) - float(b)) <= rtol * max(1.0, abs(float(a))), (w, g)
    return new, got


def agree(source: str) -> None:
    """lint's fixable/manual findings are the rewrite's changes/TODOs (tests/test_lint_rewrite_agree.py)."""
    lint = lint_source(source, "t.py")
    result = rewrite(source)

    def keyed(findings, fixable, skip):
        return {(f.line, f.code) for f in findings if f.fixable == fixable and f.code not in skip}

    assert keyed(lint, True, {"PTJ101", "PTJ001"}) == keyed(result.findings, True, {"PTJ101"})
    assert keyed(lint, False, {"PTJ001", "PTJ303"}) == keyed(result.findings, False, set())


# ------------------------------------------------------------ statements between backward() and step()

BETWEEN = PRELUDE + textwrap.dedent('''
    model = Net(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
    for epoch in range(3):
        total = 0.0
        correct = 0
        for i in range(4):
            xb, yb = x[i * 6:(i + 1) * 6], labels[i * 6:(i + 1) * 6]
            opt.zero_grad()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            total += loss.item()
            correct += (logits.argmax(1) == yb).sum().item()
            opt.step()
        print(f"epoch {epoch} loss {total / 4:.6f} correct {correct}")
    print("final", model(x)[:3, 0].tolist())
    ''')


def test_statements_between_backward_and_step_run_after_the_jitted_step(tmp_path, monkeypatch):
    new, _ = same_output(BETWEEN, tmp_path, monkeypatch)
    # the forward pass's logits come back from the step as aux; metrics are summed on the device
    assert "nnx.value_and_grad(loss_fn, has_aux=True)" in new
    assert "loss, logits = train_step(model, opt, xb, yb)" in new
    assert "total += loss\n" in new and "correct += (logits.argmax(1) == yb).sum()\n" in new
    assert "float(total) / 4" in new and "{int(correct)}" in new
    assert ".item()" not in new.split("for epoch")[1]
    agree(BETWEEN)


PER_STEP = PRELUDE + textwrap.dedent('''
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    running = 0.0
    for i in range(4):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        running += loss.item()
        print(f"step {i} loss {loss.item():.6f} running {running:.6f}")
        opt.step()
    ''')


def test_a_loop_that_prints_every_step_keeps_item_and_drops_no_op_keywords(tmp_path, monkeypatch):
    new, _ = same_output(PER_STEP, tmp_path, monkeypatch)
    assert "running += loss.item()" in new  # read every step: converting would sync per step anyway
    assert "retain_graph" not in new and "set_to_none" not in new
    agree(PER_STEP)


PERIODIC = PRELUDE + textwrap.dedent('''
    def fit(model, epochs):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        history = []
        for epoch in range(epochs):
            running_loss = 0.0
            for i in range(6):
                xb, yb = x[i * 4:(i + 1) * 4], y[i * 4:(i + 1) * 4]
                opt.zero_grad()
                loss = F.mse_loss(model(xb), yb)
                loss.backward()
                opt.step()
                running_loss += loss.item()
                if i % 3 == 2:
                    print(f"[{epoch + 1}, {i + 1}] loss {running_loss / 3:.6f}")
                    running_loss = 0.0
            history.append(running_loss)
        return history


    print("history", fit(Net(), 2))
    ''')


def test_periodic_logging_converts_once_per_print(tmp_path, monkeypatch):
    new, _ = same_output(PERIODIC, tmp_path, monkeypatch)
    assert "running_loss += loss\n" in new
    assert "float(running_loss) / 3" in new and "history.append(float(running_loss))" in new
    agree(PERIODIC)


# ------------------------------------------------------------ two models, two optimizers

GAN_REUSED_FAKE = PRELUDE + textwrap.dedent('''
    G = Net(4, 4)
    D = Net(4, 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-2)
    for step in range(3):
        fake = G(x)
        opt_d.zero_grad()
        d_loss = F.mse_loss(D(x), y) + F.mse_loss(D(fake.detach()), -y)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = F.mse_loss(D(fake), y)
        g_loss.backward()
        opt_g.step()
    ''')


def test_a_generator_step_reusing_the_fake_batch_is_refused_with_a_reason():
    """The generator's loss reads `fake`, computed before the discriminator's step: moving it
    into the generator's step would need the forward pass run twice (not exact with dropout or
    BatchNorm), so it stays, and lint says the same."""
    result = rewrite(GAN_REUSED_FAKE)
    assert "opt_d.update(D, grads)" in result.new_source  # the discriminator's step converts
    assert "g_loss.backward()" in result.new_source
    assert "g_loss is not computed from G(...) in this block" in result.new_source
    agree(GAN_REUSED_FAKE)


# ------------------------------------------------------------ gradient accumulation

ACCUMULATION = PRELUDE + textwrap.dedent('''
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    accum = 4
    for epoch in range(3):
        running = 0.0
        for i in range(6):  # 6 micro-batches: 2 carry into the next epoch, as torch's .grad does
            xb, yb = x[i * 4:(i + 1) * 4], y[i * 4:(i + 1) * 4]
            loss = F.mse_loss(model(xb), yb)
            loss = loss / accum
            loss.backward()
            running += loss.item()
            if (i + 1) % accum == 0:
                opt.step()
                opt.zero_grad()
        print(f"epoch {epoch} loss {running:.7f}")
    print("final", model(x)[:4, 0].tolist())
    ''')


def test_gradient_accumulation_sums_like_torch_across_epochs(tmp_path, monkeypatch):
    new, _ = same_output(ACCUMULATION, tmp_path, monkeypatch)
    assert "jax.tree.map(jnp.add, model_grads, batch_grads)" in new
    assert "apply_grads(model, opt, model_grads)\n            model_grads = jax.tree.map(jnp.zeros_like, model_grads)" in new
    # the sum starts once, before the epochs (torch's .grad is not reset by a new epoch)
    assert new.index("model_grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))") < new.index("for epoch")
    agree(ACCUMULATION)


# ------------------------------------------------------------ BatchNorm state and train()/eval()

BATCHNORM = textwrap.dedent('''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.bn = nn.BatchNorm1d(8)
            self.fc2 = nn.Linear(8, 1)
            self.apply(self._init)

        def _init(self, m):
            if isinstance(m, nn.Linear):
                with torch.no_grad():
                    m.weight.copy_(torch.linspace(-0.4, 0.5, m.out_features * m.in_features).reshape(m.out_features, m.in_features))
                    m.bias.fill_(0.01)

        def forward(self, x):
            return self.fc2(F.relu(self.bn(self.fc1(x))))


    x = torch.linspace(-1, 1, 96).reshape(24, 4)
    y = torch.sin(x).sum(dim=1, keepdim=True)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(3):
        model.train()
        total = 0.0
        for i in range(3):
            xb, yb = x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]
            loss = F.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            val = F.mse_loss(model(x), y).item()
        print(f"epoch {epoch} loss {total:.6f} val {val:.6f}")
    ''')


def test_batchnorm_running_statistics_and_train_eval_placement(tmp_path, monkeypatch):
    new, _ = same_output(BATCHNORM, tmp_path, monkeypatch, rtol=1e-4)
    assert "model.train()" in new and "model.eval()" in new
    agree(BATCHNORM)


# ------------------------------------------------------------ refusals a person can act on

REFUSALS = {
    "reads_grad": ("""
        loss.backward()
        print(model.fc1.weight.grad)
        opt.step()""", "reads or clips gradients (.grad, clip_grad_value_)"),
    "clip_value": ("""
        loss.backward()
        torch.nn.utils.clip_grad_value_(list(model.parameters())[:1], 0.5)
        opt.step()""", "write the optax transformation into the chain by hand"),
    "manual_sgd": ("""
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad""", "parameters are updated by hand from .grad"),
    "zero_every_micro_batch": ("""
        opt.zero_grad()
        loss.backward()
        if i % 2 == 1:
            opt.step()
            opt.zero_grad()""", "gradients never accumulate"),
    "two_backwards": ("""
        loss.backward()
        loss2 = F.mse_loss(model(xb) * 2, yb)
        loss2.backward()
        opt.step()""", "a second backward() before step() accumulates gradients"),
    "uses_model": ("""
        loss.backward()
        print(model(xb).sum().item())
        opt.step()""", "uses model, which the step updates"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refused_shapes_say_why(name):
    body, reason = REFUSALS[name]
    source = PRELUDE + textwrap.dedent('''
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i in range(4):
            xb, yb = x[i * 6:(i + 1) * 6], y[i * 6:(i + 1) * 6]
            loss = F.mse_loss(model(xb), yb)
        ''') + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
    result = rewrite(source)
    assert "nnx.value_and_grad" not in result.new_source
    manual = [f.message for f in result.findings if not f.fixable and f.code == "PTJ203"]
    assert manual and reason in manual[0], manual
    agree(source)


ACCUMULATION_IN_MAIN = PRELUDE + textwrap.dedent('''
    if __name__ == "__main__":
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        # train
        for i in range(6):
            xb, yb = x[i * 4:(i + 1) * 4], y[i * 4:(i + 1) * 4]
            loss = F.mse_loss(model(xb), yb) / 3
            loss.backward()
            if i % 3 == 2:
                opt.step()
                opt.zero_grad()
        print("final", model(x)[:4, 0].tolist())
    ''')


def test_the_gradient_sum_starts_where_the_model_is_built(tmp_path, monkeypatch):
    """Inside `if __name__ == "__main__":` the sum is set up right before the loop, in that
    block (the model does not exist before it)."""
    new, _ = same_output(ACCUMULATION_IN_MAIN, tmp_path, monkeypatch)
    assert ("    # train\n    model_grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))\n"
            "    for i in range(6):\n") in new
    agree(ACCUMULATION_IN_MAIN)


JOINED = PRELUDE + textwrap.dedent('''
    def fit(model, epochs):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(epochs):
            total = 0.0
            for i in range(4):
                xb, yb = x[i * 6:(i + 1) * 6], y[i * 6:(i + 1) * 6]
                loss = F.mse_loss(model(xb), yb)
                opt.zero_grad(); loss.backward()  # one line
                total += loss.item()
                opt.step()
            print(f"epoch {epoch} loss {total:.6f}")


    fit(Net(), 2)
    ''')


def test_zero_grad_and_backward_on_one_line(tmp_path, monkeypatch):
    new, _ = same_output(JOINED, tmp_path, monkeypatch)
    assert "# one line\n            loss = train_step(model, opt, xb, yb)\n            total += loss\n" in new
    agree(JOINED)


CLIP_VALUE = PRELUDE + textwrap.dedent('''
    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    for step in range(5):
        loss = F.mse_loss(model(x), y * 3)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), clip_value=0.05)
        opt.step()
        print(f"step {step} loss {loss.item():.7f}")
    print("final", model(x)[:4, 0].tolist())
    ''')


def test_clip_grad_value_folds_into_the_optimizer_as_optax_clip(tmp_path, monkeypatch):
    new, _ = same_output(CLIP_VALUE, tmp_path, monkeypatch)
    assert "optax.chain(optax.clip(0.05), optax.adamw(0.05, weight_decay=0.1))" in new
    agree(CLIP_VALUE)
    assert "clip_grad_value_" in REFUSALS["clip_value"][0]  # refused only when it cannot fold (below)
