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

    With `record` > 0 the first `record` episodes are rendered ("rgb_array") and `frames()` gives their frames
    after a `run` (see `boltzrl.video.FrameRecorder`); the others run without rendering, and the returns are the
    same either way.
    """

    def __init__(self, env_id: str, episodes: int, seed: int, record: int = 0):
        self.episodes, self.seed = episodes, seed
        if record:
            from boltzrl.video import recording_vec_env

            self.envs = recording_vec_env(env_id, episodes, seed + EVAL_SEED_OFFSET, min(record, episodes))
        else:
            self.envs = make_vec_env(env_id, episodes, seed + EVAL_SEED_OFFSET)
        self.recorders = self.envs.envs[:record]  # FrameRecorders
        self.metrics_hook = getattr(self.envs.envs[0].unwrapped, "evaluation_metrics", None)

    def run(self, agent, state, key, eval_index: int, out_dir: Path | None = None) -> dict[str, float]:
        n = self.episodes
        seeds = [self.seed + EVAL_SEED_OFFSET + eval_index * n + i for i in range(n)]
        for recorder in self.recorders:
            recorder.start()
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

    def frames(self) -> list[list[np.ndarray]]:
        """The frames of each recorded episode of the last `run`."""
        return [recorder.frames for recorder in self.recorders]

    @property
    def fps(self) -> float | None:
        """The frame rate the environment declares for its renders, if any."""
        return self.envs.envs[0].metadata.get("render_fps")

    def close(self):
        self.envs.close()
