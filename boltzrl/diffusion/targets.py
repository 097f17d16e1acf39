"""Score-matching targets and losses for Boltzmann densities p(x) ∝ exp(−E(x)).

- DSM: regress ε on forward-noised true samples (the reference when samples exist).
- RSSM (SDAC): reverse draws a_0^j from a noisy point a_t, weights softmax_j(−E(a_0^j)); needs energy values only.
- iDEM (DQS): K-sample Monte-Carlo score of p ∗ N(0, σ²); needs energy gradients.

Conventions: VP step indices are 0..T−1 (step 1..T); ε-form of a VP score is ε = −√(1 − ᾱ_t)·∇log p_t.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from boltzrl.diffusion.schedules import VPSchedule


def _alpha_bar(schedule: VPSchedule, t_index) -> jnp.ndarray:
    """ᾱ at t_index with a trailing axis, so it broadcasts against (..., d)."""
    return schedule.alpha_bars[jnp.asarray(t_index, jnp.int32)][..., None]


def vp_forward(x0, t_index, noise, schedule: VPSchedule) -> jnp.ndarray:
    """a_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·noise; t_index is a scalar or broadcastable to x0[..., 0]."""
    ab = _alpha_bar(schedule, t_index)
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise


def dsm_loss(eps_pred, noise) -> jnp.ndarray:
    """Denoising score matching: mean over the batch of ‖ε_pred − ε‖² (same scale as `rssm_loss`)."""
    return jnp.mean(jnp.sum((eps_pred - noise) ** 2, axis=-1))


# ------------------------------------------------------------------------------------------------ RSSM


def truncated_standard_normal(key, lower, upper, shape=None) -> jnp.ndarray:
    """Standard normal draws truncated to [lower, upper], accurate however far into a tail the interval lies.

    `jax.random.truncated_normal` saturates erf there and returns the wrong end of the interval (e.g. −50 for
    [−50, −10]). Here the interval is mirrored onto the left half-line, inverted with log Φ (exact in the tail)
    and, past 5 standard deviations where float32 Φ underflows, with the tail's exponential limit
    p(z) ∝ exp(|hi|·z) on z ≤ hi (relative density error exp(−(z − hi)²/2), under 2% over its bulk)."""
    shape = jnp.broadcast_shapes(jnp.shape(lower), jnp.shape(upper)) if shape is None else shape
    mirror = lower > 0  # put the interval's mass on the left, where log Φ does not round to 0
    lo, hi = jnp.where(mirror, -upper, lower), jnp.where(mirror, -lower, upper)
    u = jax.random.uniform(key, shape, minval=1e-7, maxval=1.0 - 1e-7)
    log_hi, log_lo = jax.scipy.special.log_ndtr(hi), jax.scipy.special.log_ndtr(lo)
    log_p = log_hi + jnp.log(u + (1.0 - u) * jnp.exp(log_lo - log_hi))
    z_exact = jax.scipy.special.ndtri(jnp.exp(log_p))
    rate = jnp.maximum(-hi, 1.0)
    z_tail = hi + jnp.log(1.0 - u * -jnp.expm1(-rate * (hi - lo))) / rate
    z = jnp.clip(jnp.where(hi < -5.0, z_tail, z_exact), lo, hi)
    return jnp.where(mirror, -z, z)


def rssm_reverse_draws(a_t, t_index, schedule: VPSchedule, key, num_draws: int, clip: float | None = None,
                       truncate: bool = False):
    """M reverse draws from q̃(a_0 | a_t) = N(a_t/√ᾱ_t, (1/ᾱ_t − 1)·I): a_0^j = a_t/√ᾱ_t − √(1/ᾱ_t − 1)·ε^j.

    a_t (..., d), t_index scalar or shape (...). Returns (a0 (..., M, d), eps (..., M, d)), with
    a_t = √ᾱ_t·a_0^j + √(1 − ᾱ_t)·ε^j exactly for the drawn a_0^j; the ε^j are the regression targets.
    `clip` bounds the returned a0 only, where the energy is evaluated (a critic trained on [−1, 1] is
    meaningless outside it), keeping the unclipped ε^j: draws outside the box are moved onto its faces.
    `truncate` instead draws from q̃ truncated to [−clip, clip] and derives ε^j from those draws: for an energy
    supported on the box this is exact self-normalised importance sampling of p(a_0 | a_t); at large t, where
    q̃ is wide, the draws spread over the box instead of piling up on its corners."""
    ab = _alpha_bar(schedule, t_index)[..., None]  # (..., 1, 1)
    mean, std = a_t[..., None, :] / jnp.sqrt(ab), jnp.sqrt(1.0 / ab - 1.0)
    shape = a_t.shape[:-1] + (num_draws, a_t.shape[-1])
    if truncate:
        if clip is None:
            raise ValueError("truncated reverse draws need a box: pass clip.")
        eps = -truncated_standard_normal(key, (-clip - mean) / std, (clip - mean) / std, shape)
        return mean - std * eps, eps
    eps = jax.random.normal(key, shape, a_t.dtype)
    a0 = mean - std * eps
    if clip is not None:
        a0 = jnp.clip(a0, -clip, clip)
    return a0, eps


RSSM_NORMALIZATIONS = ("none", "batch", "per_state", "action_spread")


def rssm_weights(neg_energy, normalize: str = "none", temperature: float = 1.0, reference=None) -> jnp.ndarray:
    """Self-normalised weights over the draws (last axis): softmax_j(z_j / temperature), no gradient.

    neg_energy (..., M) is −E(a_0^j): pass Q/α with temperature 1, or Q with temperature α.
    normalize="batch" is SDAC's numerical-stability variant: z = (neg_energy − mean)/std, mean and std over all
    entries (every state of the batch and every draw), before dividing by the temperature; i.e. with Q and
    temperature α the weights are softmax_j(((Q − mean Q)/std Q)/α). The mean cancels in the softmax; the
    std, dominated by how Q differs between states, makes the weights nearly uniform.
    normalize="per_state" takes the mean and std over each state's M draws instead: scale-free, but the
    effective temperature then changes with the noise level t (draws at small t are close together), so the
    steps of the chain no longer target one density.
    normalize="action_spread" divides by one number for the whole batch: the within-state standard deviation of
    `reference` (..., K), the energy at K uniform actions of each state, pooled over states. The weights are then
    those of the Boltzmann density exp(Q/(temperature·spread)): the same density at every t and for every state,
    with a temperature measured in units of how much Q varies over the action box, so it does not depend on the
    reward scale."""
    if normalize not in RSSM_NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(RSSM_NORMALIZATIONS)}, got {normalize!r}.")
    z = jax.lax.stop_gradient(neg_energy)
    if normalize == "batch":
        z = (z - jnp.mean(z)) / jnp.maximum(jnp.std(z), 1e-6)
    elif normalize == "per_state":
        z = (z - z.mean(-1, keepdims=True)) / jnp.maximum(z.std(-1, keepdims=True), 1e-6)
    elif normalize == "action_spread":
        if reference is None:
            raise ValueError("normalize='action_spread' needs the energies at reference actions.")
        spread = jnp.sqrt(jnp.mean(jnp.var(jax.lax.stop_gradient(reference), axis=-1)))
        z = z / jnp.maximum(spread, 1e-6)
    return jax.nn.softmax(z / temperature, axis=-1)


def rssm_loss(eps_pred, eps_draws, weights) -> jnp.ndarray:
    """Mean over the batch of Σ_j w_j·‖ε_pred − ε^j‖²: eps_pred (..., d), eps_draws (..., M, d), weights (..., M).
    At each a_t its minimiser is Σ_j w_j ε^j, a self-normalised estimate of E[ε | a_t] = −√(1 − ᾱ_t)·∇log p_t(a_t)."""
    weights = jax.lax.stop_gradient(weights)
    sq_err = jnp.sum((eps_pred[..., None, :] - eps_draws) ** 2, axis=-1)
    return jnp.mean(jnp.sum(weights * sq_err, axis=-1))


# ------------------------------------------------------------------------------------------------ iDEM


def _flatten_leading(tree, lead: tuple, n: int):
    return jax.tree_util.tree_map(lambda v: v.reshape((n,) + v.shape[len(lead):]), tree)


def idem_score_from_noise(
    energy_fn: Callable,
    x,
    sigma,
    noise,
    clip_norm: float | None = None,
    richardson: bool = False,
    context=None,
) -> jnp.ndarray:
    """`idem_score` with the standard normal draws given: noise (..., K, d) for x (..., d)."""
    lead, dim = x.shape[:-1], x.shape[-1]
    num_samples = noise.shape[-2]
    if richardson and num_samples < 2:
        raise ValueError("the Richardson iDEM estimate needs num_samples >= 2.")
    n = math.prod(lead)
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), lead)

    def one_point(x, sigma, noise, ctx):
        energy = (lambda p: energy_fn(p)) if context is None else (lambda p: energy_fn(p, ctx))
        points = x + sigma * noise
        e, grad_e = jax.vmap(jax.value_and_grad(energy))(points)
        score = jax.nn.softmax(-e) @ -grad_e
        if richardson:
            half = num_samples // 2
            score = 2.0 * score - jax.nn.softmax(-e[:half]) @ -grad_e[:half]
        if clip_norm is not None:
            norm = jnp.linalg.norm(score)
            score = score * jnp.minimum(1.0, clip_norm / jnp.maximum(norm, 1e-12))
        return score

    ctx = None if context is None else _flatten_leading(context, lead, n)
    scores = jax.vmap(one_point)(x.reshape(n, dim), sigma.reshape(n), noise.reshape(n, num_samples, dim), ctx)
    return scores.reshape(lead + (dim,))


def idem_score(
    energy_fn: Callable,
    x,
    sigma,
    key,
    num_samples: int,
    clip_norm: float | None = None,
    richardson: bool = False,
    context=None,
) -> jnp.ndarray:
    """iDEM K-sample estimate of ∇log p_σ(x), p_σ = p ∗ N(0, σ²I), p ∝ exp(−E):

        S_K(x) = Σ_k softmax_k(−E(x^(k)))·(−∇E(x^(k))),   x^(k) = x + σ·ε_k.

    energy_fn maps one point (d,) to a scalar, or (point, context_row) to a scalar when `context` (a pytree
    whose leaves lead with x's batch dims, e.g. the states) is given. x (..., d); sigma a scalar or shape (...).
    Biased for finite K (bias O(1/K)). richardson: 2·S_K − S_{K/2}, S_{K/2} from the first K/2 of the same
    draws, which cancels the O(1/K) bias term at the cost of variance. clip_norm: rescale S so ‖S‖ ≤ clip_norm.
    """
    noise = jax.random.normal(key, x.shape[:-1] + (num_samples, x.shape[-1]), x.dtype)
    return idem_score_from_noise(energy_fn, x, sigma, noise, clip_norm, richardson, context)


def ve_score_loss(score_pred, target, variance) -> jnp.ndarray:
    """DQS loss: mean over the batch of w(t)·mean_d (s_θ − S)², w(t) = h(t) + 1e-3; variance h(t) has the batch
    shape (or is a scalar)."""
    target = jax.lax.stop_gradient(target)
    per_sample = jnp.mean((score_pred - target) ** 2, axis=-1)
    return jnp.mean((variance + 1e-3) * per_sample)
