"""Proximal Policy Optimisation (Schulman et al. 2017) for continuous actions, with the usual implementation details
of continuous-control PPO (as in CleanRL's `ppo_continuous_action.py`).

A Gaussian policy with a state-independent log-std and a separate value network (64×64 tanh, orthogonal
initialisation). The env gets the Gaussian sample clipped to [-1, 1]; the raw sample, its log-prob and V(s) are kept
in the rollout's extras. One update is one compiled call: GAE on the rollout, then `update_epochs` passes over it in
`num_minibatches` shuffled minibatches, each one step on the clipped surrogate − entropy bonus + value loss with the
global gradient norm clipped.

Observation normalisation and reward scaling (CleanRL's NormalizeObservation / NormalizeReward) live in the agent
state, not in env wrappers, so checkpoints and exact resume include them. The rollout is normalised with the
statistics the policy acted with (so the first minibatch's ratio is exactly 1) and the statistics absorb the rollout
only after the gradient epochs: they lag one rollout behind a per-step wrapper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from boltzrl import nets
from boltzrl.agents.advantage import gae
from boltzrl.agents.base import Agent, AlgoSpec, apply_grads, counted_jit
from boltzrl.agents.normalization import RunningStats


@dataclass(frozen=True)
class PPOConfig:
    actor_lr: float = 3e-4
    """Adam learning rate of the policy (mean network and log-std)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the value network."""
    actor_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy's mean network."""
    critic_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the value network."""
    activation: str = "tanh"
    """Activation of the hidden layers."""
    gamma: float = 0.99
    """Discount factor (of GAE and of the running return that scales rewards)."""
    gae_lambda: float = 0.95
    """λ of generalised advantage estimation."""
    update_epochs: int = 10
    """Passes over each rollout per update."""
    num_minibatches: int = 32
    """Minibatches per pass; each holds rollout_steps·num_envs // num_minibatches transitions."""
    clip_coef: float = 0.2
    """ε of the clipped surrogate: the ratio π/π_old is clipped to [1 − ε, 1 + ε]."""
    clip_value_loss: bool = True
    """Clip the value prediction to within clip_coef of its acting-time value in the value loss."""
    value_coef: float = 0.5
    """Weight of the value loss in the joint loss."""
    entropy_coef: float = 0.0
    """Weight of the policy's entropy bonus."""
    max_grad_norm: float = 0.5
    """Global norm to which each minibatch's gradient (policy and value together) is clipped; 0 turns it off."""
    normalize_advantages: bool = True
    """Standardise the advantages within each minibatch."""
    normalize_obs: bool = True
    """Standardise observations by a running mean and variance kept in the agent state."""
    normalize_reward: bool = True
    """Divide rewards by the running std of each env's discounted return (kept in the agent state)."""
    obs_clip: float = 10.0
    """Normalised observations are clipped to [−obs_clip, obs_clip]."""
    reward_clip: float = 10.0
    """Scaled rewards are clipped to [−reward_clip, reward_clip]."""
    anneal_updates: int = 0
    """Decay both learning rates linearly to 0 over this many updates (one per rollout), then hold 0; set it to
    steps // (rollout_steps · num_envs) to anneal over the whole run. 0: constant learning rates."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (in the [-1, 1] action units)."""


class PPOState(flax.struct.PyTreeNode):
    params: dict  # {"actor": ..., "critic": ...}
    opt: tuple
    obs_stats: RunningStats
    return_stats: RunningStats
    env_returns: jax.Array  # each training env's running discounted return: (num_envs,), (0,) before any update
    updates: jax.Array


class _MLP(nn.Module):
    """Tanh MLP with orthogonal weights (gain √2, last layer `out_gain`) and zero biases: PPO's usual init, which
    starts the policy near a zero mean and the value near zero."""

    hidden: Sequence[int]
    out_dim: int
    act: str
    out_gain: float

    @nn.compact
    def __call__(self, x):
        f = nets.activation(self.act)
        for width in self.hidden:
            x = f(nn.Dense(width, kernel_init=nn.initializers.orthogonal(math.sqrt(2)))(x))
        return nn.Dense(self.out_dim, kernel_init=nn.initializers.orthogonal(self.out_gain))(x)


class GaussianPolicy(nn.Module):
    """Mean from an MLP, log-std a free parameter: the exploration noise does not depend on the state."""

    hidden: Sequence[int]
    act_dim: int
    act: str = "tanh"
    log_std_init: float = 0.0

    @nn.compact
    def __call__(self, obs):
        mean = _MLP(self.hidden, self.act_dim, self.act, 0.01)(obs)
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.act_dim,))
        return mean, jnp.broadcast_to(log_std, mean.shape)


class ValueNet(nn.Module):
    hidden: Sequence[int]
    act: str = "tanh"

    @nn.compact
    def __call__(self, obs):
        return _MLP(self.hidden, 1, self.act, 1.0)(obs)[..., 0]


# pure pieces ---------------------------------------------------------------------------------------------------
def gaussian_log_prob(x, mean, log_std):
    """log N(x; mean, exp(log_std)²), summed over the action dimensions."""
    return (-0.5 * ((x - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def clipped_surrogate(log_prob, old_log_prob, advantage, clip: float):
    """PPO's policy loss −mean(min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)), ρ = π/π_old: at ρ = 1 it is the policy-gradient
    surrogate −mean(A); outside [1 − ε, 1 + ε] in the direction the advantage favours its gradient vanishes."""
    ratio = jnp.exp(log_prob - old_log_prob)
    return -jnp.minimum(ratio * advantage, jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * advantage).mean()


def value_loss(value, old_value, target, clip: float | None):
    """½·mean((V − target)²); with `clip`, the pessimistic max with V kept within `clip` of its acting-time value
    (so one rollout cannot move the value far, as PPO does for the policy)."""
    loss = (value - target) ** 2
    if clip is not None:
        clipped = old_value + jnp.clip(value - old_value, -clip, clip)
        loss = jnp.maximum(loss, (clipped - target) ** 2)
    return 0.5 * loss.mean()


def normalize_obs(config, stats: RunningStats, obs):
    """`config` needs normalize_obs and obs_clip."""
    if not config.normalize_obs:
        return obs
    return stats.standardize(obs, config.obs_clip)


def scale_reward(config, stats: RunningStats, reward):
    """`config` needs normalize_reward and reward_clip."""
    if not config.normalize_reward:
        return reward
    return jnp.clip(reward / jnp.sqrt(stats.var + 1e-8), -config.reward_clip, config.reward_clip)


def discounted_returns(env_returns, reward, done, gamma: float):
    """Each env's running discounted return after every step of the rollout (reset after each episode end), whose
    spread scales the rewards; and the returns to carry into the next rollout."""
    def step(running, xs):
        r, d = xs
        running = gamma * running + r
        return running * (1.0 - d), running

    final, per_step = jax.lax.scan(step, env_returns, (reward, done))
    return per_step, final


def evaluate_actions(config: PPOConfig, params, obs, raw_action):
    """(log π(raw_action | obs), entropy of π(· | obs), V(obs)) for observations already normalised."""
    actor = GaussianPolicy(config.actor_hidden, raw_action.shape[-1], config.activation, config.log_std_init)
    mean, log_std = actor.apply(params["actor"], obs)
    value = ValueNet(config.critic_hidden, config.activation).apply(params["critic"], obs)
    entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
    return gaussian_log_prob(raw_action, mean, log_std), entropy, value


def optimizer(config) -> optax.GradientTransformation:
    """Adam (ε 1e-5) per network with its own learning rate, after one global-norm clip of the joint gradient.
    `config` needs actor_lr, critic_lr, update_epochs, num_minibatches, anneal_updates and max_grad_norm; the
    parameters are {"actor": ..., "critic": ...}."""
    steps_per_update = config.update_epochs * config.num_minibatches

    def rate(lr):
        if not config.anneal_updates:
            return lr
        return lambda count: lr * jnp.maximum(1.0 - (count // steps_per_update) / config.anneal_updates, 0.0)

    per_net = optax.multi_transform(
        {"actor": optax.adam(rate(config.actor_lr), eps=1e-5), "critic": optax.adam(rate(config.critic_lr), eps=1e-5)},
        lambda params: {name: jax.tree_util.tree_map(lambda _: name, sub) for name, sub in params.items()})
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), per_net) if config.max_grad_norm else per_net


def rollout_advantages(config, value_fn, state, rollout):
    """(observations, GAE advantages, value targets), each (T, num_envs, ...), of the rollout seen as the policy saw it:
    observations normalised and rewards scaled with the acting-time statistics. `value_fn` maps normalised
    observations to V; `config` needs gamma, gae_lambda and the normalisation fields."""
    obs = normalize_obs(config, state.obs_stats, rollout.obs)
    next_value = value_fn(normalize_obs(config, state.obs_stats, rollout.next_obs))
    reward = scale_reward(config, state.return_stats, rollout.reward)
    advantage, target = gae(reward, rollout.extras["value"], next_value, rollout.terminated, rollout.truncated,
                            config.gamma, config.gae_lambda)
    return obs, advantage, target


def absorb_rollout(config, state, rollout):
    """The state whose observation and return statistics (and per-env running returns) have seen the rollout: called
    after the gradient epochs, which used the acting-time statistics."""
    size = rollout.reward.shape[0] * rollout.reward.shape[1]
    obs_stats = state.obs_stats
    if config.normalize_obs:
        obs_stats = obs_stats.merge(rollout.obs.reshape(size, -1))
    done = jnp.maximum(rollout.terminated, rollout.truncated)
    per_step, env_returns = discounted_returns(state.env_returns, rollout.reward, done, config.gamma)
    return_stats = state.return_stats.merge(per_step.reshape(size)) if config.normalize_reward \
        else state.return_stats
    return state.replace(obs_stats=obs_stats, return_stats=return_stats, env_returns=env_returns)


def minibatch_epochs(opt, loss_fn, params, opt_state, data: dict, key, epochs: int, num_minibatches: int,
                     target_kl: float | None = None):
    """`epochs` passes over `data` (arrays with one leading sample axis), each in `num_minibatches` shuffled
    minibatches (the remainder of an uneven split is left out of that pass), one optimiser step per minibatch on
    `loss_fn(params, batch) -> (loss, info)`. With `target_kl`, once a minibatch's info["approx_kl"] exceeds it (that
    minibatch's step still applies) the remaining steps of the update are skipped, as CleanRL's early stop; their
    infos come back with info["skipped"] = 1. Returns ((params, opt_state), infos stacked (epochs, num_minibatches))."""
    size = jax.tree_util.tree_leaves(data)[0].shape[0]
    minibatch = size // num_minibatches

    def grad_step(params, opt_state, idx):
        batch = jax.tree_util.tree_map(lambda x: x[idx], data)
        grads, info = jax.grad(loss_fn, has_aux=True)(params, batch)
        return apply_grads(opt, params, opt_state, grads), info

    def epoch(carry, k):
        order = jax.random.permutation(k, size)[: minibatch * num_minibatches]

        def step(carry, idx):
            if target_kl is None:
                params, opt_state = carry
                return grad_step(params, opt_state, idx)
            params, opt_state, stopped = carry
            (new_params, new_opt), info = grad_step(params, opt_state, idx)
            keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(stopped, o, n), new, old)
            info = {**info, "skipped": stopped.astype(jnp.float32)}
            stopped = stopped | (info["approx_kl"] > target_kl)
            return (keep(new_params, params), keep(new_opt, opt_state), stopped), info

        return jax.lax.scan(step, carry, order.reshape(num_minibatches, minibatch))

    carry = (params, opt_state) if target_kl is None else (params, opt_state, jnp.zeros((), bool))
    carry, infos = jax.lax.scan(epoch, carry, jax.random.split(key, epochs))
    return carry[:2], infos


class HostStep:
    """A `counted_jit` function called through a host-side step that prepares its arguments; `.traces` counts the
    compiled function's traces."""

    def __init__(self, prepare, fn, **jit_kwargs):
        self.prepare, self.compiled = prepare, counted_jit(fn, **jit_kwargs)

    @property
    def traces(self) -> int:
        return self.compiled.traces

    def __call__(self, *args, **kwargs):
        args, kwargs = self.prepare(*args, **kwargs)
        return self.compiled(*args, **kwargs)


# Reward scaling needs one running return per training env, but `make` is not told the env count, and compiled code
# should see fixed shapes. So `init` allocates the returns of zero envs and the first update, on the host before its
# compiled call, allocates zeros for the rollout's env count; from then on (and after a restore, which keeps the
# saved shape) the shape never changes and the update compiles once. Acting is compiled over the parameters and
# observation statistics only, so that this one change of the state's shape does not recompile it either.
def sized_returns(state: PPOState, rollout, key):
    num_envs = rollout.reward.shape[1]
    if state.env_returns.shape != (num_envs,):
        state = state.replace(env_returns=jnp.zeros(num_envs, jnp.float32))
    return (state, rollout, key), {}


def acting_parts(state: PPOState, obs, key, deterministic: bool = False):
    return (state.params, state.obs_stats, obs, key), {"deterministic": deterministic}


def make(config: PPOConfig, obs_dim: int, act_dim: int) -> Agent:
    actor_net = GaussianPolicy(config.actor_hidden, act_dim, config.activation, config.log_std_init)
    critic_net = ValueNet(config.critic_hidden, config.activation)
    opt = optimizer(config)
    value_clip = config.clip_coef if config.clip_value_loss else None

    def init(key):
        k1, k2 = jax.random.split(key)
        obs = jnp.zeros((1, obs_dim))
        params = {"actor": actor_net.init(k1, obs), "critic": critic_net.init(k2, obs)}
        return PPOState(params=params, opt=opt.init(params), obs_stats=RunningStats.create((obs_dim,)),
                        return_stats=RunningStats.create(), env_returns=jnp.zeros((0,), jnp.float32),
                        updates=jnp.zeros((), jnp.int32))

    def act(params, obs_stats, obs, key, deterministic: bool = False):
        obs = normalize_obs(config, obs_stats, obs)
        mean, log_std = actor_net.apply(params["actor"], obs)
        raw = mean if deterministic else mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        extras = {"raw_action": raw, "log_prob": gaussian_log_prob(raw, mean, log_std),
                  "value": critic_net.apply(params["critic"], obs)}
        return jnp.clip(raw, -1.0, 1.0), extras

    def loss_fn(params, batch):
        log_prob, entropy, value = evaluate_actions(config, params, batch["obs"], batch["raw_action"])
        advantage = batch["advantage"]
        if config.normalize_advantages:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        actor_loss = clipped_surrogate(log_prob, batch["log_prob"], advantage, config.clip_coef)
        critic_loss = value_loss(value, batch["value"], batch["target"], value_clip)
        loss = actor_loss - config.entropy_coef * entropy.mean() + config.value_coef * critic_loss
        log_ratio = log_prob - batch["log_prob"]
        ratio = jnp.exp(log_ratio)
        return loss, {"actor_loss": actor_loss, "critic_loss": critic_loss, "entropy": entropy.mean(),
                      "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
                      "clip_fraction": (jnp.abs(ratio - 1.0) > config.clip_coef).mean()}

    def update(state: PPOState, rollout, key):
        steps, num_envs = rollout.reward.shape
        size = steps * num_envs
        minibatch = size // config.num_minibatches
        if minibatch == 0:
            raise ValueError(f"A rollout of {size} transitions cannot fill {config.num_minibatches} minibatches; "
                             f"lower --num-minibatches or raise --rollout-steps or --num-envs.")
        obs, advantage, target = rollout_advantages(
            config, lambda o: critic_net.apply(state.params["critic"], o), state, rollout)
        data = {"obs": obs, "raw_action": rollout.extras["raw_action"], "log_prob": rollout.extras["log_prob"],
                "value": rollout.extras["value"], "advantage": advantage, "target": target}
        data = jax.tree_util.tree_map(lambda x: x.reshape((size,) + x.shape[2:]), data)
        (params, opt_state), infos = minibatch_epochs(opt, loss_fn, state.params, state.opt, data, key,
                                                      config.update_epochs, config.num_minibatches)
        state = absorb_rollout(config, state, rollout)  # only now do the statistics absorb the rollout

        info = {name: value.mean() for name, value in infos.items()}
        info["explained_variance"] = 1.0 - (target - rollout.extras["value"]).var() / (target.var() + 1e-8)
        info["action_std"] = jnp.exp(params["actor"]["params"]["log_std"]).mean()
        state = state.replace(params=params, opt=opt_state, updates=state.updates + 1)
        return state, info

    return Agent(init, HostStep(acting_parts, act, static_argnames="deterministic"), HostStep(sized_returns, update))


SPEC = AlgoSpec(
    name="ppo",
    config_cls=PPOConfig,
    make=make,
    on_policy=True,
    evaluation="the Gaussian's mean, clipped to [-1, 1].",
    description="PPO (clipped surrogate, GAE) with a Gaussian policy, clipped value loss, observation and reward "
                "normalisation and gradient clipping.",
)
