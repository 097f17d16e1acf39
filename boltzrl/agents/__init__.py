"""Registry of the algorithms: name → AlgoSpec (config class, constructor, presets).

The presets come from one data file, boltzrl/data/presets.toml, and are attached to each spec as it is registered.
"""

from __future__ import annotations

import dataclasses
import difflib
from importlib import resources

from boltzrl.agents.base import Agent, AlgoSpec, Preset, load_presets
from boltzrl.agents.dacer import SPEC as _DACER
from boltzrl.agents.dipo import SPEC as _DIPO
from boltzrl.agents.dppo import SPEC as _DPPO
from boltzrl.agents.dqs import SPEC as _DQS
from boltzrl.agents.ppo import SPEC as _PPO
from boltzrl.agents.qsm import SPEC as _QSM
from boltzrl.agents.qvpo import SPEC as _QVPO
from boltzrl.agents.sac import SPEC as _SAC
from boltzrl.agents.sdac import SPEC as _SDAC
from boltzrl.agents.td3 import DDPG_SPEC as _DDPG
from boltzrl.agents.td3 import TD3_SPEC as _TD3

PRESETS: dict[str, dict[str, Preset]] = load_presets(
    resources.files("boltzrl").joinpath("data", "presets.toml").read_text(encoding="utf-8"))
"""{algo: {name: Preset}} as read from the preset file."""

ALGOS: dict[str, AlgoSpec] = {}


def register_algo(spec: AlgoSpec) -> None:
    """Add an algorithm; a spec without presets of its own gets those the preset file lists under its name."""
    if not spec.presets and spec.name in PRESETS:
        spec = dataclasses.replace(spec, presets=PRESETS[spec.name])
    ALGOS[spec.name] = spec


def get_algo(name: str) -> AlgoSpec:
    if name not in ALGOS:
        close = difflib.get_close_matches(name, list(ALGOS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"available: {', '.join(sorted(ALGOS))}."
        raise ValueError(f"Unknown algorithm {name!r}; {hint}")
    return ALGOS[name]


for _spec in (_SAC, _TD3, _DDPG, _PPO, _SDAC, _DQS, _QSM, _DIPO, _DACER, _QVPO, _DPPO):
    register_algo(_spec)

__all__ = ["ALGOS", "PRESETS", "Agent", "AlgoSpec", "Preset", "get_algo", "register_algo"]
