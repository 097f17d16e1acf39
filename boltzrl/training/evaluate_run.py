"""Evaluate the latest checkpoint of a run folder (`boltzrl eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.serialization
import jax

from boltzrl.training.evaluation import Evaluator
from boltzrl.training import config_from_dict
from boltzrl.training.run_folder import CHECKPOINT, RunFolder


def run_folder_of(run: str | Path) -> RunFolder:
    """The RunFolder of a run folder or of its checkpoint folder."""
    path = Path(run)
    return RunFolder(path.parent if path.name == CHECKPOINT else path)


def load_run_config(run: str | Path):
    """(algorithm spec, agent config, train config) of a run folder or its checkpoint folder."""
    folder = run_folder_of(run)
    if not folder.has_run():
        raise FileNotFoundError(f"{run} is not a run folder (no config.json).")
    return config_from_dict(folder.read_config(), folder.config_path)


def load_agent(run: str | Path):
    """(agent, state, train config) restored from a run folder or its checkpoint folder."""
    spec, agent_cfg, train_cfg = load_run_config(run)
    agent_file = run_folder_of(run).checkpoint_dir / "agent.msgpack"
    if not agent_file.exists():
        raise FileNotFoundError(f"{run} has no checkpoint yet.")
    from boltzrl.envs import make_env

    env = make_env(train_cfg.env, 0)
    agent = spec.make(agent_cfg, env.observation_space.shape[0], env.action_space.shape[0])
    env.close()
    template = agent.init(jax.random.PRNGKey(0))
    try:
        state = flax.serialization.from_bytes(template, agent_file.read_bytes())
    except Exception as exc:  # msgpack raises several types on corrupt input
        raise ValueError(f"the checkpoint {agent_file} is corrupt or from another version ({exc}).") from exc
    return agent, state, train_cfg


def evaluate_run(run: str | Path, episodes: int = 10, seed: int = 0,
                 video_dir: str | Path | None = None) -> dict[str, Any]:
    """The evaluation's metrics (eval_return, eval_return_std, eval_length, ...). With `video_dir`, the first
    `VIDEO_EPISODES` episodes are also written there as `step{N}-seed{S}-episode{i}.mp4` (N: the checkpoint's env
    step), listed under "videos"; an env that cannot render is refused before anything runs."""
    record = 0
    if video_dir is not None:
        from boltzrl import video  # before any env is built: it chooses MuJoCo's headless GL backend

        video.require_writer()
        record = min(episodes, video.VIDEO_EPISODES)
    agent, state, train_cfg = load_agent(run)
    if record:
        video.check_can_render(train_cfg.env)
    evaluator = Evaluator(train_cfg.env, episodes, seed, record=record)
    try:
        result = evaluator.run(agent, state, jax.random.PRNGKey(seed), eval_index=0, out_dir=None)
        if record:
            step = run_folder_of(run).checkpoint_step()
            fps = evaluator.fps or video.DEFAULT_FPS
            result["videos"] = [str(video.write_mp4(Path(video_dir) / f"step{step}-seed{seed}-episode{i}.mp4",
                                                    frames, fps))
                                for i, frames in enumerate(evaluator.frames())]
        return result
    finally:
        evaluator.close()
