"""QVPO — Q-weighted Variational Policy Optimization (Ding et al., NeurIPS 2024).

A VP diffusion policy fitted by weighted denoising score matching to its own best samples. At each state s of
the minibatch, N samples a_i of the current policy are scored by Q̂ = min of the online critics; the k best
(k = 1 in the official code) enter the loss with the "Q-advantage" weight

    w(s, a*) = max(Q̂(s, a*) − mean_i Q̂(s, a_i), 0),

so a sample at or below its state's mean value has weight zero. An entropy term regresses the same network on
uniformly random actions, `uniform_actions` per chosen sample, each weighted entropy_weight·w(s, a*); it pulls
the policy toward the uniform density wherever its best samples carry weight, so that it cannot collapse.
entropy_weight decays linearly from 0.02 and stops at 0.002 (the official code: 0.02·(1 − step/total steps),
floored at 0.002). The loss is the official one: the mean over all these rows of weight·mean_d (ε_θ − ε)².

Acting: best of 4 samples of the online policy under the online critics; TD target: best of 4 samples of an EMA
copy of the policy under the target critics; evaluation: best of 32 under the online critics. The chain runs
with its full noise in all three (the official code's default, non-deterministic mode).

Presets in boltzrl/data/presets.toml. The `paper` preset follows the official code (wadx2019/qvpo, run with
--weighted --aug): N = 64, k = 1, T = 20 cosine, 3×256 Mish ε-network and critics, diffusion lr 1e-4, critic lr
3e-4, gradient norms clipped at 2, τ = 0.005 for the critics and the EMA policy, 10k random warm-up steps, one
update per env step. Knowing departures: the policy step uses the critic step's minibatch (the official code
draws a second one); the entropy weight decays over updates rather than env steps (they differ by the warm-up);
Adam's ε is optax's 1e-8 (the official 1e-5); truncation bootstraps (the official gym-v3 code treats a time
limit as termination). The `cpu` preset is cheap on purpose: T = 5, 16 policy samples at 64 of the minibatch's
states, 2×256 networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp

from boltzrl import diffusion, nets
from boltzrl.agents.base import Agent, counted_jit, AlgoSpec, adam, apply_grads, scan_updates
from boltzrl.agents.critic import critic_update, delayed


@dataclass(frozen=True)
class QVPOConfig:
    denoising_steps: int = 20
    """Denoising steps T of the policy's chain."""
    schedule: str = "cosine"
    """VP noise schedule: cosine, linear or vp_sde."""
    init_scale: float = 1.0
    """Std of the Gaussian the sampling chain starts from."""
    policy_samples: int = 64
    """N policy samples per state whose mean Q is the baseline of the weights."""
    num_chosen: int = 1
    """k best of the N samples per state that enter the loss (the official code: 1)."""
    policy_batch_size: int = 0
    """States of the minibatch (the first ones) used by the policy step; 0 uses all of them."""
    uniform_actions: int = 10
    """Uniform actions per chosen sample in the entropy term."""
    entropy_weight: float = 0.02
    """Initial weight of the uniform actions, relative to their chosen sample's weight."""
    entropy_weight_end: float = 0.002
    """Floor of the entropy weight, which decays linearly toward 0 over entropy_decay_steps."""
    entropy_decay_steps: int = 1_000_000
    """Updates over which the entropy weight would decay linearly to 0 (it stops at entropy_weight_end)."""
    num_candidates: int = 4
    """N of best-of-N for the behaviour action."""
    target_candidates: int = 4
    """N of best-of-N for the TD target's next action (EMA policy, target critics)."""
    eval_candidates: int = 32
    """N of best-of-N for the evaluation action."""
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the ε-network (the policy)."""
    time_dim: int = 32
    """Width of the ε-network's step embedding."""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of each critic."""
    activation: str = "mish"
    """Activation of the hidden layers."""
    actor_lr: float = 1e-4
    """Adam learning rate of the policy's ε-network."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    max_grad_norm: float = 2.0
    """Global gradient-norm clip of the policy and critic steps (0 disables it)."""
    policy_delay: int = 1
    """Policy updates every this many critic updates."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics and of the EMA policy that draws the TD target's actions."""

    def __post_init__(self):
        for name in ("denoising_steps", "policy_samples", "num_chosen", "num_candidates", "target_candidates",
                     "eval_candidates", "entropy_decay_steps", "policy_delay"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.num_chosen > self.policy_samples:
            raise ValueError(f"num_chosen ({self.num_chosen}) cannot exceed policy_samples ({self.policy_samples}).")
        for name in ("policy_batch_size", "uniform_actions", "entropy_weight", "entropy_weight_end",
                     "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}.")
        if self.entropy_weight_end > self.entropy_weight:
            raise ValueError(f"entropy_weight_end ({self.entropy_weight_end}) cannot exceed entropy_weight "
                             f"({self.entropy_weight}).")


def q_advantage_weights(q, num_chosen: int = 1):
    """The k best of N samples per state and their weights max(Q − mean_i Q, 0): q (..., N) →
    (indices (..., k), weights (..., k)), best first. No gradient flows through the weights."""
    q = jax.lax.stop_gradient(q)
    best_q, idx = jax.lax.top_k(q, num_chosen)
    return idx, jnp.maximum(best_q - q.mean(-1, keepdims=True), 0.0)


def entropy_weight(config: QVPOConfig, step):
    """max(end, start·(1 − step/decay_steps)): the official linear decay with its floor."""
    return jnp.maximum(config.entropy_weight_end,
                       config.entropy_weight * (1.0 - step / config.entropy_decay_steps))


def weighted_dsm_loss(eps_fn: Callable, actions, weights, key, schedule: diffusion.VPSchedule):
    """mean_rows w·mean_d (ε_θ(a_t, t) − ε)², t uniform in 1..T per row: actions (R, d), weights (R,);
    eps_fn(a_t, t) → (R, d)."""
    k_t, k_noise = jax.random.split(key)
    t = jax.random.randint(k_t, actions.shape[:1], 0, schedule.num_steps)
    noise = jax.random.normal(k_noise, actions.shape)
    a_t = diffusion.vp_forward(actions, t, noise, schedule)
    per_row = jnp.mean((eps_fn(a_t, t) - noise) ** 2, axis=-1)
    return jnp.mean(jax.lax.stop_gradient(weights) * per_row)


def qvpo_rows(obs, chosen, weights, key, uniform_actions: int, uniform_weight):
    """The loss rows: the chosen actions (B, k, d) with their weights (B, k), then `uniform_actions` uniform
    actions per chosen one with weight uniform_weight·(its weight). Returns (obs (R, o), actions (R, d),
    weights (R,))."""
    b, k, d = chosen.shape
    uniform = jax.random.uniform(key, (b, k, uniform_actions, d), minval=-1.0, maxval=1.0)
    u_weights = jnp.broadcast_to(uniform_weight * weights[..., None], (b, k, uniform_actions))
    obs_k = jnp.broadcast_to(obs[:, None], (b, k, obs.shape[-1]))
    obs_u = jnp.broadcast_to(obs[:, None, None], (b, k, uniform_actions, obs.shape[-1]))
    rows_obs = jnp.concatenate([obs_k.reshape(-1, obs.shape[-1]), obs_u.reshape(-1, obs.shape[-1])])
    rows_act = jnp.concatenate([chosen.reshape(-1, d), uniform.reshape(-1, d)])
    rows_w = jnp.concatenate([weights.reshape(-1), u_weights.reshape(-1)])
    return rows_obs, rows_act, rows_w


class QVPOState(flax.struct.PyTreeNode):
    policy: dict
    target_policy: dict
    critic: dict
    target_critic: dict
    policy_opt: tuple
    critic_opt: tuple
    steps: jax.Array


def make(config: QVPOConfig, obs_dim: int, act_dim: int) -> Agent:
    schedule = diffusion.make_vp_schedule(config.schedule, config.denoising_steps)
    eps_net = nets.EpsNet(config.actor_hidden, act_dim, config.activation, time_dim=config.time_dim)
    critic_net = nets.Critics(2, config.critic_hidden, config.activation)
    clip = config.max_grad_norm or None
    policy_opt, critic_opt = adam(config.actor_lr, clip), adam(config.critic_lr, clip)

    def sample(policy, obs, key, n):
        """n policy samples per state: obs (B, obs_dim) → (B, n, d)."""
        obs = jnp.broadcast_to(obs[:, None], (obs.shape[0], n, obs_dim))
        eps_fn = lambda x, t: eps_net.apply(policy, obs, x, t)
        return diffusion.ddpm_sample(eps_fn, key, obs.shape[:2] + (act_dim,), schedule, init_scale=config.init_scale)

    def min_q(critic, obs, actions):
        obs_n = jnp.broadcast_to(obs[:, None], actions.shape[:2] + (obs_dim,))
        return critic_net.apply(critic, obs_n, actions).min(0)

    def best_of_n(policy, critic, obs, key, n):
        candidates = sample(policy, obs, key, n)
        return diffusion.best_of_n(candidates, min_q(critic, obs, candidates))

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        policy = eps_net.init(k1, obs, act, jnp.zeros((), jnp.int32))
        critic = critic_net.init(k2, obs, act)
        return QVPOState(policy=policy, target_policy=policy, critic=critic, target_critic=critic,
                         policy_opt=policy_opt.init(policy), critic_opt=critic_opt.init(critic),
                         steps=jnp.zeros((), jnp.int32))

    @counted_jit(static_argnames="deterministic")
    def act(state: QVPOState, obs, key, deterministic: bool = False):
        n = config.eval_candidates if deterministic else config.num_candidates
        return best_of_n(state.policy, state.critic, obs, key, n), {}

    def policy_update(state: QVPOState, batch, key):
        k_sample, k_uniform, k_loss = jax.random.split(key, 3)
        obs = batch.obs[:config.policy_batch_size] if config.policy_batch_size else batch.obs
        samples = sample(state.policy, obs, k_sample, config.policy_samples)
        idx, weights = q_advantage_weights(min_q(state.critic, obs, samples), config.num_chosen)
        chosen = jnp.take_along_axis(samples, idx[..., None], axis=1)
        ent_w = entropy_weight(config, state.steps)
        rows_obs, rows_act, rows_w = qvpo_rows(obs, chosen, weights, k_uniform, config.uniform_actions, ent_w)

        def loss_fn(params):
            return weighted_dsm_loss(lambda x, t: eps_net.apply(params, rows_obs, x, t), rows_act, rows_w, k_loss,
                                     schedule)

        loss, grads = jax.value_and_grad(loss_fn)(state.policy)
        policy, p_opt = apply_grads(policy_opt, state.policy, state.policy_opt, grads)
        state = state.replace(policy=policy, policy_opt=p_opt)
        return state, {"actor_loss": loss, "weight_mean": weights.mean(), "weight_nonzero": (weights > 0).mean(),
                       "entropy_weight": ent_w}

    def step(state: QVPOState, batch, key):
        k_next, k_pi = jax.random.split(key)
        next_action = best_of_n(state.target_policy, state.target_critic, batch.next_obs, k_next,
                                config.target_candidates)
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma, config.tau)
        state, policy_info = delayed(state.steps, config.policy_delay, lambda s: policy_update(s, batch, k_pi), state)
        state = state.replace(target_policy=nets.soft_update(state.target_policy, state.policy, config.tau),
                              steps=state.steps + 1)
        return state, {**info, **policy_info}

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update)


SPEC = AlgoSpec(
    name="qvpo",
    config_cls=QVPOConfig,
    make=make,
    evaluation="best of eval_candidates policy samples under the online critics (the chains themselves are random).",
    description="QVPO: diffusion policy fitted by Q-advantage-weighted denoising score matching on its best samples, "
                "plus an entropy term on uniform actions.",
)
