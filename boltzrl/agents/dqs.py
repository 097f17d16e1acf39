"""DQS — Diffusion Q-Sampling (Jain, Akhound-Sadegh, Ravanbakhsh; RLC 2025).

A VE diffusion policy whose score network is regressed on the iDEM Monte-Carlo score of the Boltzmann policy
π(a|s) ∝ exp(Q(s, a)/α), with twin critics trained by clipped double-Q on full stochastic policy samples:

    critic:  y = r + γ·(1 − terminated)·min_j Q̄_j(s′, a′),   a′ = tanh(u′),  u′ ~ reverse SDE (η = 1) at s′
    actor:   t ~ U(0, 1),  x = atanh(a) + √h(t)·ε,  x^(k) = x + √h(t)·ε_k  (k = 1..K)
             S_K = Σ_k softmax_k(−E(s, x^(k)))·(−∇E(s, x^(k)))
             L = mean_i (h(t_i) + 1e-3)·mean_d (s_θ(s_i, x_i, t_i, α) − S_K,i)²

Update order: the critic first, then the score target with the updated online critics (the public code's order).

The diffusion variable is the pre-tanh action and the energy is the Boltzmann policy pushed through tanh
(`diffusion.boltzmann_energy`, with the minimum of the online critics as Q):

    E(s, u) = −min_j Q_j(s, tanh u)/α − Σ_i log(1 − tanh² u_i)

so Q is only ever evaluated inside the box, where it was trained (the public code evaluates it at unsquashed
noisy points, where it is an arbitrary extrapolation). With a flat critic the policy is uniform on the box, as the
Boltzmann policy should be; far outside the box the Jacobian term pulls u back with force 2·tanh|u|.
Replay actions are mapped back with atanh after clipping to ±(1 − 1e-6) (|u| ≤ 7.25).

Acting: Euler–Maruyama from N(0, h(1)·I) with η = 1, then tanh. On the geometric schedule with a uniform time
grid the first steps move the variance by g²(1)·dt ≈ 23/N·h(1), so N must stay near 20: with the exact score of
a sharp Gaussian, N = 20 reproduces its spread within 6%, N = 10 inflates it ~14× and N = 5 diverges.
Evaluation integrates from a prior draw without injecting noise. `eval_sampler="euler"` (η = 0, the public
code's intent, the default) lands close to the policy's mode, the analogue of SAC's tanh(mean), which is what
returns reward; "ode" (probability flow) keeps part of the policy's spread (0.2–0.6 of its std at N = 20, closer
with more steps), for tasks that score the distribution of behaviour (GMM navigation). "sde" evaluates the
exploring policy itself, which is what the public code's evaluation does in effect (its η = 0 is not applied);
while the policy is still broad (early training, small Q differences at α = 0.05) it can return more than the
noise-free samplers, whose paths collapse towards the middle of a wide policy.

Temperature: fixed, or geometric α(n) = exp(log α₀ + (log α₁ − log α₀)·min(n/T, 1)) in the update count n; the
score network sees α, so one network serves the whole schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
import flax.struct
import jax
import jax.numpy as jnp

from boltzrl import diffusion, nets
from boltzrl.agents.base import Agent, counted_jit, AlgoSpec, adam, apply_grads, scan_updates
from boltzrl.agents.critic import critic_update

EVAL_SAMPLERS = ("euler", "ode", "sde")
ALPHA_SCHEDULES = ("fixed", "geometric")


@dataclass(frozen=True)
class DQSConfig:
    """The score network is the policy, so its options carry the actor_ prefix that every agent's policy network
    has (actor_lr, actor_width, actor_blocks); being a residual MLP it has one width, not a tuple of widths."""

    num_mc_samples: int = 1000
    """K, Monte-Carlo samples of the iDEM score target per minibatch point."""
    score_clip: float | None = None
    """Rescale each iDEM target so its norm is at most this (None: no clipping, as in the DQS code)."""
    richardson: bool = False
    """Use the Richardson-extrapolated target 2·S_K − S_{K/2}, which cancels the O(1/K) bias."""
    score_batch_size: int | None = None
    """Minibatch points used for the score target and loss (None: all); the iDEM cost scales with this × K."""
    denoising_steps: int = 20
    """N, reverse-time integration steps for acting, the TD target and evaluation."""
    eval_sampler: str = "euler"
    """Evaluation sampler: euler (η = 0, mode-seeking), ode (probability flow) or sde (the exploring sampler)."""
    sigma_min: float = 1e-5
    """σ_min of the geometric VE schedule."""
    sigma_max: float = 1.0
    """σ_max of the geometric VE schedule (the prior is N(0, h(1)) ≈ N(0, σ_max²))."""
    alpha: float = 0.05
    """Temperature α of the Boltzmann policy (α₀ of a geometric schedule)."""
    alpha_schedule: str = "fixed"
    """fixed, or geometric from alpha to alpha_final over alpha_horizon updates."""
    alpha_final: float = 1.0
    """α₁, the temperature at the end of a geometric schedule."""
    alpha_horizon: int = 250_000
    """T, updates over which a geometric schedule moves from alpha to alpha_final."""
    actor_width: int = 256
    """Width of the score network (the policy): a residual MLP, so one width and a number of blocks."""
    actor_blocks: int = 2
    """Residual blocks of the score network."""
    embed_dim: int = 128
    """Size of the score network's sinusoidal embeddings of t and of α."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of each critic."""
    activation: str = "relu"
    """Activation of the critics' hidden layers."""
    actor_lr: float = 3e-4
    """Adam learning rate of the score network."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""
    gamma: float = 0.99
    """Discount factor (0 for GMM navigation, where Q is the one-step reward)."""
    tau: float = 0.005
    """Polyak rate of the target critics."""

    def __post_init__(self):
        if self.eval_sampler not in EVAL_SAMPLERS:
            raise ValueError(f"eval_sampler must be one of {', '.join(EVAL_SAMPLERS)}, got {self.eval_sampler!r}.")
        if self.alpha_schedule not in ALPHA_SCHEDULES:
            raise ValueError(
                f"alpha_schedule must be one of {', '.join(ALPHA_SCHEDULES)}, got {self.alpha_schedule!r}.")
        for name in ("num_mc_samples", "denoising_steps", "alpha_horizon"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        for name in ("alpha", "alpha_final"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.score_batch_size is not None and self.score_batch_size <= 0:
            raise ValueError(f"score_batch_size must be positive or None, got {self.score_batch_size}.")
        if self.richardson and self.num_mc_samples < 2:
            raise ValueError("richardson needs num_mc_samples >= 2.")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}.")


class DQSState(flax.struct.PyTreeNode):
    score: dict
    critic: dict
    target_critic: dict
    score_opt: tuple
    critic_opt: tuple
    steps: jax.Array


def temperature(config: DQSConfig, steps) -> jax.Array:
    """α after `steps` updates: constant, or geometric from alpha to alpha_final over alpha_horizon updates."""
    log_a0 = jnp.log(jnp.float32(config.alpha))
    if config.alpha_schedule == "fixed":
        return jnp.exp(log_a0)
    frac = jnp.minimum(jnp.asarray(steps, jnp.float32) / config.alpha_horizon, 1.0)
    return jnp.exp(log_a0 + (jnp.log(jnp.float32(config.alpha_final)) - log_a0) * frac)


def make(config: DQSConfig, obs_dim: int, act_dim: int) -> Agent:
    schedule = diffusion.VESchedule(config.sigma_min, config.sigma_max)
    score_net = nets.ScoreNet(config.actor_width, config.actor_blocks, act_dim, embed_dim=config.embed_dim)
    critic_net = nets.Critics(2, config.critic_hidden, config.activation)
    score_opt, critic_opt = adam(config.actor_lr), adam(config.critic_lr)
    num_steps = config.denoising_steps

    def sample_pre_tanh(params, obs, alpha, key, sampler: str):
        """Pre-tanh actions u (B, d) for obs (B, obs_dim): sampler is sde (η = 1), euler (η = 0) or ode."""
        score_fn = lambda x, t: score_net.apply(params, obs, x, t, alpha)
        shape = obs.shape[:-1] + (act_dim,)
        if sampler == "ode":
            return diffusion.probability_flow_ode(score_fn, shape, schedule, num_steps, key=key)
        eta = 1.0 if sampler == "sde" else 0.0
        return diffusion.ve_euler_maruyama(score_fn, key, shape, schedule, num_steps, eta=eta)

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        score = score_net.init(k1, obs, act, jnp.zeros((1,)), jnp.float32(config.alpha))
        critic = critic_net.init(k2, obs, act)
        return DQSState(score=score, critic=critic, target_critic=critic, score_opt=score_opt.init(score),
                        critic_opt=critic_opt.init(critic), steps=jnp.zeros((), jnp.int32))

    @counted_jit(static_argnames="deterministic")
    def act(state: DQSState, obs, key, deterministic: bool = False):
        sampler = config.eval_sampler if deterministic else "sde"
        return jnp.tanh(sample_pre_tanh(state.score, obs, temperature(config, state.steps), key, sampler)), {}

    def score_update(state: DQSState, batch, alpha, key):
        """One regression step of the score network on the iDEM target of the (already updated) online critics."""
        n = config.score_batch_size or batch.obs.shape[0]
        obs, action = batch.obs[:n], batch.action[:n]  # minibatch rows are already a uniform draw
        q_fn = lambda s, a: critic_net.apply(state.critic, s, a).min(0)
        x, t, target = diffusion.score_matching_batch(q_fn, obs, action, alpha, schedule, key, config.num_mc_samples,
                                                      config.score_clip, config.richardson)

        def loss_fn(params):
            return diffusion.ve_score_loss(score_net.apply(params, obs, x, t, alpha), target, schedule.variance(t))

        loss, grads = jax.value_and_grad(loss_fn)(state.score)
        score, opt_state = apply_grads(score_opt, state.score, state.score_opt, grads)
        return score, opt_state, loss, jnp.linalg.norm(target, axis=-1).mean()

    def step(state: DQSState, batch, key):
        k_critic, k_score = jax.random.split(key)
        alpha = temperature(config, state.steps)
        next_action = jnp.tanh(sample_pre_tanh(state.score, batch.next_obs, alpha, k_critic, "sde"))
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma, config.tau)
        score, s_opt, s_loss, target_norm = score_update(state, batch, alpha, k_score)
        state = state.replace(score=score, score_opt=s_opt, steps=state.steps + 1)
        return state, {**info, "actor_loss": s_loss, "alpha": alpha, "target_norm": target_norm}

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update)


SPEC = AlgoSpec(
    name="dqs",
    config_cls=DQSConfig,
    make=make,
    evaluation="the reverse chain from a random prior draw with eval_sampler: euler (default: no noise injected, "
               "η = 0), ode (the probability-flow ODE) or sde (the exploring sampler).",
    description="Diffusion Q-Sampling: VE diffusion policy trained on the iDEM Monte-Carlo score of exp(Q/α).",
)
