"""Observations standardised by running statistics, for an off-policy agent that does not do it itself.

`with_normalized_observations(agent, obs_dim)` wraps an Agent: its state becomes (the agent's state, the running
mean and variance of the observations its updates have seen), every update first merges the observations of its
minibatches into the statistics, and the agent then sees (obs − mean)/std, clipped, wherever it sees an observation
(acting, evaluation, and the obs and next_obs of its updates). The statistics are those of the replay draws, so
they follow the replay's distribution as it grows; they are part of the state, hence checkpointed and resumed with
it. Why: an MLP critic resolves an input only as finely as its scale allows, and DMC's observations mix inputs of
spread 0.1 (reacher's finger-to-target vector, whose reward needs it within 0.025) with velocities of spread 1–10.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.struct
import jax.numpy as jnp

from boltzrl.agents.base import Agent, counted_jit

OBS_CLIP = 10.0
"""Standardised observations are clipped to ± this (a safeguard against a statistic not yet settled)."""


class RunningStats(flax.struct.PyTreeNode):
    """Running mean and variance (Chan et al.'s parallel merge), starting as N(0, 1) seen `count` times (1e-4 like
    Gym's wrappers; 0: the first merge replaces it)."""

    mean: Any
    var: Any
    count: Any

    @classmethod
    def create(cls, shape: Sequence[int] = (), count: float = 1e-4) -> RunningStats:
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.full((), count, jnp.float32))

    def merge(self, x) -> RunningStats:
        """The statistics after also seeing the rows of x (leading axis: samples)."""
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0), jnp.float32(x.shape[0])
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / total
        return RunningStats(self.mean + delta * batch_count / total, m2 / total, total)

    def standardize(self, x, clip: float = OBS_CLIP):
        """(x − mean)/std, clipped to ± clip."""
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + 1e-8), -clip, clip)


class NormalizedState(flax.struct.PyTreeNode):
    agent: Any
    obs_stats: RunningStats


def with_normalized_observations(agent: Agent, obs_dim: int) -> Agent:
    """The agent acting and learning on standardised observations (module docstring)."""

    def init(key):
        return NormalizedState(agent.init(key), RunningStats.create((obs_dim,), count=0.0))

    @counted_jit(static_argnames="deterministic")
    def act(state: NormalizedState, obs, key, deterministic: bool = False, noise=None):
        extra = {} if noise is None else {"noise": noise}
        return agent.act(state.agent, state.obs_stats.standardize(obs), key, deterministic=deterministic, **extra)

    @counted_jit
    def update(state: NormalizedState, batches, key):
        stats = state.obs_stats.merge(batches.obs.reshape(-1, obs_dim))
        one_step = batches.one_step
        if one_step is not None:
            one_step = one_step._replace(next_obs=stats.standardize(one_step.next_obs))
        batches = batches._replace(obs=stats.standardize(batches.obs), next_obs=stats.standardize(batches.next_obs),
                                   one_step=one_step)
        inner, info = agent.update(state.agent, batches, key)
        return NormalizedState(inner, stats), info

    return agent._replace(init=init, act=act, update=update)
