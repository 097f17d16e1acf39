"""The acting trade-off of one trained DQS checkpoint: evaluation return and milliseconds per action against the
number of chain steps N, the time grid and the step rule, on the same evaluation episodes.

The score network is a function of continuous time, so one checkpoint can be sampled with any chain. For each
chain: the return over `episodes` episodes with the same seeds of each evaluation sampler (euler: noise-free with
the reverse-SDE drift, the default; ode: probability flow; sde: the exploring policy itself, as it acts in
training), and the median milliseconds of one behaviour action (the exploring chain) and one evaluation action for
a single state, as the training loop and an evaluation ask for them.

    python benchmarks/dqs/acting_tradeoff.py benchmarks/dqs/reacher_hard_auto 10 > benchmarks/dqs/acting_tradeoff.md

A third argument `trained` keeps only the chain the checkpoint was trained with, to compare the evaluation samplers
on many episodes:

    python benchmarks/dqs/acting_tradeoff.py benchmarks/dqs/reacher_hard_auto 100 trained
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import sys
import time
from datetime import date

import jax
import numpy as np

from boltzrl.agents.dqs import EVAL_SAMPLERS
from boltzrl.training.evaluate_run import load_agent, load_run_config
from boltzrl.training.evaluation import Evaluator

# (time grid, step rule, N): the paper's uniform Euler chain, the same rule on the edm grid, and ancestral steps.
CHAINS = [("uniform", "euler", n) for n in (5, 10, 20)] + [("edm", "euler", n) for n in (5, 8, 20)] + \
         [("edm", "ancestral", n) for n in (3, 5, 8, 20)]


def ms_per_action(agent, state, obs, deterministic: bool, repeats: int = 200) -> float:
    jax.block_until_ready(agent.act(state, obs, jax.random.PRNGKey(0), deterministic=deterministic)[0])  # compile
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(agent.act(state, obs, jax.random.PRNGKey(i + 1), deterministic=deterministic)[0])
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main():
    run, episodes = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    trained_only = sys.argv[3:] == ["trained"]
    if sys.argv[3:] and not trained_only:
        sys.exit(f"unknown option {sys.argv[3:]}; the only one is `trained`")
    _, state, train_cfg = load_agent(run)
    spec, agent_cfg, _ = load_run_config(run)
    chains = [(agent_cfg.time_grid, agent_cfg.sampler_step, agent_cfg.denoising_steps)] if trained_only else CHAINS
    evaluator = Evaluator(train_cfg.env, episodes, seed=123)
    obs_dim = evaluator.envs.single_observation_space.shape[0]
    act_dim = evaluator.envs.single_action_space.shape[0]
    obs = np.zeros((1, obs_dim), np.float32)
    cores = len(os.sched_getaffinity(0))
    print(f"<!-- {date.today()}, {platform.machine()} {os.cpu_count()} CPUs (this process on {cores}), "
          f"jax {jax.__version__} -->")
    print(f"Checkpoint of `{run}` ({train_cfg.env}) after {int(state.steps)} updates, trained with "
          f"time_grid={agent_cfg.time_grid}, sampler_step={agent_cfg.sampler_step}, N={agent_cfg.denoising_steps} "
          f"(evaluation sampler {agent_cfg.eval_sampler}); {episodes} evaluation episodes (seeds 123+), the same for "
          "every chain and sampler.\n")
    print("| time grid | step | N | " + " | ".join(f"return, {s} (± std)" for s in EVAL_SAMPLERS)
          + " | ms / behaviour action | ms / evaluation action (euler) |\n" + "|---" * (len(EVAL_SAMPLERS) + 5) + "|")
    for grid, step, n in chains:
        returns = []
        for sampler in EVAL_SAMPLERS:
            config = dataclasses.replace(agent_cfg, time_grid=grid, sampler_step=step, denoising_steps=n,
                                         eval_sampler=sampler)
            agent = spec.make(config, obs_dim, act_dim)
            result = evaluator.run(agent, state, jax.random.PRNGKey(0), eval_index=0)
            returns.append(f"{result['eval_return']:.1f} (± {result['eval_return_std']:.1f})")
            if sampler == "euler":
                behave, evaluate = ms_per_action(agent, state, obs, False), ms_per_action(agent, state, obs, True)
        print(f"| {grid} | {step} | {n} | " + " | ".join(returns) + f" | {behave:.2f} | {evaluate:.2f} |", flush=True)
    evaluator.close()


if __name__ == "__main__":
    main()
