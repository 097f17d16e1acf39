"""Multi-goal maze (DQS): a MuJoCo point mass in a 9×9 maze with two unobserved goals.

The physics are those of Gymnasium-Robotics PointMaze (same MJCF: point mass, damping, gear 100, 0.01 s
step, velocity clipped to ±5 before each step; same cell → (x, y) frame), rebuilt here from an XML string
rather than subclassed, because PointMaze

- lives in an optional package, and this module must import without it (the env registry imports it);
- returns dict observations in float64 that include the goal, which this task must hide;
- writes a temporary XML file per instance that it never deletes.

The result matches PointMaze step for step (tests check this when gymnasium-robotics is installed).

Task: start at the centre cell, one of the two goal cells drawn uniformly at each reset (both with ±0.25
uniform noise per coordinate). The agent sees (x, y, vx, vy) only, so an optimal policy must commit to
one goal without knowing which is active: the return-maximising policy is bimodal. The reward is 1 at
every step the mass is within 0.45 of the goal. The task is continuing: reaching the goal neither ends the
episode nor moves the goal (PointMaze's `continuing_task=True, reset_target=False`), so the return counts
the steps spent at the goal. Episodes are truncated after 600 steps; they never terminate.
"""

from __future__ import annotations

import os

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from boltzrl.envs.maze_layout import CELL_SIZE, COLS, GOAL_RADIUS, GOAL_XY, ROWS, START_XY, WALL_CELLS, cell_centre
from boltzrl.envs.maze_metrics import maze_metrics, plot_trajectories

WALL_HEIGHT = 0.4
POSITION_NOISE = 0.25
EPISODE_STEPS = 600
MAX_SPEED = 5.0


def _maze_xml() -> str:
    """PointMaze's point.xml with the walls and a goal marker added the way PointMaze adds them."""
    half_height = WALL_HEIGHT / 2 * CELL_SIZE
    walls = "\n".join(
        f'<geom name="block_{i}_{j}" type="box" pos="{x} {y} {half_height}" '
        f'size="{CELL_SIZE / 2} {CELL_SIZE / 2} {half_height}" '
        f'contype="1" conaffinity="1" rgba="0.7 0.5 0.3 1"/>'
        for i, j in WALL_CELLS
        for x, y in [cell_centre(i, j)]
    )
    return f"""
<mujoco>
  <compiler inertiafromgeom="true" angle="radian"/>
  <option timestep="0.01" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="1" limited="false"/>
    <geom friction=".5 .1 .1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/>
  </default>
  <asset>
    <texture type="2d" name="groundplane" builtin="checker" rgb1="0.2 0.3 0.4" rgb2="0.1 0.2 0.3"
             width="100" height="100"/>
    <material name="groundplane" texture="groundplane" texrepeat="20 20"/>
  </asset>
  <visual><headlight ambient=".4 .4 .4" diffuse=".8 .8 .8" specular="0.1 0.1 0.1"/></visual>
  <worldbody>
    <geom name="ground" size="40 40 0.25" pos="0 0 -0.1" type="plane" contype="1" conaffinity="0"
          material="groundplane"/>
    <body name="particle" pos="0 0 0">
      <geom name="particle_geom" type="sphere" size="0.1" rgba="0 0 1 0" contype="1"/>
      <site name="particle_site" pos="0 0 0" size="0.2" rgba="0.3 0.6 0.3 1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
    {walls}
    <site name="target" pos="0 0 {half_height}" size="{0.2 * CELL_SIZE}" rgba="1 0 0 0.7" type="sphere"/>
  </worldbody>
  <actuator>
    <motor name="motor_x" joint="ball_x" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
    <motor name="motor_y" joint="ball_y" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
  </actuator>
</mujoco>"""


class MultiGoalMazeEnv(gym.Env):
    """Point mass in the DQS two-goal maze; observation (x, y, vx, vy), the goal is in `info` only.

    `reset(options={"goal_index": k})` forces goal k (0: (−3, 3), 1: (3, −3)) for balanced evaluation.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 100}

    def __init__(
        self,
        render_mode: str | None = None,
        max_episode_steps: int = EPISODE_STEPS,
        width: int = 480,
        height: int = 480,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.model = mujoco.MjModel.from_xml_string(_maze_xml())
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, width)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, height)
        self.data = mujoco.MjData(self.model)
        self._target_site = self.model.site("target").id
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._size = (height, width)
        self._renderer: mujoco.Renderer | None = None
        self.goal = GOAL_XY[0].copy()
        self.goal_index = 0
        self._steps = 0

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep)

    def _noisy(self, xy: np.ndarray) -> np.ndarray:
        return xy + self.np_random.uniform(-POSITION_NOISE, POSITION_NOISE, size=2) * CELL_SIZE

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        reached = bool(np.linalg.norm(self.data.qpos - self.goal) <= GOAL_RADIUS)
        return {"goal": self.goal.copy(), "goal_index": self.goal_index, "success": reached}

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Place the mass at position qpos with velocity qvel (both (2,))."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        forced = (options or {}).get("goal_index")
        if forced is not None and forced not in range(len(GOAL_XY)):
            raise ValueError(f"goal_index must be one of {list(range(len(GOAL_XY)))}, got {forced!r}.")
        self.goal_index = int(self.np_random.integers(len(GOAL_XY))) if forced is None else int(forced)
        self.goal = self._noisy(GOAL_XY[self.goal_index])
        self.model.site_pos[self._target_site, :2] = self.goal
        mujoco.mj_resetData(self.model, self.data)
        self.set_state(self._noisy(START_XY), np.zeros(2))
        self._steps = 0
        return self._obs(), self._info()

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        # Same call sequence as PointMaze (clip, forward, step) so that trajectories match it exactly.
        self.set_state(self.data.qpos.copy(), np.clip(self.data.qvel, -MAX_SPEED, MAX_SPEED))
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data)
        self._steps += 1
        info = self._info()
        reward = 1.0 if info["success"] else 0.0
        truncated = self._steps >= self.max_episode_steps
        return self._obs(), reward, False, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, *self._size)
            self._camera = mujoco.MjvCamera()
            self._camera.lookat[:] = (0.0, 0.0, 0.0)
            self._camera.distance = 1.4 * max(ROWS, COLS) * CELL_SIZE
            self._camera.elevation = -90.0  # top-down
            self._camera.azimuth = 90.0
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render()

    def evaluation_metrics(self, trajectories, reset_infos, out_dir=None, tag="eval") -> dict[str, float]:
        """Multimodality metrics of evaluation episodes (goal fractions, routes) and, with out_dir, a PNG of
        the trajectories in out_dir/figures/{tag}.png. Called by the training loop's evaluator."""
        goals = np.array([info["goal"] for info in reset_infos]) if reset_infos else None
        metrics = maze_metrics(trajectories, episode_goals=goals)
        if out_dir is not None:
            figures = os.path.join(out_dir, "figures")
            os.makedirs(figures, exist_ok=True)
            plot_trajectories(trajectories, os.path.join(figures, f"{tag}.png"), title=tag)
        return metrics

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def register() -> None:
    """Add the maze to the env registry as "multigoal-maze"."""
    from boltzrl.envs.factory import register_env

    register_env(
        "multigoal-maze",
        MultiGoalMazeEnv,
        "DQS two-goal point-mass maze: 9x9 PointMaze map, unobserved goal, sparse reward, 600 steps",
    )
