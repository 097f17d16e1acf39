"""The loop's configuration and the run's config.json: what a run folder says about how it was made."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import jax

from boltzrl import __version__
from boltzrl.agents import get_algo


@dataclass(frozen=True)
class TrainConfig:
    env: str = "Pendulum-v1"
    """Environment id (see `boltzrl list`)."""
    steps: int = 100_000
    """Total environment steps (transitions summed over the parallel envs)."""
    seed: int = 0
    """Root seed of the run."""
    num_envs: int = 1
    """Parallel training environments."""
    utd: float = 1.0
    """Gradient updates per environment step (update-to-data ratio)."""
    update_every: int = 1
    """Vector-env iterations between compiled update calls (each call runs the updates owed so far)."""
    warmup_steps: int = 5_000
    """Environment steps with uniformly random actions before learning starts."""
    batch_size: int = 256
    """Minibatch size (off-policy)."""
    buffer_size: int = 1_000_000
    """Replay capacity (FIFO)."""
    eval_every: int = 10_000
    """Environment steps between evaluations (the final step is always evaluated)."""
    eval_episodes: int = 10
    """Episodes per evaluation, run in parallel with the deterministic policy."""
    checkpoint_every: int = 10_000
    """Environment steps between checkpoints (0: only at the end and on interruption)."""
    log_every: int = 1_000
    """Environment steps between rows of train.csv and progress lines."""
    rollout_steps: int = 2048
    """Steps of each env in one rollout of an on-policy agent (its data per update: rollout_steps × num_envs)."""

    def validate(self) -> None:
        positive = ["steps", "num_envs", "update_every", "batch_size", "buffer_size", "eval_every", "eval_episodes",
                    "log_every", "rollout_steps"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}.")
        for name in ["utd", "warmup_steps", "checkpoint_every"]:
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be non-negative, got {getattr(self, name)}.")


CONFIG_FORMAT = 2
"""Version of config.json's layout (2: shared option names across agents, presets as data)."""
CHECKPOINT_FORMAT = 2
"""Version of the checkpoint's layout (loop.json fields, replay archive)."""


def check_format(saved: dict[str, Any], path) -> None:
    """Refuse, in one sentence, a run folder written by an older layout: its option names no longer parse."""
    if saved.get("format") != CONFIG_FORMAT:
        raise ValueError(f"{path} was written by an older boltzrl (config format {saved.get('format', 1)}, this "
                         f"version reads {CONFIG_FORMAT}); rerun it with this version.")


def run_config_dict(algo: str, preset: str | None, agent_cfg, train_cfg: TrainConfig) -> dict[str, Any]:
    return {
        "format": CONFIG_FORMAT,
        "algo": algo,
        "preset": preset,
        "agent": dataclasses.asdict(agent_cfg),
        "train": dataclasses.asdict(train_cfg),
        "versions": {"boltzrl": __version__, "jax": jax.__version__, "python": sys.version.split()[0]},
    }


def config_from_dict(d: dict[str, Any]):
    """(algo spec, agent config, train config) from a config.json dict."""
    check_format(d, "the run's config.json")
    from boltzrl.options import configs_from_values

    spec = get_algo(d["algo"])
    agent_cfg, train_cfg = configs_from_values(spec.config_cls, d["agent"], d["train"])
    return spec, agent_cfg, train_cfg
