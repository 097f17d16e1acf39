"""Maximum-entropy pieces: the tanh-Gaussian policy and the loss that tunes the temperature α.

The tanh change of variables is the one the pre-tanh Boltzmann energy uses (`diffusion.log_tanh_jacobian`), so
a Gaussian policy and a diffusion policy over pre-tanh actions account for the box the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from boltzrl.diffusion import log_tanh_jacobian


def sample_tanh_gaussian(mean, log_std, key):
    """Reparameterised a = tanh(u), u ~ N(mean, exp(log_std)²), and log π(a) = Σ log N(u) − Σ log(1 − tanh² u)."""
    std = jnp.exp(log_std)
    u = mean + std * jax.random.normal(key, mean.shape)
    action = jnp.tanh(u)  # before the log-prob: this op order compiles to the program earlier SAC runs used
    return action, jax.scipy.stats.norm.logpdf(u, mean, std).sum(-1) - log_tanh_jacobian(u)


def alpha_loss(log_alpha, entropy, target_entropy):
    """log α·(H − H̄) with H held fixed: its gradient H − H̄ makes descent lower α while the policy's entropy is
    above the target and raise it while below (Haarnoja et al. 2018b, eq. 18 in log α)."""
    return log_alpha * jax.lax.stop_gradient(entropy - target_entropy)
