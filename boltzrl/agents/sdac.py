"""SDAC — Soft Diffusion Actor-Critic (Ma et al., ICML 2025).

A VP diffusion policy trained with reverse-sampling score matching (RSSM) on the energy −Q/temperature:

    a_t ~ proposal at step t;   a_0^j ~ q̃(a_0 | a_t) = N(a_t/√ᾱ_t, (1/ᾱ_t − 1)·I)  (j = 1..M; clipped to, or
    drawn truncated to, [−1, 1]);   w_j = softmax_j(min_i Q_i(s, a_0^j) / temperature);
    L = Σ_j w_j·‖ε_θ(s, a_t, t) − ε^j‖²

Acting and the TD target use best-of-N samples plus Gaussian noise noise_scale·α; α follows a target entropy of
that noise. An EMA copy of the policy is the one that acts. With auto_temperature the RSSM temperature is tuned
instead, like SAC's α, toward a target spread of the policy's own samples at a state, so that how sharp the policy
is does not hinge on how much Q varies over actions on a given task. With action_ascent_steps every acting and
evaluation action is finished by a few Adam steps of gradient ascent on min Q from the policy's sample (not in the
paper): on DeepMind Control, Q varies over the action box by less than RSSM's M draws can resolve, and the policy
alone cannot climb even a good critic (benchmarks/sdac, the fixed-critic probe). target_ascent_steps finishes the
TD target's next action the same way, so that the critic values the ascended behaviour rather than the raw policy.

The presets live in boltzrl/data/presets.toml. The `paper` preset follows the paper and its camera-ready code;
knowing departures: the cosine schedule of the paper's text (the code runs a linear one scaled by 0.8, selectable
with schedule="linear", linear_scale=0.8), and evaluation of the latest policy rather than the code's per-seed
best evaluation. The `cpu` preset departs on purpose, chosen by measurement on DeepMind Control (benchmarks/sdac):
truncated reverse draws, a fixed temperature in units of Q's within-state spread over the action box
(q_normalization="action_spread": the same default holds whatever the reward scale) separate from the exploration
noise (none: one policy sample per action, finished by gradient ascent on Q, and the TD target's next action
likewise), one critic and one policy update per env step, short chains and few draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import flax.struct
import jax
import jax.numpy as jnp
import optax

from boltzrl import diffusion, nets
from boltzrl.agents.base import Agent, counted_jit, AlgoSpec, adam, apply_grads, scan_updates
from boltzrl.agents.critic import action_ascent, critic_update, delayed, polyak_target
from boltzrl.agents.entropy import alpha_loss

PROPOSALS = ("policy", "acting", "replay", "uniform")


@dataclass(frozen=True)
class SDACConfig:
    denoising_steps: int = 20
    """Denoising steps T of the policy's chain."""
    schedule: str = "cosine"
    """VP noise schedule: cosine, linear, vp_sde or edm (a power grid in noise-to-signal ratio, fine near the data:
    a short chain can then learn a sharper policy, see benchmarks/sdac/sharpness.py)."""
    linear_scale: float = 1.0
    """Scale of the betas of the linear schedule (the SDAC code uses 0.8)."""
    edm_sigma_min: float = 0.02
    """Noise-to-signal ratio √((1 − ᾱ)/ᾱ) of the edm schedule's first step."""
    edm_sigma_max: float = 10.0
    """Noise-to-signal ratio of the edm schedule's last step (10 is pure noise for actions in [−1, 1])."""
    edm_rho: float = 3.0
    """Power of the edm grid: larger puts more steps near the data."""
    init_scale: float = 1.0
    """Std of the Gaussian the sampling chain starts from (the SDAC code uses 0.5)."""
    num_candidates: int = 32
    """N of best-of-N action selection (acting, evaluation and, unless target_candidates is set, the TD target)."""
    eval_candidates: int = 0
    """N of best-of-N for the evaluation action (the deterministic one); 0 uses num_candidates. A policy that explores
    by its own spread (num_candidates = 1) is evaluated greedily this way, as SAC evaluates its mean action."""
    target_candidates: int = 0
    """N of best-of-N for the TD target's next action; 0 uses num_candidates."""
    action_ascent_steps: int = 0
    """Adam steps of gradient ascent on min Q that refine every acting and evaluation action, and the acting
    proposal (DIPO's action-space improvement; 0 acts with the policy's samples as the paper does). RSSM's weights
    resolve Q only as finely as M draws can; the gradient resolves it everywhere."""
    action_ascent_lr: float = 0.03
    """Adam learning rate of the action ascent: the most an action coordinate moves per step."""
    target_ascent_steps: int = 0
    """Adam steps of the same ascent (on the target critics) that refine the TD target's next action; 0 uses the
    policy's sample. Without it the critic learns the value of "the ascended action now, the raw policy after" and
    under-values what the agent does."""
    eval_noise_scale: float = 1.0
    """Scale of the chain's noise (its start and every step) for the evaluation action: 1 samples the policy, 0 runs
    the chain deterministically (a mode-seeking action, as SAC evaluates its mean action)."""
    num_draws: int = 64
    """M reverse draws a_0^j per state in the RSSM loss."""
    policy_states: int = 0
    """States of the minibatch in the RSSM loss (0: all of them). Fewer states with more draws each buy a sharper
    score target at the same cost: the draws, not the states, limit how sharp the policy can get."""
    proposal: str = "policy"
    """Proposal of a_t: policy (a raw current-policy sample, forward-noised), acting (the behaviour action,
    best-of-N plus noise, forward-noised: the SDAC code), replay (the replay action, forward-noised), uniform."""
    clip_a0: bool = True
    """Clip reverse draws to [-1, 1] before evaluating Q (Q is only trained there)."""
    truncated_draws: bool = False
    """Draw a_0^j from q̃(a_0 | a_t) truncated to [-1, 1] instead of clipping the Gaussian draws: exact importance
    sampling of a Boltzmann policy on the action box; clipping piles the draws of large t onto the box's corners."""
    q_normalization: str = "none"
    """Scale of Q in the RSSM weights: none; batch (the paper's variant: batch mean and std); per_state (mean and
    std over each state's M draws); action_spread (Q divided by its within-state std over uniform actions, pooled
    over the batch: a Boltzmann policy whose temperature does not depend on the reward scale)."""
    spread_actions: int = 8
    """Uniform actions per state that measure Q's spread for q_normalization=action_spread."""
    spread_states: int = 32
    """States of the minibatch whose uniform actions measure that spread (0: all): one number for the whole batch,
    so a few states estimate it well at a fraction of the critic evaluations."""
    energy_scale: float = 0.2
    """The RSSM temperature is energy_scale, times α when temperature_follows_alpha (the SDAC code divides Q by
    α/5)."""
    temperature_follows_alpha: bool = True
    """Tie the RSSM temperature to the exploration α (the paper); if False they are separate knobs."""
    auto_temperature: bool = False
    """Tune the RSSM temperature (starting at energy_scale) so that the policy's action std at a state matches
    target_policy_std: SAC's target entropy, measured on the diffusion policy's own samples."""
    target_policy_std: float = 0.1
    """Target per-dimension std of the policy's actions at one state (geometric mean over dimensions and states);
    0.1 is about the std of a Gaussian with SAC's target entropy of −1 per dimension."""
    temperature_lr: float = 1e-3
    """Adam learning rate of the log temperature under auto_temperature."""
    std_states: int = 16
    """States of the minibatch at which auto_temperature measures the policy's std."""
    std_samples: int = 8
    """Policy samples per state that measure its std."""
    init_alpha: float = 5.0
    """Initial α; exploration noise std is noise_scale·α."""
    noise_scale: float = 0.1
    """Exploration noise std per unit of α."""
    target_entropy_per_dim: float = -0.9
    """Target entropy of the exploration noise, per action dimension."""
    alpha_lr: float = 7e-3
    """Adam learning rate of log α."""
    alpha_every: int = 250
    """Update α every this many iterations."""
    autotune_alpha: bool = True
    """Tune α toward the target entropy; if False α stays at init_alpha."""
    reward_scale: float = 0.2
    """Rewards are multiplied by this in the TD target."""
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the ε-network (the policy)."""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of each critic."""
    activation: str = "mish"
    """Activation of the hidden layers."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    actor_lr: float = 3e-4
    """Initial Adam learning rate of the policy's ε-network."""
    actor_lr_end: float = 3e-5
    """Final policy learning rate after linear decay."""
    actor_lr_decay_steps: int = 100_000
    """Policy updates over which the learning rate decays linearly."""
    actor_lr_decay_begin: int = 0
    """Policy updates before the decay starts (the SDAC code: 25 000)."""
    policy_delay: int = 2
    """Policy, EMA and target updates every this many critic updates."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics and the EMA policy."""

    def __post_init__(self):
        if self.q_normalization not in diffusion.RSSM_NORMALIZATIONS:
            raise ValueError(f"q_normalization must be one of {', '.join(diffusion.RSSM_NORMALIZATIONS)}, "
                             f"got {self.q_normalization!r}.")
        if self.proposal not in PROPOSALS:
            raise ValueError(f"proposal must be one of {', '.join(PROPOSALS)}, got {self.proposal!r}.")
        for name in ("denoising_steps", "num_candidates", "num_draws", "policy_delay", "alpha_every",
                     "spread_actions", "std_states", "std_samples"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.policy_states < 0 or self.spread_states < 0:
            raise ValueError("policy_states and spread_states must be 0 (the whole minibatch) or positive, got "
                             f"{self.policy_states} and {self.spread_states}.")
        for name in ("target_candidates", "eval_candidates"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (same as num_candidates) or positive, got {getattr(self, name)}.")
        if not 0 < self.edm_sigma_min < self.edm_sigma_max or self.edm_rho <= 0:
            raise ValueError("the edm schedule needs 0 < edm_sigma_min < edm_sigma_max and edm_rho > 0.")
        for name in ("action_ascent_steps", "target_ascent_steps", "action_ascent_lr", "eval_noise_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}.")
        for name in ("energy_scale", "init_alpha", "temperature_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.noise_scale < 0 or (self.autotune_alpha and self.noise_scale == 0):
            raise ValueError(f"noise_scale must be positive (or 0 with autotune_alpha off), got {self.noise_scale}.")
        if not 0 < self.target_policy_std < 1:
            raise ValueError(f"target_policy_std must be in (0, 1) (actions live in [-1, 1]), "
                             f"got {self.target_policy_std}.")
        if self.std_samples < 2 and self.auto_temperature:
            raise ValueError("std_samples must be at least 2 to measure a std.")
        if self.truncated_draws and not self.clip_a0:
            raise ValueError("truncated_draws needs clip_a0: the draws are truncated to the action box.")


class SDACState(flax.struct.PyTreeNode):
    policy: dict
    ema_policy: dict
    critic: dict
    target_critic: dict
    log_alpha: jax.Array
    log_temperature: jax.Array
    policy_opt: tuple
    critic_opt: tuple
    alpha_opt: tuple
    temperature_opt: tuple
    steps: jax.Array


def make(config: SDACConfig, obs_dim: int, act_dim: int) -> Agent:
    kw = {"linear": {"scale": config.linear_scale},
          "edm": {"sigma_min": config.edm_sigma_min, "sigma_max": config.edm_sigma_max, "rho": config.edm_rho}}
    kw = kw.get(config.schedule, {})
    schedule = diffusion.make_vp_schedule(config.schedule, config.denoising_steps, **kw)
    eps_net = nets.EpsNet(config.actor_hidden, act_dim, config.activation)
    critic_net = nets.Critics(2, config.critic_hidden, config.activation)
    actor_lr = optax.linear_schedule(config.actor_lr, config.actor_lr_end, config.actor_lr_decay_steps,
                                     config.actor_lr_decay_begin)
    policy_opt, critic_opt, alpha_opt = adam(actor_lr), adam(config.critic_lr), adam(config.alpha_lr)
    temperature_opt = adam(config.temperature_lr)
    target_entropy = config.target_entropy_per_dim * act_dim

    def sample(policy, obs, key, n, noise_scale=1.0):
        """n policy samples per state: obs (B, obs_dim) → (B, n, d)."""
        obs = jnp.broadcast_to(obs[:, None], (obs.shape[0], n, obs_dim))
        eps_fn = lambda x, t: eps_net.apply(policy, obs, x, t)
        return diffusion.ddpm_sample(eps_fn, key, obs.shape[:2] + (act_dim,), schedule,
                                     init_scale=noise_scale * config.init_scale, noise_scale=noise_scale)

    def best_of_n(policy, critic, obs, key, n=config.num_candidates, noise_scale=1.0):
        if n == 1:  # nothing to choose from: skip the critic
            return sample(policy, obs, key, 1, noise_scale)[:, 0]
        candidates = sample(policy, obs, key, n, noise_scale)
        obs_n = jnp.broadcast_to(obs[:, None], candidates.shape[:2] + (obs_dim,))
        q = critic_net.apply(critic, obs_n, candidates).min(0)
        return diffusion.best_of_n(candidates, q)

    def noisy(action, log_alpha, key):
        std = config.noise_scale * jnp.exp(log_alpha)
        return jnp.clip(action + std * jax.random.normal(key, action.shape), -1.0, 1.0)

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        policy = eps_net.init(k1, obs, act, jnp.zeros((), jnp.int32))
        critic = critic_net.init(k2, obs, act)
        log_alpha = jnp.log(jnp.float32(config.init_alpha))
        log_temperature = jnp.log(jnp.float32(config.energy_scale))
        return SDACState(
            policy=policy, ema_policy=policy, critic=critic, target_critic=critic, log_alpha=log_alpha,
            log_temperature=log_temperature, policy_opt=policy_opt.init(policy), critic_opt=critic_opt.init(critic),
            alpha_opt=alpha_opt.init(log_alpha), temperature_opt=temperature_opt.init(log_temperature),
            steps=jnp.zeros((), jnp.int32),
        )

    def refine(critic, obs, action, steps=config.action_ascent_steps):
        if not steps:
            return action
        q_fn = lambda o, a: critic_net.apply(critic, o, a)
        return action_ascent(q_fn, obs, action, steps, config.action_ascent_lr, 0.0)[0]

    @counted_jit(static_argnames="deterministic")
    def act(state: SDACState, obs, key, deterministic: bool = False):
        k_sample, k_noise = jax.random.split(key)
        if deterministic:
            action = best_of_n(state.ema_policy, state.critic, obs, k_sample,
                               config.eval_candidates or config.num_candidates, config.eval_noise_scale)
            return refine(state.critic, obs, action), {}
        action = refine(state.critic, obs, best_of_n(state.ema_policy, state.critic, obs, k_sample))
        return noisy(action, state.log_alpha, k_noise), {}

    def proposal(state, batch, t, key):
        k_a, k_noise = jax.random.split(key)
        if config.proposal == "policy":
            a0 = sample(state.policy, batch.obs, k_a, 1)[:, 0]
        elif config.proposal == "acting":
            k_a, k_acting_noise = jax.random.split(k_a)
            acting = refine(state.critic, batch.obs, best_of_n(state.ema_policy, state.critic, batch.obs, k_a))
            a0 = noisy(acting, state.log_alpha, k_acting_noise)
        elif config.proposal == "replay":
            a0 = batch.action
        else:  # uniform: a_0 uniform on the action box
            a0 = jax.random.uniform(k_a, batch.action.shape, minval=-1.0, maxval=1.0)
        return diffusion.vp_forward(a0, t, jax.random.normal(k_noise, a0.shape), schedule)

    def policy_update(state: SDACState, critic, batch, key):
        k_t, k_prop, k_draw, k_ref = jax.random.split(key, 4)
        if config.policy_states:
            batch = jax.tree_util.tree_map(lambda x: x[:config.policy_states], batch)
        obs = batch.obs
        t = jax.random.randint(k_t, (obs.shape[0],), 0, config.denoising_steps)
        a_t = proposal(state, batch, t, k_prop)
        a0, eps = diffusion.rssm_reverse_draws(a_t, t, schedule, k_draw, config.num_draws,
                                               clip=1.0 if config.clip_a0 else None, truncate=config.truncated_draws)
        obs_m = jnp.broadcast_to(obs[:, None], a0.shape[:2] + (obs_dim,))
        q = critic_net.apply(critic, obs_m, a0).min(0)
        reference = None
        if config.q_normalization == "action_spread":
            obs_ref = obs[:config.spread_states] if config.spread_states else obs
            uniform = jax.random.uniform(k_ref, (obs_ref.shape[0], config.spread_actions, act_dim), minval=-1.0,
                                         maxval=1.0)
            obs_k = jnp.broadcast_to(obs_ref[:, None], uniform.shape[:2] + (obs_dim,))
            reference = critic_net.apply(critic, obs_k, uniform).min(0)
        alpha_factor = jnp.exp(state.log_alpha) if config.temperature_follows_alpha else 1.0
        temperature = jnp.exp(state.log_temperature) * alpha_factor
        weights = diffusion.rssm_weights(q, config.q_normalization, temperature, reference)

        def loss_fn(params):
            return diffusion.rssm_loss(eps_net.apply(params, obs, a_t, t), eps, weights)

        loss, grads = jax.value_and_grad(loss_fn)(state.policy)
        policy, p_opt = apply_grads(policy_opt, state.policy, state.policy_opt, grads)
        ess = 1.0 / jnp.sum(weights**2, axis=-1).mean()  # effective number of draws: how peaked the weights are
        return policy, p_opt, loss, ess

    def tune_temperature(state: SDACState, obs, key):
        """One Adam step on log temperature: down while the policy's actions at a state spread wider than the
        target, up while narrower. The policy needs updates to follow a new temperature, so like SAC's α this is a
        slow feedback loop, not a per-batch solve."""
        samples = sample(state.policy, obs[:config.std_states], key, config.std_samples)
        log_std = jnp.log(jnp.std(samples, axis=1) + 1e-6).mean()
        grad = jax.grad(alpha_loss)(state.log_temperature, log_std, math.log(config.target_policy_std))
        log_temperature, t_opt = apply_grads(temperature_opt, state.log_temperature, state.temperature_opt, grad)
        # a target the policy cannot reach drives the temperature down without end; far below the point where the
        # weights are one-hot it changes nothing but would underflow to 0, so it is held in a float32-safe range
        log_temperature = jnp.clip(log_temperature, -20.0, 20.0)
        return state.replace(log_temperature=log_temperature, temperature_opt=t_opt), jnp.exp(log_std)

    def step(state: SDACState, batch, key):
        k_next, k_noise, k_pi = jax.random.split(key, 3)
        next_action = best_of_n(state.ema_policy, state.target_critic, batch.next_obs, k_next,
                                config.target_candidates or config.num_candidates)
        next_action = refine(state.target_critic, batch.next_obs, next_action, config.target_ascent_steps)
        next_action = noisy(next_action, state.log_alpha, k_noise)
        # the targets move with the (delayed) policy, as in the SDAC code
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma,
                                    reward_scale=config.reward_scale)
        state = state.replace(steps=state.steps + 1)

        def update_policy(state):
            policy, p_opt, loss, ess = policy_update(state, state.critic, batch, k_pi)
            state = polyak_target(state, config.tau).replace(
                policy=policy, policy_opt=p_opt, ema_policy=nets.soft_update(state.ema_policy, policy, config.tau))
            info = {"actor_loss": loss, "rssm_ess": ess}
            if config.auto_temperature:
                state, info["policy_std"] = tune_temperature(state, batch.obs, jax.random.fold_in(k_pi, 1))
                info["temperature"] = jnp.exp(state.log_temperature)
            return state, info

        state, policy_info = delayed(state.steps, config.policy_delay, update_policy, state)

        if config.autotune_alpha:
            def update_alpha(state):
                std = config.noise_scale * jnp.exp(state.log_alpha)
                entropy = 0.5 * act_dim * jnp.log(2 * math.pi * math.e * std**2)
                grad = jax.grad(alpha_loss)(state.log_alpha, entropy, target_entropy)
                log_alpha, a_opt = apply_grads(alpha_opt, state.log_alpha, state.alpha_opt, grad)
                return state.replace(log_alpha=log_alpha, alpha_opt=a_opt)

            state = jax.lax.cond(state.steps % config.alpha_every == 0, update_alpha, lambda s: s, state)

        info = {**info, **policy_info, "alpha": jnp.exp(state.log_alpha)}
        return state, info

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update)


SPEC = AlgoSpec(
    name="sdac",
    config_cls=SDACConfig,
    make=make,
    evaluation="best of eval_candidates (default: num_candidates) EMA-policy samples under the critic (their chains "
               "run with eval_noise_scale), finished by action_ascent_steps of ascent on Q, without exploration "
               "noise.",
    description="Soft Diffusion Actor-Critic: VP diffusion policy trained with reverse-sampling score matching.",
)
