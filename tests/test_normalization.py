"""Observation normalisation for off-policy agents: the statistics the updates keep, and that an agent on
standardised observations does not see their units."""

import jax
import numpy as np

from boltzrl.agents.dqs import DQSConfig, make
from boltzrl.agents.normalization import NormalizedState, RunningStats
from conftest import make_batches

SMALL = dict(num_mc_samples=8, denoising_steps=5, time_grid="edm", sampler_step="ancestral", actor_width=32,
             embed_dim=16, critic_hidden=(32, 32), normalize_obs=True)


def rescaled(batches, scale, shift):
    """The same transitions with every observation dimension in other units: obs·scale + shift."""
    return batches._replace(obs=batches.obs * scale + shift, next_obs=batches.next_obs * scale + shift)


def test_updates_keep_the_mean_and_variance_of_every_observation_they_saw():
    agent = make(DQSConfig(**SMALL), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    assert isinstance(state, NormalizedState)
    batches = [rescaled(make_batches(2, 16, 3, 2, seed=i), np.float32([1.0, 10.0, 0.01]), 5.0) for i in range(3)]
    for i, batch in enumerate(batches):
        state, _ = agent.update(state, batch, jax.random.PRNGKey(i))
    seen = np.concatenate([b.obs.reshape(-1, 3) for b in batches])
    np.testing.assert_allclose(state.obs_stats.mean, seen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(state.obs_stats.var, seen.var(0), rtol=1e-4)
    assert agent.update.traces == 1


def test_standardize_clips_and_is_unit_scale_on_the_data_it_saw():
    x = np.random.default_rng(0).normal(3.0, 0.02, (4096, 2)).astype(np.float32)
    z = np.asarray(RunningStats.create((2,)).merge(x).standardize(x))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)
    assert np.asarray(RunningStats.create((2,)).merge(x).standardize(x + 1.0)).max() == 10.0  # 50 std away


def test_an_agent_on_standardised_observations_does_not_see_their_units():
    """Two agents from the same key, one fed observations in other units per dimension (×100, ×0.01, shifted),
    update on the same transitions and then act alike at the same states: what each network sees is the same."""
    scale, shift = np.float32([100.0, 0.01, 1.0]), np.float32([-3.0, 0.5, 20.0])
    agent = make(DQSConfig(**SMALL), 3, 2)
    plain = units = agent.init(jax.random.PRNGKey(0))
    for i in range(3):
        batch = make_batches(1, 32, 3, 2, seed=i)
        plain, _ = agent.update(plain, batch, jax.random.PRNGKey(10 + i))
        units, _ = agent.update(units, rescaled(batch, scale, shift), jax.random.PRNGKey(10 + i))
    obs = np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32)
    for deterministic in (False, True):
        a, _ = agent.act(plain, obs, jax.random.PRNGKey(5), deterministic)
        b, _ = agent.act(units, obs * scale + shift, jax.random.PRNGKey(5), deterministic)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-3)
    # without the normalisation the same units change what the agent does
    raw = make(DQSConfig(**{**SMALL, "normalize_obs": False}), 3, 2)
    state = raw.init(jax.random.PRNGKey(0))
    a, _ = raw.act(state, obs, jax.random.PRNGKey(5), True)
    b, _ = raw.act(state, obs * scale + shift, jax.random.PRNGKey(5), True)
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 0.05
