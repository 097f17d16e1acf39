"""A trained DQS checkpoint evaluated at colder temperatures: the return of the evaluation chain sampling the
Boltzmann policy at α·c for each scale c (`eval_alpha_scale`), on the same episodes. The score network is
conditioned on α, so c < 1 asks the same network for a policy nearer the critics' greedy action; it can only be
trusted within the α range the run visited, which the header gives from the run's log.

    python benchmarks/dqs/eval_temperature.py benchmarks/dqs/RUN 100 [1 0.5 0.25] >> benchmarks/dqs/eval_temperature.md
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from datetime import date

import jax
import numpy as np

from boltzrl.agents.normalization import NormalizedState
from boltzrl.training.evaluate_run import load_agent, load_run_config, run_folder_of
from boltzrl.training.evaluation import Evaluator

DEFAULT_SCALES = (1.0, 0.5, 0.25)


def visited_alphas(run: str) -> tuple[float, float]:
    alphas = [float(row["alpha"]) for row in run_folder_of(run).train_log.rows() if row.get("alpha")]
    return min(alphas), max(alphas)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    run, episodes = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    scales = [float(c) for c in sys.argv[3:]] or DEFAULT_SCALES
    _, state, train_cfg = load_agent(run)
    spec, agent_cfg, _ = load_run_config(run)
    dqs_state = state.agent if isinstance(state, NormalizedState) else state
    if not hasattr(dqs_state, "log_alpha"):
        sys.exit(f"{run} was trained with alpha_schedule={agent_cfg.alpha_schedule}; this compares auto runs")
    alpha, (lowest, highest) = float(np.exp(dqs_state.log_alpha)), visited_alphas(run)
    evaluator = Evaluator(train_cfg.env, episodes, seed=123)
    obs_dim = evaluator.envs.single_observation_space.shape[0]
    act_dim = evaluator.envs.single_action_space.shape[0]
    cores = len(os.sched_getaffinity(0))
    print(f"<!-- {date.today()}, {platform.machine()} {os.cpu_count()} CPUs (this process on {cores}), "
          f"jax {jax.__version__} -->")
    print(f"Checkpoint of `{run}` ({train_cfg.env}) after {int(dqs_state.steps)} updates, α = {alpha:.4f} (the run's "
          f"logged α: {lowest:.4f}–{highest:.4f}); evaluation sampler {agent_cfg.eval_sampler}, {episodes} "
          "episodes (seeds 123+), the same for every temperature.\n")
    print("| α scale | α | return (± std over episodes) |\n|---|---|---|")
    for scale in scales:
        agent = spec.make(dataclasses.replace(agent_cfg, eval_alpha_scale=scale), obs_dim, act_dim)
        result = evaluator.run(agent, state, jax.random.PRNGKey(0), eval_index=0)
        print(f"| {scale:g} | {alpha * scale:.4f} | {result['eval_return']:.1f} (± {result['eval_return_std']:.1f}) |",
              flush=True)
    evaluator.close()


if __name__ == "__main__":
    main()
