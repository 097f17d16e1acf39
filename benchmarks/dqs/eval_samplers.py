"""Evaluate a DQS run folder's checkpoint with each evaluation sampler (euler, ode, sde), same episodes.

    python eval_samplers.py cheetah_run 10 > cheetah_eval_samplers.md
"""

import dataclasses
import sys

import jax

from boltzrl.training.evaluate_run import load_agent
from boltzrl.training.evaluation import Evaluator
from boltzrl.training import config_from_dict
from boltzrl.training.run_folder import RunFolder, read_json

run, episodes = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
agent, state, train_cfg = load_agent(run)
evaluator = Evaluator(train_cfg.env, episodes, seed=123)
obs_dim = evaluator.envs.single_observation_space.shape[0]
act_dim = evaluator.envs.single_action_space.shape[0]
spec, agent_cfg, _ = config_from_dict(read_json(RunFolder(run).config_path))
print(f"Checkpoint of `{run}` after {int(state.steps)} updates; {episodes} evaluation episodes (seeds 123+), "
      "the same for every sampler.\n")
print("| eval sampler | return mean | return std |\n|---|---|---|")
for sampler in ("euler", "ode", "sde"):
    sampler_agent = spec.make(dataclasses.replace(agent_cfg, eval_sampler=sampler), obs_dim, act_dim)
    result = evaluator.run(sampler_agent, state, jax.random.PRNGKey(0), eval_index=0)
    print(f"| {sampler} | {result['eval_return']:.1f} | {result['eval_return_std']:.1f} |", flush=True)
evaluator.close()
