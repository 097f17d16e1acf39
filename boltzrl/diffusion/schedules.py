"""Noise schedules: discrete VP (DDPM) schedules and the continuous geometric VE schedule.

VP: steps t = 1..T are stored at array index t - 1. Forward a_t = √ᾱ_t·a_0 + √(1 − ᾱ_t)·ε,
score = −ε/√(1 − ᾱ_t).
VE: σ(t) = σ_min·(σ_max/σ_min)^t, t ∈ [0, 1]; forward a_t = a_0 + √h(t)·ε.
"""

from __future__ import annotations

import flax.struct
import jax.numpy as jnp
import numpy as np


class VPSchedule(flax.struct.PyTreeNode):
    """β_t, α_t = 1 − β_t and ᾱ_t = ∏_{i≤t} α_i, each of shape (T,); index i holds step i + 1."""

    betas: jnp.ndarray
    alphas: jnp.ndarray
    alpha_bars: jnp.ndarray

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]


def vp_schedule_from_betas(betas) -> VPSchedule:
    """Builds the schedule in float64 (ᾱ is a long product) and stores float32."""
    betas = np.asarray(betas, np.float64)
    alphas = 1.0 - betas
    alpha_bars = np.cumprod(alphas)
    as32 = lambda v: jnp.asarray(v, jnp.float32)
    return VPSchedule(betas=as32(betas), alphas=as32(alphas), alpha_bars=as32(alpha_bars))


def cosine_schedule(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> VPSchedule:
    """Nichol & Dhariwal: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2), β clipped at max_beta."""
    t = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((t + s) / (1.0 + s) * np.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, max_beta)
    return vp_schedule_from_betas(betas)


def linear_schedule(
    num_steps: int, beta_min: float = 1e-4, beta_max: float = 0.02, scale: float = 1.0,
    reference_steps: int | None = 1000,
) -> VPSchedule:
    """β linear from beta_min to beta_max, stretched by reference_steps/T, then multiplied by scale.

    The stretch (improved DDPM's, and the SDAC code's) makes a short chain span the noise range of the
    reference_steps-step chain: with T = 20 and scale 0.8, ᾱ_T ≈ 5e-6; without it ᾱ_T would be 0.85 and the
    chain would never start from noise. reference_steps=None takes beta_min..beta_max as given."""
    stretch = 1.0 if reference_steps is None else reference_steps / num_steps
    return vp_schedule_from_betas(np.clip(scale * stretch * np.linspace(beta_min, beta_max, num_steps), 0.0, 0.999))


def vp_sde_schedule(num_steps: int, b_min: float = 0.1, b_max: float = 10.0) -> VPSchedule:
    """The VP-SDE β(τ) = b_min + (b_max − b_min)·τ integrated over each of T equal slices of [0, 1]:
    β_t = 1 − exp(−b_min/T − (b_max − b_min)(2t − 1)/(2T²)), so ᾱ_T = exp(−(b_min + b_max)/2) for every T."""
    t = np.arange(1, num_steps + 1, dtype=np.float64)
    T = float(num_steps)
    betas = 1.0 - np.exp(-b_min / T - (b_max - b_min) * (2 * t - 1) / (2 * T**2))
    return vp_schedule_from_betas(betas)


def edm_vp_schedule(num_steps: int, sigma_min: float = 0.02, sigma_max: float = 10.0, rho: float = 3.0) -> VPSchedule:
    """Karras et al.'s (2022) power grid in the noise-to-signal ratio σ_t = √((1 − ᾱ_t)/ᾱ_t), from sigma_min at
    t = 1 to sigma_max at t = T: σ_t = (σ_min^{1/ρ} + (t − 1)/(T − 1)·(σ_max^{1/ρ} − σ_min^{1/ρ}))^ρ,
    ᾱ_t = 1/(1 + σ_t²).
    A short chain spends its steps near the data: with T = 5 the cosine schedule's first step already has σ = 0.33,
    a width no finer detail of the policy can be resolved below, while this grid's is sigma_min."""
    if num_steps == 1:
        sigmas = np.array([sigma_max], np.float64)
    else:
        frac = np.arange(num_steps, dtype=np.float64) / (num_steps - 1)
        sigmas = (sigma_min ** (1 / rho) + frac * (sigma_max ** (1 / rho) - sigma_min ** (1 / rho))) ** rho
    alpha_bars = 1.0 / (1.0 + sigmas**2)
    betas = 1.0 - alpha_bars / np.concatenate([[1.0], alpha_bars[:-1]])
    return vp_schedule_from_betas(betas)


VP_SCHEDULES = {"cosine": cosine_schedule, "linear": linear_schedule, "vp_sde": vp_sde_schedule,
                "edm": edm_vp_schedule}


def make_vp_schedule(name: str, num_steps: int, **kwargs) -> VPSchedule:
    try:
        build = VP_SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown VP schedule {name!r}; choose one of {sorted(VP_SCHEDULES)}") from None
    return build(num_steps, **kwargs)


class VESchedule(flax.struct.PyTreeNode):
    """Geometric variance-exploding schedule on t ∈ [0, 1]. All methods take scalars or arrays of t.

    The marginal standard deviation is std(t) = √h(t), which equals σ(t) up to the σ_min offset."""

    sigma_min: float = 1e-5
    sigma_max: float = 1.0

    def _log_ratio(self):
        return jnp.log(jnp.asarray(self.sigma_max, jnp.float32) / self.sigma_min)

    def sigma(self, t):
        return self.sigma_min * jnp.exp(jnp.asarray(t, jnp.float32) * self._log_ratio())

    def variance(self, t):
        """h(t) = σ_min²·((σ_max/σ_min)^{2t} − 1); expm1 keeps it accurate where h ≪ σ_min²."""
        return self.sigma_min**2 * jnp.expm1(2.0 * jnp.asarray(t, jnp.float32) * self._log_ratio())

    def std(self, t):
        return jnp.sqrt(self.variance(t))

    def g2(self, t):
        """g(t)² = dh/dt = 2·ln(σ_max/σ_min)·σ(t)²."""
        return 2.0 * self._log_ratio() * self.sigma(t) ** 2

    def time_of_variance(self, variance):
        """The inverse of `variance`: t = log(1 + h/σ_min²)/(2·ln(σ_max/σ_min))."""
        return jnp.log1p(jnp.asarray(variance, jnp.float32) / self.sigma_min**2) / (2.0 * self._log_ratio())


VE_TIME_GRIDS = ("uniform", "edm")


def ve_time_grid(schedule: VESchedule, num_steps: int, kind: str = "uniform", rho: float = 7.0,
                 std_min: float = 0.1) -> jnp.ndarray:
    """num_steps + 1 times from t = 1 down to t = 0, the points a reverse chain of num_steps steps visits.

    uniform: t_i = 1 − i/N (equal steps in t, i.e. in log σ; the grid the Euler samplers use).
    edm: the marginal std √h falls from √h(1) to std_min on Karras et al.'s (2022) power grid,
    std_i = (std_max^{1/ρ} + i/(N − 1)·(std_min^{1/ρ} − std_max^{1/ρ}))^ρ for i < N, then a last step to t = 0. With
    ρ = 7 the steps are long where the noise swamps the data and short near it, which is where a few-step chain
    needs them. The last step goes from std_min to 0 at once: a sampler whose steps are exact for Gaussians
    (`ve_ancestral`) resolves any Gaussian detail below std_min in it, and a larger std_min leaves more of the
    steps for the scales where modes separate (0.1 recovers two-mode mixtures of pre-tanh actions better than
    0.05, 0.03 or 0.01 with 5 or 8 steps)."""
    if kind not in VE_TIME_GRIDS:
        raise ValueError(f"time grid must be one of {', '.join(VE_TIME_GRIDS)}, got {kind!r}.")
    if kind == "uniform" or num_steps == 1:
        return jnp.arange(num_steps, -1, -1, dtype=jnp.float32) / num_steps
    std_max = schedule.std(1.0)
    frac = jnp.arange(num_steps, dtype=jnp.float32) / (num_steps - 1)
    std = (std_max ** (1.0 / rho) + frac * (std_min ** (1.0 / rho) - std_max ** (1.0 / rho))) ** rho
    times = schedule.time_of_variance(std**2).at[0].set(1.0)
    return jnp.concatenate([times, jnp.zeros((1,), jnp.float32)])
