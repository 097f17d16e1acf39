"""Samplers of p(x) ∝ exp(−E(x)) for the toy comparison: diffusion models trained from the energy alone
(RSSM, iDEM), one trained on true samples (DSM), and the registry of every method, Langevin dynamics with the
exact score (`langevin.py`) included. Each diffusion method is a loss, an initialiser and a sampler; the
training loop that fits them is in `runner.py`.

The diffusion methods work in the unit space u = x / energy.scale, where the support lies in about [−1, 1]^d:
the VP chain clips x̂₀ to [−1, 1] and its noise levels are set for that range, so a box like [−40, 40]² must be
scaled down first. The energy there is E(scale·u) (the constant Jacobian does not change the density's shape).
Samples are mapped back to data space before they are returned.

Proposals (where the network is trained): RSSM and iDEM draw x_0 from a uniform distribution over the energy's
box (`rssm`, `idem`) or from N(0, gauss_std²I) (`rssm_gauss`) and noise it with the forward process, so the
proposal of every noise level has full support and follows the spread of the diffused target. iDEM here trains
on these positions directly rather than on a buffer of its own samples.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from boltzrl.diffusion import (
    VESchedule,
    VPSchedule,
    ddpm_sample,
    dsm_loss,
    idem_score,
    rssm_loss,
    rssm_reverse_draws,
    rssm_weights,
    ve_euler_maruyama,
    ve_score_loss,
    vp_forward,
    vp_schedule_from_betas,
)
from boltzrl.nets import EpsNet
from boltzrl.sampling.energies import Energy

VE_TIME_SCALE = 1000.0  # continuous t ∈ [0, 1] is fed to the step-index embedding as 1000·t


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """Hyper-parameters of the toy samplers. Lengths and noise levels refer to the unit space x / scale."""

    hidden: tuple[int, ...] = (128, 128, 128)  # ε / score network (EpsNet, no state input)
    # Random Fourier features [x, sin(2πxB), cos(2πxB)], B ~ N(0, fourier_scale²) drawn once with a fixed key
    # (part of the architecture, the same for every seed): without them the MLP
    # cannot resolve modes 1/80 of the box wide (40-mode GMM) in a few thousand steps.
    fourier_features: int = 64
    fourier_scale: float = 2.0
    train_steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 1e-3
    # VP diffusion (RSSM, DSM): the noise-to-signal ratio √((1 − ᾱ_t)/ᾱ_t) grows geometrically from
    # nsr_min to nsr_max over vp_steps steps (log-SNR linear in t), so every length scale from a narrow mode
    # to the whole box gets its share of steps. At nsr 10 the chain's N(0, I) start is off by at most 0.1·|x|.
    # Higher noise levels hurt RSSM: its M reverse draws spread as nsr, the softmax collapses onto the one
    # nearest a mode whatever that mode's weight, and the learned weights drift towards equal.
    vp_steps: int = 200
    nsr_min: float = 5e-3
    nsr_max: float = 10.0
    num_draws: int = 512  # RSSM reverse draws M per noisy point
    gauss_std: float = 0.5  # rssm_gauss proposal N(0, gauss_std²I) for x_0
    # VE diffusion (iDEM): σ(t) = σ_min·(σ_max/σ_min)^t, Euler–Maruyama with ve_steps steps.
    sigma_min: float = 2e-3
    sigma_max: float = 1.5
    ve_steps: int = 200
    idem_samples: int = 100  # K
    # Norm clip of the target in noise-prediction form: ‖std(t)·S_K‖ ≤ idem_clip·√d (None: no clip, as in the
    # DQS code). iDEM clips ‖S_K‖ at a fixed 70 for its GMM; the scale-free form needs no retuning per energy.
    # Without it the collapsed softmax at large σ returns targets a hundred times the true score (40-mode GMM).
    idem_clip: float | None = 3.0
    idem_loss: str = "dqs"  # "dqs": ve_score_loss, weight h(t) + 1e-3 on score errors; "eps": weight h(t)
    # Langevin with the exact score (data space), started uniformly over the energy's box.
    langevin_steps: int = 20
    langevin_long_steps: int = 2000


# ------------------------------------------------------------------------------------------- helpers


def _unit_energy(energy: Energy) -> Callable:
    scale = jnp.float32(energy.scale)
    return lambda u: energy.energy_fn(u * scale)


def _uniform_box(energy: Energy, key, n: int) -> jax.Array:
    box = jnp.asarray(energy.bounds, jnp.float32) / energy.scale
    return jax.random.uniform(key, (n, energy.dim), minval=box[:, 0], maxval=box[:, 1])


def _network(energy: Energy, config: SamplerConfig):
    net = EpsNet(hidden=config.hidden, act_dim=energy.dim)
    no_state = jnp.zeros((0,), jnp.float32)
    freqs = config.fourier_scale * jax.random.normal(jax.random.key(1234), (energy.dim, config.fourier_features))

    def features(x):
        if config.fourier_features == 0:
            return x
        proj = 2 * jnp.pi * x @ freqs
        return jnp.concatenate([x, jnp.sin(proj), jnp.cos(proj)], -1)

    init = lambda key: net.init(key, no_state, features(jnp.zeros((1, energy.dim))), jnp.zeros((1,)))
    apply = lambda params, x, t: net.apply(params, no_state, features(x), t)
    return init, apply


def log_snr_schedule(num_steps: int, nsr_min: float, nsr_max: float) -> VPSchedule:
    """VP schedule whose noise-to-signal ratio √((1 − ᾱ_t)/ᾱ_t) is geometric in t from nsr_min to nsr_max.

    The cosine and linear schedules spend only a few percent of their steps at noise levels below a tenth of
    the data range; for the 40-mode GMM (mode width 1/80 of the box) those steps decide the sample quality."""
    nsr = np.geomspace(nsr_min, nsr_max, num_steps)
    alpha_bars = 1.0 / (1.0 + nsr**2)
    return vp_schedule_from_betas(1.0 - alpha_bars / np.concatenate([[1.0], alpha_bars[:-1]]))


def _vp_schedule(config: SamplerConfig) -> VPSchedule:
    return log_snr_schedule(config.vp_steps, config.nsr_min, config.nsr_max)


def _vp_sampler(apply: Callable, energy: Energy, config: SamplerConfig) -> Callable:
    schedule = _vp_schedule(config)

    def sample(params, key, n):
        eps_fn = lambda x, t: apply(params, x, jnp.broadcast_to(t, x.shape[:-1]))
        return energy.scale * ddpm_sample(eps_fn, key, (n, energy.dim), schedule)

    return sample


# ------------------------------------------------------------------------------------- diffusion methods


def _rssm(proposal: Callable) -> Callable:
    """RSSM: reverse draws a_0^j ~ q̃(a_0 | a_t), weights softmax_j(−E(a_0^j)), weighted ε regression."""

    def build(energy: Energy, config: SamplerConfig):
        schedule = _vp_schedule(config)
        unit_energy = jax.vmap(jax.vmap(_unit_energy(energy)))
        init, apply = _network(energy, config)
        b, d = config.batch_size, energy.dim

        def loss_fn(params, key):
            k_x0, k_t, k_noise, k_draws = jax.random.split(key, 4)
            t = jax.random.randint(k_t, (b,), 0, config.vp_steps)
            a_t = vp_forward(proposal(energy, config, k_x0, b), t, jax.random.normal(k_noise, (b, d)), schedule)
            a0, eps = rssm_reverse_draws(a_t, t, schedule, k_draws, config.num_draws)
            return rssm_loss(apply(params, a_t, t), eps, rssm_weights(-unit_energy(a0)))

        return loss_fn, init, _vp_sampler(apply, energy, config)

    return build


def _uniform_proposal(energy, config, key, n):
    return _uniform_box(energy, key, n)


def _gauss_proposal(energy, config, key, n):
    return config.gauss_std * jax.random.normal(key, (n, energy.dim))


def _dsm(energy: Energy, config: SamplerConfig):
    """Denoising score matching on fresh exact samples every step (the reference that needs samples)."""
    if not energy.has_samples:
        raise ValueError(f"dsm needs exact samples and energy {energy.name!r} has none")
    schedule = _vp_schedule(config)
    init, apply = _network(energy, config)
    b, d = config.batch_size, energy.dim

    def loss_fn(params, key):
        k_x0, k_t, k_noise = jax.random.split(key, 3)
        x0 = energy.sample(k_x0, b) / energy.scale
        t = jax.random.randint(k_t, (b,), 0, config.vp_steps)
        noise = jax.random.normal(k_noise, (b, d))
        return dsm_loss(apply(params, vp_forward(x0, t, noise, schedule), t), noise)

    return loss_fn, init, _vp_sampler(apply, energy, config)


def _idem(energy: Energy, config: SamplerConfig):
    """iDEM: regress the K-sample Monte-Carlo score of p ∗ N(0, h(t)), t ~ U(1/N, 1), with the DQS weight
    h(t) + 1e-3 (or h(t): `idem_loss="eps"`).

    The network predicts std(t)·score (score = output / std(t)), which keeps its outputs of order one
    across noise levels from σ_min to σ_max; a raw score output diverged on the toy energies."""
    if config.idem_loss not in ("dqs", "eps"):
        raise ValueError(f"idem_loss must be 'dqs' or 'eps', got {config.idem_loss!r}")
    schedule = VESchedule(config.sigma_min, config.sigma_max)
    unit_energy = _unit_energy(energy)
    init, apply = _network(energy, config)
    b, d = config.batch_size, energy.dim
    t_min = 1.0 / config.ve_steps  # the sampler's last score evaluation

    def score(params, x, t):
        t = jnp.broadcast_to(t, x.shape[:-1])
        return apply(params, x, VE_TIME_SCALE * t) / schedule.std(t)[..., None]

    def loss_fn(params, key):
        k_x0, k_t, k_noise, k_mc = jax.random.split(key, 4)
        t = jax.random.uniform(k_t, (b,), minval=t_min, maxval=1.0)
        std = schedule.std(t)
        x_t = _uniform_box(energy, k_x0, b) + std[:, None] * jax.random.normal(k_noise, (b, d))
        target = idem_score(unit_energy, x_t, std, k_mc, config.idem_samples)
        if config.idem_clip is not None:
            bound = config.idem_clip * jnp.sqrt(jnp.float32(d))
            norm = std * jnp.linalg.norm(target, axis=-1)
            target = target * jnp.minimum(1.0, bound / jnp.maximum(norm, 1e-12))[:, None]
        if config.idem_loss == "eps":
            pred = apply(params, x_t, VE_TIME_SCALE * t)
            return jnp.mean(jnp.sum((pred - std[:, None] * jax.lax.stop_gradient(target)) ** 2, -1))
        return ve_score_loss(score(params, x_t, t), target, schedule.variance(t))

    def sample(params, key, n):
        score_fn = lambda x, t: score(params, x, t)
        return energy.scale * ve_euler_maruyama(score_fn, key, (n, energy.dim), schedule, config.ve_steps)

    return loss_fn, init, sample


# ------------------------------------------------------------------------------------------- registry

# name -> build(energy, config) -> (loss_fn(params, key), init_params(key), sample(params, key, n))
TRAINED_METHODS: dict[str, Callable] = {
    "rssm": _rssm(_uniform_proposal),
    "rssm_gauss": _rssm(_gauss_proposal),
    "idem": _idem,
    "dsm": _dsm,
}
LANGEVIN_METHODS = ("langevin", "langevin_long")
METHOD_DESCRIPTIONS = {
    "rssm": "reverse-sampling score matching (SDAC), uniform proposal over the box, energy values only",
    "rssm_gauss": "reverse-sampling score matching (SDAC), Gaussian proposal",
    "idem": "iDEM K-sample Monte-Carlo score (DQS), VE diffusion, energy gradients",
    "dsm": "denoising score matching on exact samples (reference)",
    "langevin": "unadjusted Langevin with the exact score, 20 steps (as in the SDAC paper)",
    "langevin_long": "Metropolis-adjusted Langevin with the exact score, many steps",
}


def list_methods() -> list[str]:
    return list(METHOD_DESCRIPTIONS)


def method_applies(name: str, energy: Energy) -> bool:
    """DSM needs exact samples; every other method needs only the energy."""
    return name != "dsm" or energy.has_samples

