"""DIPO — Diffusion Policy for online RL (Yang, Huang, Lei, Zhong, Yang, Fang, Wen, Zhou, Lin; arXiv 2305.13122).

An action memory whose actions are improved by gradient ascent on the critic, and a VP diffusion policy fitted to
that memory by plain denoising score matching:

    critic:  y = r + γ·(1 − terminated)·min_j Q̄_j(s′, a′),   a′ ~ the EMA policy's DDPM chain at s′
    memory:  a ← clip(a + Adam_0.03(clip_norm(∇_a min_j Q_j(s, a))), −1, 1),  K times, then written back
    actor:   t ~ U{1..T},  L = mean_batch ‖ε_θ(s, √ᾱ_t·a + √(1 − ᾱ_t)·ε, t) − ε‖²  on the improved a

Update order as in the official code (BellmanTimeHut/DIPO): the critic step, then the ascent with the updated online
critics, then the DSM step on the improved actions, then the Polyak steps of the target critics and of the EMA
policy. The ascent's gradient is that of Σ_batch min_j Q_j, clipped to global norm ascent_clip_ratio·d over the
whole minibatch (the official `clip_grad_norm_` over the (B, d) action tensor); Adam's moments live only through
the K steps of one minibatch. Actor and critic gradients are clipped to max_grad_norm; all three Adams use
ε = 1e-5. Acting runs the online policy's chain with its full noise; evaluation runs it from a random start
with no noise injected at the intermediate steps (the official noise_ratio = 0).

The memory is the replay buffer itself: the improved actions go back under info[REPLAY_ACTIONS] and the collector
writes them into the rows they came from. Knowing departures from the official code: (1) the official code keeps
a second memory of (s, a) for the ascent, sampled independently of the critic's replay, so its critic always
trains on the actions that were taken; here both read the one buffer, so the critic trains on rows whose actions
were improved after the transition was recorded (r and s′ belong to the original action). (2) The ascent and
the DSM step use the critic's minibatch rather than an independent draw. (3) Truncated episodes bootstrap
(SPEC §1; the official gym-v3 loop treats time limits as terminal). (4) Default initialisers replace the official
truncated normal, and the step index is embedded by nets.EpsNet's sinusoids and MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.struct
import jax
import jax.numpy as jnp
import optax

from boltzrl import diffusion, nets
from boltzrl.agents.base import REPLAY_ACTIONS, Agent, AlgoSpec, apply_grads, counted_jit, scan_updates
from boltzrl.agents.critic import action_ascent, critic_update


@dataclass(frozen=True)
class DIPOConfig:
    ascent_steps: int = 20
    """Gradient-ascent steps on min Q applied to the memory's actions at each update (40 for HalfCheetah)."""
    ascent_lr: float = 0.03
    """Adam learning rate of the action ascent."""
    ascent_clip_ratio: float = 0.1
    """The ascent gradient is clipped to global norm ascent_clip_ratio × (action dimension) over the minibatch
    (the official 'ratio': 0.3 Hopper, 0.08 Walker2d and HalfCheetah, 0.1 Ant and Humanoid); 0 disables it."""
    denoising_steps: int = 100
    """Denoising steps T of the policy's chain."""
    schedule: str = "cosine"
    """VP noise schedule: cosine, linear or vp_sde."""
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the ε-network (the policy)."""
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of each critic."""
    activation: str = "mish"
    """Activation of the hidden layers."""
    time_dim: int = 32
    """Width of the step-index embedding of the ε-network."""
    actor_lr: float = 3e-4
    """Adam learning rate of the ε-network."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    max_grad_norm: float = 2.0
    """Global-norm clip of the actor's and the critics' gradients (the official 'ac_grad_norm'); 0 disables it."""
    adam_eps: float = 1e-5
    """ε of the three Adam optimisers (actor, critics, action ascent)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics and of the EMA policy that draws the TD target's next action."""
    policy_target_every: int = 1
    """Update the EMA policy every this many updates (2 for HalfCheetah)."""
    write_back: bool = True
    """Write the improved actions back into the replay rows they came from (the action memory, as published);
    False improves the recorded actions afresh at every draw and leaves the critic's data as recorded."""

    def __post_init__(self):
        for name in ("ascent_steps", "denoising_steps", "time_dim", "policy_target_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.adam_eps <= 0:
            raise ValueError(f"adam_eps must be positive, got {self.adam_eps}.")
        for name in ("ascent_clip_ratio", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative (0 disables the clip), got {getattr(self, name)}.")
        if self.schedule not in ("cosine", "linear", "vp_sde"):
            raise ValueError(f"schedule must be cosine, linear or vp_sde, got {self.schedule!r}.")


class DIPOState(flax.struct.PyTreeNode):
    policy: dict
    ema_policy: dict
    critic: dict
    target_critic: dict
    policy_opt: tuple
    critic_opt: tuple
    steps: jax.Array


def make(config: DIPOConfig, obs_dim: int, act_dim: int) -> Agent:
    schedule = diffusion.make_vp_schedule(config.schedule, config.denoising_steps)
    eps_net = nets.EpsNet(config.actor_hidden, act_dim, config.activation, config.time_dim)
    critic_net = nets.Critics(2, config.critic_hidden, config.activation)

    def optimiser(lr):
        opt = optax.adam(lr, eps=config.adam_eps)
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt) if config.max_grad_norm else opt

    policy_opt, critic_opt = optimiser(config.actor_lr), optimiser(config.critic_lr)

    def sample(policy, obs, key, noise_ratio=1.0):
        eps_fn = lambda x, t: eps_net.apply(policy, obs, x, t)
        return diffusion.ddpm_sample(eps_fn, key, (obs.shape[0], act_dim), schedule, noise_scale=noise_ratio)

    def init(key):
        k1, k2 = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        policy = eps_net.init(k1, obs, act, jnp.zeros((), jnp.int32))
        critic = critic_net.init(k2, obs, act)
        return DIPOState(policy=policy, ema_policy=policy, critic=critic, target_critic=critic,
                         policy_opt=policy_opt.init(policy), critic_opt=critic_opt.init(critic),
                         steps=jnp.zeros((), jnp.int32))

    @counted_jit(static_argnames="deterministic")
    def act(state: DIPOState, obs, key, deterministic: bool = False):
        return sample(state.policy, obs, key, 0.0 if deterministic else 1.0), {}

    def step(state: DIPOState, batch, key):
        k_next, k_t, k_eps = jax.random.split(key, 3)
        next_action = sample(state.ema_policy, batch.next_obs, k_next)
        state, info = critic_update(critic_net, critic_opt, state, batch, next_action, config.gamma)

        q_fn = lambda o, a: critic_net.apply(state.critic, o, a)
        improved, ascent = action_ascent(q_fn, batch.obs, batch.action, config.ascent_steps, config.ascent_lr,
                                         config.ascent_clip_ratio * act_dim, config.adam_eps)
        gain = q_fn(batch.obs, improved).min(0).mean() - q_fn(batch.obs, batch.action).min(0).mean()

        t = jax.random.randint(k_t, (batch.obs.shape[0],), 0, config.denoising_steps)
        noise = jax.random.normal(k_eps, improved.shape)
        a_t = diffusion.vp_forward(improved, t, noise, schedule)
        loss, grads = jax.value_and_grad(
            lambda p: diffusion.dsm_loss(eps_net.apply(p, batch.obs, a_t, t), noise))(state.policy)
        policy, p_opt = apply_grads(policy_opt, state.policy, state.policy_opt, grads)

        ema_due = state.steps % config.policy_target_every == 0
        ema = jax.tree_util.tree_map(lambda e, p: jnp.where(ema_due, (1 - config.tau) * e + config.tau * p, e),
                                     state.ema_policy, policy)
        state = state.replace(policy=policy, policy_opt=p_opt, ema_policy=ema, steps=state.steps + 1,
                              target_critic=nets.soft_update(state.target_critic, state.critic, config.tau))
        info = {**info, "actor_loss": loss, "ascent_gain": gain,
                "ascent_shift": jnp.abs(improved - batch.action).sum(-1).mean(),
                "ascent_grad_norm": ascent["grad_norm"].mean()}
        if config.write_back:
            info[REPLAY_ACTIONS] = improved
        return state, info

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update)


SPEC = AlgoSpec(
    name="dipo",
    config_cls=DIPOConfig,
    make=make,
    evaluation="the online policy's DDPM chain from a random start with no noise injected at the intermediate "
               "steps (the official noise_ratio = 0).",
    description="DIPO: an action memory (the replay buffer) improved by gradient ascent on min Q, fitted by plain "
                "denoising score matching.",
)
