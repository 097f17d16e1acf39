"""Evaluation: episodes with the deterministic policy on separate environments, run in parallel."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from boltzrl.envs import make_vec_env
from boltzrl.training.loop_state import check_finite

EVAL_SEED_OFFSET = 10_000  # evaluation envs never share seeds with training envs


class Evaluator:
    """Runs `episodes` episodes at once (one per sub-env), each to its first end.

    An environment may add its own metrics by defining
    `evaluation_metrics(trajectories, reset_infos, out_dir, tag) -> dict[str, float]` on its unwrapped class:
    `trajectories[i]` is the (length + 1, obs_dim) array of episode i's observations, `reset_infos[i]` the info dict
    returned by its reset.
    """

    def __init__(self, env_id: str, episodes: int, seed: int):
        self.episodes, self.seed = episodes, seed
        self.envs = make_vec_env(env_id, episodes, seed + EVAL_SEED_OFFSET)
        self.metrics_hook = getattr(self.envs.envs[0].unwrapped, "evaluation_metrics", None)

    def run(self, agent, state, key, eval_index: int, out_dir: Path | None = None) -> dict[str, float]:
        n = self.episodes
        seeds = [self.seed + EVAL_SEED_OFFSET + eval_index * n + i for i in range(n)]
        obs, infos = self.envs.reset(seed=seeds)
        reset_infos = [{k: v[i] for k, v in infos.items() if not k.startswith("_")} for i in range(n)]
        trajectories = [[o] for o in obs] if self.metrics_hook else None
        returns, lengths = np.zeros(n), np.zeros(n, int)
        running = np.ones(n, bool)
        while running.any():
            key, k = jax.random.split(key)
            actions = np.asarray(agent.act(state, obs, k, deterministic=True)[0])
            check_finite("the evaluation policy returned {} actions, which were not passed to the environment",
                         actions)
            obs, reward, terminated, truncated, infos = self.envs.step(actions)
            check_finite("the environment returned a {} reward during evaluation", reward[running])
            returns += np.where(running, reward, 0.0)  # an ended episode's env may go on returning anything
            lengths += running
            done = np.logical_or(terminated, truncated)
            if trajectories is not None:
                for i in np.flatnonzero(running):
                    trajectories[i].append(infos["final_obs"][i] if done[i] else obs[i])
            running &= ~done
        result = {"eval_return": float(returns.mean()), "eval_return_std": float(returns.std()),
                  "eval_length": float(lengths.mean())}
        if self.metrics_hook is not None:
            trajs = [np.asarray(t) for t in trajectories]
            result.update(self.metrics_hook(trajs, reset_infos, out_dir, f"eval{eval_index:03d}"))
        return result

    def close(self):
        self.envs.close()
