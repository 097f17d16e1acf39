"""Helpers shared by the test files."""

import jax
import numpy as np
import pytest

from boltzrl.agents.base import Batch, Rollout, random_batches


def make_batches(n: int = 2, b: int = 16, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> Batch:
    """n random minibatches of b transitions, stacked as an agent's update takes them (float32, never terminal)."""
    return random_batches(n, b, obs_dim, act_dim, seed)


@pytest.fixture
def batches():
    """`make_batches` itself, for tests that take it as a fixture."""
    return make_batches


def make_rollout(agent, state, steps: int = 8, num_envs: int = 4, obs_dim: int = 3, seed: int = 0,
                 obs_mean: float = 0.0, obs_std: float = 1.0) -> Rollout:
    """A rollout of random float32 observations (mean obs_mean, std obs_std) on which `agent` acted, with random
    rewards and a few terminations and truncations, shaped as the on-policy collector gives it."""
    rng = np.random.default_rng(seed)
    obs = (obs_mean + obs_std * rng.normal(size=(steps + 1, num_envs, obs_dim))).astype(np.float32)
    actions, extras = [], []
    for t in range(steps):
        action, extra = jax.device_get(agent.act(state, obs[t], jax.random.PRNGKey(1000 * seed + t)))
        actions.append(action)
        extras.append(extra)
    ends = rng.random((steps, num_envs))
    return Rollout(obs=obs[:-1], action=np.stack(actions),
                   reward=rng.normal(size=(steps, num_envs)).astype(np.float32), next_obs=obs[1:],
                   terminated=(ends < 0.1).astype(np.float32), truncated=(ends > 0.9).astype(np.float32),
                   extras=jax.tree_util.tree_map(lambda *xs: np.stack(xs), *extras))
