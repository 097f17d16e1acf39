"""The loop's configuration and the run's config.json: what a run folder says about how it was made."""

from __future__ import annotations

import dataclasses
import math
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
    exploration_noise_beta: float = 0.0
    """Exponent β of the 1/f^β spectrum over time of the exploring policy's noise in each episode (off-policy):
    β = 0 independent at every step, 1 pink (successive actions correlated, each still a sample of the policy), 2 near
    a random walk (DQS's auto preset: 0.5). Needs an agent that takes its noise from outside: sac, td3, ddpg, dqs with
    ancestral steps (`boltzrl.training.exploration_noise`)."""
    exploration_noise_horizon: int = 0
    """Environment steps over which the correlated share of that noise falls linearly from 1 to 0, the rest
    independent at every step (0: correlated for the whole run)."""
    deterministic_episode_share: float = 0.0
    """Share of the training episodes after the warm-up (off-policy, drawn per episode) collected with the
    deterministic evaluation policy instead of the exploring one: they put into replay the states where that policy
    comes to rest, which exploring episodes rarely visit, so the critics learn what resting there is worth."""
    deterministic_episodes_from: int = 0
    """Environment steps before which every training episode explores: the share applies to the episodes that start
    from then on, and until then the run draws exactly what it would without it."""
    n_step: int = 1
    """Rewards summed into each replayed transition (off-policy): the critic's target becomes r_t + γ·r_{t+1} + … +
    γ^(n−1)·r_{t+n−1} + γ^n·Q(s_{t+n}, a′), cut short at an episode's end (1: the one-step target)."""
    n_step_anneal_steps: int = 0
    """Environment steps over which n falls in whole steps from n_step to 1, each value held for an equal share of
    them, so that the bias of the exploring policy's returns leaves the targets once they have spread the reward
    (0: n_step for the whole run)."""
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
    wandb_project: str = ""
    """Weights & Biases project that every TensorBoard scalar is also sent to ("": off; needs boltzrl[wandb])."""

    def validate(self) -> None:
        positive = ["steps", "num_envs", "update_every", "n_step", "batch_size", "buffer_size", "eval_every",
                    "eval_episodes", "log_every", "rollout_steps"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}.")
        for name in ["seed", "utd", "warmup_steps", "checkpoint_every", "exploration_noise_horizon",
                     "n_step_anneal_steps", "deterministic_episodes_from"]:
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"--{name.replace('_', '-')} must be non-negative, got {getattr(self, name)}.")
        if not math.isfinite(self.utd):
            raise ValueError(f"--utd must be finite, got {self.utd}.")
        if not 0.0 <= self.deterministic_episode_share <= 1.0:
            raise ValueError(f"--deterministic-episode-share must lie in [0, 1], got "
                             f"{self.deterministic_episode_share}.")
        if self.deterministic_episodes_from and not self.deterministic_episode_share:
            raise ValueError("--deterministic-episodes-from says when --deterministic-episode-share starts; "
                             "give a share above 0 too.")
        if not 0.0 <= self.exploration_noise_beta <= 2.0:
            raise ValueError(f"--exploration-noise-beta must lie in [0, 2], got {self.exploration_noise_beta}.")
        if self.n_step_anneal_steps and self.n_step == 1:
            raise ValueError("--n-step-anneal-steps lowers n from --n-step to 1; give --n-step 2 or more.")
        if self.wandb_project:
            from boltzrl.training.wandb_log import require_wandb

            try:
                require_wandb()
            except ImportError as exc:
                raise ValueError(str(exc)) from None

    def n_step_at(self, env_steps: int) -> int:
        """The n of n-step targets after env_steps environment steps (see n_step_anneal_steps)."""
        if not self.n_step_anneal_steps:
            return self.n_step
        remaining = max(0.0, 1.0 - env_steps / self.n_step_anneal_steps)
        return 1 + math.ceil((self.n_step - 1) * remaining)

    def check_can_learn(self, on_policy: bool, discount: float | None, n_step_lower_bound: bool = False) -> None:
        """Refuse, in one sentence, an off-policy run that would end without a single gradient step: one whose
        warm-up lasts the whole run, or whose minibatch is larger than the replay buffer will ever hold; n-step
        returns where they cannot be built: for an on-policy agent (only replay builds them) or for an agent whose
        config has no discount (`discount` None) to sum them with; and a lower bound on n-step targets without them."""
        if n_step_lower_bound and self.n_step == 1:
            raise ValueError("--n-step-lower-bound bounds n-step targets by one-step ones; give --n-step 2 or more.")
        if self.n_step != 1:
            if on_policy:
                raise ValueError(f"--n-step {self.n_step} applies to off-policy agents only (an on-policy agent's "
                                 f"returns come from its rollouts); leave it at 1.")
            if discount is None:
                raise ValueError(f"--n-step {self.n_step} sums rewards with the agent's discount, and this agent's "
                                 f"config has no gamma; leave it at 1.")
        if on_policy:
            return  # every rollout ends in an update
        if self.warmup_steps >= self.steps:
            raise ValueError(f"--warmup-steps ({self.warmup_steps}) must be smaller than --steps ({self.steps}), "
                             f"or the run never learns.")
        held = min(self.buffer_size, self.steps)
        if self.batch_size > held:
            what = "--buffer-size" if self.buffer_size < self.steps else "--steps"
            raise ValueError(f"--batch-size ({self.batch_size}) is larger than the {held} transitions the replay "
                             f"buffer will ever hold ({what} {held}), so no update would ever happen.")


RESUMABLE = frozenset({"steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every", "wandb_project"})
"""TrainConfig fields that `--resume` may change: the run's length, the cadence of what it writes and where its
scalars are mirrored. Everything else (the env, the seed, how data is collected and learnt from, every agent
option) is fixed when a run starts."""


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def resume_conflicts(saved_algo: str, saved_preset: str | None, saved_agent, saved_train: TrainConfig, algo=None,
                     preset=None, agent_cfg=None, train_cfg: TrainConfig | None = None) -> list[str]:
    """What a `--resume` asks to change that a run cannot change mid-way, as "--seed (0 → 7)" texts; None for
    algo, preset or a config means "not given"."""
    conflicts = []
    if algo is not None and algo != saved_algo:
        conflicts.append(f"--algo ({saved_algo} → {algo})")
    if preset is not None and preset != saved_preset:
        conflicts.append(f"--preset ({saved_preset} → {preset})")
    for saved, given, fixed in ((saved_train, train_cfg, lambda name: name not in RESUMABLE),
                                (saved_agent, agent_cfg, lambda name: True)):
        if given is None or type(given) is not type(saved):  # another algorithm's config: --algo says it all
            continue
        for f in dataclasses.fields(saved):
            old, new = getattr(saved, f.name), getattr(given, f.name)
            if isinstance(old, (tuple, list)) and isinstance(new, (tuple, list)):
                old, new = tuple(old), tuple(new)
            if fixed(f.name) and old != new:
                conflicts.append(f"{_option(f.name)} ({_show(old)} → {_show(new)})")
    return conflicts


def _show(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def refuse_conflicts(path, conflicts: list[str]) -> None:
    if conflicts:
        raise ValueError(f"--resume cannot change {', '.join(conflicts)} of the run in {path}: only --steps, the "
                         f"eval, checkpoint and log cadence and --wandb-project may change when resuming; start a "
                         f"new run with another --out instead.")


def check_field_ranges(cfg) -> None:
    """Range checks that hold for a field of any config by its name, so every agent gets them without repeating
    them: learning rates ≥ 0 (0 freezes a network, which tests use), discount factors and GAE λ in [0, 1],
    Polyak rates τ in (0, 1], network widths ≥ 1, and no NaN anywhere."""
    for f in dataclasses.fields(cfg):
        name, value = f.name, getattr(cfg, f.name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{_option(name)} must be a number, got nan.")
        if name == "lr" or name.endswith(("_lr", "_lr_end", "learning_rate")):
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ValueError(f"{_option(name)} is a learning rate and must be non-negative, got {value}.")
        elif name == "gamma" or name.endswith("_lambda"):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{_option(name)} must be in [0, 1], got {value}.")
        elif name == "tau":
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{_option(name)} must be in (0, 1], got {value}.")
        elif name.endswith("_hidden") and isinstance(value, (tuple, list)):
            if any(not isinstance(width, int) or width < 1 for width in value):
                raise ValueError(f"{_option(name)} lists layer widths, which must be positive, got "
                                 f"{' '.join(map(str, value))}.")
        elif name.endswith(("_width", "_blocks")) or name == "embed_dim":
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{_option(name)} must be positive, got {value}.")


CONFIG_FORMAT = 2
"""Version of config.json's layout (2: shared option names across agents, presets as data)."""
CHECKPOINT_FORMAT = 2
"""Version of the checkpoint's layout (loop.json fields, replay archive)."""


def check_format(saved: dict[str, Any], path) -> None:
    """Refuse, in one sentence, a run folder written by an older layout: its option names no longer parse."""
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is not a boltzrl run configuration (a JSON object was expected).")
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


def config_from_dict(d: dict[str, Any], path="the run's config.json"):
    """(algo spec, agent config, train config) from a config.json dict; `path` names the file in errors."""
    check_format(d, path)
    from boltzrl.options import configs_from_values

    try:
        spec = get_algo(d["algo"])
        agent_cfg, train_cfg = configs_from_values(spec.config_cls, d["agent"], d["train"])
    except (KeyError, TypeError, AttributeError) as exc:  # a hand-edited or truncated file
        raise ValueError(f"{path} is incomplete or malformed ({type(exc).__name__}: {exc}).") from None
    except ValueError as exc:
        raise ValueError(f"{path} holds settings this version refuses: {exc}") from None
    return spec, agent_cfg, train_cfg
