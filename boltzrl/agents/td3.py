"""TD3 (Fujimoto et al. 2018) and DDPG as its simpler sibling: a deterministic tanh actor and Gaussian exploration.

DDPG here is TD3 with one critic, no target-policy smoothing and an actor update every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.struct
import jax
import jax.numpy as jnp

from boltzrl import nets
from boltzrl.agents.base import Agent, counted_jit, AlgoSpec, adam, apply_grads, scan_updates
from boltzrl.agents.critic import critic_update, delayed, polyak_target


@dataclass(frozen=True)
class TD3Config:
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of each critic."""
    activation: str = "relu"
    """Activation of the hidden layers."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    num_critics: int = 2
    """2: clipped double Q (TD3); 1: a single critic (DDPG)."""
    policy_delay: int = 2
    """Actor and target updates happen every this many critic updates."""
    target_noise: float = 0.2
    """Std of the Gaussian smoothing noise on the target action (0 disables it)."""
    target_noise_clip: float = 0.5
    """Clip of the target smoothing noise."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise added when acting."""


class TD3State(flax.struct.PyTreeNode):
    actor: dict
    target_actor: dict
    critic: dict
    target_critic: dict
    actor_opt: tuple
    critic_opt: tuple
    steps: jax.Array


def make(config: TD3Config, obs_dim: int, act_dim: int) -> Agent:
    actor_net = nets.DeterministicActor(config.actor_hidden, act_dim, config.activation)
    critic_net = nets.Critics(config.num_critics, config.critic_hidden, config.activation)
    actor_opt, critic_opt = adam(config.actor_lr), adam(config.critic_lr)

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        actor, critic = actor_net.init(k1, obs), critic_net.init(k2, obs, act)
        return TD3State(
            actor=actor, target_actor=actor, critic=critic, target_critic=critic,
            actor_opt=actor_opt.init(actor), critic_opt=critic_opt.init(critic), steps=jnp.zeros((), jnp.int32),
        )

    @counted_jit(static_argnames="deterministic")
    def act(state: TD3State, obs, key, deterministic: bool = False, noise=None):
        """noise (..., act_dim): the exploring action's standard normal draws, clip(μ + σ·noise)."""
        action = actor_net.apply(state.actor, obs)
        if deterministic:
            return action, {}
        if noise is None:
            noise = jax.random.normal(key, action.shape)
        return jnp.clip(action + config.exploration_noise * noise, -1.0, 1.0), {}

    def step(state: TD3State, batch, key):
        next_action = actor_net.apply(state.target_actor, batch.next_obs)
        noise = config.target_noise * jax.random.normal(key, next_action.shape)
        noise = jnp.clip(noise, -config.target_noise_clip, config.target_noise_clip)
        next_action = jnp.clip(next_action + noise, -1.0, 1.0)
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma)
        state = state.replace(steps=state.steps + 1)

        def actor_loss(params, critic):
            action = actor_net.apply(params, batch.obs)
            return -critic_net.apply(critic, batch.obs, action)[0].mean()

        def update_actor_and_targets(state):
            a_loss, grads = jax.value_and_grad(actor_loss)(state.actor, state.critic)
            actor, a_opt = apply_grads(actor_opt, state.actor, state.actor_opt, grads)
            state = state.replace(actor=actor, actor_opt=a_opt,
                                  target_actor=nets.soft_update(state.target_actor, actor, config.tau))
            return polyak_target(state, config.tau), {"actor_loss": a_loss}

        state, actor_info = delayed(state.steps, config.policy_delay, update_actor_and_targets, state)
        return state, {**info, **actor_info}

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update, noise_dim=act_dim)


TD3_SPEC = AlgoSpec(
    name="td3",
    config_cls=TD3Config,
    make=make,
    evaluation="the deterministic actor's action, without exploration noise.",
    description="TD3: twin critics, policy delay 2, target smoothing 0.2 (clip 0.5), exploration noise 0.1.",
)

DDPG_SPEC = AlgoSpec(
    name="ddpg",
    config_cls=TD3Config,
    make=make,
    evaluation="the deterministic actor's action, without exploration noise.",
    description="DDPG: one critic, no target smoothing, actor updated every step, exploration noise 0.1.",
)
