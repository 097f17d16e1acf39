"""Evaluate the latest checkpoint of a run folder (`boltzrl eval`)."""

from __future__ import annotations

from pathlib import Path

import flax.serialization
import jax

from boltzrl.training.evaluation import Evaluator
from boltzrl.training import config_from_dict
from boltzrl.training.run_folder import CHECKPOINT, RunFolder


def load_agent(run: str | Path):
    """(agent, state, train config) restored from a run folder or its checkpoint folder."""
    path = Path(run)
    if path.name == CHECKPOINT:
        path = path.parent
    folder = RunFolder(path)
    if not folder.has_run():
        raise FileNotFoundError(f"{run} is not a run folder (no config.json).")
    agent_file = folder.checkpoint_dir / "agent.msgpack"
    if not agent_file.exists():
        raise FileNotFoundError(f"{run} has no checkpoint yet.")
    spec, agent_cfg, train_cfg = config_from_dict(folder.read_config(), folder.config_path)
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


def evaluate_run(run: str | Path, episodes: int = 10, seed: int = 0) -> dict[str, float]:
    agent, state, train_cfg = load_agent(run)
    evaluator = Evaluator(train_cfg.env, episodes, seed)
    try:
        return evaluator.run(agent, state, jax.random.PRNGKey(seed), eval_index=0, out_dir=None)
    finally:
        evaluator.close()
