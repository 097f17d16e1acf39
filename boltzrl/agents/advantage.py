"""Generalised advantage estimation (Schulman et al. 2016) over a rollout, as a reverse `lax.scan`.

    δ_t = r_t + γ·(1 − terminated_t)·V(s′_t) − V(s_t)
    A_t = δ_t + γλ·(1 − done_t)·A_{t+1},     done_t = terminated_t or truncated_t

s′_t is the observation after step t before any reset, so a truncated episode still bootstraps from V of its final
observation, while the recursion stops at every episode end. Returns (advantages, value targets A + V).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(reward, value, next_value, terminated, truncated, gamma: float, lam: float):
    """All inputs (T, num_envs); terminated/truncated as 0/1 floats or bools."""
    terminated = terminated.astype(reward.dtype)
    done = jnp.maximum(terminated, truncated.astype(reward.dtype))
    delta = reward + gamma * (1.0 - terminated) * next_value - value

    def back(next_advantage, xs):
        delta_t, done_t = xs
        advantage = delta_t + gamma * lam * (1.0 - done_t) * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(back, jnp.zeros_like(delta[0]), (delta, done), reverse=True)
    return advantages, advantages + value
