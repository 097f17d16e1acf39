"""Environments: one factory for DeepMind Control, Gymnasium (MuJoCo, classic control) and our own tasks.

Every env it returns takes actions in [-1, 1]^d (float32) and gives flat float32 observations. The package's own
envs are also Gymnasium ids, "boltzrl/<id>", registered by `import boltzrl` (see `boltzrl.GYMNASIUM_IDS`).
"""

import os
import sys

# Headless machines have no X display for GLFW (MuJoCo's and dm_control's default), so offscreen rendering
# uses EGL unless the user chose a backend; both read the variable when they first make a GL context.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

from boltzrl.envs import maze  # noqa: E402
from boltzrl.envs.factory import (  # noqa: E402
    UnknownEnvError,
    list_env_ids,
    make_env,
    make_vec_env,
    register_env,
    registered_envs,
)
from boltzrl.envs.gmm_nav import GMM40Nav, gmm_log_prob, sample_gmm  # noqa: E402
from boltzrl.envs.snapshot import SnapshotError, load_vec_env_state, save_vec_env_state  # noqa: E402

register_env("gmm-nav", GMM40Nav, "DQS 2-D navigation on log p of a 40-mode Gaussian mixture, 100 steps")
maze.register()

__all__ = [
    "GMM40Nav",
    "SnapshotError",
    "UnknownEnvError",
    "gmm_log_prob",
    "list_env_ids",
    "load_vec_env_state",
    "make_env",
    "make_vec_env",
    "register_env",
    "registered_envs",
    "sample_gmm",
    "save_vec_env_state",
]
