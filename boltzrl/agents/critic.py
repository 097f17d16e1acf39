"""The critic stage every actor-critic here shares, and the delayed-update switch.

Only how the next action a′ is drawn differs between the algorithms; given a′, the step is the same:

    y = r + γ·(1 − terminated)·(min_j Q̄_j(s′, a′) − penalty)
    L = Σ_j mean_batch (Q_j(s, a) − y)²,   then   Q̄ ← (1 − τ)·Q̄ + τ·Q

with penalty = α·log π(a′|s′) for SAC and none otherwise. The agent states hold `critic`, `critic_opt` and
`target_critic`, which is what these helpers read and replace. `action_ascent` improves actions on the critic
itself (DIPO's update, SDAC's optional acting refinement).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from boltzrl import nets
from boltzrl.agents.base import critic_step, td_target


def pessimistic_q(qs, pessimism: float = 1.0):
    """The ensemble's values (E, ...) reduced to one: mean_j Q_j − pessimism·mean_j |Q_j − mean Q|. For twin
    critics pessimism = 1 is their minimum (clipped double Q, computed as such), 0 their mean: a scale between the
    underestimation of the minimum and the overestimation a maximising actor finds in one critic. The absolute
    deviation, not the std, so that the gradient stays finite where the critics agree."""
    if pessimism == 1.0:
        return qs.min(0)
    mean = qs.mean(0)
    return mean - pessimism * jnp.abs(qs - mean).mean(0)


def clipped_double_q_target(next_qs, reward, terminated, gamma: float, next_penalty=None, pessimism: float = 1.0):
    """y = r + γ·(1 − terminated)·(min_j Q̄_j(s′, a′) − penalty) from the target ensemble's values (E, B); the
    minimum over the ensemble counters the overestimation of a maximising actor (Fujimoto et al. 2018). With
    pessimism < 1 the minimum becomes `pessimistic_q`."""
    next_q = pessimistic_q(next_qs, pessimism)
    if next_penalty is not None:
        next_q = next_q - next_penalty
    return td_target(reward, terminated, next_q, gamma)


def polyak_target(state, tau: float):
    """The state with target_critic moved a step τ towards critic."""
    return state.replace(target_critic=nets.soft_update(state.target_critic, state.critic, tau))


def critic_update(critic_net, opt, state, batch, next_action, gamma: float, tau: float | None = None,
                  next_penalty=None, reward_scale: float | None = None, one_step_action=None,
                  pessimism: float = 1.0):
    """One clipped double-Q step on state.critic with the next action a′ (B, d); with tau, also the Polyak step
    of the targets towards the new critic (leave it None where the targets follow a delayed actor).

    one_step_action: for n-step rows (batch.one_step), the next action at each row's one-step next state; the
    target is then the larger of the n-step and the one-step target (`lower_bound_target`).

    pessimism: how the twin targets are reduced (`pessimistic_q`; 1, the default, is their minimum).

    Returns (state, {"critic_loss", "q_mean"}, plus "n_step_share" with one_step_action)."""
    scale = (lambda r: r) if reward_scale is None else (lambda r: reward_scale * r)
    next_qs = critic_net.apply(state.target_critic, batch.next_obs, next_action)
    target = clipped_double_q_target(next_qs, scale(batch.reward), batch.terminated, gamma, next_penalty, pessimism)
    extra = {}
    if one_step_action is not None:
        if next_penalty is not None:
            raise ValueError("an n-step lower bound is not defined here for a target with an entropy penalty")
        one = batch.one_step
        one_qs = critic_net.apply(state.target_critic, one.next_obs, one_step_action)
        one_target = clipped_double_q_target(one_qs, scale(one.reward), one.terminated, gamma, pessimism=pessimism)
        target, extra["n_step_share"] = lower_bound_target(target, one_target)
    critic, opt_state, loss, q_mean = critic_step(critic_net, opt, state.critic, state.critic_opt, batch.obs,
                                                  batch.action, target)
    state = state.replace(critic=critic, critic_opt=opt_state)
    if tau is not None:
        state = polyak_target(state, tau)
    return state, {"critic_loss": loss, "q_mean": q_mean, **extra}


def lower_bound_target(n_step_target, one_step_target):
    """max(n-step target, one-step target), and the share of rows where the n-step one is the larger.

    An n-step return sums the rewards of the policy that collected the row (an older, more exploratory one), so
    in a deterministic env it is a lower bound on what an optimal policy gets from (s, a): it may lift the
    one-step target (rewards reach the critic n steps per update) but never pull it down towards that older
    policy's value (He et al. 2017, optimality tightening)."""
    return jnp.maximum(n_step_target, one_step_target), jnp.mean(n_step_target > one_step_target)


def delayed(step, delay: int, update_fn: Callable, state, nan_info_like: Any = None):
    """`update_fn(state) -> (state, info)` on the steps where step % delay == 0, else the state unchanged and NaN
    infos (which the scan's nanmean then leaves out). A `lax.cond`, so the delay costs no recompilation; a delay of
    1 calls update_fn directly.

    nan_info_like: a pytree shaped like the infos; None reads their shapes off update_fn."""
    if delay == 1:
        return update_fn(state)
    if nan_info_like is None:
        nan_info_like = jax.eval_shape(update_fn, state)[1]
    nan_info = jax.tree_util.tree_map(lambda x: jnp.full_like(x, jnp.nan), nan_info_like)
    return jax.lax.cond(step % delay == 0, update_fn, lambda s: (s, nan_info), state)


def action_ascent(q_fn, obs, actions, steps: int, lr: float, max_norm: float, eps: float = 1e-5):
    """`steps` Adam steps of gradient ascent on Σ_batch min_j q_fn(obs, a)_j over the actions (q_fn → (E, B)),
    the gradient clipped to global norm max_norm over the whole minibatch (0: no clip), the actions clamped to
    [−1, 1] after every step.

    Returns (improved actions, {"grad_norm": (steps,) norms before the clip, "clipped_norm": after it})."""
    opt = optax.adam(lr, eps=eps)
    grad_fn = jax.grad(lambda a: q_fn(obs, a).min(0).sum())

    def body(carry, _):
        a, opt_state = carry
        ascent = grad_fn(a)
        norm = optax.global_norm(ascent)
        if max_norm > 0:
            ascent = ascent * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
        updates, opt_state = opt.update(-ascent, opt_state, a)  # Adam minimises −min Q
        return (jnp.clip(a + updates, -1.0, 1.0), opt_state), (norm, optax.global_norm(ascent))

    (actions, _), (norms, clipped) = jax.lax.scan(body, (actions, opt.init(actions)), None, length=steps)
    return jax.lax.stop_gradient(actions), {"grad_norm": norms, "clipped_norm": clipped}
