"""Training: the run core, its collectors, evaluation, the replay buffer and the run folder.

The names below load on first use, so that light modules (the run folder, the sweep's bookkeeping) import
without JAX."""

import importlib

_EXPORTS = {"TrainConfig": "config", "config_from_dict": "config", "run_config_dict": "config",
            "train": "core", "Interrupted": "core", "Diverged": "core"}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'boltzrl.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"boltzrl.training.{_EXPORTS[name]}"), name)


__all__ = list(_EXPORTS)
