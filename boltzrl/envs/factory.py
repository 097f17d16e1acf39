"""One factory for every environment the library trains on.

`make_env` resolves an id, in this order, as
  1. a custom id added with `register_env` (e.g. "gmm-nav"),
  2. "dm_control/<domain>-<task>-v0",
  3. a registered Gymnasium id with a Box action space (Pendulum-v1, HalfCheetah-v5, ...),
  4. "<domain>-<task>", a DeepMind Control suite task (cheetah-run, finger-turn_hard, ...),
and returns it with the same interface everywhere: actions in Box(-1, 1, (d,), float32), rescaled linearly
to the native bounds, and observations as a flat float32 vector.
"""

from __future__ import annotations

import difflib
import functools
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

DMC_PREFIX = "dm_control/"
_DMC_ALIAS = re.compile(r"^dm_control/(?P<name>[^/]+)-v0$")


class UnknownEnvError(ValueError):
    """An environment id that no source knows, or one that cannot give a continuous-control env."""


@dataclass(frozen=True)
class _CustomEnv:
    factory: Callable[..., gym.Env]
    description: str


_CUSTOM_ENVS: dict[str, _CustomEnv] = {}


def register_env(env_id: str, factory: Callable[..., gym.Env], description: str = "") -> None:
    """Make `make_env(env_id, **kwargs)` call `factory(**kwargs)`.

    Registering the same factory again is a no-op; a different factory under a taken id is an error.
    """
    known = _CUSTOM_ENVS.get(env_id)
    if known is not None and known.factory is not factory:
        raise ValueError(f"Environment id '{env_id}' is already registered to {known.factory!r}; pick another id.")
    _CUSTOM_ENVS[env_id] = _CustomEnv(factory, description)


def registered_envs() -> dict[str, str]:
    """Custom ids and their descriptions."""
    return {env_id: entry.description for env_id, entry in sorted(_CUSTOM_ENVS.items())}


def dmc_task_ids() -> tuple[str, ...]:
    """Every DeepMind Control suite task as "domain-task" (imports dm_control on first use only)."""
    from boltzrl.envs import dmc

    return dmc.task_ids()


@functools.cache
def gymnasium_box_ids() -> tuple[str, ...]:
    """Gymnasium's own registered ids whose action space is a Box and whose dependencies are installed.

    MuJoCo envs (v4/v5) are all Box and are listed without being built; the few others are built once to look.
    Ids registered by third-party packages are not listed here, but `make_env` accepts them.
    """
    ids = []
    for env_id, spec in gym.registry.items():
        entry = spec.entry_point
        if not isinstance(entry, str) or not entry.startswith("gymnasium.envs."):
            continue  # mujoco-py stubs (v2/v3), shimmy stubs, third-party envs
        if entry.startswith(("gymnasium.envs.phys2d", "gymnasium.envs.tabular")):
            continue  # functional JAX prototypes that step on jax arrays
        if entry.startswith("gymnasium.envs.mujoco.") or _has_box_actions(env_id):
            ids.append(env_id)
    return tuple(sorted(ids))


def _has_box_actions(env_id: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id, disable_env_checker=True)
    except Exception:  # a missing optional dependency (box2d, ...): not offered
        return False
    is_box = isinstance(env.action_space, gym.spaces.Box)
    env.close()
    return is_box


def list_env_ids() -> dict[str, list[str]]:
    """Known ids by source. DMC tasks are also accepted as "dm_control/<domain>-<task>-v0"."""
    return {
        "dm_control": list(dmc_task_ids()),
        "gymnasium": list(gymnasium_box_ids()),
        "custom": sorted(_CUSTOM_ENVS),
    }


def make_env(env_id: str, seed: int | None = None, **kwargs: Any) -> gym.Env:
    """Build `env_id` with actions in [-1, 1]^d (float32) and flat float32 observations.

    `seed` seeds the action space and is the seed of the first `reset()` that is given none, so
    `make_env(id, seed=s).reset()` is reproducible. `kwargs` go to the underlying constructor
    (`gym.make`, the DMC adapter, or the registered factory).
    """
    env = _build_native(env_id, **kwargs)
    if not isinstance(env.action_space, gym.spaces.Box):
        kind = type(env.action_space).__name__
        env.close()
        raise UnknownEnvError(
            f"Environment '{env_id}' has a {kind} action space, but boltzrl needs continuous (Box) actions, "
            "so pick a continuous-control id such as Pendulum-v1 or cheetah-run."
        )
    env = _flat_float32_observations(env, env_id)
    low, high = env.action_space.low, env.action_space.high
    if not (np.all(low == -1.0) and np.all(high == 1.0) and env.action_space.dtype == np.float32):
        env = RescaleActionToUnit(env)
    env.action_space.seed(seed)
    return SeedFirstReset(env, seed)


def make_vec_env(
    env_id: str,
    num_envs: int,
    seed: int | None,
    autoreset_same_step: bool = True,
    env_fn: Callable[[int, int | None], gym.Env] | None = None,
    **kwargs: Any,
) -> SyncVectorEnv:
    """`num_envs` copies of `make_env(env_id, seed + i, **kwargs)` in a SyncVectorEnv.

    With `autoreset_same_step` (the default, `AutoresetMode.SAME_STEP`) a sub-env whose episode ends is reset
    inside the same `step`: the returned observation is already the next episode's first one, the true last
    observation is `infos["final_obs"][i]` (an object array, None where no episode ended) with the boolean
    mask `infos["_final_obs"]`, and that step's own info dict is `infos["final_info"]` (mask
    `infos["_final_info"]`). Otherwise Gymnasium's NEXT_STEP mode is used: the step after an episode end
    returns a reset observation with reward 0, which must not be stored as a transition.
    The vector action space is seeded with `seed`. `env_fn(i, seed_i)`, when given, builds sub-env i instead of
    `make_env` (e.g. one that renders).
    """
    seeds = [None if seed is None else seed + i for i in range(num_envs)]
    if env_fn is None:  # partials of make_env pickle, so training envs can be snapshotted
        env_fns = [functools.partial(make_env, env_id, env_seed, **kwargs) for env_seed in seeds]
    else:
        env_fns = [functools.partial(env_fn, i, env_seed) for i, env_seed in enumerate(seeds)]
    mode = AutoresetMode.SAME_STEP if autoreset_same_step else AutoresetMode.NEXT_STEP
    vec_env = SyncVectorEnv(env_fns, autoreset_mode=mode)
    vec_env.action_space.seed(seed)
    return vec_env


def _build_native(env_id: str, **kwargs: Any) -> gym.Env:
    if env_id in _CUSTOM_ENVS:
        return _CUSTOM_ENVS[env_id].factory(**kwargs)
    alias = _DMC_ALIAS.match(env_id)
    if env_id.startswith(DMC_PREFIX):
        if alias is None or alias["name"] not in dmc_task_ids():
            raise _unknown(env_id)
        return _make_dmc(alias["name"], **kwargs)
    if env_id in gym.registry:
        try:
            return gym.make(env_id, **kwargs)
        except gym.error.DependencyNotInstalled as error:
            first_line = str(error).strip().splitlines()[0].rstrip(".")
            raise UnknownEnvError(
                f"Environment '{env_id}' needs a package that is not installed ({first_line})."
            ) from None
    if env_id in dmc_task_ids():
        return _make_dmc(env_id, **kwargs)
    raise _unknown(env_id)


def _make_dmc(name: str, **kwargs: Any) -> gym.Env:
    from boltzrl.envs.dmc import DMCEnv

    domain, task = name.split("-", 1)  # domain names never contain '-'
    return DMCEnv(domain, task, **kwargs)


def _normalised(env_id: str) -> str:
    """Compare ids without case, the DMC prefix or a version suffix ("HalfCheetah-v5" -> "halfcheetah")."""
    name = env_id.lower().removeprefix(DMC_PREFIX)
    return re.sub(r"-v\d+$", "", name)


def _unknown(env_id: str) -> UnknownEnvError:
    candidates = [
        *dmc_task_ids(),
        *(f"{DMC_PREFIX}{name}-v0" for name in dmc_task_ids()),
        *gymnasium_box_ids(),
        *_CUSTOM_ENVS,
    ]
    by_key: dict[str, list[str]] = {}
    for candidate in candidates:
        by_key.setdefault(_normalised(candidate), []).append(candidate)
    keys = difflib.get_close_matches(_normalised(env_id), list(by_key), n=3, cutoff=0.6)
    matches = [candidate for key in keys for candidate in by_key[key]][:6]
    if matches:
        return UnknownEnvError(f"Unknown environment '{env_id}'; did you mean: {', '.join(matches)}?")
    return UnknownEnvError(f"Unknown environment '{env_id}'; run `boltzrl list` to see the available ids.")


def _flat_float32_observations(env: gym.Env, env_id: str) -> gym.Env:
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box):
        kind = type(space).__name__
        env.close()
        raise UnknownEnvError(
            f"Environment '{env_id}' has {kind} observations, but boltzrl needs a flat Box observation space."
        )
    if space.dtype == np.float32 and len(space.shape) == 1:
        return env
    return FlatFloat32Observation(env)


class FlatFloat32Observation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Observations as a 1-D float32 vector (MuJoCo gives float64)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            np.asarray(space.low, np.float32).ravel(), np.asarray(space.high, np.float32).ravel(), dtype=np.float32
        )

    def observation(self, observation):
        return np.asarray(observation, dtype=np.float32).ravel()


class RescaleActionToUnit(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Accept actions in [-1, 1]^d and map them affinely onto the native Box [low, high].

    Unlike Gymnasium's RescaleAction it holds no closures, so the wrapped env pickles (snapshots need that).
    Actions outside [-1, 1] are clipped first.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        space = env.action_space
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise UnknownEnvError("Cannot rescale an unbounded action space to [-1, 1]; the env needs finite bounds.")
        self._low = space.low.astype(np.float64)
        self._half_range = (space.high.astype(np.float64) - self._low) / 2.0
        self._native_dtype = space.dtype
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=space.shape, dtype=np.float32)

    def action(self, action):
        unit = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return (self._low + (unit + 1.0) * self._half_range).astype(self._native_dtype)


class SeedFirstReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Use `seed` for the first `reset()` that is given no seed (an explicit seed always wins)."""

    def __init__(self, env: gym.Env, seed: int | None):
        gym.utils.RecordConstructorArgs.__init__(self, seed=seed)
        super().__init__(env)
        self._pending_seed = seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        return self.env.reset(seed=seed, options=options)
