"""QSM — Q-Score Matching (Psenka, Escontrela, Abbeel, Ma; ICML 2024, arXiv 2312.11752).

A VP diffusion policy whose ε-network is regressed straight onto the critic's action gradient, so the denoising
direction follows ∇_a Q instead of a score of known samples:

    critic:  y = r + γ·(1 − terminated)·min_j Q̄_j(s′, a′),   a′ = DDPM sample at s′ + N(0, σ_target²), clipped
    actor:   t ~ U{1..T},  a_t = √ᾱ_t·a + √(1 − ᾱ_t)·ε   (a: the replay action)
             L = mean_batch ‖ε_θ(s, a_t, t) + M_q·½ Σ_j ∇_a Q_j(s, a_t)‖²

What the target is, as in the official code (Alescontrela/score_matching_rl): the gradient is that of the online
critics just after this step's TD update (not the targets), averaged over the two critics (not their minimum),
evaluated at the forward-noised replay action a_t (not at the clean a); the target itself does not depend on t
(no √(1 − ᾱ_t) factor), only the network's input does. Acting draws one DDPM sample and adds N(0, 0.1²); evaluation
is the DDPM sample without that noise (the chain stays random).

Knowing departures from the official code: the shared DDPM sampler clips the predicted x̂₀ to [−1, 1] and uses the
posterior variance β̃_t, where the official sampler takes the ε-form mean step with variance β_t and clips x_t itself
after every step (the two agree at the last step, which is where the action is formed); the step index is embedded
by fixed sinusoids and a small MLP (nets.EpsNet) rather than learnable Fourier features; the actor loss sums the
squared error over action dimensions (the official code averages it: a constant factor under Adam); truncated
episodes bootstrap (SPEC §1). `num_candidates` > 1 selects best-of-N under the online critic, which the SDAC
authors' QSM re-implementation does; the official code (and the default) acts with one sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.struct
import jax
import jax.numpy as jnp
import optax

from boltzrl import diffusion, nets
from boltzrl.agents.base import Agent, AlgoSpec, adam, apply_grads, counted_jit, scan_updates
from boltzrl.agents.critic import critic_update

GRAD_CRITICS = ("online", "target")


@dataclass(frozen=True)
class QSMConfig:
    m_q: float = 50.0
    """M_q, the scale of the critic's action gradient in the ε target −M_q·∇_a Q̄ (the official code's 50; 120 for
    quadruped/humanoid walk). Larger is greedier: the policy concentrates faster on Q's maxima."""
    grad_critic: str = "online"
    """Which critics' action gradient forms the target: online (the official code, after this step's TD update)
    or target (the Polyak-averaged ones)."""
    denoising_steps: int = 5
    """Denoising steps T of the policy's chain."""
    schedule: str = "vp_sde"
    """VP noise schedule: vp_sde (the official 'vp' schedule, b_min 0.1, b_max 10), cosine or linear."""
    init_scale: float = 1.0
    """Std of the Gaussian the sampling chain starts from."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the sampled action when acting."""
    target_noise: float = 0.1
    """Std of the Gaussian noise added to the next action a′ of the TD target (the official code adds 0.1)."""
    num_candidates: int = 1
    """N of best-of-N action selection under the online critics for acting and evaluation (1: one sample, the
    official code)."""
    actor_hidden: tuple[int, ...] = (512, 512)
    """Hidden widths of the ε-network (the policy)."""
    critic_hidden: tuple[int, ...] = (512, 512)
    """Hidden widths of each critic."""
    activation: str = "mish"
    """Activation of the ε-network's hidden layers."""
    critic_activation: str = "relu"
    """Activation of the critics' hidden layers."""
    time_dim: int = 64
    """Width of the step-index embedding of the ε-network."""
    actor_lr: float = 3e-4
    """Initial Adam learning rate of the ε-network."""
    actor_lr_decay_steps: int = 2_000_000
    """Policy updates over which the learning rate follows a cosine decay to 0 (the official default); 0: constant."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""

    def __post_init__(self):
        if self.grad_critic not in GRAD_CRITICS:
            raise ValueError(f"grad_critic must be one of {', '.join(GRAD_CRITICS)}, got {self.grad_critic!r}.")
        if self.schedule not in ("vp_sde", "cosine", "linear"):
            raise ValueError(f"schedule must be vp_sde, cosine or linear, got {self.schedule!r}.")
        for name in ("denoising_steps", "num_candidates", "time_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        for name in ("m_q", "init_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        for name in ("exploration_noise", "target_noise", "actor_lr_decay_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}.")


class QSMState(flax.struct.PyTreeNode):
    policy: dict
    critic: dict
    target_critic: dict
    policy_opt: tuple
    critic_opt: tuple
    steps: jax.Array


def q_score_target(q_fn, obs, a_t, m_q: float):
    """The QSM regression target −M_q·∇_a Q̄(s, a_t), Q̄ the mean of the critics q_fn(obs, a) → (E, B).

    Returns (target, ∇_a Q̄), each shaped like a_t; no gradient flows into q_fn's parameters."""
    grad = jax.grad(lambda a: q_fn(obs, a).mean(0).sum())(a_t)  # rows are independent: the sum gives per-row ∇
    grad = jax.lax.stop_gradient(grad)
    return -m_q * grad, grad


def make(config: QSMConfig, obs_dim: int, act_dim: int) -> Agent:
    schedule = diffusion.make_vp_schedule(config.schedule, config.denoising_steps)
    eps_net = nets.EpsNet(config.actor_hidden, act_dim, config.activation, config.time_dim)
    critic_net = nets.Critics(2, config.critic_hidden, config.critic_activation)
    actor_lr = (optax.cosine_decay_schedule(config.actor_lr, config.actor_lr_decay_steps)
                if config.actor_lr_decay_steps else config.actor_lr)
    policy_opt, critic_opt = adam(actor_lr), adam(config.critic_lr)

    def sample(policy, obs, key):
        """One DDPM sample per state: obs (B, obs_dim) → (B, d)."""
        eps_fn = lambda x, t: eps_net.apply(policy, obs, x, t)
        return diffusion.ddpm_sample(eps_fn, key, (obs.shape[0], act_dim), schedule, init_scale=config.init_scale)

    def policy_action(policy, critic, obs, key):
        if config.num_candidates == 1:
            return sample(policy, obs, key)
        n = config.num_candidates
        obs_n = jnp.repeat(obs, n, axis=0)
        candidates = sample(policy, obs_n, key).reshape(obs.shape[0], n, act_dim)
        q = critic_net.apply(critic, obs_n, candidates.reshape(-1, act_dim)).min(0).reshape(obs.shape[0], n)
        return diffusion.best_of_n(candidates, q)

    def noisy(action, std, key):
        return jnp.clip(action + std * jax.random.normal(key, action.shape), -1.0, 1.0)

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        policy = eps_net.init(k1, obs, act, jnp.zeros((), jnp.int32))
        critic = critic_net.init(k2, obs, act)
        return QSMState(policy=policy, critic=critic, target_critic=critic, policy_opt=policy_opt.init(policy),
                        critic_opt=critic_opt.init(critic), steps=jnp.zeros((), jnp.int32))

    @counted_jit(static_argnames="deterministic")
    def act(state: QSMState, obs, key, deterministic: bool = False):
        k_sample, k_noise = jax.random.split(key)
        action = policy_action(state.policy, state.critic, obs, k_sample)
        return (action if deterministic else noisy(action, config.exploration_noise, k_noise)), {}

    def step(state: QSMState, batch, key):
        k_next, k_target_noise, k_t, k_eps = jax.random.split(key, 4)
        next_action = noisy(policy_action(state.policy, state.target_critic, batch.next_obs, k_next),
                            config.target_noise, k_target_noise)
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma, config.tau)

        t = jax.random.randint(k_t, (batch.obs.shape[0],), 0, config.denoising_steps)
        a_t = diffusion.vp_forward(batch.action, t, jax.random.normal(k_eps, batch.action.shape), schedule)
        critic = state.critic if config.grad_critic == "online" else state.target_critic
        target, q_grad = q_score_target(lambda o, a: critic_net.apply(critic, o, a), batch.obs, a_t, config.m_q)

        def loss_fn(params):
            eps_pred = eps_net.apply(params, batch.obs, a_t, t)
            return diffusion.dsm_loss(eps_pred, target), eps_pred

        (loss, eps_pred), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.policy)
        policy, p_opt = apply_grads(policy_opt, state.policy, state.policy_opt, grads)
        state = state.replace(policy=policy, policy_opt=p_opt, steps=state.steps + 1)
        norm = lambda x: jnp.linalg.norm(x, axis=-1).mean()
        return state, {**info, "actor_loss": loss, "q_grad_norm": norm(q_grad), "score_target_norm": norm(target),
                       "eps_pred_norm": norm(eps_pred)}

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update)


SPEC = AlgoSpec(
    name="qsm",
    config_cls=QSMConfig,
    make=make,
    evaluation="a DDPM sample of the current policy without the exploration noise (the chain itself is random); "
               "best of num_candidates samples under the online critics when that is above 1.",
    description="Q-Score Matching: VP diffusion policy whose ε-network is regressed onto −M_q·∇_a Q at noisy replay "
                "actions.",
)
