"""Langevin dynamics with the exact score, the baselines of the toy comparison that learn nothing: they start
uniformly over the energy's box, in data space."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from boltzrl.sampling.energies import Energy


def _langevin_init(energy: Energy, key, n):
    box = jnp.asarray(energy.bounds, jnp.float32)
    return jax.random.uniform(key, (n, energy.dim), minval=box[:, 0], maxval=box[:, 1])


def unadjusted_langevin(energy: Energy, key, n: int, num_steps: int) -> jax.Array:
    """x ← x − ε∇E(x) + √(2ε)·z from uniform starts over the box: BlackJAX's SGLD kernel with the exact
    gradient is unadjusted Langevin."""
    import blackjax  # optional dependency (extra "sampling")

    grad_log_p = jax.grad(lambda xs, _: -jnp.sum(energy.energies(xs)))
    kernel = blackjax.sgld(grad_log_p)
    init_key, chain_key = jax.random.split(key)

    def step(x, step_key):
        return kernel.step(step_key, x, None, energy.langevin_step), None

    x, _ = jax.lax.scan(step, _langevin_init(energy, init_key, n), jax.random.split(chain_key, num_steps))
    return x


def mala(energy: Energy, key, n: int, num_steps: int) -> tuple[jax.Array, jax.Array]:
    """Metropolis-adjusted Langevin (BlackJAX), one chain per sample; returns (samples, acceptance rate)."""
    import blackjax

    kernel = blackjax.mala(lambda x: -energy.energy_fn(x), energy.langevin_step)
    init_key, chain_key = jax.random.split(key)
    states = jax.vmap(kernel.init)(_langevin_init(energy, init_key, n))

    def step(states, step_key):
        states, info = jax.vmap(kernel.step)(jax.random.split(step_key, n), states)
        return states, jnp.mean(info.acceptance_rate)

    states, acceptance = jax.lax.scan(step, states, jax.random.split(chain_key, num_steps))
    return states.position, jnp.mean(acceptance)
