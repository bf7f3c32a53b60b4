"""The rewrite engine on small sources: name resolution, formatting, markers, safety."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from pt2jax_migrate.model import SourceError
from pt2jax_migrate.rewrite import fixable_train_step_lines, rewrite_source


def rewrite(source: str) -> str:
    return rewrite_source(textwrap.dedent(source).lstrip(), "t.py").new_source


@pytest.mark.parametrize(
    "imports,ref",
    [
        ("import torch.nn as nn", "nn.Linear"),
        ("from torch import nn", "nn.Linear"),
        ("import torch", "torch.nn.Linear"),
        ("import torch.nn as tnn", "tnn.Linear"),
        ("from torch.nn import Linear as L", "L"),
        ("from torch.nn import Linear", "Linear"),
    ],
)
def test_names_resolve_through_every_import_form(imports, ref):
    out = rewrite(f"""
        {imports}

        layer = {ref}(4, 3)
        """)
    assert "nnx.Linear(4, 3, kernel_init=torch_kernel_init, bias_init=torch_bias_init(4), rngs=nnx.Rngs(0))" in out
    assert "torch" not in out.split("# pt2jax helpers")[0]


def test_functional_alias_forms():
    out = rewrite("""
        import torch.nn.functional as F
        from torch.nn import functional as G

        def f(x):
            return F.relu(x) + G.gelu(x)
        """)
    assert "jax.nn.relu(x) + jax.nn.gelu(x, approximate=False)" in out
    assert "import jax\n" in out and "functional" not in out


def test_a_local_name_shadowing_an_import_is_not_converted():
    source = """
        import torch.nn as nn

        def build(nn):
            return nn.Linear(4, 3)

        def other():
            return nn.Linear(2, 2)
        """
    out = rewrite(source)
    assert "return nn.Linear(4, 3)" in out  # `nn` is the parameter here
    assert "return nnx.Linear(2, 2," in out


def test_torch_free_file_is_unchanged_byte_for_byte():
    source = "import numpy as np\r\n\r\n\r\ndef f(x):  # torch-free, CRLF\r\n    return np.tanh(x)\r\n"
    result = rewrite_source(source, "t.py")
    assert result.new_source == source and not result.changed and not result.findings
    mentions = "# this file talks about torch but does not import it\nx = 1\n"
    assert rewrite_source(mentions, "t.py").new_source == mentions


def test_comments_and_formatting_of_untouched_code_are_kept():
    source = textwrap.dedent("""
        import torch
        import numpy as np   # odd   spacing kept


        def f(x):
            # a comment about f
            y = np.add( x ,1 )   # weird formatting stays
            return torch.tanh(y)  # tail comment
        """).lstrip()
    out = rewrite_source(source, "t.py").new_source
    assert "import numpy as np   # odd   spacing kept" in out
    assert "    # a comment about f\n    y = np.add( x ,1 )   # weird formatting stays\n" in out
    assert "    return jnp.tanh(y)  # tail comment\n" in out


def test_module_conversion_and_idempotency():
    source = """
        import torch
        import torch.nn as nn


        class Block(nn.Module):
            \"\"\"Docstring kept.\"\"\"

            def __init__(self, width, *args):
                super().__init__()
                self.fc = nn.Linear(width, width, bias=False)
                self.act = nn.GELU(approximate="tanh")

            def forward(self, x):
                return self.act(self.fc(x)) + x


        class Net(nn.Module):
            def __init__(self):
                super(Net, self).__init__()
                self.blocks = nn.ModuleList([Block(8) for _ in range(2)])
                self.scale = nn.Parameter(torch.ones(8))

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return x * self.scale
        """
    out = rewrite(source)
    assert "class Block(nnx.Module):" in out and '"""Docstring kept."""' in out
    assert "def __init__(self, width, *args, rngs: nnx.Rngs):" in out
    assert "super" not in out
    assert "nnx.Linear(width, width, use_bias=False, kernel_init=torch_kernel_init, rngs=rngs)" in out
    assert "partial(jax.nn.gelu, approximate=True)" in out
    assert "nnx.List([Block(8, rngs=rngs) for _ in range(2)])" in out
    assert "self.scale = nnx.Param(jnp.ones((8,)))" in out
    assert "def __call__(self, x):" in out and "def forward" not in out
    ast.parse(out)
    assert rewrite_source(out, "t.py").new_source == out


def test_no_grad_block_and_decorator_are_removed_keeping_the_body():
    out = rewrite("""
        import torch

        @torch.no_grad()
        def predict(model, x):
            return model(x)

        def evaluate(model, x):
            # evaluation
            with torch.no_grad():
                y = model(x)  # forward
                z = y * 2
            return z
        """)
    assert "@" not in out
    assert "    # evaluation\n    y = model(x)  # forward\n    z = y * 2\n    return z\n" in out


def test_unconvertible_code_stays_with_a_todo_marker_and_a_finding():
    source = textwrap.dedent("""
        import torch

        def f(x):
            y = torch.fft.rfft(x)  # keep me
            return torch.var(x, dim=0, correction=0) + y
        """).lstrip()
    result = rewrite_source(source, "t.py")
    todos = [f for f in result.findings if not f.fixable]
    assert [(f.line, f.code) for f in todos] == [(4, "PTJ901"), (5, "PTJ103")]
    out = result.new_source
    assert "    # TODO(pt2jax): PTJ901 torch.fft.rfft has no automatic conversion; port it by hand\n    y = torch.fft.rfft(x)  # keep me\n" in out
    assert "correction=0" in out and "import torch\n" in out  # the import stays: code still uses it
    # a second run neither duplicates markers nor changes anything
    assert rewrite_source(out, "t.py").new_source == out


def test_syntax_error_is_reported_with_file_and_line():
    with pytest.raises(SourceError) as err:
        rewrite_source("import torch\n\ndef f(:\n    pass\n", "bad.py")
    assert "bad.py:3" in str(err.value)


def test_conv_with_non_literal_arguments_and_helpers_emitted_once():
    out = rewrite("""
        import torch.nn as nn

        class C(nn.Module):
            def __init__(self, c, k):
                super().__init__()
                self.a = nn.Conv2d(c, c, k, padding=k // 2)
                self.b = nn.Conv2d(c, c, (3, 5), stride=(2, 1), padding=(1, 2), bias=False)

            def forward(self, x):
                return self.b(self.a(x))
        """)
    assert "ConvNCHW(c, c, kernel_size=ntuple(k, 2), padding=k // 2," in out
    assert "bias_init=torch_bias_init(c * math.prod(ntuple(k, 2)))" in out
    assert "kernel_size=(3, 5), strides=(2, 1), padding=((1, 1), (2, 2)), use_bias=False" in out
    assert out.count("class ConvNCHW(nnx.Conv):") == 1 and out.count("def ntuple(") == 1
    assert "import math\n" in out


def test_refused_arguments_keep_the_call():
    out = rewrite("""
        import torch.nn as nn

        layer = nn.Conv2d(3, 3, 3, padding_mode="reflect")
        bn = nn.BatchNorm1d(4, momentum=None)
        """)
    assert "padding_mode" in out and "# TODO(pt2jax): PTJ102 torch.nn.Conv2d: only padding_mode='zeros' is converted" in out
    assert "momentum=None" in out and "cumulative average" in out


def test_training_step_is_lifted_into_a_jitted_function():
    source = textwrap.dedent("""
        import torch
        import torch.nn as nn


        def fit(model, data, lr):
            criterion = nn.MSELoss()
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            for x, y in data:
                opt.zero_grad()  # reset
                pred = model(x)
                loss = criterion(pred, y)
                err = (pred - y).abs().max()
                loss.backward()
                opt.step()
                print(loss.item(), err.item())
        """).lstrip()
    result = rewrite_source(source, "t.py")
    out = result.new_source
    assert "@jit_train_step\n    def train_step(model, opt, x, y):" in out
    assert "def jit_train_step(step):" in out  # the decorator's definition comes with it
    assert "(loss, (pred,)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)" in out
    assert "        loss, pred = train_step(model, opt, x, y)\n        err = jnp.abs(pred - y).max()\n" in out
    assert "# reset" in out  # the comment on the removed zero_grad() line is kept
    assert "zero_grad" not in out and "backward" not in out and ".step()" not in out
    assert fixable_train_step_lines(source) == {9, 13, 14}


def test_unrecognised_training_step_is_left_with_a_marker():
    source = textwrap.dedent("""
        import torch


        def fit(model, opt, x, y):
            loss = model(x).sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        """).lstrip()
    result = rewrite_source(source, "t.py")
    assert "loss.backward()" in result.new_source and "opt.step()" in result.new_source
    assert "# TODO(pt2jax): PTJ203 training step not converted" in result.new_source
    assert fixable_train_step_lines(source) == set()


def test_random_sampling_gets_an_explicit_key_stream():
    out = rewrite("""
        import torch

        def noise(n):
            a = torch.randn(n, 4)
            b = torch.rand(n)
            return a, b
        """)
    assert "    rngs = nnx.Rngs(0)" in out
    assert "jax.random.normal(rngs(), (n, 4))" in out and "jax.random.uniform(rngs(), (n,))" in out


def test_conv_transpose_padding_with_non_literal_arguments_uses_the_helper():
    out = rewrite("""
        import torch.nn as nn

        class Up(nn.Module):
            def __init__(self, c, k, p):
                super().__init__()
                self.up = nn.ConvTranspose2d(c, c, k, stride=2, padding=p, output_padding=1)

            def forward(self, x):
                return self.up(x)
        """)
    assert "padding=conv_transpose_padding(k, p, 1, 1, 2)" in out
    namespace: dict = {}
    exec(out.split("class Up")[0], namespace)  # the emitted helpers run on their own
    literal = rewrite("""
        import torch.nn as nn
        up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        """)
    assert "padding=((1, 2), (1, 2))" in literal
    assert namespace["conv_transpose_padding"](3, 1, 1, 1, 2) == ((1, 2), (1, 2))


def test_replacements_keep_their_meaning_inside_larger_expressions():
    out = rewrite("""
        import torch

        def f(pred, target, x):
            correct = pred.eq(target.view_as(pred)).sum().item()
            y = x.gt(0).float() + 1
            z = x.pow(2).mean()
            return correct, y, z
        """)
    assert "correct = (pred == target.reshape(pred.shape)).sum().item()" in out
    assert "y = (x > 0).astype(jnp.float32) + 1" in out
    assert "z = (x ** 2).mean()" in out


def test_device_moves_leave_no_empty_assignments_and_batches_keep_constant_indexing():
    out = rewrite("""
        import torch
        import torch.nn.functional as F

        def train(model, loader, optimizer, device):
            for data, target in loader:
                data, target = data.to(device), target.to(device)
                optimizer.zero_grad()
                loss = F.nll_loss(model(data), target)
                loss.backward()
                optimizer.step()
        """)
    assert "data, target = data, target" not in out
    assert "loss = train_step(model, optimizer, data, target)" in out
    assert "jnp.take_along_axis(model(data), target[:, None], axis=1)" in out


def test_in_place_tensor_updates_are_left_with_a_marker():
    result = rewrite_source("import torch\n\ndef f(x):\n    x.add_(1)\n    return x\n", "t.py")
    assert "    # TODO(pt2jax): PTJ105 .add_(): in-place tensor updates" in result.new_source
    assert [(f.line, f.code, f.fixable) for f in result.findings] == [(4, "PTJ105", False)]


def test_two_steps_in_one_block_never_borrow_each_others_statements():
    """A GAN loop: the generator step must not pull the discriminator's forward pass into
    its loss function (nor reorder it). Neither step is a plain single-loss step: both stay."""
    path = Path(__file__).parent / "data" / "lint" / "training_variants.py"
    source = path.read_text()
    result = rewrite_source(source, str(path))
    body = result.new_source.split("for real in loader:")[1].split("def clipped(")[0]
    order = ["netD(real)", "errD_real.backward()", "fake = netG(noise)", "errD_fake = criterion",
             "errD_fake.backward()", "optimizerD.step()", "output = netD(fake)", "errG.backward()", "optimizerG.step()"]
    positions = [body.index(text) for text in order]
    assert positions == sorted(positions)
    lines = source.splitlines()
    line_of = {text: next(i for i, line in enumerate(lines, 1) if text in line) for text in order}
    todos = {(f.line, f.code) for f in result.findings if not f.fixable}
    assert {(line_of["errD_real.backward()"], "PTJ203"), (line_of["errD_fake.backward()"], "PTJ203"),
            (line_of["optimizerD.step()"], "PTJ204"), (line_of["errG.backward()"], "PTJ203"),
            (line_of["optimizerG.step()"], "PTJ204")} <= todos
    assert "training step not converted" in body.split("errG = criterion")[1]


def test_a_name_assigned_twice_before_backward_is_not_moved():
    source = textwrap.dedent("""
        import torch


        def fit(model, opt, x, y, extra):
            out = model(x)
            print(out)
            out = out * extra
            loss = ((out - y) ** 2).mean()
            loss.backward()
            opt.step()
        """).lstrip()
    result = rewrite_source(source, "t.py")
    assert "loss.backward()" in result.new_source
    assert "out is assigned more than once before backward()" in result.new_source
    # without the print in between, the two assignments move into the loss function together
    result = rewrite_source(source.replace("    print(out)\n", ""), "t.py")
    assert "loss.backward()" not in result.new_source
    assert "        out = model(x)\n        out = out * extra\n" in result.new_source


def test_an_optimizer_whose_step_stays_pytorch_stays_pytorch_too():
    """Converting only the construction would leave opt.zero_grad()/opt.step() on an
    nnx.Optimizer; lint marks it manual too (tests/test_lint_rewrite_agree.py)."""
    source = textwrap.dedent("""
        import torch


        def fit(model, x, y):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            print(model.weight.grad)
            opt.step()
        """).lstrip()
    result = rewrite_source(source, "t.py")
    assert "opt = torch.optim.SGD(model.parameters(), lr=0.1)" in result.new_source
    assert "PTJ201 torch.optim.SGD: kept in PyTorch: the training step that calls opt.step() is not converted" in result.new_source
    assert (5, "PTJ201", False) in {(f.line, f.code, f.fixable) for f in result.findings}


def test_gradient_clipping_folds_into_the_optimizer_with_pytorchs_numbers(tmp_path):
    """clip_grad_norm_ between backward() and step() becomes optax.clip_by_global_norm at the
    head of the optimizer's chain (before weight decay, as in torch); three steps match."""
    import jax.numpy as jnp
    import numpy as np
    import torch
    from flax import nnx

    from pt2jax_migrate.verify import transfer_weights
    from pt2jax_migrate.verify.loader import load_slice

    original = Path(__file__).parent / "data" / "rewrite" / "clip_torch.py"
    result = rewrite_source(original.read_text(), str(original))
    assert "optax.chain(optax.clip_by_global_norm(0.1), optax.chain(optax.add_decayed_weights(0.01)" in result.new_source
    assert "clip_grad_norm_" not in result.new_source
    converted = tmp_path / "clip_jax.py"
    converted.write_text(result.new_source)
    torch_ns = load_slice(str(original), {"Net", "fit"}).namespace
    jax_ns = load_slice(str(converted), {"Net", "fit"}).namespace
    torch.manual_seed(0)
    torch_model, jax_model = torch_ns["Net"](), jax_ns["Net"](rngs=nnx.Rngs(0))
    transfer_weights(torch_model, jax_model)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)).astype(np.float32), rng.standard_normal((16, 3)).astype(np.float32)
    torch_loss = torch_ns["fit"](torch_model, torch.tensor(x), torch.tensor(y))
    jax_loss = jax_ns["fit"](jax_model, jnp.asarray(x), jnp.asarray(y))
    assert abs(torch_loss - jax_loss) < 1e-6
    reference = jax_ns["Net"](rngs=nnx.Rngs(1))
    transfer_weights(torch_model, reference)
    want = dict(nnx.to_flat_state(nnx.state(reference, nnx.Param)))
    got = dict(nnx.to_flat_state(nnx.state(jax_model, nnx.Param)))
    for path, variable in want.items():
        assert np.max(np.abs(np.asarray(variable[...]) - np.asarray(got[path][...]))) < 1e-6, path


def test_optimizer_decisions_are_per_construction_not_per_variable_name():
    """Several functions each build an `opt`: each construction follows its own step."""
    path = Path(__file__).parent / "data" / "lint" / "training_variants.py"
    out = rewrite_source(path.read_text(), str(path)).new_source
    clipped = out[out.index("def clipped("):out.index("def clipped_by_variable")]
    by_variable = out[out.index("def clipped_by_variable"):out.index("def unconverted_forward")]
    accumulate = out[out.index("def accumulate"):]
    assert "optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, weight_decay=0.01))" in clipped
    assert "train_step(model, opt, x, y)" in clipped
    assert "opt = torch.optim.SGD(model.parameters(), lr=0.1)" in by_variable and "kept in PyTorch" in by_variable
    assert "opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)" in accumulate
    assert "loss, out = train_step_1(model, opt, x, y)\n        acc = jnp.abs(out - y).mean()" in accumulate


def test_permute_converts_to_the_function_form_and_a_second_pass_changes_nothing():
    source = textwrap.dedent("""\
        import torch

        def f(x, perm):
            return x.permute(1, 0), x.permute(perm), x.permute(0, 2, 1)
        """)
    once = rewrite_source(source, "p.py").new_source
    assert "jnp.transpose(x, (1, 0)), jnp.transpose(x, perm), jnp.transpose(x, (0, 2, 1))" in once
    assert rewrite_source(once, "p.py").new_source == once


def test_a_table_method_the_table_cannot_bind_is_still_marked():
    """x.permute(*perm) has no jax counterpart spelled the same: left unmarked it crashes at run time."""
    source = "import torch\n\ndef f(x, perm):\n    return x.permute(*perm)\n"
    result = rewrite_source(source, "p.py")
    assert "# TODO(pt2jax): PTJ105 permute(*dims)" in result.new_source
    assert [(f.line, f.code, f.fixable) for f in result.findings if f.code == "PTJ105"] == [(4, "PTJ105", False)]


def test_comments_inside_a_method_chain_that_becomes_nested_calls_are_kept():
    source = """
    import torch

    def f(x):
        y = (x
             # first
             .relu()  # second
             # third
             .sigmoid()
             .view(-1))
        return y
    """
    out = rewrite(source)
    assert "jax.nn.sigmoid(jax.nn.relu(x))" in out  # the chain was converted
    assert [line.strip() for line in out.splitlines() if line.strip().startswith("#")] == [
        "# first", "# second", "# third"]
    assert rewrite_source(out, "t.py").new_source == out  # a second pass changes nothing
