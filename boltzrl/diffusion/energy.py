"""The Boltzmann policy π(a|s) ∝ exp(Q(s, a)/α) on the action box, as an energy in pre-tanh coordinates, and the
iDEM score-matching data built from it.

A critic is trained on actions in [−1, 1] only, while a diffusion variable ranges over all of R^d. Pushing the
policy through tanh gives the energy

    E(s, u) = −Q(s, tanh u)/α − Σ_i log(1 − tanh² u_i)

which only evaluates Q inside the box, is smooth and defined everywhere, and whose exact samples map by tanh to
exact samples of π (the Jacobian term is the change of variables; without it exp(Q(s, tanh u)/α) would not be
normalisable in u).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from boltzrl.diffusion.schedules import VESchedule
from boltzrl.diffusion.targets import idem_score_from_noise

ACTION_CLIP = 1.0 - 1e-6  # replay actions are clipped to this before atanh (|u| ≤ 7.25)


def log_tanh_jacobian(u) -> jax.Array:
    """Σ_i log(1 − tanh² u_i) = Σ_i 2·(log 2 − u_i − softplus(−2u_i)), stable for large |u|."""
    return jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def pre_tanh(action) -> jax.Array:
    """atanh of a box action, clipped first so that actions on the boundary stay finite."""
    return jnp.arctanh(jnp.clip(action, -ACTION_CLIP, ACTION_CLIP))


def boltzmann_energy(q_fn: Callable, alpha) -> Callable:
    """E(u, s) = −Q(s, tanh u)/α − log|det ∂tanh(u)/∂u|: the energy of π ∝ exp(Q/α) in pre-tanh coordinates.

    q_fn(s, a) maps one state (obs_dim,) and one action (d,) to a scalar."""
    return lambda u, s: -q_fn(s, jnp.tanh(u)) / alpha - log_tanh_jacobian(u)


def score_target(q_fn: Callable, obs, x, std, alpha, noise, clip_norm=None, richardson=False) -> jax.Array:
    """iDEM estimate of ∇_x log (p ∗ N(0, std²))(x), p ∝ exp(−E) with E = `boltzmann_energy(q_fn, alpha)`; the
    same energy gives the softmax weights and the gradients, so the estimator is consistent.

    obs (B, obs_dim), x (B, d), std (B,), noise (B, K, d)."""
    energy = boltzmann_energy(q_fn, alpha)
    return idem_score_from_noise(energy, x, std, noise, clip_norm, richardson, context=obs)


def score_matching_batch(q_fn: Callable, obs, action, alpha, schedule: VESchedule, key, num_mc_samples: int,
                         clip_norm=None, richardson=False, std_min=None):
    """The regression data of one score update: t ~ U(t_min, 1), x = atanh(a) + √h(t)·ε and the iDEM target at x.

    t_min is 0 (the paper's t ~ U(0, 1)), or where the marginal std is std_min: the geometric schedule spends equal
    shares of t on each decade of std, so a sampler that never asks for the score below std_min wastes the
    targets drawn there. obs (B, obs_dim), action (B, d) replay actions in [−1, 1].
    Returns (x (B, d), t (B,), target (B, d))."""
    k_t, k_x, k_mc = jax.random.split(key, 3)
    batch, act_dim = action.shape
    t_min = 0.0 if std_min is None else schedule.time_of_variance(jnp.float32(std_min) ** 2)
    t = jax.random.uniform(k_t, (batch,), minval=t_min, maxval=1.0)
    std = schedule.std(t)
    x = pre_tanh(action) + std[:, None] * jax.random.normal(k_x, action.shape)
    noise = jax.random.normal(k_mc, (batch, num_mc_samples, act_dim))
    return x, t, score_target(q_fn, obs, x, std, alpha, noise, clip_norm, richardson)
