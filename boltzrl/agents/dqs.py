"""DQS — Diffusion Q-Sampling (Jain, Akhound-Sadegh, Ravanbakhsh; RLC 2025).

A VE diffusion policy whose score network is regressed on the iDEM Monte-Carlo score of the Boltzmann policy
π(a|s) ∝ exp(Q(s, a)/α), with twin critics trained by clipped double-Q on full stochastic policy samples:

    critic:  y = r + γ·(1 − terminated)·min_j Q̄_j(s′, a′),   a′ = tanh(u′),  u′ ~ reverse SDE (η = 1) at s′
    actor:   t ~ U(0, 1),  x = atanh(a) + √h(t)·ε,  x^(k) = x + √h(t)·ε_k  (k = 1..K)
             S_K = Σ_k softmax_k(−E(s, x^(k)))·(−∇E(s, x^(k)))
             L = mean_i (h(t_i) + 1e-3)·mean_d (s_θ(s_i, x_i, t_i, α) − S_K,i)²

Update order: the critic first, then the score target with the updated online critics (the public code's order).
Beyond the paper, the score can be trained only at the noise levels the chain visits (score_std_min: t ~ U(t_min, 1))
and with every level's error weighted alike (score_loss_weight="uniform"): with K = 16 the target is nearly exact
below std 0.1 and mostly noise near std 1 (benchmarks/dqs/score_target_error.md), so the h(t) weight lets the
noisiest targets carry the loss. The `auto` preset does both.

The diffusion variable is the pre-tanh action and the energy is the Boltzmann policy pushed through tanh
(`diffusion.boltzmann_energy`, with the minimum of the online critics as Q):

    E(s, u) = −min_j Q_j(s, tanh u)/α − Σ_i log(1 − tanh² u_i)

so Q is only ever evaluated inside the box, where it was trained (the public code evaluates it at unsquashed
noisy points, where it is an arbitrary extrapolation). With a flat critic the policy is uniform on the box, as the
Boltzmann policy should be; far outside the box the Jacobian term pulls u back with force 2·tanh|u|.
Replay actions are mapped back with atanh after clipping to ±(1 − 1e-6) (|u| ≤ 7.25).

Acting (the default, and the paper's): Euler–Maruyama from N(0, h(1)·I) with η = 1 on a uniform grid in t, then
tanh. On the geometric schedule the first steps move the variance by g²(1)·dt ≈ 23/N·h(1), so N must stay near
20: with the exact score of a sharp Gaussian, N = 20 reproduces its spread within 6%, N = 10 inflates it ~14× and
N = 5 diverges. Few-step acting (time_grid="edm", sampler_step="ancestral", beyond the paper): a power grid in the
marginal std down to grid_std_min, and steps that draw from the Gaussian with the reverse transition's exact mean
x + Δh·s (Tweedie) and covariance Δh·(I + Δh·∂s/∂x) (`diffusion.samplers.ve_ancestral`; one JVP per step, d on the
last). They are exact for a Gaussian policy at any N, and with N = 5 sample a two-mode mixture's weights and
spreads as well as the Euler chain does with 20 steps (tests/test_diffusion.py).
Evaluation integrates from a prior draw without injecting noise. `eval_sampler="euler"` (η = 0, the public
code's intent, the default) lands close to the policy's mode, the analogue of SAC's tanh(mean), which is what
returns reward; with ancestral steps it is the chain of posterior means, which for a Gaussian policy ends at
μ + v/(v + h(1))·(x_T − μ). "ode" (probability flow) keeps part of the policy's spread (0.2–0.6 of its std at
N = 20 with Euler steps, closer with more steps; Heun on the edm grid), for tasks that score the distribution of
behaviour (GMM navigation). "sde" evaluates the exploring policy itself, which is what the public code's
evaluation does in effect (its η = 0 is not applied); while the policy is still broad (early training, small Q
differences at α = 0.05) it can return more than the noise-free samplers, whose paths collapse towards the middle
of a wide policy.

Temperature: fixed, or geometric α(n) = exp(log α₀ + (log α₁ − log α₀)·min(n/T, 1)) in the update count n; the
score network sees α, so one network serves the whole schedule. Beyond the paper, alpha_schedule="auto" tunes
log α with SAC's loss toward an entropy of target_entropy_per_dim·d, with no per-task value. The entropy of the
pre-tanh policy comes from its own score (`score_entropy`): under the VE forward process
dH(p_h)/dh = ½·E‖∇log p_h‖², so H(p_0) = H(p_{h(1)}) − ∫ ½·E‖s_θ(x_h)‖² dh over noised policy samples; the tanh
Jacobian then gives the actions' entropy, H(a) = H(u) + E Σ log(1 − tanh² u). The samples (entropy_samples at each
of entropy_states next states) are extra rows of the TD target's chain, drawn with the same network. The target
may also move from target_entropy_start_per_dim to target_entropy_per_dim (`entropy_target`): warm while the
critic knows little, colder as Q becomes worth following; linearly over target_entropy_horizon updates, or by the
twin critics' agreement on the ranking of the policy's actions (`critic_agreement`).
"""

from __future__ import annotations

from dataclasses import dataclass
import flax.struct
import jax
import jax.numpy as jnp

from boltzrl import diffusion, nets
from boltzrl.agents.base import Agent, counted_jit, AlgoSpec, adam, apply_grads, scan_updates
from boltzrl.agents.critic import critic_update, delayed, pessimistic_q
from boltzrl.agents.entropy import alpha_loss
from boltzrl.agents.normalization import with_normalized_observations
from boltzrl.diffusion.samplers import (VE_STEPS, jacobian_rows, probability_flow_heun, ve_ancestral,
                                       ve_euler_maruyama_on_grid)
from boltzrl.diffusion.schedules import VE_TIME_GRIDS, ve_time_grid

EVAL_SAMPLERS = ("euler", "ode", "sde")
SCORE_LOSS_WEIGHTS = ("variance", "uniform")
ALPHA_SCHEDULES = ("fixed", "geometric", "auto")
TARGET_ENTROPY_DRIVERS = ("updates", "critics")
ENTROPY_STD_LO = 1e-4  # where the entropy integral stops when the score is trained down to sigma_min
ENTROPY_COMPLETIONS = ("gaussian", "curvature")
CURVATURE_FLOOR = 1e-4  # smallest eigenvalue of I + lo²·∇s kept: modes down to 1/100 of lo's width


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
    time_grid: str = "uniform"
    """Times the chain visits: uniform (equal steps in t, the default and the original sampler) or edm (a power
    grid in the marginal std, ρ = grid_rho, from σ_max down to grid_std_min, then to 0)."""
    sampler_step: str = "euler"
    """Step of the chain: euler (Euler–Maruyama, the default; needs N ≈ 20) or ancestral (Gaussian transitions
    with the score's Jacobian, exact for a Gaussian policy at any N; about two network passes per step)."""
    grid_rho: float = 7.0
    """ρ of the edm time grid (larger: more of the steps at small noise)."""
    grid_std_min: float = 0.1
    """Smallest nonzero marginal std of the edm time grid (pre-tanh units); the last step goes from it to 0."""
    score_std_min: float | None = None
    """Smallest marginal std at which the score network is trained: t ~ U(t_min, 1), log-uniform in the std from
    here to σ_max (None: from sigma_min, the paper's t ~ U(0, 1)). The geometric schedule gives each decade of
    std an equal share of t, so with σ_min = 1e-5 four fifths of the iDEM targets fall below 0.1, where the edm
    chain never asks for the score; the entropy estimate then integrates from here and takes the part below as
    Gaussian."""
    score_loss_weight: str = "variance"
    """Weight of each point's squared score error: variance (h(t) + 1e-3, the paper's) or uniform (1). The K-sample
    target's own error grows with the noise level (benchmarks/dqs/score_target_error.md: ~4× the score's squared
    norm at std 1, 0.07× at 0.1), so h(t) lets the largest levels, where the targets are mostly noise, carry
    nearly all of the loss; uniform keeps the levels where the targets are accurate, which place the actions."""
    eval_sampler: str = "euler"
    """Evaluation sampler: euler (the chain's step with no noise, η = 0: mode-seeking), ode (probability flow:
    Euler on the uniform grid, Heun on the edm grid) or sde (the exploring sampler)."""
    eval_alpha_scale: float = 1.0
    """Evaluation samples the Boltzmann policy at α·eval_alpha_scale: below 1 a colder policy of the same critics,
    nearer their greedy action (the score network is conditioned on α, so no retraining; it is reliable only
    within the α range training visited). Training and its exploration keep α. Measured on reacher-hard
    (benchmarks/dqs/eval_temperature.md): 0.5 and 0.25 move the noise-free chain's return by under 6, as that chain
    already lands near the policy's mode."""
    sigma_min: float = 1e-5
    """σ_min of the geometric VE schedule."""
    sigma_max: float = 1.0
    """σ_max of the geometric VE schedule (the prior is N(0, h(1)) ≈ N(0, σ_max²))."""
    alpha: float = 0.05
    """Temperature α of the Boltzmann policy (α₀ of a geometric schedule, the initial α of auto)."""
    alpha_schedule: str = "fixed"
    """fixed; geometric from alpha to alpha_final over alpha_horizon updates; or auto: log α follows SAC's loss
    toward target_entropy_per_dim, with the policy's entropy estimated from its own score."""
    target_entropy_per_dim: float = -1.0
    """Target entropy of the policy's actions (nats per action dimension) under alpha_schedule=auto; with
    target_entropy_start_per_dim, the value the target reaches after target_entropy_horizon updates."""
    target_entropy_start_per_dim: float | None = None
    """Under auto, a target that starts here and moves linearly to target_entropy_per_dim over
    target_entropy_horizon updates, then stays (None: constant). A warm start explores while the critic knows
    little (what sparse rewards need) and the cold end lets the policy sharpen as Q becomes reliable."""
    target_entropy_horizon: int = 100_000
    """Updates over which the target entropy moves from its start to target_entropy_per_dim."""
    target_entropy_follows: str = "updates"
    """What moves the target from its start to target_entropy_per_dim: updates (linearly over
    target_entropy_horizon) or critics (by how far the twin critics agree on the ranking of the policy's actions,
    `critic_agreement`: warm while Q's differences between actions are the critics' own noise, cold once both
    critics see them). Measured on DMC (benchmarks/dqs): the critics agree at 0.4–0.7 before any sparse reward
    is seen, so updates stays the default."""
    alpha_lr: float = 1e-3
    """Adam learning rate of log α under alpha_schedule=auto."""
    alpha_update_every: int = 1
    """Under auto, tune α at every n-th update only, its entropy samples drawn by a chain of their own there (at
    n = 1 they are extra rows of the TD target's chain): the estimate costs about a sixth of an update. Raise
    alpha_lr n-fold with it to keep α's drift per update. Measured on DMC (benchmarks/dqs): n = 4 holds the same
    entropy but settles α lower, and learned walker-run slower, so the `auto` preset keeps n = 1."""
    entropy_states: int = 16
    """States of the minibatch at which auto estimates the policy's entropy."""
    entropy_samples: int = 4
    """Policy samples per state for the entropy estimate (at least 2: their spread sets the prior's entropy)."""
    entropy_nodes: int = 8
    """Quadrature nodes of the entropy integral over the noise level (a randomly shifted midpoint rule)."""
    entropy_completion: str = "gaussian"
    """The entropy below the lowest noise level the score is trusted at (score_std_min): gaussian (that of the
    samples' variance, which counts the spread between a policy's modes as width) or curvature (each sample's local
    Gaussian from the score's Jacobian there, right for narrow modes too; `score_entropy`). Nearly nothing is
    below when the score is trained down to sigma_min."""
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
    critic_layer_norm: bool = False
    """A LayerNorm before each critic hidden layer's activation: Q stays bounded at actions the replay never held,
    which the Boltzmann policy exp(Q/α) samples too. Measured on DMC (benchmarks/dqs): faster, steadier learning."""
    num_critics: int = 2
    """Critics in the ensemble (2: the paper's twin critics). More average out each one's errors and measure their
    disagreement, which `critic_pessimism` subtracts, more steadily (0.8 with four keeps the twins' minimum's
    degree of pessimism). Measured on DMC (benchmarks/dqs): four cost 1.6× the `auto` preset per update and lift no
    task's mean beyond the noise (reacher-hard four seeds, walker-run three, cheetah-run one), while their spread
    across seeds grows; the presets keep 2."""
    critic_pessimism: float = 1.0
    """How the critics' values become the one Q of the TD target and of the Boltzmann energy: their mean − this
    × their absolute deviation (`critic.pessimistic_q`): 1 is their minimum (clipped double Q, the paper's; with
    more than two critics, the minimum of all, more pessimistic than the twins'), 0 their mean. Measured on DMC
    (benchmarks/dqs): the mean learns faster early, ends lower on cheetah-run and walker-run, on reacher-hard
    higher on one seed, lower on another; the presets keep 1."""
    policy_delay: int = 1
    """The score network is updated at every this many critic updates; α is tuned at every one. With --utd 2, a
    delay of 2 gives the critics two updates per env step for one more TD chain and critic step, without a second
    K-sample score target. Measured on reacher-hard (benchmarks/dqs): on one seed it kept most of two full updates'
    gain, but two full updates did not raise the mean of four seeds; the presets keep 1."""
    actor_lr: float = 3e-4
    """Adam learning rate of the score network."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""
    gamma: float = 0.99
    """Discount factor (0 for GMM navigation, where Q is the one-step reward)."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    normalize_obs: bool = False
    """Act and learn on observations standardised by the running mean and variance of the replay draws, so that
    every input reaches the networks at unit scale (`normalization.with_normalized_observations`). Measured on DMC
    (benchmarks/dqs): reacher-hard finds its target 30k–50k steps earlier and all three tasks end higher (two
    seeds each); the `auto` preset does it."""
    n_step_lower_bound: bool = False
    """With n-step replay (--n-step > 1), regress the critics to the larger of the n-step and the one-step target
    (`critic.lower_bound_target`): the n-step return of the collecting policy lifts the target, never lowers it.
    Doubles the next states the TD chain samples; needs --n-step 2 or more."""

    def __post_init__(self):
        choices = {"eval_sampler": EVAL_SAMPLERS, "alpha_schedule": ALPHA_SCHEDULES, "time_grid": VE_TIME_GRIDS,
                   "sampler_step": VE_STEPS, "target_entropy_follows": TARGET_ENTROPY_DRIVERS,
                   "score_loss_weight": SCORE_LOSS_WEIGHTS, "entropy_completion": ENTROPY_COMPLETIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}.")
        for name in ("grid_rho", "grid_std_min", "alpha_lr", "alpha_update_every", "entropy_states", "entropy_nodes",
                     "policy_delay", "num_mc_samples", "denoising_steps", "alpha_horizon", "target_entropy_horizon",
                     "alpha", "alpha_final", "eval_alpha_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.num_critics < 2:
            raise ValueError(f"num_critics must be at least 2, got {self.num_critics}.")
        if self.critic_pessimism < 0:
            raise ValueError(f"critic_pessimism must be non-negative, got {self.critic_pessimism}.")
        if self.entropy_samples < 2:
            raise ValueError(f"entropy_samples must be at least 2, got {self.entropy_samples}.")
        if self.target_entropy_follows == "critics" and self.target_entropy_start_per_dim is None:
            raise ValueError("target_entropy_follows=critics needs target_entropy_start_per_dim (the warm end).")
        if self.score_batch_size is not None and self.score_batch_size <= 0:
            raise ValueError(f"score_batch_size must be positive or None, got {self.score_batch_size}.")
        if self.richardson and self.num_mc_samples < 2:
            raise ValueError("richardson needs num_mc_samples >= 2.")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}.")
        if self.score_std_min is not None and not self.sigma_min < self.score_std_min < self.sigma_max:
            raise ValueError(f"score_std_min must lie between sigma_min and sigma_max, got {self.score_std_min}.")
        if self.time_grid == "edm" and not self.sigma_min < self.grid_std_min < self.sigma_max:
            raise ValueError(f"grid_std_min must lie between sigma_min and sigma_max, got {self.grid_std_min}.")


class DQSState(flax.struct.PyTreeNode):
    score: dict
    critic: dict
    target_critic: dict
    score_opt: tuple
    critic_opt: tuple
    steps: jax.Array


class DQSAutoState(DQSState):
    """The state under alpha_schedule=auto: the fixed-α state (whose checkpoints it leaves unchanged) and log α."""

    log_alpha: jax.Array
    alpha_opt: tuple


def temperature(config: DQSConfig, steps) -> jax.Array:
    """α after `steps` updates: constant, or geometric from alpha to alpha_final over alpha_horizon updates (the
    initial α under auto, whose current value is in the state)."""
    log_a0 = jnp.log(jnp.float32(config.alpha))
    if config.alpha_schedule in ("fixed", "auto"):
        return jnp.exp(log_a0)
    frac = jnp.minimum(jnp.asarray(steps, jnp.float32) / config.alpha_horizon, 1.0)
    return jnp.exp(log_a0 + (jnp.log(jnp.float32(config.alpha_final)) - log_a0) * frac)


def entropy_target(config: DQSConfig, act_dim: int, steps, agreement=None) -> jax.Array:
    """Target entropy of the actions (nats) under alpha_schedule=auto: constant, or moving from
    target_entropy_start_per_dim to target_entropy_per_dim, linearly over target_entropy_horizon updates (`steps`)
    or by the fraction `agreement` of the critics' action differences that both critics share."""
    end = jnp.float32(config.target_entropy_per_dim * act_dim)
    if config.target_entropy_start_per_dim is None:
        return end
    start = jnp.float32(config.target_entropy_start_per_dim * act_dim)
    if config.target_entropy_follows == "critics":
        frac = jnp.clip(agreement, 0.0, 1.0)
    else:
        frac = jnp.minimum(jnp.asarray(steps, jnp.float32) / config.target_entropy_horizon, 1.0)
    return start + (end - start) * frac


def critic_agreement(qs: jax.Array) -> jax.Array:
    """How far two critics agree on which of the policy's actions is better, from their values qs (E, S, M) of M
    actions at each of S states: the correlation of the two critics' values over actions, pooled over states
    (each state's mean removed, so differences between states do not count). If each critic is a shared signal
    plus its own noise of equal size, this is the signal's share of the variance over actions: 0 while the
    ranking is the critics' own noise (a sparse reward not yet seen), 1 when both see the same differences.
    Of a larger ensemble, the first two critics."""
    centred = qs - jnp.mean(qs, axis=-1, keepdims=True)
    cross = jnp.sum(centred[0] * centred[1])
    return cross / jnp.sqrt(jnp.sum(centred[0] ** 2) * jnp.sum(centred[1] ** 2) + 1e-12)


def score_entropy(score_fn, u0, schedule: diffusion.VESchedule, key, num_nodes: int = 8,
                  std_lo: float = ENTROPY_STD_LO, completion: str = "gaussian"):
    """Differential entropy of the density whose noised scores score_fn gives, per state, from M samples of it.

    u0 (S, M, d): M samples at each of S states; score_fn(x, t) maps x (S, M, d) at a scalar time t to the score of
    p_t = p_0 ∗ N(0, h(t)·I) at each state. Under the VE forward process dH(p_h)/dh = ½·E‖∇log p_h‖², so

        H(p_0) = H(p_{h(1)}) − ∫ ½·h·E‖s(x_h)‖² d(log h),   x_h = u0 + √h·z.

    H(p_{h(1)}) is that of the Gaussian with the samples' per-dimension variance v̂ plus h(1) (exact for a Gaussian
    p_0, and close whenever h(1) dominates v̂), with the delta-method correction of log's curvature for an M-sample
    variance. The integrand is taken relative to that of the Gaussian with variance v̂, whose integral over all h
    is known in closed form, so the nodes only resolve how far p_0 is from that Gaussian: over
    log h ∈ [log std_lo², log h(1)] by a midpoint rule with one random shift of its nodes (unbiased).
    Below std_lo², where the score is not trusted, the rest H(p_0) − H(p_lo) comes from a Gaussian:
    - completion="gaussian": that of the samples' variance, ½·log(v̂/(lo² + v̂)) (exact for a Gaussian p_0; a
      density of several narrow modes gets the spread between its modes instead of their width, which puts its
      entropy too high by up to ½·log(1 + lo²/w²) per dimension for modes of width w);
    - completion="curvature": that of each point's local fit, ½·E log det(I + lo²·∇s(x_lo)) at x_lo = u0 + lo·z
      (the posterior covariance of u0 given x_lo over lo², Tweedie's second moment, the same matrix as the last
      ancestral step's): exact for a Gaussian and for well separated Gaussian modes, at d Jacobian-vector
      products per sample; its eigenvalues are clipped to [1e-4, 1] (modes at most 100× narrower than lo).
    Returns (S,) entropies in nats."""
    num_samples = u0.shape[-2]
    var0 = jnp.maximum(jnp.var(u0, axis=-2, ddof=1), 1e-12)  # (S, d)
    h1 = schedule.variance(1.0)
    log_lo, log_hi = 2.0 * jnp.log(jnp.float32(std_lo)), jnp.log(h1)
    width = (log_hi - log_lo) / num_nodes
    shift_key, noise_key, completion_key = jax.random.split(key, 3)  # the first two are split(key)'s
    h = jnp.exp(log_lo + (jnp.arange(num_nodes) + jax.random.uniform(shift_key)) * width)
    z = jax.random.normal(noise_key, (num_nodes,) + u0.shape)
    scores = jax.vmap(score_fn)(u0 + jnp.sqrt(h)[:, None, None, None] * z, schedule.time_of_variance(h))
    integrand = 0.5 * h[:, None] * jnp.mean(jnp.sum(scores**2, -1), -1)  # (nodes, S)
    reference = 0.5 * h[:, None] * jnp.sum(1.0 / (h[:, None, None] + var0), -1)
    top = 0.5 * jnp.log(2 * jnp.pi * jnp.e * (h1 + var0)) + var0**2 / (2 * (num_samples - 1) * (h1 + var0) ** 2)
    lo = jnp.exp(log_lo)
    entropy_lo = jnp.sum(top - 0.5 * jnp.log((h1 + var0) / (lo + var0)), -1) - width * jnp.sum(integrand - reference, 0)
    if completion == "curvature":
        return entropy_lo + _curvature_completion(score_fn, u0, schedule, lo, completion_key)
    # The Gaussian's part below std_lo, ½·log((lo + v)/v), is taken at the samples' v̂: E log v̂ = log v + b with
    # b = ψ(m/2) − log(m/2) for m = M − 1 degrees of freedom (−0.37 for M = 4), and log(lo + v̂) carries that bias
    # by about (v̂/(lo + v̂))² (all of it at lo = 0, none for lo ≫ v), so the part is overestimated by
    # −½·b·(1 − (v̂/(lo + v̂))²), which is added back.
    dof = num_samples - 1
    log_bias = jax.scipy.special.digamma(dof / 2) - jnp.log(dof / 2)
    below = 0.5 * jnp.log((lo + var0) / var0) + 0.5 * log_bias * (1.0 - (var0 / (lo + var0)) ** 2)
    return entropy_lo - jnp.sum(below, -1)


def _curvature_completion(score_fn, u0, schedule: diffusion.VESchedule, lo, key):
    """½·E log det(I + lo·∇s(x)) per state at x = u0 + √lo·z (lo a variance): H(p_0) − H(p_lo) for Gaussian modes."""
    x = u0 + jnp.sqrt(lo) * jax.random.normal(key, u0.shape)
    t = schedule.time_of_variance(lo)
    jac = jacobian_rows(lambda y: score_fn(y, t), x)  # (S, M, d, d)
    eye = jnp.eye(u0.shape[-1], dtype=u0.dtype)
    eigenvalues = jnp.linalg.eigvalsh(eye + 0.5 * lo * (jac + jnp.swapaxes(jac, -1, -2)))
    return 0.5 * jnp.mean(jnp.sum(jnp.log(jnp.clip(eigenvalues, CURVATURE_FLOOR, 1.0)), -1), -1)


def make_critics(config: DQSConfig) -> nets.Critics:
    """The critic ensemble a DQS run trains: the one place that reads its shape from the config, so scripts that
    rebuild a saved run's critics get the same network."""
    return nets.Critics(config.num_critics, config.critic_hidden, config.activation, config.critic_layer_norm)


def critic_value(config: DQSConfig):
    """Q(s, a) as the policy sees it: (critic params, obs, actions) → the ensemble's pessimistic value, one per row."""
    critics = make_critics(config)
    return lambda params, obs, actions: pessimistic_q(critics.apply(params, obs, actions), config.critic_pessimism)


def make(config: DQSConfig, obs_dim: int, act_dim: int) -> Agent:
    schedule = diffusion.VESchedule(config.sigma_min, config.sigma_max)
    score_net = nets.ScoreNet(config.actor_width, config.actor_blocks, act_dim, embed_dim=config.embed_dim)
    critic_net, q_value = make_critics(config), critic_value(config)
    score_opt, critic_opt = adam(config.actor_lr), adam(config.critic_lr)
    num_steps = config.denoising_steps
    auto_alpha = config.alpha_schedule == "auto"
    alpha_opt = adam(config.alpha_lr)

    def sample_pre_tanh(params, obs, alpha, key, sampler: str, draws=None):
        """Pre-tanh actions u (..., d) for obs (..., obs_dim): sampler is sde (η = 1), euler (η = 0) or ode.
        draws (..., (N + 1)·d): the ancestral chain's standard normal inputs, in place of key's."""
        score_fn = lambda x, t: score_net.apply(params, obs, x, t, alpha)
        shape = obs.shape[:-1] + (act_dim,)
        if config.time_grid == "uniform" and config.sampler_step == "euler":  # the original sampler
            if sampler == "ode":
                return diffusion.probability_flow_ode(score_fn, shape, schedule, num_steps, key=key)
            eta = 1.0 if sampler == "sde" else 0.0
            return diffusion.ve_euler_maruyama(score_fn, key, shape, schedule, num_steps, eta=eta)
        times = ve_time_grid(schedule, num_steps, config.time_grid, config.grid_rho, config.grid_std_min)
        if sampler == "ode":
            if config.time_grid == "uniform":
                return diffusion.probability_flow_ode(score_fn, shape, schedule, num_steps, key=key)
            return probability_flow_heun(score_fn, shape, schedule, times, key=key)
        eta = 1.0 if sampler == "sde" else 0.0
        if config.sampler_step == "ancestral":
            if draws is not None:  # (..., (N + 1)·d) → (N + 1, ..., d), the chain's order
                draws = jnp.moveaxis(draws.reshape(obs.shape[:-1] + (num_steps + 1, act_dim)), -2, 0)
            return ve_ancestral(score_fn, key, shape, schedule, times, eta=eta, draws=draws)
        return ve_euler_maruyama_on_grid(score_fn, key, shape, schedule, times, eta=eta)

    def current_alpha(state):
        return jnp.exp(state.log_alpha) if auto_alpha else temperature(config, state.steps)

    def policy_entropy(params, obs, u0, alpha, key):
        """Entropy of the actions a = tanh(u) of the policy with score network params, averaged over states, from
        samples u0 (S, M, d) at obs (S, M, obs_dim): H(a) = H(u) + E Σ log(1 − tanh² u), H(u) by score_entropy."""
        score_fn = lambda x, t: score_net.apply(params, obs, x, t, alpha)
        h_u = score_entropy(score_fn, u0, schedule, key, config.entropy_nodes,
                            config.score_std_min or ENTROPY_STD_LO, config.entropy_completion)
        return jnp.mean(h_u + jnp.mean(diffusion.log_tanh_jacobian(u0), -1))

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        score = score_net.init(k1, obs, act, jnp.zeros((1,)), jnp.float32(config.alpha))
        critic = critic_net.init(k2, obs, act)
        fields = dict(score=score, critic=critic, target_critic=critic, score_opt=score_opt.init(score),
                      critic_opt=critic_opt.init(critic), steps=jnp.zeros((), jnp.int32))
        if auto_alpha:
            log_alpha = jnp.log(jnp.float32(config.alpha))
            return DQSAutoState(**fields, log_alpha=log_alpha, alpha_opt=alpha_opt.init(log_alpha))
        return DQSState(**fields)

    @counted_jit(static_argnames="deterministic")
    def act(state: DQSState, obs, key, deterministic: bool = False, noise=None):
        """noise (..., noise_dim): the exploring chain's standard normal inputs (ancestral steps only)."""
        sampler = config.eval_sampler if deterministic else "sde"
        draws = None if deterministic else noise
        alpha = current_alpha(state) * (config.eval_alpha_scale if deterministic else 1.0)
        return jnp.tanh(sample_pre_tanh(state.score, obs, alpha, key, sampler, draws)), {}

    def score_update(state: DQSState, batch, alpha, key):
        """One regression step of the score network on the iDEM target of the (already updated) online critics."""
        n = config.score_batch_size or batch.obs.shape[0]
        obs, action = batch.obs[:n], batch.action[:n]  # minibatch rows are already a uniform draw
        q_fn = lambda s, a: q_value(state.critic, s, a)
        x, t, target = diffusion.score_matching_batch(q_fn, obs, action, alpha, schedule, key, config.num_mc_samples,
                                                      config.score_clip, config.richardson, config.score_std_min)

        def loss_fn(params):
            predicted = score_net.apply(params, obs, x, t, alpha)
            if config.score_loss_weight == "uniform":
                return jnp.mean((predicted - target) ** 2)  # the target is data: no gradient flows into it
            return diffusion.ve_score_loss(predicted, target, schedule.variance(t))

        loss, grads = jax.value_and_grad(loss_fn)(state.score)
        score, opt_state = apply_grads(score_opt, state.score, state.score_opt, grads)
        return score, opt_state, loss, jnp.linalg.norm(target, axis=-1).mean()

    def tune_alpha(state: DQSAutoState, params, obs, u0, alpha, key):
        """One Adam step of SAC's temperature loss on the entropy of the policy that drew u0: α falls while it is
        above the target and rises while below. The score network is conditioned on α, so the policy follows a
        new α at once, as far as the network generalises over α, and the next score updates train it there.
        The critics' agreement is measured on the same samples with the (updated) online critics."""
        qs = critic_net.apply(state.critic, obs, jnp.tanh(u0))  # (E, S, M)
        agreement = critic_agreement(qs)
        entropy = policy_entropy(params, obs, u0, alpha, key)
        target = entropy_target(config, act_dim, state.steps, agreement)
        grad = jax.grad(alpha_loss)(state.log_alpha, entropy, target)
        log_alpha, a_opt = apply_grads(alpha_opt, state.log_alpha, state.alpha_opt, grad)
        info = {"entropy": entropy, "target_entropy": target, "critic_agreement": agreement}
        return state.replace(log_alpha=log_alpha, alpha_opt=a_opt), info

    def step(state: DQSState, batch, key):
        k_critic, k_score, k_entropy = jax.random.split(key, 3)
        alpha = current_alpha(state)
        # one chain for every next state this step needs, drawn with the same (pre-update) network: the TD
        # target's, the one-step next states' under the n-step lower bound, and under auto (tuned at every update)
        # the entropy's entropy_samples chains at each of the first entropy_states next states
        batch_size = batch.next_obs.shape[0]
        chain_obs = [batch.next_obs]
        bounded = config.n_step_lower_bound and batch.one_step is not None
        if bounded:
            chain_obs.append(batch.one_step.next_obs)
        if auto_alpha:
            num_states = min(config.entropy_states, batch_size)
            entropy_obs = jnp.repeat(batch.next_obs[:num_states], config.entropy_samples, axis=0)
            entropy_shape = (num_states, config.entropy_samples)
            if config.alpha_update_every == 1:
                chain_obs.append(entropy_obs)
        u = sample_pre_tanh(state.score, jnp.concatenate(chain_obs), alpha, k_critic, "sde")
        next_action = jnp.tanh(u[:batch_size])
        one_step_action = jnp.tanh(u[batch_size:2 * batch_size]) if bounded else None
        sampled_with = state.score
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma, config.tau,
                                    one_step_action=one_step_action, pessimism=config.critic_pessimism)

        def update_score(state):
            score, s_opt, s_loss, target_norm = score_update(state, batch, alpha, k_score)
            return state.replace(score=score, score_opt=s_opt), {"actor_loss": s_loss, "target_norm": target_norm}

        state, score_info = delayed(state.steps, config.policy_delay, update_score, state)
        state = state.replace(steps=state.steps + 1)
        info = {**info, **score_info, "alpha": alpha}
        if auto_alpha:
            obs = entropy_obs.reshape(entropy_shape + (obs_dim,))

            def tune(state, u0, key):
                return tune_alpha(state, sampled_with, obs, jax.lax.stop_gradient(u0.reshape(entropy_shape + (-1,))),
                                  alpha, key)

            if config.alpha_update_every == 1:
                state, alpha_info = tune(state, u[-len(entropy_obs):], k_entropy)
            else:
                k_chain, k_tune = jax.random.split(k_entropy)

                def sample_and_tune(state):
                    return tune(state, sample_pre_tanh(sampled_with, entropy_obs, alpha, k_chain, "sde"), k_tune)

                state, alpha_info = delayed(state.steps - 1, config.alpha_update_every, sample_and_tune, state)
            info = {**info, **alpha_info}
        return state, info

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    noise_dim = (num_steps + 1) * act_dim if config.sampler_step == "ancestral" else 0
    agent = Agent(init, act, update, noise_dim)
    return with_normalized_observations(agent, obs_dim) if config.normalize_obs else agent


SPEC = AlgoSpec(
    name="dqs",
    config_cls=DQSConfig,
    make=make,
    evaluation="the reverse chain from a random prior draw with eval_sampler: euler (default: the chain's steps "
               "with no noise injected, η = 0), ode (the probability-flow ODE) or sde (the exploring sampler).",
    description="Diffusion Q-Sampling: VE diffusion policy trained on the iDEM Monte-Carlo score of exp(Q/α).",
)
