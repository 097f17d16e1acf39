"""DPPO — Diffusion Policy Policy Optimization (Ren et al., ICLR 2025), trained from scratch.

The policy is a DDPM ε-network (or x₀-network) over T denoising steps. Each denoising step is a Gaussian policy of
a two-layer MDP inside the environment step:

    x_T ~ N(0, I),   x_{t−1} ~ N(μ_θ(x_t, t, s), σ_t²),   σ_t = max(σ̃_t, std_min),   env action = clip(x_0, −1, 1)

μ_θ is the DDPM posterior mean around the predicted x̂₀ (clipped to [−1, 1]); σ̃_t² = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t) is the
posterior variance, floored at std_min (0.1) both for sampling and for the log-densities, so that every step
explores and every ratio stays finite. Acting keeps in the rollout's extras the last K′ = ft_denoising_steps steps
of the chain (x_{K′}, ..., x_0), each step's log-density per action dimension and V(s).

The update is PPO (boltzrl.agents.ppo supplies the statistics, GAE, losses, optimiser and minibatch loop) over
(transition, denoising step) pairs, shuffled together as in the official code: for the step from x_t to x_{t−1}
(t = 0 is the last step) the advantage is the env GAE advantage, standardised within the minibatch, times
denoising_discount^t, and the ratio is clipped to 1 ± ε_t with ε following the official exponential schedule from
clip_coef_base at the first fine-tuned step to clip_coef at the last:

    ε_i = base + (clip − base)·(e^{rate·i/(K′−1)} − 1)/(e^{rate} − 1),   i = 0 (x_{K′} → x_{K′−1}) .. K′−1 (x_1 → x_0)

As officially, the per-dimension log-densities are clamped to [−5, 2] and averaged over action dimensions before
the ratio, the value loss is unclipped, and an update stops early once a minibatch's approximate KL passes
target_kl. Evaluation follows the official evaluation mode: the same chain with the schedule's own σ̃_t (floored at
1e-3 instead of std_min) and no noise at the last step.

Settings. DPPO is a fine-tuning method: the `paper` preset holds its Gym (hopper/walker2d/halfcheetah) fine-tuning
values (T = 20, the last K′ = 10 steps trained, std floor 0.1, denoising discount 0.99, ε = 0.01 at every step,
actor lr 1e-4, critic lr 1e-3, 40 envs × 500 steps, 5 epochs of 4 minibatches of 50 000 pairs, target KL 1); the
dataclass defaults are the same. The SDAC paper ran DPPO from scratch as a baseline but its settings are not
recoverable (neither the paper nor its code gives them). The DPPO repository has its own from-scratch Gym
configs (cfg/gym/scratch/*/ppo_diffusion_mlp.yaml), which the `scratch` preset reproduces: T = K′ = 10, no
denoising discount, ε = 0.1 at every step, 10 envs × 1000 steps, 10 epochs of 20 minibatches, target KL 1. The
`cpu` preset is a cheap configuration chosen by measurement (see boltzrl/data/presets.toml).

Knowing departures from the official code: one network serves all T steps (officially the first T − K′ steps are
sampled by a frozen copy of the pre-trained network; from scratch there is none, so those steps move with the
shared parameters while only the last K′ are in the objective); plain MLPs instead of its residual MLPs; one action
per environment step (no action chunks); running observation normalisation instead of the offline dataset's
fixed one; rewards scaled by statistics that lag one rollout (ppo.py); Adam with ε = 1e-5 and constant learning
rates instead of AdamW (weight decay 0) with a warm-up of 10 iterations; no entropy or behaviour-cloning terms
(there is no base policy). The official fine-tuned policy's last x_0 is not clipped; the env gets it clipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from boltzrl import diffusion, nets
from boltzrl.diffusion.schedules import VP_SCHEDULES
from boltzrl.agents import ppo
from boltzrl.agents.normalization import RunningStats
from boltzrl.agents.base import Agent, AlgoSpec

LOG_PROB_CLAMP = (-5.0, 2.0)
"""Range of the per-dimension log-densities in the ratio (the official code's)."""
EVAL_STD_MIN = 1e-3
"""Floor of the denoising std in evaluation (the official evaluation mode's)."""


@dataclass(frozen=True)
class DPPOConfig:
    denoising_steps: int = 20
    """Denoising steps T of the policy's chain."""
    ft_denoising_steps: int = 10
    """K′: the last K′ denoising steps are in the PPO objective (and stored while acting)."""
    std_min: float = 0.1
    """Floor of every denoising step's std, for sampling and for the log-densities."""
    denoising_discount: float = 0.99
    """The step from x_t to x_{t−1} gets the env advantage times denoising_discount^t (t = 0: the last step)."""
    clip_coef: float = 0.01
    """ε of the clipped surrogate at the last denoising step (official clip_ploss_coef)."""
    clip_coef_base: float = 0.01
    """ε at the first fine-tuned denoising step (official clip_ploss_coef_base)."""
    clip_coef_rate: float = 3.0
    """Rate of the exponential interpolation of ε from clip_coef_base (first fine-tuned step) to clip_coef (last
    step); 0 interpolates linearly (official clip_ploss_coef_rate)."""
    noise_clip: float = 3.0
    """The standard normal noise of each denoising step is clipped to [−noise_clip, noise_clip] (official
    randn_clip_value)."""
    predict_epsilon: bool = True
    """The network predicts ε (else it predicts x₀ directly)."""
    schedule: str = "cosine"
    """VP noise schedule: cosine (the official one), linear or vp_sde."""
    actor_lr: float = 1e-4
    """Adam learning rate of the denoising network."""
    critic_lr: float = 1e-3
    """Adam learning rate of the value network."""
    actor_hidden: tuple[int, ...] = (512, 512, 512)
    """Hidden widths of the denoising network."""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the value network."""
    actor_activation: str = "relu"
    """Activation of the denoising network."""
    critic_activation: str = "mish"
    """Activation of the value network."""
    time_dim: int = 16
    """Width of the denoising step's embedding."""
    gamma: float = 0.99
    """Discount factor (of GAE and of the running return that scales rewards)."""
    gae_lambda: float = 0.95
    """λ of generalised advantage estimation."""
    update_epochs: int = 5
    """Passes over each rollout's (transition, denoising step) pairs per update."""
    num_minibatches: int = 4
    """Minibatches per pass; each holds rollout_steps·num_envs·ft_denoising_steps // num_minibatches pairs."""
    value_coef: float = 0.5
    """Weight of the value loss in the joint loss."""
    value_clip: float = 0.0
    """Clip V to within this distance of its acting-time value in the value loss; 0: unclipped (official)."""
    target_kl: float = 1.0
    """Skip the rest of an update once a minibatch's approximate KL exceeds this; 0: never."""
    max_grad_norm: float = 0.0
    """Global norm to which each minibatch's gradient is clipped; 0 turns it off (official)."""
    normalize_advantages: bool = True
    """Standardise the env advantages within each minibatch (before the denoising discount)."""
    clamp_log_prob: bool = True
    """Clamp the per-dimension log-densities to [−5, 2] in the ratio (official)."""
    ratio_mean_over_dims: bool = True
    """Average the per-dimension log-ratios over action dimensions (official); else sum them (the joint ratio)."""
    normalize_obs: bool = True
    """Standardise observations by a running mean and variance kept in the agent state."""
    normalize_reward: bool = True
    """Divide rewards by the running std of each env's discounted return (kept in the agent state)."""
    obs_clip: float = 10.0
    """Normalised observations are clipped to [−obs_clip, obs_clip]."""
    reward_clip: float = 10.0
    """Scaled rewards are clipped to [−reward_clip, reward_clip]."""
    anneal_updates: int = 0
    """Decay both learning rates linearly to 0 over this many updates (one per rollout); 0: constant."""

    def __post_init__(self):
        for name in ("denoising_steps", "ft_denoising_steps", "update_epochs", "num_minibatches", "time_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.ft_denoising_steps > self.denoising_steps:
            raise ValueError(f"ft_denoising_steps ({self.ft_denoising_steps}) cannot exceed denoising_steps "
                             f"({self.denoising_steps}).")
        for name in ("std_min", "clip_coef", "clip_coef_base", "noise_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        for name in ("clip_coef_rate", "value_clip", "target_kl", "max_grad_norm", "anneal_updates"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}.")
        if not 0.0 < self.denoising_discount <= 1.0:
            raise ValueError(f"denoising_discount must be in (0, 1], got {self.denoising_discount}.")
        if self.schedule not in VP_SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(sorted(VP_SCHEDULES))}, "
                             f"got {self.schedule!r}.")


# pure pieces ---------------------------------------------------------------------------------------------------
def log_density(x, mean, std):
    """log N(x; mean, std²) per dimension (not summed)."""
    return -0.5 * ((x - mean) / std) ** 2 - jnp.log(std) - 0.5 * math.log(2 * math.pi)


def clip_schedule(config: DPPOConfig, step):
    """ε of fine-tuned step `step` (0 = the first, x_{K′} → x_{K′−1}; K′ − 1 = the last, x_1 → x_0): exponential
    from clip_coef_base to clip_coef at rate clip_coef_rate (linear at rate 0)."""
    k = config.ft_denoising_steps
    if k == 1:
        return jnp.full(jnp.shape(step), config.clip_coef, jnp.float32)
    u = jnp.asarray(step, jnp.float32) / (k - 1)
    rate = config.clip_coef_rate
    shape = u if rate == 0 else jnp.expm1(rate * u) / math.expm1(rate)
    return config.clip_coef_base + (config.clip_coef - config.clip_coef_base) * shape


def step_discount(config: DPPOConfig, step):
    """denoising_discount^t for fine-tuned step `step`, t = K′ − 1 − step: the number of denoising steps after it."""
    return config.denoising_discount ** (config.ft_denoising_steps - 1 - jnp.asarray(step, jnp.float32))


def ratio_log_prob(config: DPPOConfig, log_prob):
    """The per-step log-probability that enters the ratio, from per-dimension log-densities (..., d)."""
    if config.clamp_log_prob:
        log_prob = jnp.clip(log_prob, *LOG_PROB_CLAMP)
    return log_prob.mean(-1) if config.ratio_mean_over_dims else log_prob.sum(-1)


def posterior_coefficients(schedule: diffusion.VPSchedule):
    """(coef_x0, coef_xt, std) of the DDPM posterior q(x_{t−1} | x_t, x̂₀) at each step index (0..T−1)."""
    ab = schedule.alpha_bars
    ab_prev = jnp.concatenate([jnp.ones((1,), ab.dtype), ab[:-1]])
    coef_x0 = schedule.betas * jnp.sqrt(ab_prev) / (1.0 - ab)
    coef_xt = (1.0 - ab_prev) * jnp.sqrt(schedule.alphas) / (1.0 - ab)
    return coef_x0, coef_xt, jnp.sqrt(schedule.betas * (1.0 - ab_prev) / (1.0 - ab))


def make(config: DPPOConfig, obs_dim: int, act_dim: int) -> Agent:
    schedule = diffusion.make_vp_schedule(config.schedule, config.denoising_steps)
    coef_x0, coef_xt, post_std = posterior_coefficients(schedule)
    eps_net = nets.EpsNet(config.actor_hidden, act_dim, config.actor_activation, config.time_dim)
    critic_net = ppo.ValueNet(config.critic_hidden, config.critic_activation)
    opt = ppo.optimizer(config)
    num_steps, num_ft = config.denoising_steps, config.ft_denoising_steps
    value_clip = config.value_clip or None

    def denoise_mean(actor, obs, x, t):
        """μ_θ(x_t, t, s): the posterior mean around the network's x̂₀ (clipped to [−1, 1]); t a scalar or (B,)."""
        out = eps_net.apply(actor, obs, x, t)
        if config.predict_epsilon:
            ab = schedule.alpha_bars[t][..., None]
            out = (x - jnp.sqrt(1.0 - ab) * out) / jnp.sqrt(ab)
        x0 = jnp.clip(out, -1.0, 1.0)
        return coef_x0[t][..., None] * x0 + coef_xt[t][..., None] * x

    def step_std(t):
        return jnp.maximum(post_std[t], config.std_min)

    def init(key):
        k1, k2 = jax.random.split(key)
        obs = jnp.zeros((1, obs_dim))
        params = {"actor": eps_net.init(k1, obs, jnp.zeros((1, act_dim)), jnp.zeros((1,), jnp.int32)),
                  "critic": critic_net.init(k2, obs)}
        return ppo.PPOState(params=params, opt=opt.init(params), obs_stats=RunningStats.create((obs_dim,)),
                            return_stats=RunningStats.create(), env_returns=jnp.zeros((0,), jnp.float32),
                            updates=jnp.zeros((), jnp.int32))

    def act(params, obs_stats, obs, key, deterministic: bool = False):
        obs = ppo.normalize_obs(config, obs_stats, obs)
        k_init, k_noise = jax.random.split(key)
        shape = (obs.shape[0], act_dim)

        def step(x, inputs):
            t, k = inputs
            mean = denoise_mean(params["actor"], obs, x, t)
            std = step_std(t)
            if deterministic:
                std = jnp.where(t == 0, 0.0, jnp.maximum(post_std[t], EVAL_STD_MIN))
            noise = jnp.clip(jax.random.normal(k, shape), -config.noise_clip, config.noise_clip)
            x_next = mean + std * noise
            # the density of the training policy's step (std floored at std_min), the one the update re-evaluates
            return x_next, (x, log_density(x_next, mean, step_std(t)))

        ts = jnp.arange(num_steps - 1, -1, -1, dtype=jnp.int32)
        x0, (inputs, log_probs) = jax.lax.scan(step, jax.random.normal(k_init, shape),
                                               (ts, jax.random.split(k_noise, num_steps)))
        chain = jnp.concatenate([inputs[num_steps - num_ft:], x0[None]])  # x_{K′}, ..., x_0
        extras = {"chain": jnp.swapaxes(chain, 0, 1), "log_prob": jnp.swapaxes(log_probs[num_steps - num_ft:], 0, 1),
                  "value": critic_net.apply(params["critic"], obs)}
        return jnp.clip(x0, -1.0, 1.0), extras

    def loss_fn(params, batch):
        step = batch["step"]
        t = num_ft - 1 - step
        mean = denoise_mean(params["actor"], batch["obs"], batch["x_in"], t)
        log_prob = ratio_log_prob(config, log_density(batch["x_out"], mean, step_std(t)[..., None]))
        old_log_prob = ratio_log_prob(config, batch["log_prob"])
        advantage = batch["advantage"]
        if config.normalize_advantages:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        advantage = advantage * step_discount(config, step)
        clip = clip_schedule(config, step)
        actor_loss = ppo.clipped_surrogate(log_prob, old_log_prob, advantage, clip)
        value = critic_net.apply(params["critic"], batch["obs"])
        critic_loss = ppo.value_loss(value, batch["value"], batch["target"], value_clip)
        log_ratio = log_prob - old_log_prob
        ratio = jnp.exp(log_ratio)
        return actor_loss + config.value_coef * critic_loss, {
            "actor_loss": actor_loss, "critic_loss": critic_loss, "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "clip_fraction": (jnp.abs(ratio - 1.0) > clip).mean(), "ratio": ratio.mean()}

    def update(state: ppo.PPOState, rollout, key):
        steps, num_envs = rollout.reward.shape
        size = steps * num_envs
        pairs = size * num_ft
        if pairs // config.num_minibatches == 0:
            raise ValueError(f"A rollout of {size} transitions × {num_ft} denoising steps cannot fill "
                             f"{config.num_minibatches} minibatches; lower --num-minibatches or raise --rollout-steps.")
        obs, advantage, target = ppo.rollout_advantages(
            config, lambda o: critic_net.apply(state.params["critic"], o), state, rollout)
        flat = lambda x: x.reshape((size,) + x.shape[2:])
        per_pair = lambda x: jnp.repeat(flat(x), num_ft, axis=0)  # pair j: transition j // K′, step j % K′
        chain = flat(rollout.extras["chain"])
        data = {"obs": per_pair(obs), "x_in": chain[:, :-1].reshape(pairs, act_dim),
                "x_out": chain[:, 1:].reshape(pairs, act_dim),
                "log_prob": flat(rollout.extras["log_prob"]).reshape(pairs, act_dim),
                "step": jnp.tile(jnp.arange(num_ft, dtype=jnp.int32), size),
                "value": per_pair(rollout.extras["value"]), "advantage": per_pair(advantage),
                "target": per_pair(target)}
        (params, opt_state), infos = ppo.minibatch_epochs(opt, loss_fn, state.params, state.opt, data, key,
                                                          config.update_epochs, config.num_minibatches,
                                                          config.target_kl or None)
        state = ppo.absorb_rollout(config, state, rollout)  # only now do the statistics absorb the rollout

        skipped = infos.pop("skipped") if "skipped" in infos else jnp.zeros_like(infos["approx_kl"])
        info = {name: (value * (1.0 - skipped)).sum() / jnp.maximum((1.0 - skipped).sum(), 1.0)
                for name, value in infos.items()}  # the minibatches that were stepped on
        info["skipped_fraction"] = skipped.mean()
        info["explained_variance"] = 1.0 - (target - rollout.extras["value"]).var() / (target.var() + 1e-8)
        return state.replace(params=params, opt=opt_state, updates=state.updates + 1), info

    return Agent(init, ppo.HostStep(ppo.acting_parts, act, static_argnames="deterministic"),
                 ppo.HostStep(ppo.sized_returns, update))


SPEC = AlgoSpec(
    name="dppo",
    config_cls=DPPOConfig,
    make=make,
    on_policy=True,
    evaluation="the denoising chain with the schedule's own std (floored at 1e-3 instead of std_min) and no noise "
               "at the last step (the official evaluation mode; x_T is still random), x_0 clipped to [-1, 1].",
    description="DPPO: PPO over the last K' denoising steps of a DDPM policy whose steps are Gaussians with a "
                "floored std; env GAE advantages discounted along the chain, step-dependent clipping.",
)
