"""Soft Actor-Critic (Haarnoja et al. 2018): tanh-Gaussian actor, twin critics, automatic entropy tuning."""

from __future__ import annotations

from dataclasses import dataclass

import flax.struct
import jax
import jax.numpy as jnp

from boltzrl import nets
from boltzrl.agents.base import Agent, counted_jit, AlgoSpec, adam, apply_grads, scan_updates
from boltzrl.agents.critic import critic_update
from boltzrl.agents.entropy import alpha_loss, sample_tanh_gaussian


@dataclass(frozen=True)
class SACConfig:
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log α."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of each critic."""
    activation: str = "relu"
    """Activation of the hidden layers."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    init_alpha: float = 1.0
    """Initial entropy temperature."""
    target_entropy: float | None = None
    """Target entropy; None means −(action dimension)."""
    autotune_alpha: bool = True
    """Tune α toward the target entropy; if False α stays at init_alpha."""


class SACState(flax.struct.PyTreeNode):
    actor: dict
    critic: dict
    target_critic: dict
    log_alpha: jax.Array
    actor_opt: tuple
    critic_opt: tuple
    alpha_opt: tuple
    steps: jax.Array


def make(config: SACConfig, obs_dim: int, act_dim: int) -> Agent:
    actor_net = nets.GaussianActor(config.actor_hidden, act_dim, config.activation)
    critic_net = nets.Critics(2, config.critic_hidden, config.activation)
    actor_opt, critic_opt, alpha_opt = adam(config.actor_lr), adam(config.critic_lr), adam(config.alpha_lr)
    target_entropy = -float(act_dim) if config.target_entropy is None else config.target_entropy

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        actor = actor_net.init(k1, obs)
        critic = critic_net.init(k2, obs, act)
        log_alpha = jnp.log(jnp.float32(config.init_alpha))
        return SACState(
            actor=actor, critic=critic, target_critic=critic, log_alpha=log_alpha,
            actor_opt=actor_opt.init(actor), critic_opt=critic_opt.init(critic), alpha_opt=alpha_opt.init(log_alpha),
            steps=jnp.zeros((), jnp.int32),
        )

    @counted_jit(static_argnames="deterministic")
    def act(state: SACState, obs, key, deterministic: bool = False, noise=None):
        """noise (..., act_dim): the exploring action's standard normal draws, tanh(mean + std·noise)."""
        mean, log_std = actor_net.apply(state.actor, obs)
        if deterministic:
            return jnp.tanh(mean), {}
        if noise is not None:
            return jnp.tanh(mean + jnp.exp(log_std) * noise), {}
        return sample_tanh_gaussian(mean, log_std, key)[0], {}

    def step(state: SACState, batch, key):
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)

        mean, log_std = actor_net.apply(state.actor, batch.next_obs)
        next_action, next_log_prob = sample_tanh_gaussian(mean, log_std, k_next)
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma, config.tau,
                                    next_penalty=alpha * next_log_prob)

        def actor_loss(params):
            mean, log_std = actor_net.apply(params, batch.obs)
            action, log_prob = sample_tanh_gaussian(mean, log_std, k_pi)
            q = critic_net.apply(state.critic, batch.obs, action).min(0)
            return (alpha * log_prob - q).mean(), -log_prob.mean()

        (a_loss, entropy), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
        actor, a_opt = apply_grads(actor_opt, state.actor, state.actor_opt, grads)

        log_alpha, al_opt = state.log_alpha, state.alpha_opt
        if config.autotune_alpha:
            alpha_grad = jax.grad(alpha_loss)(log_alpha, entropy, target_entropy)
            log_alpha, al_opt = apply_grads(alpha_opt, log_alpha, al_opt, alpha_grad)

        state = state.replace(actor=actor, actor_opt=a_opt, log_alpha=log_alpha, alpha_opt=al_opt,
                              steps=state.steps + 1)
        return state, {**info, "actor_loss": a_loss, "entropy": entropy, "alpha": alpha}

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update, noise_dim=act_dim)


SPEC = AlgoSpec(
    name="sac",
    config_cls=SACConfig,
    make=make,
    evaluation="tanh of the Gaussian's mean.",
    description="Soft Actor-Critic with automatic entropy tuning (target −d) and twin critics.",
)
