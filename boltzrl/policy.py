"""A trained run's policy as a plain function of observations: `policy = boltzrl.load(run); action = policy(obs)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flax.errors
import jax
import numpy as np

from boltzrl.training.evaluate_run import load_agent


class Policy:
    """The agent of a run folder's latest checkpoint, acting as `boltzrl eval` does.

    `policy(obs)` takes one observation (obs_dim,) or a batch (n, obs_dim) and returns the action(s) in [-1, 1],
    (act_dim,) or (n, act_dim), as a float32 numpy array. Without `key`, each call draws the next key of the
    policy's own sequence (seeded by `seed`), so a run of calls is reproducible; `key` fixes the call's randomness.
    """

    def __init__(self, agent, state, train_cfg, seed: int = 0, deterministic: bool = True):
        self.agent, self.state, self.train_config = agent, state, train_cfg
        self.env_id: str = train_cfg.env  # what to build with boltzrl.envs.make_env to run the policy on
        self.deterministic = deterministic
        self._key = jax.random.PRNGKey(seed)

    def __call__(self, obs: Any, key: jax.Array | None = None, deterministic: bool | None = None) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim not in (1, 2):
            raise ValueError(f"the policy takes one observation (obs_dim,) or a batch (n, obs_dim), got an array "
                             f"of shape {obs.shape}.")
        if key is None:
            self._key, key = jax.random.split(self._key)
        deterministic = self.deterministic if deterministic is None else deterministic
        batch = obs if obs.ndim == 2 else obs[None]
        try:
            actions = self.agent.act(self.state, batch, key, deterministic=deterministic)[0]
        except (TypeError, ValueError, flax.errors.FlaxError):  # a wrong width fails in the first layer
            from boltzrl.envs import make_env

            env = make_env(self.env_id)
            expected = env.observation_space.shape[0]
            env.close()
            if obs.shape[-1] == expected:
                raise
            raise ValueError(f"observations of shape {obs.shape} do not fit the agent trained on {self.env_id}, "
                             f"whose observations have {expected} values.") from None
        actions = np.asarray(actions)
        return actions if obs.ndim == 2 else actions[0]


def load(run: str | Path, seed: int = 0, deterministic: bool = True) -> Policy:
    """The evaluation policy of a run folder (or its checkpoint folder), from its config.json and latest
    checkpoint, restored exactly as `boltzrl eval` restores it. `deterministic=False` gives the exploration
    policy; `seed` seeds the keys of calls made without one. A folder without config.json or without a
    checkpoint is a FileNotFoundError, a corrupt file a ValueError, each one sentence naming the path."""
    agent, state, train_cfg = load_agent(run)
    return Policy(agent, state, train_cfg, seed=seed, deterministic=deterministic)
