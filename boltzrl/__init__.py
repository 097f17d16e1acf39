"""boltzrl: diffusion policies that sample Boltzmann policies, in JAX.

`boltzrl.load(run)` gives a trained run's policy; importing the package registers its own environments with
Gymnasium, so `gym.make("boltzrl/gmm-nav")` works as for any Gymnasium id.
"""

import gymnasium as _gym

__version__ = "0.1.0"

GYMNASIUM_IDS = {
    "boltzrl/gmm-nav": "boltzrl.envs.gmm_nav:GMM40Nav",
    "boltzrl/multigoal-maze": "boltzrl.envs.maze:MultiGoalMazeEnv",
}
"""Gymnasium id → entry point of each environment of the package (its `boltzrl.envs` id without the prefix).
Entry points are strings, so nothing but Gymnasium is imported until an environment is made; the envs end their
own episodes, so no TimeLimit is added."""

for _env_id, _entry_point in GYMNASIUM_IDS.items():
    if _env_id not in _gym.registry:  # a reload of the package registers nothing twice
        _gym.register(_env_id, entry_point=_entry_point)


def __getattr__(name):
    # The policy API needs JAX, which the light modules (run folders, sweep bookkeeping) must import without.
    if name in ("load", "Policy"):
        from boltzrl import policy

        return getattr(policy, name)
    raise AttributeError(f"module 'boltzrl' has no attribute {name!r}")


__all__ = ["GYMNASIUM_IDS", "Policy", "__version__", "load"]
