"""Where a trained DQS policy fails on reacher-hard, and whether the critic knows better than the policy.

    python benchmarks/dqs/reacher_failures.py RUN [RUN ...] [--episodes 30]

For each run folder's final checkpoint, the same episodes (seeds 1000+) with two action rules: the run's own
evaluation (the noise-free chain) and best-of-16 (16 samples of the exploring policy, the one the critics' value,
reduced as the run reduces them, ranks highest). For each, the mean return, the share of episodes above 100 (the
finger found the target) and, over the failed episodes, the median closest distance between finger and target: a
failure that passes near the target is a control problem, one that never comes near is a policy (and critic) that
does not know the way.
If best-of-16 rescues the failures the critic knows the way and the policy lags it; if not, the critic does not.
The third rule is the critics' exact greedy action, the best of a 41 × 41 grid over the 2-D action box: what the
critics know with no sampler in between.
Each target can be reached with the elbow bent either way (wrist angle of either sign); the last columns give the
share of episodes that end with a positive wrist angle, among the successes and among the failures, and how far
from the target the failures end: a policy that has learned one of the two arm configurations ends every success
with the same sign."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from boltzrl import diffusion
from boltzrl.agents import dqs
from boltzrl.agents.normalization import NormalizedState
from boltzrl.envs import make_env
from boltzrl.training.evaluate_run import load_agent, load_run_config

CANDIDATES = 16
GRID = 41


class Episodes(NamedTuple):
    """One episode per env: returns, closest and final finger-target distances, final wrist angles and last
    observations."""

    returns: np.ndarray
    closest: np.ndarray
    final: np.ndarray
    wrist: np.ndarray
    last_obs: np.ndarray


def rollout(envs, act, key) -> Episodes:
    """One episode per env (seeds 1000+), all stepped together with act(obs, key)."""
    obs = np.stack([env.reset(seed=1000 + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    returns, closest = np.zeros(len(envs)), np.full(len(envs), np.inf)
    for _ in range(1000):
        key, step_key = jax.random.split(key)
        actions = np.asarray(act(jnp.asarray(obs), step_key))
        for i, env in enumerate(envs):
            obs[i], reward, *_ = env.step(actions[i])
            returns[i] += reward
            closest[i] = min(closest[i], float(env.unwrapped.physics.finger_to_target_dist()))
    final = np.array([float(env.unwrapped.physics.finger_to_target_dist()) for env in envs])
    wrist = np.array([float(env.unwrapped.physics.named.data.qpos["wrist"][0]) for env in envs])
    return Episodes(returns, closest, final, wrist, obs)


def _median(values) -> str:
    return f"{np.median(values):.3f}" if len(values) else "–"


def _share(flags) -> str:
    return f"{flags.sum()} / {len(flags)}" if len(flags) else "–"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", type=int, default=30)
    args = parser.parse_args()
    print(f"<!-- {date.today()}, jax {jax.__version__}: python benchmarks/dqs/reacher_failures.py "
          f"{' '.join(args.runs)} --episodes {args.episodes} -->")
    print("| run | action rule | return | episodes > 100 | closest distance in the failed ones (median) | final "
          "distance in the failed ones (median) | wrist > 0 at the end: successes | failures |")
    print("|---|---|---|---|---|---|---|---|")
    envs = [make_env("reacher-hard", i) for i in range(args.episodes)]
    for run in args.runs:
        agent, state, _ = load_agent(run)
        if isinstance(state, NormalizedState):  # its networks take standardised observations
            sys.exit(f"{run} was trained with normalize_obs, which this script does not read yet.")
        _, cfg, _ = load_run_config(run)
        q_value = dqs.critic_value(cfg)

        def best_by_critics(obs, candidates):
            """candidates (B, N, d) for the B states → the one the critics' value ranks highest, (B, d)."""
            batch, n, _ = candidates.shape
            q = q_value(state.critic, jnp.repeat(obs, n, 0), candidates.reshape(batch * n, -1))
            return diffusion.best_of_n(candidates, q.reshape(batch, n))

        def best_of_n(obs, key):
            candidates = agent.act(state, jnp.repeat(obs, CANDIDATES, 0), key)[0]
            return best_by_critics(obs, candidates.reshape(obs.shape[0], CANDIDATES, -1))

        side = jnp.linspace(-1.0, 1.0, GRID)
        grid = jnp.stack(jnp.meshgrid(side, side, indexing="ij"), -1).reshape(-1, 2)

        def grid_greedy(obs, key):
            del key
            return best_by_critics(obs, jnp.broadcast_to(grid, (obs.shape[0],) + grid.shape))

        rules = {"evaluation chain": lambda obs, key: agent.act(state, obs, key, True)[0],
                 f"best of {CANDIDATES} by the critics": best_of_n,
                 f"the critics' greedy action on a {GRID} × {GRID} grid": grid_greedy}
        for name, rule in rules.items():
            returns, closest, final, wrist, _ = rollout(envs, jax.jit(rule), jax.random.PRNGKey(0))
            found = returns > 100
            print(f"| {run.rstrip('/').split('/')[-1]} | {name} | {returns.mean():.1f} | {found.sum()} / "
                  f"{len(found)} | {_median(closest[~found])} | {_median(final[~found])} | "
                  f"{_share(wrist[found] > 0)} | {_share(wrist[~found] > 0)} |", flush=True)


if __name__ == "__main__":
    main()
