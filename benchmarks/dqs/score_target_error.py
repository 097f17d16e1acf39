"""How far a K-sample iDEM score target is from the score it estimates, against the noise level, on a trained
DQS checkpoint's own critics, temperature and replay data.

The score of p_σ = π ∗ N(0, σ²) with π ∝ exp(−E) has two self-normalised importance-sampling estimates from the
same K draws x_k = x + σ·ε_k, weights w_k = softmax_k(−E(x_k)):

    gradient form (the iDEM target):  S_grad = Σ_k w_k·(−∇E(x_k))
    Tweedie form (no gradient):       S_tw   = Σ_k w_k·(x_k − x)/σ²

Both are consistent; their errors differ with σ. For each σ the reference is the gradient form from many
importance-sampled draws of the posterior p(x0 | x) whose proposal also covers where the policy network puts its
actions (`reference_chunk`; its distance to the Tweedie form from the same draws is printed as a check). Over
`repeats` independent K-draw targets at `points` replay (state, action) pairs noised to that σ, each estimator's
error is split into its bias (the squared distance of its mean over repeats to the reference: what a regression on
many such targets learns instead of the score) and its total mean squared error; both relative to the reference's
mean squared norm.

    python benchmarks/dqs/score_target_error.py benchmarks/dqs/walker_run_auto_seed2 16
"""

from __future__ import annotations

import platform
import sys
from datetime import date

import jax
import jax.numpy as jnp
import numpy as np

from boltzrl.agents import dqs
from boltzrl.agents.normalization import NormalizedState
from boltzrl.diffusion import boltzmann_energy, pre_tanh
from boltzrl.training.evaluate_run import load_agent, load_run_config
from boltzrl.training.run_folder import RunFolder

STDS = (0.01, 0.03, 0.1, 0.2, 0.5, 1.0)


def estimates(energy, obs, x, std, noise):
    """(S_grad, S_tw, log Σ_k exp(−E(x_k))) at x (d,) for one state from standard normal draws noise (K, d)."""
    points = x + std * noise
    e, grad_e = jax.vmap(jax.value_and_grad(energy), (0, None))(points, obs)
    w = jax.nn.softmax(-e)
    return w @ -grad_e, w @ (points - x) / std**2, jax.nn.logsumexp(-e)


def log_normal(y, mean, std):
    return -0.5 * jnp.sum((y - mean) ** 2, -1) / std**2 - y.shape[-1] * jnp.log(std * jnp.sqrt(2 * jnp.pi))


def reference_chunk(energy, obs, x, std, policy, key, size: int, kernel: float = 0.1):
    """Both forms at x (d,) from `size` draws of the posterior p(x0 | x) ∝ π(x0)·N(x; x0, σ²) by importance
    sampling from an equal mixture of iDEM's proposal N(x, σ²) and kernels N(u_j, kernel²) at the policy network's
    samples u_j (M, d): where σ is large the first almost never lands where π has its mass, the second does as far
    as the network has learnt π, and the mixture is never worse than half of either. Also returns the log of the
    total weight, to combine chunks."""
    pick_key, a_key, b_key = jax.random.split(key, 3)
    half = size // 2
    near_x = x + std * jax.random.normal(a_key, (half, x.shape[-1]))
    near_policy = policy[jax.random.randint(pick_key, (half,), 0, policy.shape[0])] + kernel * jax.random.normal(
        b_key, (half, x.shape[-1]))
    x0 = jnp.concatenate([near_x, near_policy])
    log_kernels = jax.nn.logsumexp(jax.vmap(lambda u: log_normal(x0, u, kernel))(policy), 0) - jnp.log(len(policy))
    log_q = jnp.logaddexp(log_normal(x0, x, std), log_kernels) - jnp.log(2.0)
    e, grad_e = jax.vmap(jax.value_and_grad(energy), (0, None))(x0, obs)
    log_w = -e + log_normal(x0, x, std) - log_q
    w = jax.nn.softmax(log_w)
    return w @ -grad_e, w @ (x0 - x) / std**2, jax.nn.logsumexp(log_w)


def reference(chunk_fn, energy, obs, x, std, policy, key, chunks: int, chunk: int):
    """Both forms with chunks × chunk posterior draws per point, the chunks weighted by their total weight."""
    parts = [chunk_fn(energy, obs, x, std, policy, jax.random.split(jax.random.fold_in(key, c), len(x)), chunk)
             for c in range(chunks)]
    weights = jax.nn.softmax(jnp.stack([p[2] for p in parts]), axis=0)[..., None]  # (chunks, points, 1)
    return [jnp.sum(weights * jnp.stack([p[i] for p in parts]), 0) for i in (0, 1)]


def main():
    run, k = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 16
    points, repeats, ref_chunks, ref_chunk, policy_samples = 32, 64, 4, 4096, 64
    agent, state, _ = load_agent(run)
    if isinstance(state, NormalizedState):  # its networks take standardised observations
        sys.exit(f"{run} was trained with normalize_obs, which this script does not read yet.")
    _, agent_cfg, _ = load_run_config(run)
    q_value = dqs.critic_value(agent_cfg)
    alpha = float(jnp.exp(state.log_alpha)) if hasattr(state, "log_alpha") else agent_cfg.alpha
    q_fn = lambda s, a: q_value(state.critic, s, a)
    energy = boltzmann_energy(q_fn, alpha)
    replay = np.load(RunFolder(run).checkpoint_dir / "replay.npz")
    rows = np.random.default_rng(0).choice(int(replay["size"]), points, replace=False)
    obs, action = jnp.asarray(replay["obs"][rows]), jnp.asarray(replay["action"][rows])
    d = action.shape[-1]
    per_point = jax.jit(jax.vmap(estimates, (None, 0, 0, None, 0)), static_argnums=0)
    chunk_fn = jax.jit(jax.vmap(reference_chunk, (None, 0, 0, None, 0, 0, None)), static_argnums=(0, 6))
    many_obs = jnp.repeat(obs, policy_samples, axis=0)
    policy = pre_tanh(agent.act(state, many_obs, jax.random.PRNGKey(7))[0]).reshape(points, policy_samples, d)

    print(f"<!-- {date.today()}, {platform.machine()} {jax.device_count()} device(s), jax {jax.__version__}; "
          f"{run}, α = {alpha:.4g}, {points} replay points, K = {k}, {repeats} repeats, "
          f"reference K = {ref_chunks * ref_chunk} -->")
    print("| std σ | reference ‖S‖ (median) | Tweedie vs gradient at reference K | gradient form: bias | "
          "gradient form: error | Tweedie form: bias | Tweedie form: error |")
    print("|---|---|---|---|---|---|---|")
    for i, std in enumerate(STDS):
        key = jax.random.PRNGKey(i)
        x = pre_tanh(action) + std * jax.random.normal(key, action.shape)
        ref_grad, ref_tw = reference(chunk_fn, energy, obs, x, std, policy, jax.random.fold_in(key, 1), ref_chunks,
                                     ref_chunk)
        relative = lambda s: float(jnp.mean(jnp.sum((s - ref_grad) ** 2, -1)) / jnp.mean(jnp.sum(ref_grad**2, -1)))
        draws = [per_point(energy, obs, x, std, jax.random.normal(jax.random.fold_in(key, 100 + r), (points, k, d)))
                 for r in range(repeats)]
        cells = []
        for form in (0, 1):
            targets = jnp.stack([draw[form] for draw in draws])
            cells += [relative(targets.mean(0)), float(np.mean([relative(s) for s in targets]))]
        norm = float(np.median(np.linalg.norm(ref_grad, axis=-1)))
        print(f"| {std} | {norm:.3g} | {relative(ref_tw):.3g} | " + " | ".join(f"{c:.3g}" for c in cells) + " |")


if __name__ == "__main__":
    main()
