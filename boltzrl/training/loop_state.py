"""What a run counts and where its random numbers come from: the loop state saved in every checkpoint, and the
counter-based keys of the RNG streams."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from boltzrl.training.config import TrainConfig

INIT_STREAM, ACT_STREAM, UPDATE_STREAM, EVAL_STREAM = range(4)


def step_key(seed: int, stream: int, counter: int) -> np.ndarray:
    """A raw threefry key (uint32[2]) for one (seed, stream, counter), built on the host.

    Deriving keys from counters needs no state to checkpoint and no per-step `jax.random.split` dispatch
    (≈0.1–0.3 ms each outside jit); distinct keys give independent threefry streams."""
    return np.array([(seed * 4 + stream) & 0xFFFFFFFF, counter & 0xFFFFFFFF], np.uint32)


class NonFinite(ValueError):
    """A NaN or infinity where the run needs numbers; the message says where, as a clause ("the policy returned
    non-finite actions"). The run core turns it into its divergence stop; `boltzrl eval` prints it."""


def check_finite(what: str, value) -> None:
    """Raise NonFinite if the array `value` holds a NaN or an infinity (microseconds per step); `what` is the
    message with {} where "NaN" or "infinite" goes."""
    value = np.asarray(value)
    if not np.isfinite(value).all():
        raise NonFinite(what.format("NaN" if np.isnan(value).any() else "infinite"))


@dataclass
class LoopState:
    """The run's counters and running statistics; saved as JSON in every checkpoint."""

    env_steps: int = 0
    update_steps: int = 0
    iterations: int = 0  # vector-env steps taken
    update_credit: float = 0.0  # gradient steps owed (off-policy: num_envs · utd per iteration)
    wall_time_s: float = 0.0
    episode_returns: list[float] = field(default_factory=list)  # of the running episode, per env
    finished_returns: list[float] = field(default_factory=list)  # since the last log row (and the 10 before)
    info_sums: dict[str, list[float]] = field(default_factory=dict)  # metric → [Σ value·n, Σ n] since the last row
    evals: list[list[float]] = field(default_factory=list)  # [env_step, eval_return]
    next_eval: int = 0
    next_log: int = 0
    next_checkpoint: int | None = None  # None: only at the end and on interruption

    @classmethod
    def fresh(cls, cfg: TrainConfig) -> LoopState:
        return cls(episode_returns=[0.0] * cfg.num_envs, next_eval=cfg.eval_every, next_log=cfg.log_every,
                   next_checkpoint=cfg.checkpoint_every or None)

    def record_rewards(self, reward, done) -> dict[int, float]:
        """Add one vector-env step's rewards; returns the episodes it ended, env index → return."""
        ended = {}
        for i in range(len(reward)):
            self.episode_returns[i] += float(reward[i])
            if done[i]:
                ended[i] = self.episode_returns[i]
                self.finished_returns.append(self.episode_returns[i])
                self.episode_returns[i] = 0.0
        return ended
