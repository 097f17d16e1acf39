"""The off-policy collector: act → step the vector env → store in replay → (every `update_every` iterations) the
gradient steps owed so far, in one compiled call.

Uniformly random actions fill the first `warmup_steps`; afterwards `utd` gradient steps are owed per env step, on
minibatches of `n_step` transitions. An agent that rewrites its replay rows (info[REPLAY_ACTIONS]) has them written
back here. With `exploration_noise_beta` > 0 the exploring actions take their standard normal draws from a
`ColoredNoise`. With `deterministic_episode_share` > 0 each episode that starts after `deterministic_episodes_from`
env steps is, with that probability, collected with the deterministic evaluation policy instead; their returns are
logged apart as well.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from boltzrl.agents.base import REPLAY_ACTIONS
from boltzrl.training.config import TrainConfig
from boltzrl.training.exploration_noise import ColoredNoise
from boltzrl.training.loop_state import ACT_STREAM, UPDATE_STREAM, LoopState, check_finite, step_key
from boltzrl.training.replay import ReplayBuffer


def real_next_obs(next_obs, done, infos):
    """next_obs with each finished env's final observation in place of its reset one (SAME_STEP autoreset)."""
    if not done.any():
        return next_obs
    real = next_obs.copy()
    real[done] = np.stack(infos["final_obs"][done])
    return real


def check_environment(obs, reward) -> None:
    check_finite("the environment returned a {} reward for finite actions", reward)
    check_finite("the environment returned a {} observation for finite actions", obs)


class OffPolicyCollector:
    def __init__(self, agent, envs, cfg: TrainConfig, gamma: float | None):
        """gamma: the agent's discount, with which n-step rewards are summed (None: the agent has none, n_step 1)."""
        self.agent, self.envs, self.cfg, self.gamma = agent, envs, cfg, gamma
        self.act_shape = envs.single_action_space.shape
        self.buffer = ReplayBuffer(cfg.buffer_size, envs.single_observation_space.shape[0], self.act_shape[0])
        self.noise = None
        if cfg.exploration_noise_beta:
            if not agent.noise_dim:
                raise ValueError(f"--exploration-noise-beta {cfg.exploration_noise_beta:g} (given or the preset's) "
                                 "needs an agent whose exploring actions take their noise from outside (sac, td3, "
                                 "ddpg, or dqs with --sampler-step ancestral); this one draws its own "
                                 "(--exploration-noise-beta 0 turns it off).")
            self.noise = ColoredNoise(cfg.exploration_noise_beta, cfg.num_envs, agent.noise_dim, cfg.seed)

    def _correlated_share(self, env_steps: int) -> float:
        horizon = self.cfg.exploration_noise_horizon
        return 1.0 if horizon == 0 else max(0.0, 1.0 - env_steps / horizon)

    def _draw_deterministic(self, starting: np.ndarray, env_steps: int) -> None:
        """Decide for each env whose episode starts whether the deterministic policy collects it."""
        share = self.cfg.deterministic_episode_share
        # draws nothing otherwise, so that runs without the option (or before it starts) keep their random stream
        if share and env_steps >= self.cfg.deterministic_episodes_from:
            self.deterministic[starting] = self.rng.random(int(starting.sum())) < share

    def start(self):
        self.rng = np.random.default_rng(self.cfg.seed)
        self.obs, _ = self.envs.reset(seed=self.cfg.seed)
        self.deterministic = np.zeros(self.cfg.num_envs, bool)
        self._draw_deterministic(np.ones(self.cfg.num_envs, bool), env_steps=0)

    # checkpoint ---------------------------------------------------------------------------------------------
    def loop_fields(self) -> dict:
        fields = {"rng": self.rng.bit_generator.state, "obs": np.asarray(self.obs).tolist()}
        if self.cfg.deterministic_episode_share:
            fields["deterministic_episodes"] = self.deterministic.tolist()
        return fields if self.noise is None else {**fields, "exploration_noise": self.noise.fields()}

    def memory_bytes(self) -> bytes:
        return self.buffer.to_bytes()

    def load_memory(self, memory_bytes: bytes | None):
        if memory_bytes is None:
            raise ValueError("the file is missing")
        self.buffer.load_bytes(memory_bytes)

    def restore(self, envs, fields: dict):
        self.envs = envs
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = fields["rng"]
        self.obs = np.array(fields["obs"], np.float32)
        self.deterministic = np.array(fields.get("deterministic_episodes", [False] * self.cfg.num_envs), bool)
        if self.noise is not None:
            self.noise.restore(fields["exploration_noise"])

    def _report_deterministic_returns(self, ended: dict[int, float], accumulate: Callable[[dict, int], None]) -> None:
        """The deterministic episodes that just ended, averaged in a train.csv column of their own
        (`deterministic_episode_return`; `episode_return` keeps every episode)."""
        for env, episode_return in ended.items():
            if self.deterministic[env]:
                accumulate({"deterministic_episode_return": episode_return}, 1)

    def _act(self, state, key, noise: dict) -> np.ndarray:
        """Each env's action from the exploring policy, or from the deterministic one where its episode is drawn so."""
        exploring = ~self.deterministic
        actions = None
        if exploring.any():
            actions = np.asarray(self.agent.act(state, self.obs, key, deterministic=False, **noise)[0])
        if not exploring.all():
            chosen = np.asarray(self.agent.act(state, self.obs, key, deterministic=True)[0])
            if actions is not None:
                chosen = np.where(exploring.reshape((-1,) + (1,) * len(self.act_shape)), actions, chosen)
            actions = chosen
        return actions

    # one vector-env step ------------------------------------------------------------------------------------
    def iteration(self, state, loop: LoopState, accumulate: Callable[[dict, int], None]):
        cfg = self.cfg
        if loop.env_steps < cfg.warmup_steps:
            actions = self.rng.uniform(-1.0, 1.0, (cfg.num_envs,) + self.act_shape).astype(np.float32)
        else:
            key = step_key(cfg.seed, ACT_STREAM, loop.iterations)
            noise = {} if self.noise is None else {"noise": self.noise.draw(self._correlated_share(loop.env_steps))}
            actions = self._act(state, key, noise)
            check_finite("the policy returned {} actions, which were not passed to the environment", actions)
        next_obs, reward, terminated, truncated, infos = self.envs.step(actions)
        check_environment(next_obs, reward)
        done = np.logical_or(terminated, truncated)
        if self.noise is not None:
            self.noise.episodes_ended(done)
        self.buffer.add(self.obs, actions, reward, real_next_obs(next_obs, done, infos), terminated)
        self.obs = next_obs
        ended = loop.record_rewards(reward, done)
        loop.env_steps += cfg.num_envs
        loop.iterations += 1
        self._report_deterministic_returns(ended, accumulate)
        self._draw_deterministic(done, loop.env_steps)

        if loop.env_steps >= cfg.warmup_steps and self.buffer.size >= cfg.batch_size:
            loop.update_credit += cfg.num_envs * cfg.utd
            if loop.iterations % cfg.update_every == 0 and loop.update_credit >= 1.0:
                n = int(loop.update_credit)
                loop.update_credit -= n
                idx = self.buffer.sample_indices(self.rng, n, cfg.batch_size)
                key = step_key(cfg.seed, UPDATE_STREAM, loop.iterations)
                batch = self.buffer.gather_n_step(idx, cfg.n_step_at(loop.env_steps), self.gamma, stride=cfg.num_envs)
                state, info = self.agent.update(state, batch, key)
                info = jax.device_get(info)
                if REPLAY_ACTIONS in info:
                    self.buffer.write_actions(idx, info.pop(REPLAY_ACTIONS))
                loop.update_steps += n
                accumulate(info, n)
        return state
