"""How sharp can an RSSM-trained policy get? SDAC's policy loss on a fixed Q at one state.

Q(a) = −‖a − μ‖²/(2·s²) on the d-dimensional action box, so exp(Q/temperature) is a Gaussian of std s·√temperature
around μ (truncated to the box). For each chain (schedule, T) and number of reverse draws M, a fresh ε-network is
trained with the SDAC loss (policy proposal, truncated draws) and the per-dimension std of its samples is compared
with the Boltzmann policy's. A temperature near 0 (one-hot weights) shows the sharpest policy the chain can learn.

    python benchmarks/sdac/sharpness.py --dim 6 --updates 2000
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from boltzrl import diffusion as D
from boltzrl import nets


def fit(schedule_name: str, num_steps: int, num_draws: int, temperature: float, dim: int, updates: int,
        width: float, batch: int = 128, seed: int = 0, **schedule_kw):
    schedule = D.make_vp_schedule(schedule_name, num_steps, **schedule_kw)
    net = nets.EpsNet((256, 256), dim, "relu")
    mu = jnp.linspace(-0.4, 0.4, dim)
    obs = jnp.zeros((batch, 1))
    params = net.init(jax.random.PRNGKey(seed), obs, jnp.zeros((batch, dim)), jnp.zeros((), jnp.int32))
    opt = optax.adam(3e-4)

    def sample(params, key, n):
        return D.ddpm_sample(lambda x, t: net.apply(params, jnp.zeros((n, 1)), x, t), key, (n, dim), schedule)

    def q(a):
        return -jnp.sum((a - mu) ** 2, -1) / (2 * width**2)

    @jax.jit
    def train(params, key):
        def step(carry, key):
            params, opt_state = carry
            k_t, k_a, k_noise, k_draw = jax.random.split(key, 4)
            t = jax.random.randint(k_t, (batch,), 0, num_steps)
            a0 = sample(params, k_a, batch)
            a_t = D.vp_forward(a0, t, jax.random.normal(k_noise, a0.shape), schedule)
            draws, eps = D.rssm_reverse_draws(a_t, t, schedule, k_draw, num_draws, clip=1.0, truncate=True)
            weights = D.rssm_weights(q(draws), temperature=temperature)
            grads = jax.grad(lambda p: D.rssm_loss(net.apply(p, obs, a_t, t), eps, weights))(params)
            updates_, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates_), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, updates))
        a = sample(params, jax.random.PRNGKey(99), 2000)
        return a.std(0), jnp.sqrt(jnp.mean(jnp.sum((a - mu) ** 2, -1) / dim))

    std, rms = train(params, jax.random.PRNGKey(seed + 1))
    return float(jnp.exp(jnp.log(std).mean())), float(rms)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=6)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--width", type=float, default=0.1, help="s: the Boltzmann std at temperature 1")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1e-4, 1.0])
    parser.add_argument("--chains", nargs="+", default=["cosine:5", "cosine:10", "edm:5", "edm:10"],
                        help="schedule:T[:sigma_max[:rho]] (sigma_max and rho for edm)")
    parser.add_argument("--draws", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args()
    print(f"d = {args.dim}, {args.updates} updates; Boltzmann std at temperature τ: {args.width}·√τ "
          "(std: geometric mean over dimensions of the samples' std; rms: root-mean-square distance to the optimum)")
    print("| chain | M | temperature | Boltzmann std | policy std | rms to optimum | seconds |")
    print("|---|---|---|---|---|---|---|")
    for chain, m, temp in itertools.product(args.chains, args.draws, args.temperatures):
        name, steps, *extra = chain.split(":")
        kw = {}
        if extra:
            kw["sigma_max"] = float(extra[0])
        if len(extra) > 1:
            kw["rho"] = float(extra[1])
        start = time.perf_counter()
        std, rms = fit(name, int(steps), m, temp, args.dim, args.updates, args.width, **kw)
        print(f"| {chain} | {m} | {temp:g} | {args.width * np.sqrt(temp):.3f} | {std:.3f} | {rms:.3f} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
