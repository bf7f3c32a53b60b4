"""torch.distributions Categorical / Normal / Bernoulli -> the helpers in
pt2jax_migrate/targets/nnx/helpers_distributions.py.

log_prob, entropy, mean and variance are compared with real torch on the same inputs; sampling
is checked at the level of the distribution (JAX's draws are other numbers than torch's): shapes,
support, moments over many draws with a fixed key, and a fresh key per draw."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from pt2jax_migrate.helpers import helper_closure, helper_imports
from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.rewrite import rewrite_source

TOL = 1e-5


def _helpers(*names) -> dict:
    helpers = helper_closure(names)
    source = "\n".join(helper_imports(helpers)) + "\n\n\n" + "\n\n".join(h.source for h in helpers)
    ns = {"__name__": "converted_under_test"}
    exec(compile(source, "<emitted helpers>", "exec"), ns)
    return ns


H = _helpers("TorchCategorical", "TorchNormal", "TorchBernoulli")
KEY = jax.random.key(0)
rng = np.random.default_rng(0)


def close(jax_value, torch_value):
    np.testing.assert_allclose(np.asarray(jax_value), torch_value.detach().numpy(), rtol=TOL, atol=TOL)


# ------------------------------------------------------------------------------ closed forms


@pytest.mark.parametrize("form", ["logits", "probs"])
def test_categorical_matches_torch(form):
    raw = rng.normal(size=(4, 5)).astype(np.float32)
    if form == "probs":
        raw = np.exp(raw) * 3  # unnormalised on purpose: both normalise
        raw[0, 2] = 0.0  # a zero probability: torch clamps it before the log
    mine = H["TorchCategorical"](**{form: jnp.asarray(raw)}, key=KEY)
    theirs = torch.distributions.Categorical(**{form: torch.tensor(raw)})
    values = np.array([[0, 1, 2, 4], [3, 3, 0, 1]])  # (2, 4): broadcast against the batch (4,)
    close(mine.log_prob(jnp.asarray(values)), theirs.log_prob(torch.tensor(values)))
    close(mine.entropy(), theirs.entropy())
    close(mine.probs, theirs.probs)
    close(mine.logits, theirs.logits)
    assert np.isnan(np.asarray(mine.mean)).all() and mine.mean.shape == tuple(theirs.mean.shape)


def test_normal_matches_torch():
    loc = rng.normal(size=(3, 1)).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, size=(4,)).astype(np.float32)  # broadcast: batch (3, 4)
    value = rng.normal(size=(3, 4)).astype(np.float32)
    mine = H["TorchNormal"](jnp.asarray(loc), jnp.asarray(scale), key=KEY)
    theirs = torch.distributions.Normal(torch.tensor(loc), torch.tensor(scale))
    assert mine.batch_shape == tuple(theirs.batch_shape)
    close(mine.log_prob(jnp.asarray(value)), theirs.log_prob(torch.tensor(value)))
    close(mine.entropy(), theirs.entropy())
    close(mine.mean, theirs.mean)
    close(mine.stddev, theirs.stddev)
    close(mine.variance, theirs.variance)
    scalar = H["TorchNormal"](0.0, 1.0, key=KEY)  # python floats, as torch allows
    close(scalar.log_prob(0.5), torch.distributions.Normal(0.0, 1.0).log_prob(torch.tensor(0.5)))


@pytest.mark.parametrize("form", ["logits", "probs"])
def test_bernoulli_matches_torch(form):
    raw = rng.normal(size=(6,)).astype(np.float32) * 3
    if form == "probs":
        raw = 1 / (1 + np.exp(-raw))
        raw[0], raw[1] = 0.0, 1.0  # the edges: torch clamps them before the log
    mine = H["TorchBernoulli"](**{form: jnp.asarray(raw)}, key=KEY)
    theirs = torch.distributions.Bernoulli(**{form: torch.tensor(raw)})
    for value in (np.zeros(6, np.float32), np.ones(6, np.float32)):
        close(mine.log_prob(jnp.asarray(value)), theirs.log_prob(torch.tensor(value)))
    close(mine.entropy(), theirs.entropy())
    close(mine.mean, theirs.mean)
    close(mine.variance, theirs.variance)


# ------------------------------------------------------------------------------ sampling


def test_categorical_sampling_follows_the_probabilities():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.0, 0.5]], np.float32)
    dist = H["TorchCategorical"](probs=jnp.asarray(probs), key=KEY)
    assert dist.sample().shape == (2,) and dist.sample(7).shape == (7, 2)
    draws = np.asarray(dist.sample((20000,)))
    assert draws.shape == (20000, 2) and draws.dtype.kind == "i"
    freq = np.stack([(draws == k).mean(0) for k in range(3)], -1)
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert (draws[:, 1] != 1).all()  # a zero probability is never drawn


def test_normal_sampling_moments_and_reparameterisation():
    dist = H["TorchNormal"](jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0]), key=KEY)
    draws = np.asarray(dist.sample((40000,)))
    np.testing.assert_allclose(draws.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(draws.std(0), [0.5, 3.0], rtol=0.02)
    # rsample carries gradients to loc and scale (d/dloc mean(x) = 1); sample does not
    grad = jax.grad(lambda loc: H["TorchNormal"](loc, 1.0, key=KEY).rsample((100,)).mean())(0.0)
    assert np.isclose(grad, 1.0)
    assert jax.grad(lambda loc: H["TorchNormal"](loc, 1.0, key=KEY).sample((100,)).mean())(0.0) == 0.0


def test_bernoulli_sampling_and_fresh_keys():
    dist = H["TorchBernoulli"](probs=jnp.array([0.2, 0.9]), key=KEY)
    draws = np.asarray(dist.sample((20000,)))
    assert set(np.unique(draws)) <= {0.0, 1.0} and draws.dtype == np.float32  # floats, as torch's
    np.testing.assert_allclose(draws.mean(0), [0.2, 0.9], atol=0.015)
    first, second = np.asarray(dist.sample((50,))), np.asarray(dist.sample((50,)))
    assert not np.array_equal(first, second)  # each draw takes a fresh key
    again = H["TorchBernoulli"](probs=jnp.array([0.2, 0.9]), key=KEY)
    again.sample((20000,))
    np.testing.assert_array_equal(np.asarray(again.sample((50,))), first)  # and deterministically so


def test_what_is_not_converted_says_so():
    dist = H["TorchNormal"](0.0, 1.0, key=KEY)
    with pytest.raises(NotImplementedError, match="TorchNormal.cdf: not converted"):
        dist.cdf(0.0)
    with pytest.raises(NotImplementedError, match="not reparameterizable"):
        H["TorchBernoulli"](probs=0.5, key=KEY).rsample()
    with pytest.raises(ValueError, match="exactly one"):
        H["TorchCategorical"](key=KEY)


# ------------------------------------------------------------------------------ rewrite

SCRIPT = """\
import torch
import torch.distributions as D
from torch.distributions import Categorical

logits = torch.linspace(-1, 1, 6).reshape(2, 3)
policy = Categorical(logits=logits)
action = policy.sample()
logp = policy.log_prob(action)
ent = policy.entropy().mean()
noise = D.Normal(torch.zeros(2), 1.0)
x = noise.rsample((4,))
coin = D.Bernoulli(probs=torch.full((3,), 0.3), validate_args=False)
flips = coin.sample()
beta = D.Beta(1.0, 2.0)
"""


def test_rewrite_builds_the_helpers_with_keys():
    result = rewrite_source(SCRIPT, "rl.py")
    new = result.new_source
    assert "policy = TorchCategorical(logits=logits, key=rngs())" in new
    assert "noise = TorchNormal(jnp.zeros((2,)), 1.0, key=rngs())" in new
    assert "coin = TorchBernoulli(probs=jnp.full((3,), 0.3), key=rngs())" in new
    todos = [f for f in result.findings if not f.fixable]
    assert [(f.line, f.code) for f in todos] == [(14, "PTJ901")] and "Categorical, Normal and Bernoulli" in todos[0].message
    assert rewrite_source(new, "rl.py").new_source == new
    lint = sorted((f.line, f.code, f.fixable) for f in lint_source(SCRIPT, "rl.py") if f.code != "PTJ001")
    assert lint == sorted((f.line, f.code, f.fixable) for f in result.findings)
    # the converted program runs (the Beta line left for a person removed)
    namespace: dict = {}
    exec(compile(new.replace("beta = D.Beta(1.0, 2.0)", ""), "<converted>", "exec"), namespace)
    assert namespace["action"].shape == (2,) and namespace["x"].shape == (4, 2)
    assert np.isfinite(np.asarray(namespace["logp"])).all() and namespace["flips"].shape == (3,)
