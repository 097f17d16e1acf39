"""The policy entropy estimate of trained DQS checkpoints under both completions below score_std_min.

    python benchmarks/dqs/entropy_completion.py RUN [RUN ...]

For each run folder: 256 states from its replay buffer, 4 exploring samples (the behaviour chain) at each, and the
pre-tanh entropy per action dimension from `score_entropy` with the `gaussian` and the `curvature` completion, each
averaged over 20 estimator draws; beside them, the median over states of the variance the score's Jacobian at
score_std_min implies for each sample's neighbourhood over the 4 samples' variance (far below 1 if a state's
samples fall into several modes narrower than that std)."""

from __future__ import annotations

import sys
from datetime import date

import jax
import jax.numpy as jnp
import numpy as np

from boltzrl import diffusion, nets
from boltzrl.agents.dqs import ENTROPY_STD_LO, score_entropy
from boltzrl.agents.normalization import NormalizedState
from boltzrl.diffusion import pre_tanh
from boltzrl.diffusion.samplers import jacobian_rows
from boltzrl.training.evaluate_run import load_agent, load_run_config

STATES, SAMPLES, DRAWS = 256, 4, 20


def main():
    print(f"<!-- {date.today()}, jax {jax.__version__}: python benchmarks/dqs/entropy_completion.py "
          + " ".join(sys.argv[1:]) + " -->")
    print("| run | α | target / dim | H gaussian / dim | H curvature / dim | local variance / samples' variance |")
    print("|---|---|---|---|---|---|")
    for run in sys.argv[1:]:
        agent, state, _ = load_agent(run)
        if isinstance(state, NormalizedState):  # its networks take standardised observations
            sys.exit(f"{run} was trained with normalize_obs, which this script does not read yet.")
        _, cfg, _ = load_run_config(run)
        replay = np.load(f"{run}/checkpoint/replay.npz")
        rows = np.random.default_rng(0).choice(int(replay["size"]), STATES, replace=False)
        obs = jnp.asarray(np.repeat(replay["next_obs"][rows], SAMPLES, 0))
        alpha = jnp.exp(state.log_alpha)
        act_dim = replay["action"].shape[-1]
        actions, _ = agent.act(state, obs, jax.random.PRNGKey(1))
        u0 = pre_tanh(actions).reshape(STATES, SAMPLES, act_dim)
        obs3 = obs.reshape(STATES, SAMPLES, -1)
        net = nets.ScoreNet(cfg.actor_width, cfg.actor_blocks, act_dim, embed_dim=cfg.embed_dim)
        score_fn = lambda x, t: net.apply(state.score, obs3, x, t, alpha)
        schedule = diffusion.VESchedule(cfg.sigma_min, cfg.sigma_max)
        lo = cfg.score_std_min or ENTROPY_STD_LO
        keys = jax.random.split(jax.random.PRNGKey(2), DRAWS)
        h = {c: float(jnp.mean(jax.vmap(lambda k: score_entropy(score_fn, u0, schedule, k, cfg.entropy_nodes, lo, c))(
            keys))) / act_dim for c in ("gaussian", "curvature")}
        # local variance implied by the score at lo: Tweedie's posterior covariance lo²·(I + lo²·∇s) per point,
        # and the prior's v = posterior/(1 − posterior/lo²); against the samples' variance at the same state
        x = u0 + lo * jax.random.normal(jax.random.PRNGKey(3), u0.shape)
        jac = jacobian_rows(lambda y: score_fn(y, schedule.time_of_variance(lo**2)), x)
        a = jnp.clip(1.0 + lo**2 * jnp.diagonal(jac, axis1=-2, axis2=-1), 1e-4, 1.0)
        local = lo**2 * a / (1.0 - a + 1e-6)
        ratio = float(jnp.median(jnp.mean(local, 1) / jnp.var(u0, 1, ddof=1)))
        target = float(jnp.asarray(cfg.target_entropy_per_dim))
        print(f"| {run.rstrip('/').split('/')[-1]} | {float(alpha):.4f} | {target:.1f} | {h['gaussian']:.2f} | "
              f"{h['curvature']:.2f} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
