"""Boltzmann sampling of toy energies with the diffusion pieces of the agents, with no RL: a check that a
diffusion model learns to sample p(x) ∝ exp(−E(x)) from the energy alone."""

from boltzrl.sampling.energies import (
    ENERGIES,
    Energy,
    custom_energy,
    get_energy,
    grid_sample,
    list_energies,
    register_energy,
)
from boltzrl.sampling.methods import METHOD_DESCRIPTIONS, SamplerConfig, list_methods
from boltzrl.sampling.runner import MethodResult, run_method

__all__ = [
    "ENERGIES",
    "METHOD_DESCRIPTIONS",
    "Energy",
    "MethodResult",
    "SamplerConfig",
    "custom_energy",
    "get_energy",
    "grid_sample",
    "list_energies",
    "list_methods",
    "register_energy",
    "run_method",
]
