"""The on-policy collector and GAE: episode ends in the middle of a rollout, bootstrapping through truncation, and an
exactly resumable on-policy run, with a tiny agent on a tiny environment."""

import csv
import os
import signal
from dataclasses import dataclass

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzrl.agents import ALGOS, AlgoSpec, register_algo
from boltzrl.agents.advantage import gae
from boltzrl.agents.base import Agent, counted_jit
from boltzrl.envs import make_vec_env, register_env
from boltzrl.training import Interrupted, TrainConfig, train
from boltzrl.training.loop_state import LoopState
from boltzrl.training.onpolicy import OnPolicyCollector


class Walk(gym.Env):
    """A point on a line: obs (position, time), position += action. Even seeds end (terminate) once the position
    passes 2.5; odd seeds never terminate (the parity of the last reset seed counts). Episodes are truncated at 6
    steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    threshold = 2.5

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.threshold = 2.5 if seed % 2 == 0 else np.inf
        self.pos, self.t = 0.0, 0
        return self._obs(), {}

    def step(self, action):
        self.pos += float(action[0])
        self.t += 1
        return self._obs(), -abs(self.pos - 1.0), self.pos > self.threshold, False, {}

    def _obs(self):
        return np.array([self.pos, self.t], np.float32)


def make_walk():
    return gym.wrappers.TimeLimit(Walk(), max_episode_steps=6)


register_env("test-walk", make_walk, "a 1-D walk with terminations and truncations (tests)")


def gae_loop(reward, value, next_value, terminated, truncated, gamma, lam):
    advantages = np.zeros_like(reward)
    following = np.zeros(reward.shape[1])
    for t in reversed(range(len(reward))):
        delta = reward[t] + gamma * (1 - terminated[t]) * next_value[t] - value[t]
        following = delta + gamma * lam * (1 - np.maximum(terminated[t], truncated[t])) * following
        advantages[t] = following
    return advantages


def test_gae_matches_a_plain_loop_with_episode_ends_inside_the_rollout():
    rng = np.random.default_rng(0)
    T, n = 13, 4
    reward, value, next_value = (rng.normal(size=(T, n)).astype(np.float32) for _ in range(3))
    terminated = (rng.random((T, n)) < 0.15).astype(np.float32)
    truncated = ((rng.random((T, n)) < 0.15) & (terminated == 0)).astype(np.float32)
    assert terminated.any() and truncated.any()
    advantages, returns = jax.jit(gae, static_argnums=(5, 6))(reward, value, next_value, terminated, truncated,
                                                              0.97, 0.9)
    expected = gae_loop(reward, value, next_value, terminated, truncated, 0.97, 0.9)
    np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns, expected + value, rtol=1e-5, atol=1e-5)
    # λ = 1 without episode ends (so V(s′_t) = V(s_{t+1})) telescopes to the discounted return minus the value,
    # bootstrapped at the rollout's end
    zero = np.zeros((T, n), np.float32)
    value = np.concatenate([value[:1], next_value[:-1]])
    adv, _ = gae(reward, value, next_value, zero, zero, 0.97, 1.0)
    discounted = sum(0.97 ** k * reward[k] for k in range(T)) + 0.97 ** T * next_value[-1]
    np.testing.assert_allclose(adv[0], discounted - value[0], rtol=1e-4, atol=1e-4)


class _ConstantAgent:
    """Acts +1 everywhere and returns the observation's position as its 'value' extra."""

    def act(self, state, obs, key, deterministic=False):
        return np.ones((len(obs), 1), np.float32), {"value": obs[:, 0]}


def test_rollout_keeps_final_observations_and_episode_end_flags():
    envs = make_vec_env("test-walk", 2, seed=0)  # env 0 (seed 0) terminates, env 1 (seed 1) only truncates
    collector = OnPolicyCollector(_ConstantAgent(), envs, TrainConfig(env="test-walk", num_envs=2, rollout_steps=8))
    collector.start()
    loop = LoopState.fresh(TrainConfig(num_envs=2))
    rollout = collector.collect(None, loop)
    assert rollout.obs.shape == (8, 2, 2) and rollout.action.shape == (8, 2, 1)
    np.testing.assert_array_equal(rollout.terminated[:, 0], [0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(rollout.truncated[:, 1], [0, 0, 0, 0, 0, 1, 0, 0])
    assert rollout.terminated[:, 1].sum() == 0
    assert rollout.next_obs[2, 0, 0] == 3.0 and rollout.obs[3, 0, 0] == 0.0  # final obs kept; next starts afresh
    assert rollout.next_obs[5, 1, 0] == 6.0 and rollout.obs[6, 1, 0] == 0.0
    np.testing.assert_array_equal(rollout.extras["value"], rollout.obs[..., 0])
    assert loop.env_steps == 16 and loop.finished_returns == [-3.0, -3.0, -15.0]
    # bootstrapping: the truncated step's δ uses V of its final observation, the terminated step's none
    value, next_value = rollout.obs[..., 0], rollout.next_obs[..., 0]
    adv, _ = gae(rollout.reward, value, next_value, rollout.terminated, rollout.truncated, 0.9, 0.8)
    np.testing.assert_allclose(adv[5, 1], rollout.reward[5, 1] + 0.9 * 6.0 - 5.0, rtol=1e-6)
    np.testing.assert_allclose(adv[2, 0], rollout.reward[2, 0] - 2.0, rtol=1e-6)
    envs.close()


# A tiny on-policy agent: a state-independent Gaussian mean moved along the advantage-weighted noise, and a linear
# value function regressed on the GAE returns.
@dataclass(frozen=True)
class ToyConfig:
    lr: float = 0.1
    """Step size of both updates."""


INTERRUPT_AFTER = {"updates": None}  # send SIGINT to this process after this many updates


def make_toy(config: ToyConfig, obs_dim: int, act_dim: int) -> Agent:
    def init(key):
        return {"mean": jnp.zeros(act_dim), "value_w": jnp.zeros(obs_dim)}

    @counted_jit(static_argnames="deterministic")
    def act(state, obs, key, deterministic=False):
        mean = jnp.broadcast_to(jnp.tanh(state["mean"]), (obs.shape[0], act_dim))
        noise = 0.3 * jax.random.normal(key, mean.shape)
        action = mean if deterministic else jnp.clip(mean + noise, -1.0, 1.0)
        return action, {"value": obs @ state["value_w"], "noise": noise}

    @counted_jit
    def compiled_update(state, rollout, key):
        next_value = rollout.next_obs @ state["value_w"]
        adv, ret = gae(rollout.reward, rollout.extras["value"], next_value, rollout.terminated, rollout.truncated,
                       0.99, 0.95)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        mean = state["mean"] + config.lr * (adv[..., None] * rollout.extras["noise"]).mean((0, 1))
        residual = rollout.obs @ state["value_w"] - ret
        value_w = state["value_w"] - config.lr * 0.01 * (residual[..., None] * rollout.obs).mean((0, 1))
        return {"mean": mean, "value_w": value_w}, {"value_loss": (residual ** 2).mean()}

    calls = {"n": 0}

    def update(state, rollout, key):
        calls["n"] += 1
        if calls["n"] == INTERRUPT_AFTER["updates"]:
            os.kill(os.getpid(), signal.SIGINT)  # caught by the run's stop flag: stop after this iteration
        return compiled_update(state, rollout, key)

    return Agent(init, act, update)


@pytest.fixture
def toy_algo():
    register_algo(AlgoSpec(name="toy-onpolicy", config_cls=ToyConfig, make=make_toy, on_policy=True,
                           description="a tiny on-policy agent (tests)", evaluation="the mean action"))
    yield "toy-onpolicy"
    ALGOS.pop("toy-onpolicy")


def _read(run):
    with open(run / "eval.csv") as f:
        evals = [(r["env_step"], r["eval_return"]) for r in csv.DictReader(f)]
    with open(run / "train.csv") as f:
        logs = [{k: v for k, v in r.items() if k not in ("steps_per_s", "wall_time_s")} for r in csv.DictReader(f)]
    return evals, logs, (run / "checkpoint" / "agent.msgpack").read_bytes()


def test_on_policy_run_learns_the_toy_and_resumes_exactly(tmp_path, toy_algo):
    cfg = TrainConfig(env="test-walk", steps=480, num_envs=2, rollout_steps=12, eval_every=96, eval_episodes=2,
                      log_every=48, checkpoint_every=0, seed=1)
    summary = train(toy_algo, ToyConfig(), cfg, tmp_path / "full", verbose=False)
    assert summary["update_steps"] == 20 and summary["env_steps"] == 480
    with open(tmp_path / "full" / "eval.csv") as f:  # the mean action 0 scores −6; moving towards 1 pays
        returns = [float(r["eval_return"]) for r in csv.DictReader(f)]
    assert returns[-1] > returns[0] + 1.0, returns

    INTERRUPT_AFTER["updates"] = 7
    try:
        with pytest.raises(Interrupted):
            train(toy_algo, ToyConfig(), cfg, tmp_path / "cut", verbose=False)
    finally:
        INTERRUPT_AFTER["updates"] = None
    assert not (tmp_path / "cut" / "checkpoint" / "replay.npz").exists()  # nothing kept between rollouts
    train(toy_algo, ToyConfig(), cfg, tmp_path / "cut", resume=True, verbose=False)
    assert _read(tmp_path / "cut") == _read(tmp_path / "full")
