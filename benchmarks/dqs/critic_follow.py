"""Does a trained DQS policy on reacher-hard follow its critics, and do the critics know where it fails?

    python benchmarks/dqs/critic_follow.py RUN [RUN ...] [--episodes 30]

reacher-hard has two action dimensions, so the Boltzmann policy of the critics, exp(min_j Q_j(s, a)/α) on the box,
can be computed exactly on a 41 × 41 grid of actions. For each run folder's final checkpoint:
- at 64 states of its replay: how far the policy's mean (256 samples of the exploring chain) lies from that exact
  Boltzmann policy's mean, both spreads, and E_Boltzmann[Q] − E_policy[Q] in units of α (0: the policy gets all the
  value its critics offer at that temperature);
- at the last state of each failed evaluation episode (the same episodes, seeds 1000+, as reacher_failures.py;
  return ≤ 100, the arm at rest away from the target): the critics' value there (the exact Boltzmann policy's
  E[Q]), against the 0 reward such an episode collects, and the same gap; the successful episodes' last states
  (the finger on the target) for comparison, whose value would be 100 if the finger stayed there for ever.
A policy that follows its critics but fails shows critics that value the failed states as if the target were
reached: a critic error, not a sampler error."""

from __future__ import annotations

import argparse
import sys
from datetime import date

import jax
import jax.numpy as jnp
import numpy as np

from boltzrl.agents import dqs
from boltzrl.agents.normalization import NormalizedState
from boltzrl.envs import make_env
from boltzrl.training.evaluate_run import load_agent, load_run_config
from reacher_failures import rollout

GRID = np.stack(np.meshgrid(*[np.linspace(-0.999, 0.999, 41)] * 2), -1).reshape(-1, 2).astype(np.float32)
REPLAY_STATES, POLICY_SAMPLES = 64, 256


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", type=int, default=30)
    args = parser.parse_args()
    print(f"<!-- {date.today()}, jax {jax.__version__}: python benchmarks/dqs/critic_follow.py "
          f"{' '.join(args.runs)} --episodes {args.episodes} -->")
    print("| run | α | replay states: policy mean − Boltzmann mean (median distance) | spread, policy / Boltzmann "
          "(median std) | value gap / α (median) | failed episodes | their last states: the critics' value (median) "
          "| value gap / α (median) | successful episodes' last states: the critics' value (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    envs = [make_env("reacher-hard", i) for i in range(args.episodes)]
    for run in args.runs:
        agent, state, _ = load_agent(run)
        if isinstance(state, NormalizedState):  # its networks take standardised observations
            sys.exit(f"{run} was trained with normalize_obs, which this script does not read yet.")
        _, cfg, _ = load_run_config(run)
        q_value = dqs.critic_value(cfg)
        alpha = float(jnp.exp(state.log_alpha))
        q_of = jax.jit(lambda obs, actions: q_value(state.critic, jnp.broadcast_to(obs, actions.shape[:1] + obs.shape),
                                                    actions))
        sample = jax.jit(lambda obs, key: agent.act(state, jnp.broadcast_to(obs, (POLICY_SAMPLES,) + obs.shape),
                                                    key)[0])

        def compare(obs, key):
            """(distance of the means, policy std, Boltzmann std, Boltzmann E[Q], value gap / α) at one state."""
            q = np.asarray(q_of(obs, GRID))
            weights = np.exp((q - q.max()) / alpha)
            weights /= weights.sum()
            mean = weights @ GRID
            spread = np.sqrt(weights @ (GRID - mean) ** 2).mean()
            actions = np.asarray(sample(obs, key))
            boltzmann_value = weights @ q
            gap = (boltzmann_value - np.asarray(q_of(obs, actions)).mean()) / alpha
            return np.linalg.norm(actions.mean(0) - mean), actions.std(0).mean(), spread, boltzmann_value, gap

        replay = np.load(f"{run}/checkpoint/replay.npz")
        rows = np.random.default_rng(0).choice(int(replay["size"]), REPLAY_STATES, replace=False)
        at_replay = np.array([compare(obs, jax.random.PRNGKey(i))
                              for i, obs in enumerate(replay["obs"][rows].astype(np.float32))])
        episodes = rollout(envs, jax.jit(lambda obs, key: agent.act(state, obs, key, True)[0]),
                           jax.random.PRNGKey(0))
        returns = episodes.returns
        last = np.array([compare(obs, jax.random.PRNGKey(i)) for i, obs in enumerate(episodes.last_obs)])
        failed, found = last[returns <= 100], last[returns > 100]
        med = lambda values: np.median(values) if len(values) else float("nan")
        print(f"| {run.rstrip('/').split('/')[-1]} | {alpha:.3f} | {med(at_replay[:, 0]):.2f} | "
              f"{med(at_replay[:, 1]):.2f} / {med(at_replay[:, 2]):.2f} | {med(at_replay[:, 4]):.1f} | "
              f"{len(failed)} / {len(returns)} | {med(failed[:, 3]):.1f} | {med(failed[:, 4]):.1f} | "
              f"{med(found[:, 3]):.1f} |", flush=True)


if __name__ == "__main__":
    main()
