"""The on-policy collector: one iteration is a rollout of `rollout_steps` vector-env steps with the current policy,
then one call of the agent's update on it.

The rollout keeps, per step, what `act` returned beside the actions (log-probs, values, chain latents) and the
observation after the step before any reset, so the agent can bootstrap through truncations (see
`boltzrl.agents.advantage.gae`). Checkpoints fall between rollouts, so the collector keeps no memory across them.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from boltzrl.agents.base import Rollout
from boltzrl.training.config import TrainConfig
from boltzrl.training.loop_state import ACT_STREAM, UPDATE_STREAM, LoopState, check_finite, step_key
from boltzrl.training.offpolicy import check_environment, real_next_obs


class OnPolicyCollector:
    def __init__(self, agent, envs, cfg: TrainConfig):
        if cfg.exploration_noise_beta:
            raise ValueError("--exploration-noise-beta is for off-policy agents; this one is on-policy and draws "
                             "its own noise.")
        if cfg.deterministic_episode_share:
            raise ValueError("--deterministic-episode-share is for off-policy agents; an on-policy agent learns "
                             "from its exploring policy's own episodes.")
        self.agent, self.envs, self.cfg = agent, envs, cfg

    def start(self):
        self.obs, _ = self.envs.reset(seed=self.cfg.seed)

    # checkpoint ---------------------------------------------------------------------------------------------
    def loop_fields(self) -> dict:
        return {"obs": np.asarray(self.obs).tolist()}

    def memory_bytes(self) -> None:
        return None

    def load_memory(self, memory_bytes: None):
        pass

    def restore(self, envs, fields: dict):
        self.envs = envs
        self.obs = np.array(fields["obs"], np.float32)

    # one rollout and one update -----------------------------------------------------------------------------
    def collect(self, state, loop: LoopState) -> Rollout:
        steps = []
        for _ in range(self.cfg.rollout_steps):
            key = step_key(self.cfg.seed, ACT_STREAM, loop.iterations)
            actions, extras = jax.device_get(self.agent.act(state, self.obs, key, deterministic=False))
            check_finite("the policy returned {} actions, which were not passed to the environment", actions)
            next_obs, reward, terminated, truncated, infos = self.envs.step(np.asarray(actions))
            check_environment(next_obs, reward)
            done = np.logical_or(terminated, truncated)
            steps.append(Rollout(self.obs, actions, reward, real_next_obs(next_obs, done, infos), terminated,
                                 truncated, extras))
            self.obs = next_obs
            loop.record_rewards(reward, done)
            loop.env_steps += self.cfg.num_envs
            loop.iterations += 1
        stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *steps)
        return stacked._replace(reward=stacked.reward.astype(np.float32),
                                terminated=stacked.terminated.astype(np.float32),
                                truncated=stacked.truncated.astype(np.float32))

    def iteration(self, state, loop: LoopState, accumulate: Callable[[dict, int], None]):
        rollout = self.collect(state, loop)
        key = step_key(self.cfg.seed, UPDATE_STREAM, loop.iterations)
        state, info = self.agent.update(state, rollout, key)
        loop.update_steps += 1
        accumulate(jax.device_get(info), 1)
        return state
