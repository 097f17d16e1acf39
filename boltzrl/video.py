"""Videos of evaluation episodes (`boltzrl eval RUN --video`): frames from an env's "rgb_array" render, one MP4
per episode. Writing MP4s needs the optional extra `boltzrl[video]` (imageio with its ffmpeg binary)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

# MuJoCo picks its OpenGL backend when it first makes a context (dm_control when it is imported): EGL renders
# without a display, so it is the default unless the user chose one.
if sys.platform.startswith("linux"):
    os.environ.setdefault("MUJOCO_GL", "egl")

VIDEO_EPISODES = 3
"""Episodes recorded by `--video`: the first ones of the evaluation (long MuJoCo episodes render slowly on CPU)."""
DEFAULT_FPS = 30
EXTRA = "pip install 'boltzrl[video]'"


def require_writer():
    """The imageio module, or an ImportError that says which extra to install."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the MP4 encoder imageio uses)
    except ImportError:
        raise ImportError(f"writing videos needs imageio and imageio-ffmpeg, which are not installed: {EXTRA}."
                          ) from None
    return imageio


def check_can_render(env_id: str) -> None:
    """Refuse, in one sentence, an env that cannot give "rgb_array" frames."""
    from boltzrl.envs import make_env

    env = make_env(env_id, 0)
    try:
        modes = env.metadata.get("render_modes") or []
    finally:
        env.close()
    if "rgb_array" not in modes:
        raise ValueError(f"{env_id} cannot render frames (its render modes: {', '.join(modes) or 'none'}), so it "
                         f"has no video.")


class FrameRecorder(gym.Wrapper):
    """Keeps the frames of the first episode after `start()`: the one after reset and one after every step, so an
    episode of T steps gives T + 1 frames. Later episodes (a vector env's autoreset) are not rendered."""

    def __init__(self, env: gym.Env, env_id: str):
        super().__init__(env)
        self.env_id = env_id
        self.frames: list[np.ndarray] = []
        self.active = False

    def start(self) -> None:
        self.frames, self.active = [], True

    def reset(self, **kwargs):
        result = self.env.reset(**kwargs)
        if self.active:
            self.frames = [self._frame()]
        return result

    def step(self, action):
        result = self.env.step(action)
        if self.active:
            self.frames.append(self._frame())
            self.active = not (result[2] or result[3])
        return result

    def _frame(self) -> np.ndarray:
        try:
            frame = self.env.render()
        except gym.error.DependencyNotInstalled as exc:  # e.g. classic control's pygame
            first_line = str(exc).strip().splitlines()[0].rstrip(".")
            raise ValueError(f"{self.env_id} cannot render here ({first_line}).") from None
        return np.asarray(frame, dtype=np.uint8)


def recording_vec_env(env_id: str, num_envs: int, seed: int, record: int) -> gym.vector.SyncVectorEnv:
    """`make_vec_env(env_id, num_envs, seed)` whose first `record` sub-envs render and keep their frames."""
    from boltzrl.envs import make_env, make_vec_env

    def build(i, env_seed):
        if i >= record:
            return make_env(env_id, env_seed)
        return FrameRecorder(make_env(env_id, env_seed, render_mode="rgb_array"), env_id)

    return make_vec_env(env_id, num_envs, seed, env_fn=build)


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write (H, W, 3) uint8 frames as an H.264 MP4, atomically; returns the path."""
    imageio = require_writer()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.mp4")  # ffmpeg picks the container from the extension
    try:
        with warnings.catch_warnings():
            # imageio starts ffmpeg as a subprocess, which JAX warns about; the child execs ffmpeg at once.
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=16) as writer:
                for frame in frames:
                    writer.append_data(frame)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
