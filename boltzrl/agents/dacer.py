"""DACER — Diffusion Actor-Critic with Entropy Regulator (Wang et al., NeurIPS 2024).

The policy is the reverse chain of a VP diffusion model, used as a reparameterised sampler: the actor loss

    L(θ) = −mean_s min_j Q_j(s, clip(a_θ(s, z) + κ·α·ξ, −1, 1)),   a_θ(s, z) = the T-step DDPM chain from z ~ N(0, I)

is back-propagated through every denoising step (x̂₀ clipped to [−1, 1] at each step, as in the official code; where
x̂₀ is clipped its step passes no gradient, which at an untrained network's first steps is most of the time). The
chain has no tractable density, so the entropy of the behaviour policy is estimated every `entropy_every` updates
by fitting a diagonal Gaussian mixture (3 components) to `entropy_samples` behaviour actions at each of a few
states; α then takes one Adam step on log α·(H − H̄), H̄ = −0.9·d, and sets the exploration noise κ·α·ξ.

The mixture is fitted by EM written in JAX (`fit_diagonal_gmm`): a fixed number of iterations is one
`lax.fori_loop`, so the estimate compiles into the update and runs only inside its `lax.cond`; the official code
leaves the compiled step through a host callback to scikit-learn's `GaussianMixture` (full covariances, fitted
per state in a Python loop), which blocks the device, is not part of the pure state update and is not a
dependency here.

Presets in boltzrl/data/presets.toml. The `paper` preset follows the official code (happy-yan/DACER-Diffusion-
with-Online-RL): VP-SDE schedule (b_min 0.1, b_max 10), T = 20, 3×256 Mish, lr 1e-4 for policy and critics,
α₀ = 3, Adam 3e-2 on log α every 10k updates, κ = 0.1 (0.15 for HalfCheetah/Humanoid: set noise_scale),
rewards × 0.2, policy and targets every 2nd update, 20 envs with one update per iteration. Knowing departures:

- the critic is the ordinary clipped double-Q twin critic (critic.py), not the distributional DSAC-T critic;
- the mixture has diagonal covariances (the official fit is full-covariance);
- the entropy is that of the behaviour action *before* its final clip to the box (the chain's action plus
  κ·α·ξ): clipping piles probability mass onto the box's faces, where a Gaussian mixture fit collapses to
  near-zero variances, the estimate plunges and α would grow without bound in the tasks whose best actions are
  saturated; the Gaussian noise keeps the estimated density proper;
- by default the estimate is the entropy of the fitted mixture (−mean log p_GMM over the fitted samples); the
  official formula, −Σ w_k log w_k + Σ w_k H(N_k), is an upper bound that is exact only for well separated
  components and overstates overlapping ones by up to log 3 (entropy_estimator="bound", the paper preset);
- the entropy is estimated on the first `entropy_states` states of the minibatch (the official code uses all
  256); the critic step uses the current critic in the policy loss (the official code the pre-step one).
The `cpu` preset is cheap on purpose: T = 5, 2×256 networks, the entropy on 8 states every 250 updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp

from boltzrl import diffusion, nets
from boltzrl.agents.base import Agent, counted_jit, AlgoSpec, adam, apply_grads, scan_updates
from boltzrl.agents.critic import critic_update, delayed, polyak_target
from boltzrl.agents.entropy import alpha_loss

ENTROPY_ESTIMATORS = ("mixture", "bound")


@dataclass(frozen=True)
class DACERConfig:
    denoising_steps: int = 20
    """Denoising steps T of the policy's chain (all of them are back-propagated through)."""
    schedule: str = "vp_sde"
    """VP noise schedule: vp_sde (DACER: b_min 0.1, b_max 10), cosine or linear."""
    init_scale: float = 1.0
    """Std of the Gaussian the sampling chain starts from."""
    clip_x0: bool = True
    """Clip the predicted x̂₀ to [-1, 1] at every denoising step (the official code)."""
    init_alpha: float = 3.0
    """Initial α; the exploration noise std is noise_scale·α."""
    noise_scale: float = 0.1
    """κ: exploration noise std per unit of α (the official code: 0.15 for HalfCheetah and Humanoid, else 0.1)."""
    target_entropy_per_dim: float = -0.9
    """Target entropy of the behaviour policy, per action dimension."""
    alpha_lr: float = 3e-2
    """Adam learning rate of log α (one step per entropy estimate)."""
    autotune_alpha: bool = True
    """Tune α toward the target entropy; if False α stays at init_alpha (the entropy is still estimated)."""
    entropy_every: int = 10_000
    """Estimate the behaviour policy's entropy (and step α) every this many updates."""
    entropy_states: int = 256
    """States of the minibatch (the first ones) at which the entropy is estimated."""
    entropy_samples: int = 200
    """Behaviour actions per state to which the Gaussian mixture is fitted."""
    gmm_components: int = 3
    """Components of the diagonal Gaussian mixture."""
    gmm_iterations: int = 30
    """EM iterations of the mixture fit."""
    entropy_estimator: str = "mixture"
    """mixture: −mean log p(a) of the fitted mixture over the fitted actions; bound: the official
    −Σ w_k log w_k + Σ w_k H(component k), an upper bound that overstates overlapping components."""
    reward_scale: float = 0.2
    """Rewards are multiplied by this in the TD target."""
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the ε-network (the policy)."""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of each critic."""
    activation: str = "mish"
    """Activation of the hidden layers."""
    actor_lr: float = 1e-4
    """Adam learning rate of the policy's ε-network."""
    critic_lr: float = 1e-4
    """Adam learning rate of the critics."""
    policy_delay: int = 2
    """Policy and target updates every this many critic updates."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""

    def __post_init__(self):
        for name in ("denoising_steps", "entropy_every", "entropy_states", "entropy_samples", "gmm_components",
                     "gmm_iterations", "policy_delay"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.entropy_samples < 2 * self.gmm_components:
            raise ValueError(f"entropy_samples must be at least twice gmm_components to fit the mixture, "
                             f"got {self.entropy_samples} samples for {self.gmm_components} components.")
        if self.entropy_estimator not in ENTROPY_ESTIMATORS:
            raise ValueError(f"entropy_estimator must be one of {', '.join(ENTROPY_ESTIMATORS)}, "
                             f"got {self.entropy_estimator!r}.")
        if self.init_alpha <= 0:
            raise ValueError(f"init_alpha must be positive, got {self.init_alpha}.")
        if self.noise_scale < 0 or (self.autotune_alpha and self.noise_scale == 0):
            raise ValueError(f"noise_scale must be positive (or 0 with autotune_alpha off), got {self.noise_scale}.")


# ------------------------------------------------------------------------------------------ the reverse chain


def chain_action(eps_fn: Callable, key, shape, schedule: diffusion.VPSchedule, init_scale: float = 1.0,
                 clip_x0: bool = True, noise_std=0.0):
    """A behaviour action before its final clip: the DDPM chain's sample plus noise_std·ξ. Differentiable in
    everything eps_fn closes over (the chain is a `lax.scan`)."""
    k_chain, k_noise = jax.random.split(key)
    action = diffusion.ddpm_sample(eps_fn, k_chain, shape, schedule, clip_x0=clip_x0, init_scale=init_scale)
    return action + noise_std * jax.random.normal(k_noise, tuple(shape))


def actor_loss(eps_fn: Callable, q_fn: Callable, key, shape, schedule: diffusion.VPSchedule,
               init_scale: float = 1.0, clip_x0: bool = True, noise_std=0.0):
    """DACER's actor loss −mean Q(clip(a_θ + noise_std·ξ)), back-propagated through the whole chain.
    q_fn maps actions (..., d) to values (...) (the minimum over the critics)."""
    action = chain_action(eps_fn, key, shape, schedule, init_scale, clip_x0, noise_std)
    return -jnp.mean(q_fn(jnp.clip(action, -1.0, 1.0)))


# ------------------------------------------------------------------------------------ Gaussian mixture entropy


def _component_log_pdf(x, means, variances):
    """log N(x_i; μ_k, diag σ²_k) for x (N, d), means/variances (K, d) → (N, K)."""
    diff2 = (x[:, None, :] - means[None]) ** 2
    return -0.5 * jnp.sum(jnp.log(2 * math.pi * variances)[None] + diff2 / variances[None], axis=-1)


def fit_diagonal_gmm(x, key, num_components: int = 3, iterations: int = 30, reg: float = 1e-6):
    """EM fit of a K-component diagonal Gaussian mixture to x (N, d); returns (log weights (K,), means (K, d),
    variances (K, d)). Means start at k-means++ seeds, variances at the data's; `reg` is added to every
    variance (scikit-learn's reg_covar) so that a component on a single point stays proper. Fixed iteration
    count: jit- and vmap-friendly."""
    n, d = x.shape
    keys = jax.random.split(key, num_components)
    # k-means++ seeding: each next mean drawn with probability ∝ squared distance to the nearest chosen one
    means = x[jax.random.randint(keys[0], (), 0, n)][None]
    for k in range(1, num_components):
        d2 = jnp.min(jnp.sum((x[:, None, :] - means[None]) ** 2, -1), axis=1)
        idx = jax.random.categorical(keys[k], jnp.log(d2 + 1e-30))
        means = jnp.concatenate([means, x[idx][None]])
    variances = jnp.broadcast_to(x.var(0) + reg, (num_components, d))
    log_w = jnp.full((num_components,), -math.log(num_components))

    def em_step(_, params):
        log_w, means, variances = params
        log_p = log_w + _component_log_pdf(x, means, variances)
        resp = jax.nn.softmax(log_p, axis=1)  # (N, K)
        nk = resp.sum(0) + 1e-10
        means = resp.T @ x / nk[:, None]
        variances = jnp.einsum("nk,nkd->kd", resp, (x[:, None, :] - means[None]) ** 2) / nk[:, None] + reg
        return jnp.log(nk / n), means, variances

    return jax.lax.fori_loop(0, iterations, em_step, (log_w, means, variances))


def gmm_entropy(x, key, num_components: int = 3, iterations: int = 30, estimator: str = "mixture"):
    """Entropy estimate (nats) of the density that produced samples x (N, d), from a diagonal Gaussian mixture
    fitted to them. mixture: −mean_i log p_GMM(x_i); bound: −Σ w_k log w_k + Σ w_k·½Σ_d log(2πe σ²_kd)."""
    log_w, means, variances = fit_diagonal_gmm(x, key, num_components, iterations)
    if estimator == "mixture":
        log_p = jax.scipy.special.logsumexp(log_w + _component_log_pdf(x, means, variances), axis=1)
        return -jnp.mean(log_p)
    w = jnp.exp(log_w)
    component_entropy = 0.5 * jnp.sum(jnp.log(2 * math.pi * math.e * variances), axis=-1)
    return -jnp.sum(jnp.where(w > 0, w * log_w, 0.0)) + jnp.sum(w * component_entropy)


def mean_gmm_entropy(samples, key, num_components: int = 3, iterations: int = 30, estimator: str = "mixture"):
    """samples (S, N, d): the mean over the S states of each state's `gmm_entropy`."""
    keys = jax.random.split(key, samples.shape[0])
    fit = lambda x, k: gmm_entropy(x, k, num_components, iterations, estimator)
    return jnp.mean(jax.vmap(fit)(samples, keys))


# ---------------------------------------------------------------------------------------------------- agent


class DACERState(flax.struct.PyTreeNode):
    policy: dict
    critic: dict
    target_critic: dict
    log_alpha: jax.Array
    entropy: jax.Array
    """The latest entropy estimate of the behaviour policy."""
    policy_opt: tuple
    critic_opt: tuple
    alpha_opt: tuple
    steps: jax.Array


def make(config: DACERConfig, obs_dim: int, act_dim: int) -> Agent:
    schedule = diffusion.make_vp_schedule(config.schedule, config.denoising_steps)
    eps_net = nets.EpsNet(config.actor_hidden, act_dim, config.activation)
    critic_net = nets.Critics(2, config.critic_hidden, config.activation)
    policy_opt, critic_opt, alpha_opt = adam(config.actor_lr), adam(config.critic_lr), adam(config.alpha_lr)
    target_entropy = config.target_entropy_per_dim * act_dim

    def unclipped_behaviour(policy, log_alpha, obs, key):
        """Chain sample plus exploration noise for obs (..., obs_dim) → (..., d), before the final clip."""
        eps_fn = lambda x, t: eps_net.apply(policy, obs, x, t)
        noise_std = config.noise_scale * jnp.exp(log_alpha)
        return chain_action(eps_fn, key, obs.shape[:-1] + (act_dim,), schedule, config.init_scale, config.clip_x0,
                            noise_std)

    def behaviour(policy, log_alpha, obs, key):
        return jnp.clip(unclipped_behaviour(policy, log_alpha, obs, key), -1.0, 1.0)

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        policy = eps_net.init(k1, obs, act, jnp.zeros((), jnp.int32))
        critic = critic_net.init(k2, obs, act)
        log_alpha = jnp.log(jnp.float32(config.init_alpha))
        return DACERState(
            policy=policy, critic=critic, target_critic=critic, log_alpha=log_alpha,
            entropy=jnp.zeros((), jnp.float32),
            policy_opt=policy_opt.init(policy), critic_opt=critic_opt.init(critic), alpha_opt=alpha_opt.init(log_alpha),
            steps=jnp.zeros((), jnp.int32),
        )

    @counted_jit(static_argnames="deterministic")
    def act(state: DACERState, obs, key, deterministic: bool = False):
        if deterministic:
            eps_fn = lambda x, t: eps_net.apply(state.policy, obs, x, t)
            return chain_action(eps_fn, key, obs.shape[:-1] + (act_dim,), schedule, config.init_scale,
                                config.clip_x0).clip(-1.0, 1.0), {}
        return behaviour(state.policy, state.log_alpha, obs, key), {}

    def estimate_entropy(state: DACERState, obs, key):
        """Entropy estimate at the given states, and (autotune) one Adam step of log α toward the target."""
        k_sample, k_fit = jax.random.split(key)
        obs = jnp.broadcast_to(obs[:, None], (obs.shape[0], config.entropy_samples, obs_dim))
        samples = unclipped_behaviour(state.policy, state.log_alpha, obs, k_sample)
        entropy = mean_gmm_entropy(samples, k_fit, config.gmm_components, config.gmm_iterations,
                                   config.entropy_estimator)
        state = state.replace(entropy=entropy)
        if config.autotune_alpha:
            grad = jax.grad(alpha_loss)(state.log_alpha, entropy, target_entropy)
            log_alpha, a_opt = apply_grads(alpha_opt, state.log_alpha, state.alpha_opt, grad)
            state = state.replace(log_alpha=log_alpha, alpha_opt=a_opt)
        return state

    def step(state: DACERState, batch, key):
        k_next, k_ent, k_pi = jax.random.split(key, 3)
        next_action = behaviour(state.policy, state.log_alpha, batch.next_obs, k_next)
        # the targets move with the (delayed) policy, as in the official code
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma,
                                    reward_scale=config.reward_scale)
        state = jax.lax.cond(state.steps % config.entropy_every == 0,
                             lambda s: estimate_entropy(s, batch.obs[:config.entropy_states], k_ent),
                             lambda s: s, state)
        state = state.replace(steps=state.steps + 1)

        def update_policy(state):
            noise_std = config.noise_scale * jnp.exp(state.log_alpha)
            q_fn = lambda a: critic_net.apply(state.critic, batch.obs, a).min(0)

            def loss_fn(params):
                eps_fn = lambda x, t: eps_net.apply(params, batch.obs, x, t)
                return actor_loss(eps_fn, q_fn, k_pi, batch.action.shape, schedule, config.init_scale,
                                  config.clip_x0, noise_std)

            loss, grads = jax.value_and_grad(loss_fn)(state.policy)
            policy, p_opt = apply_grads(policy_opt, state.policy, state.policy_opt, grads)
            state = polyak_target(state, config.tau).replace(policy=policy, policy_opt=p_opt)
            return state, {"actor_loss": loss}

        state, policy_info = delayed(state.steps, config.policy_delay, update_policy, state)
        return state, {**info, **policy_info, "alpha": jnp.exp(state.log_alpha), "entropy": state.entropy}

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update)


SPEC = AlgoSpec(
    name="dacer",
    config_cls=DACERConfig,
    make=make,
    evaluation="one sample of the diffusion chain without exploration noise (the chain itself is random).",
    description="DACER: diffusion policy trained by back-propagating −Q through the reverse chain; α from a "
                "Gaussian-mixture entropy estimate.",
)
