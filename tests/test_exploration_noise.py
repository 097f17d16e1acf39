"""Exploration noise correlated along episodes: its statistics, its sequences and its checkpoint."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzrl.agents import get_algo
from boltzrl.training import TrainConfig, train
from boltzrl.training.exploration_noise import ColoredNoise, power_law_noise


def draws(noise: ColoredNoise, steps: int) -> np.ndarray:
    return np.stack([noise.draw() for _ in range(steps)])  # (steps, envs, dim)


@pytest.mark.parametrize("beta, lag_one", [(0.0, (-0.02, 0.02)), (1.0, (0.7, 0.82)), (2.0, (0.98, 1.0))])
def test_each_draw_is_standard_normal_and_successive_ones_correlate_by_beta(beta, lag_one):
    """Every draw is N(0, 1): at each of 3 steps (the first, a middle and the last of a sequence), over 4000
    sequences, mean within ±0.1 and variance within ±0.08 of 1 (4–5 standard errors); and the lag-one correlation
    in the range its spectrum gives (measured 0.00, 0.76, 0.99)."""
    x = power_law_noise(np.random.default_rng(0), beta, 1000, 4000)  # (steps, sequences)
    for step in (0, 500, 999):
        assert abs(x[step].mean()) < 0.1 and abs(x[step].var() - 1.0) < 0.08, (step, x[step].mean(), x[step].var())
    correlation = np.mean(x[1:] * x[:-1])
    assert lag_one[0] < correlation < lag_one[1], correlation


def test_an_ended_episode_or_an_exhausted_sequence_starts_a_new_sequence():
    noise = ColoredNoise(1.0, num_envs=2, dim=3, seed=0, horizon=10)
    first = draws(noise, 4)
    noise.episodes_ended(np.array([True, False]))
    after = draws(noise, 6)
    assert noise.fields() == {"sequence_index": [1, 0], "position": [6, 10]}
    fresh = ColoredNoise(1.0, num_envs=2, dim=3, seed=0, horizon=10)
    np.testing.assert_array_equal(np.concatenate([first, after])[:, 1], draws(fresh, 10)[:, 1])  # env 1 ran on
    assert not np.allclose(after[:4, 0], first[:, 0])  # env 0 began another sequence
    rolled = noise.draw()  # env 1's sequence of 10 is used up
    assert noise.fields() == {"sequence_index": [1, 1], "position": [7, 1]}
    assert not np.allclose(rolled[1], first[0, 1])


def test_restored_noise_continues_with_the_draws_it_would_have_made():
    noise = ColoredNoise(1.0, num_envs=3, dim=4, seed=5, horizon=50)
    draws(noise, 30)
    noise.episodes_ended(np.array([False, True, False]))
    draws(noise, 7)
    restored = ColoredNoise(1.0, num_envs=3, dim=4, seed=5, horizon=50)
    restored.restore(noise.fields())
    np.testing.assert_array_equal(draws(restored, 40), draws(noise, 40))


def test_agents_that_draw_their_own_noise_refuse_correlated_noise(tmp_path):
    cfg = TrainConfig(env="Pendulum-v1", steps=300, warmup_steps=100, batch_size=32, exploration_noise_beta=1.0)
    with pytest.raises(ValueError, match="needs an agent whose exploring actions"):
        train("qsm", get_algo("qsm").config(), cfg, tmp_path / "run", verbose=False)
    with pytest.raises(ValueError, match="is for off-policy agents"):
        train("ppo", get_algo("ppo").config(), cfg, tmp_path / "ppo", verbose=False)
    with pytest.raises(ValueError, match="must lie in"):
        TrainConfig(exploration_noise_beta=-1.0).validate()


def test_mixing_in_independent_draws_keeps_them_standard_normal_and_weakens_the_correlation():
    """With a correlated share w the draws are √w·pink + √(1 − w)·independent: variance 1 within ±0.03 over 4 envs ×
    64 dims × 1000 steps, lag-one correlation w times pink's (0.76) within ±0.04, and the pink draws themselves at
    w = 1."""
    for share in (1.0, 0.5, 0.0):
        noise = ColoredNoise(1.0, num_envs=4, dim=64, seed=0)
        x = np.stack([noise.draw(share) for _ in range(1000)])
        assert abs(x.var() - 1.0) < 0.03, (share, x.var())
        assert abs(np.mean(x[1:] * x[:-1]) - 0.76 * share) < 0.04, (share, np.mean(x[1:] * x[:-1]))
    np.testing.assert_array_equal(ColoredNoise(1.0, 2, 3, seed=1).draw(1.0), ColoredNoise(1.0, 2, 3, seed=1).draw())


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_gaussian_explorers_explore_with_the_noise_they_are_given(algo, tmp_path):
    """SAC's exploring action is tanh(mean + std·noise), TD3's and DDPG's clip(μ + σ·noise), for given draws:
    zero noise gives the evaluation action, the same draws the same action whatever the key; and a short run with
    pink noise trains and checkpoints the noise."""
    spec = get_algo(algo)
    agent = spec.make(spec.config(), 3, 2)
    assert agent.noise_dim == 2
    state, obs = agent.init(jax.random.PRNGKey(0)), jnp.ones((4, 3))
    noise = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    first, _ = agent.act(state, obs, jax.random.PRNGKey(2), noise=noise)
    np.testing.assert_array_equal(first, agent.act(state, obs, jax.random.PRNGKey(3), noise=noise)[0])
    assert not np.allclose(first, agent.act(state, obs, jax.random.PRNGKey(2), noise=-noise)[0])
    np.testing.assert_allclose(agent.act(state, obs, jax.random.PRNGKey(2), noise=0 * noise)[0],
                               agent.act(state, obs, jax.random.PRNGKey(2), True)[0], atol=1e-6)
    cfg = TrainConfig(env="Pendulum-v1", steps=300, warmup_steps=100, batch_size=32, eval_episodes=1,
                      exploration_noise_beta=1.0)
    train(algo, spec.config(), cfg, tmp_path / "run", verbose=False)
    assert (tmp_path / "run" / "checkpoint" / "loop.json").read_text().count("sequence_index") == 1
