"""The agent interface shared by every algorithm.

An algorithm is a frozen config dataclass plus `make(config, obs_dim, act_dim) -> Agent`, where `Agent` bundles
three pure, jitted functions over a state pytree:

    init(key) -> state
    act(state, obs, key, deterministic) -> (actions in [-1, 1], extras)     (obs: (num_envs, obs_dim))
    update(state, data, key) -> (state, info)

`extras` is a dict of per-env arrays the agent wants back with its data (an on-policy agent's log π and V, a
diffusion policy's chain); off-policy agents return {}. `deterministic=True` is the evaluation policy, whose meaning
each spec states in `evaluation`. An off-policy agent's `data` is a `Batch` of n minibatches (leading axis n =
gradient steps, run inside one `lax.scan`, so the loop dispatches once per n steps); an on-policy agent's is the
`Rollout` of its last T steps × num_envs. Because the state is a pytree it is checkpointed by serialisation and can
be vmapped over seeds.

An off-policy agent may rewrite the actions of the replay rows it was given (DIPO's action memory): it then returns
the new actions under info[REPLAY_ACTIONS], shaped like the batch's actions, and the collector writes them back.
The memory stays the replay buffer (one store, checkpointed once) while the agent decides what it holds.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


REPLAY_ACTIONS = "replay_actions"
"""The info key under which an agent returns rewritten actions for the replay rows of its batch."""


class OneStep(NamedTuple):
    """The first of the one-step transitions an n-step row sums: the inputs of that row's one-step target."""

    reward: Any
    next_obs: Any
    terminated: Any


class Batch(NamedTuple):
    """Transitions (leading axes: the n gradient steps, then the minibatch). `one_step`: for n-step rows, their
    first one-step transitions (OneStep), which an agent may bound its n-step target with; None for one-step rows."""

    obs: Any
    action: Any
    reward: Any
    next_obs: Any
    terminated: Any
    one_step: Any = None


def random_batches(n: int, batch_size: int, obs_dim: int, act_dim: int, seed: int = 0) -> Batch:
    """n minibatches of random, never-terminal float32 transitions: data for timing and testing updates."""
    rng = np.random.default_rng(seed)
    return Batch(obs=rng.normal(size=(n, batch_size, obs_dim)).astype(np.float32),
                 action=rng.uniform(-1, 1, (n, batch_size, act_dim)).astype(np.float32),
                 reward=rng.normal(size=(n, batch_size)).astype(np.float32),
                 next_obs=rng.normal(size=(n, batch_size, obs_dim)).astype(np.float32),
                 terminated=np.zeros((n, batch_size), np.float32))


class Rollout(NamedTuple):
    """The last T steps of num_envs environments, each field (T, num_envs, ...). `next_obs` is the observation
    after each step before any reset (the final observation of a finished episode), so values can bootstrap through
    truncations; `extras` holds what `act` returned beside the actions."""

    obs: Any
    action: Any
    reward: Any
    next_obs: Any
    terminated: Any
    truncated: Any
    extras: dict


class Agent(NamedTuple):
    init: Callable[[jax.Array], Any]
    act: Callable[..., tuple[jax.Array, dict]]
    update: Callable[..., tuple[Any, dict]]
    noise_dim: int = 0
    """Standard normal draws per exploring action that act(..., noise=(batch, noise_dim)) takes in place of its
    key's, so that the training loop can correlate them along an episode (0: act draws its own only)."""


class counted_jit:
    """`jax.jit(fn)` that counts its traces: `.traces` is how often it was compiled (one per new input shape)."""

    def __init__(self, fn: Callable | None = None, **jit_kwargs):
        self.traces = 0
        self._jit_kwargs = jit_kwargs
        if fn is not None:
            self._wrap(fn)

    def _wrap(self, fn):
        @functools.wraps(fn)  # keeps fn's signature, which static_argnames refers to
        def traced(*args, **kwargs):
            self.traces += 1  # runs only while JAX traces, never in a compiled call
            return fn(*args, **kwargs)

        self._jitted = jax.jit(traced, **self._jit_kwargs)
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        return self

    def __call__(self, *args, **kwargs):
        if not hasattr(self, "_jitted"):  # used as @counted_jit(static_argnames=...)
            return self._wrap(args[0])
        return self._jitted(*args, **kwargs)


@dataclass(frozen=True)
class Preset:
    """A named set of overrides for an agent's config and for the training loop's config."""

    description: str
    agent: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


def load_presets(text: str) -> dict[str, dict[str, Preset]]:
    """{algo: {preset name: Preset}} from the TOML text of a preset file (the package's is data/presets.toml).

    Presets are data so that choosing an environment or loop settings never needs an agent's code. Arrays become
    tuples, the type of the config fields they set; `base = "OTHER"` is resolved here, so each Preset is complete.
    """
    tables = tomllib.loads(text)
    presets: dict[str, dict[str, Preset]] = {}
    for algo, named in tables.items():
        def resolve(name: str, seen: tuple[str, ...] = ()) -> Preset:
            if name not in named or name in seen:
                raise ValueError(f"Preset {algo}.{seen[-1]} has base {name!r}, which is "
                                 f"{'circular' if name in seen else 'not a preset of ' + algo}.")
            table = named[name]
            unknown = sorted(set(table) - {"description", "base", "agent", "train"})
            if unknown or "description" not in table:
                raise ValueError(f"Preset {algo}.{name} needs a description and may only have base, agent and "
                                 f"train besides; found {', '.join(unknown) or 'no description'}.")
            base = resolve(table["base"], seen + (name,)) if "base" in table else Preset("")
            return Preset(table["description"], {**base.agent, **_tuples(table.get("agent", {}))},
                          {**base.train, **_tuples(table.get("train", {}))})

        presets[algo] = {name: resolve(name) for name in named}
    return presets


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    config_cls: type
    make: Callable[[Any, int, int], Agent]
    description: str
    evaluation: str = ""
    """What act(deterministic=True) does: the evaluation policy."""
    presets: dict[str, Preset] = field(default_factory=dict)
    """Named presets; the registry fills them from data/presets.toml when the spec brings none."""
    on_policy: bool = False

    def config(self, preset: str | None = None, **overrides):
        """The config of a preset (or the defaults) with field overrides applied."""
        preset = preset or ("default" if "default" in self.presets else None)
        values = dict(self.preset(preset).agent) if preset else {}
        values.update(overrides)
        return make_config(self.config_cls, values)

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise ValueError(
                f"Unknown preset {name!r} for {self.name}; available: {', '.join(sorted(self.presets)) or 'none'}."
            )
        return self.presets[name]


def make_config(cls, values: dict[str, Any]):
    """Build a config dataclass, rejecting unknown fields with a clear message."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; "
                         f"valid fields: {', '.join(sorted(names))}.")
    return cls(**values)


def adam(lr, max_grad_norm: float | None = None) -> optax.GradientTransformation:
    opt = optax.adam(lr)
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), opt) if max_grad_norm else opt


def apply_grads(opt: optax.GradientTransformation, params, opt_state, grads):
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def critic_step(critic_net, opt, params, opt_state, obs, action, target):
    """One optimiser step on Σ_i mean_batch (Q_i(s, a) − y)² over the critic ensemble; returns
    (params, opt_state, loss, mean Q)."""

    def loss_fn(p):
        q = critic_net.apply(p, obs, action)
        return ((q - target) ** 2).mean(-1).sum(), q.mean()

    (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    params, opt_state = apply_grads(opt, params, opt_state, grads)
    return params, opt_state, loss, q_mean


def scan_updates(step_fn: Callable, state, batches: Batch, key: jax.Array):
    """Run `step_fn(state, batch, key) -> (state, info)` over the leading axis of `batches`; average the infos
    (NaN marks a quantity not computed at a step, e.g. a delayed actor loss), except rewritten replay actions,
    which come back per step."""
    n = jax.tree_util.tree_leaves(batches)[0].shape[0]
    keys = jax.random.split(key, n)

    def body(carry, xs):
        batch, k = xs
        return step_fn(carry, batch, k)

    state, infos = jax.lax.scan(body, state, (batches, keys))
    return state, {name: value if name == REPLAY_ACTIONS else jnp.nanmean(value)
                   for name, value in sorted(infos.items())}


def td_target(reward, terminated, next_q, gamma: float):
    """y = r + γ·(1 − terminated)·Q′; truncation bootstraps (only true termination zeroes it)."""
    return reward + gamma * (1.0 - terminated) * next_q
