"""Unit tests of the agents' pure pieces: TD targets, tanh-Gaussian log-probabilities, config handling, compilation."""

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzrl.agents import ALGOS, get_algo
from boltzrl.agents.base import REPLAY_ACTIONS, make_config, td_target
from boltzrl.agents.entropy import sample_tanh_gaussian
from boltzrl.agents.sac import SACConfig
from conftest import make_batches, make_rollout


def test_td_target_bootstraps_on_truncation_only():
    r = jnp.array([1.0, 1.0])
    terminated = jnp.array([0.0, 1.0])
    y = td_target(r, terminated, jnp.array([10.0, 10.0]), 0.9)
    np.testing.assert_allclose(y, [10.0, 1.0])


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    mean, log_std = jnp.array([[0.3, -0.5]]), jnp.array([[-0.2, 0.1]])
    action, log_prob = sample_tanh_gaussian(mean, log_std, jax.random.PRNGKey(0))
    u = jnp.arctanh(action)
    std = jnp.exp(log_std)
    expected = (jax.scipy.stats.norm.logpdf(u, mean, std) - jnp.log(1 - action**2)).sum(-1)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-4, atol=1e-4)


def test_unknown_algorithm_and_field_errors_are_one_sentence():
    with pytest.raises(ValueError, match="did you mean sac"):
        get_algo("sacc")
    with pytest.raises(ValueError, match="no field"):
        make_config(SACConfig, {"learning_rate": 1.0})
    with pytest.raises(ValueError, match="Unknown preset"):
        get_algo("sac").config("fast")


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_every_agent_updates_acts_compiles_once_and_loads_back(name):
    spec = get_algo(name)
    small = {"critic_hidden": (32, 32)}
    if name == "sdac":
        small.update(actor_hidden=(32, 32), denoising_steps=3, num_candidates=2, num_draws=4)
    elif name == "dqs":
        small.update(num_mc_samples=8, denoising_steps=4, actor_width=32)
    elif name == "ppo":
        small.update(actor_hidden=(32, 32), num_minibatches=4)
    else:
        small.update(actor_hidden=(32, 32))
    agent = spec.make(spec.config(None, **small), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    for i in range(3):
        data = make_rollout(agent, state, 8, 4, seed=i) if spec.on_policy else make_batches(4, 32, 3, 2, seed=i)
        state, info = agent.update(state, data, jax.random.PRNGKey(i))
    scalars = {k: v for k, v in jax.device_get(info).items() if k != REPLAY_ACTIONS}  # rewritten rows, not a statistic
    assert all(np.isfinite(v) or k.endswith("loss") for k, v in scalars.items())
    assert {"actor_loss", "critic_loss"} <= set(info)  # the same names in every agent's log
    assert agent.update.traces == 1  # same shapes → one trace, no recompilation
    obs = np.zeros((5, 3), np.float32)
    for det in (False, True):
        a = np.asarray(agent.act(state, obs, jax.random.PRNGKey(1), deterministic=det)[0])
        assert a.shape == (5, 2) and np.all(np.abs(a) <= 1.0)
    a1 = agent.act(state, obs, jax.random.PRNGKey(1), deterministic=True)[0]
    a2 = agent.act(state, obs, jax.random.PRNGKey(1), deterministic=True)[0]
    np.testing.assert_array_equal(a1, a2)

    # saved and loaded into a freshly initialised state, it acts the same in both modes: the pytree is the agent
    template = agent.init(jax.random.PRNGKey(5))
    restored = flax.serialization.from_bytes(template, flax.serialization.to_bytes(state))
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)  # same shape: no new compilation
    for det in (False, True):
        np.testing.assert_array_equal(agent.act(state, obs, jax.random.PRNGKey(2), deterministic=det)[0],
                                      agent.act(restored, obs, jax.random.PRNGKey(2), deterministic=det)[0])
    other = agent.act(template, obs, jax.random.PRNGKey(2), deterministic=True)[0]
    assert not np.array_equal(other, agent.act(restored, obs, jax.random.PRNGKey(2), deterministic=True)[0])
    rollout_shapes = 1 if spec.on_policy else 0  # a rollout acts at its own number of envs
    assert agent.update.traces == 1 and agent.act.traces <= 2 + rollout_shapes  # one per mode
