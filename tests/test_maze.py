"""Multi-goal maze (SPEC §6.3) and its multimodality metrics."""

import warnings
from collections import deque

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from boltzrl.envs.maze import EPISODE_STEPS, MultiGoalMazeEnv
from boltzrl.envs.maze_layout import (CELL_SIZE, GOAL_RADIUS, GOAL_XY, MAZE_LAYOUT, START_XY, cell_centre, is_free,
                                     xy_to_cell)
from boltzrl.envs.maze_metrics import exit_route, first_goal_reached, maze_metrics, plot_trajectories


@pytest.fixture
def env():
    env = MultiGoalMazeEnv()
    yield env
    env.close()


def path_through(*waypoints, step=0.05):
    """Dense straight-line path through the waypoints, shape (T, 2)."""
    points = [np.asarray(waypoints[0], dtype=float)[None]]
    for a, b in zip(waypoints[:-1], waypoints[1:]):
        a, b = np.asarray(a, float), np.asarray(b, float)
        n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
        points.append(a + np.linspace(0, 1, n + 1)[1:, None] * (b - a))
    return np.concatenate(points)


# ---------------------------------------------------------------- environment


def test_layout_start_and_goals_match_the_spec():
    assert len(MAZE_LAYOUT) == 9 and all(len(row) == 9 for row in MAZE_LAYOUT)
    np.testing.assert_array_equal(START_XY, [0.0, 0.0])
    np.testing.assert_array_equal(GOAL_XY, [[-3.0, 3.0], [3.0, -3.0]])
    assert CELL_SIZE == 1.0
    for i in range(9):
        for j in range(9):
            np.testing.assert_array_equal(xy_to_cell(cell_centre(i, j)), [i, j])
            assert bool(is_free(cell_centre(i, j))) == (MAZE_LAYOUT[i][j] != "1")


def test_reset_positions_spaces_and_both_goals(env):
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.low, [-1, -1])
    np.testing.assert_array_equal(env.action_space.high, [1, 1])
    starts, goals, indices = [], [], []
    for seed in range(400):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (4,) and obs.dtype == np.float32
        np.testing.assert_array_equal(obs[2:], [0.0, 0.0])
        starts.append(obs[:2])
        goals.append(info["goal"])
        indices.append(info["goal_index"])
    starts, goals, indices = np.array(starts), np.array(goals), np.array(indices)
    assert np.abs(starts - START_XY).max() <= 0.25
    np.testing.assert_allclose(starts.mean(axis=0), START_XY, atol=0.03)  # 4 × std of the mean
    assert 0.4 < indices.mean() < 0.6
    for k in (0, 1):
        goal_k = goals[indices == k]
        assert np.abs(goal_k - GOAL_XY[k]).max() <= 0.25
        np.testing.assert_allclose(goal_k.mean(axis=0), GOAL_XY[k], atol=0.04)
        assert goal_k.std(axis=0).min() > 0.1  # noise present: uniform ±0.25 has std 0.144


def test_forced_goal_index(env):
    for k in (0, 1):
        _, info = env.reset(seed=3, options={"goal_index": k})
        assert info["goal_index"] == k and np.abs(info["goal"] - GOAL_XY[k]).max() <= 0.25
    with pytest.raises(ValueError, match="goal_index"):
        env.reset(options={"goal_index": 2})


def test_observation_does_not_depend_on_the_goal(env):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(100, 2)).astype(np.float32)
    runs = []
    for k in (0, 1):
        env.reset(seed=0, options={"goal_index": k})
        env.set_state(np.array([0.1, -0.2]), np.zeros(2))
        observations = [env.step(a)[0] for a in actions]
        state = np.concatenate([env.data.qpos, env.data.qvel]).astype(np.float32)
        np.testing.assert_array_equal(observations[-1], state)
        runs.append(np.array(observations))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize(
    "push, axis, stop",
    [((0, 1), 1, 3.4), ((0, -1), 1, -3.4), ((1, 0), 0, 3.4), ((-1, 0), 0, -3.4)],
)
def test_walls_stop_the_mass(env, push, axis, stop):
    # From the centre each straight corridor ends at the outer wall 3.5 away; the ball's radius is 0.1,
    # and MuJoCo's soft contact lets it sink about 0.035 into a wall on impact at top speed.
    env.reset(seed=1)
    positions = np.array([env.step(np.array(push, np.float32))[0][:2] for _ in range(600)])
    assert is_free(positions).all()
    assert abs(positions[-1, axis] - stop) < 0.01
    assert np.abs(positions[:, axis]).max() < 3.5 - 0.05


def test_diagonal_pushes_stay_in_free_cells(env):
    for push in [(1, 1), (-1, 1), (1, -1), (-1, -1), (0.3, 1), (1, -0.3)]:
        env.reset(seed=2)
        positions = np.array([env.step(np.array(push, np.float32))[0][:2] for _ in range(600)])
        assert is_free(positions).all()
        # Contact keeps the centre about 0.1 (the ball's radius) from any wall, less a 0.035 impact sink.
        ring = positions[:, None, :] + 0.05 * np.array([[np.cos(a), np.sin(a)] for a in np.arange(8) * np.pi / 4])
        assert is_free(ring).all()


@pytest.mark.parametrize("goal_index, direction", [(0, (1.0, 0.0)), (1, (0.0, 1.0))])
def test_reward_radius(env, goal_index, direction):
    for distance, expected in [(0.4, 1.0), (0.5, 0.0)]:
        _, info = env.reset(seed=5, options={"goal_index": goal_index})
        env.set_state(info["goal"] + distance * np.array(direction), np.zeros(2))
        _, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        assert reward == expected and info["success"] == bool(expected)
        assert not terminated and not truncated
        np.testing.assert_allclose(np.linalg.norm(env.data.qpos - info["goal"]), distance, atol=1e-9)


def test_continuing_task_keeps_the_goal_and_truncates_at_600(env):
    _, info = env.reset(seed=7)
    goal = info["goal"].copy()
    env.set_state(goal, np.zeros(2))
    total = 0.0
    for t in range(1, EPISODE_STEPS + 1):
        _, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        total += reward
        assert not terminated
        assert truncated == (t == EPISODE_STEPS)
        np.testing.assert_array_equal(info["goal"], goal)
    assert total == EPISODE_STEPS  # sitting on the goal pays every step


def test_env_checker(env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded observation box and no registry spec are intended
        check_env(env)


def test_matches_gymnasium_robotics_pointmaze(env):
    point_maze = pytest.importorskip("gymnasium_robotics.envs.maze.point_maze")
    layout = [[1 if c == "1" else (c if c in "gr" else 0) for c in row] for row in MAZE_LAYOUT]
    reference = point_maze.PointMazeEnv(maze_map=layout, continuing_task=True, reset_target=False)
    ref_obs, _ = reference.reset(seed=0)
    env.reset(seed=0)
    env.set_state(reference.data.qpos.copy(), reference.data.qvel.copy())
    np.testing.assert_array_equal(reference.maze.unique_goal_locations, GOAL_XY)
    rng = np.random.default_rng(0)
    for t in range(400):  # random pushes biased to the north-east, then into the goal corner walls
        action = np.clip(rng.normal(0.5, 1.0, 2), -1, 1) if t < 200 else np.array([-1.0, 1.0])
        obs = env.step(action.astype(np.float32))[0]
        ref_obs = reference.step(action.astype(np.float32))[0]["observation"]
        np.testing.assert_array_equal(obs, ref_obs.astype(np.float32))
    reference.close()


def test_rgb_render():
    env = MultiGoalMazeEnv(render_mode="rgb_array", width=96, height=80)
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as error:  # no OpenGL context on this machine (set MUJOCO_GL=egl or osmesa)
        pytest.skip(f"MuJoCo rendering unavailable: {error}")
    finally:
        env.close()
    assert frame.shape == (80, 96, 3) and frame.dtype == np.uint8 and frame.std() > 0


# ---------------------------------------------------------------- metrics

NORTH_TO_GOAL0 = path_through((0, 0), (0, 3), (-3, 3))
EAST_TO_GOAL1 = path_through((0, 0), (3, 0), (3, -3))
WEST_TO_GOAL0 = path_through((0, 0.5), (-3, 0.5), (-3, 3))
STAYS_IN_CENTRE = path_through((0, 0), (1.2, -1.2), (-1.4, 1.4))
BOTH_GOALS = path_through((0, 0), (0, 3), (-3, 3), (0, 3), (0, 0), (3, 0), (3, -3))
TRAJECTORIES = [NORTH_TO_GOAL0, EAST_TO_GOAL1, WEST_TO_GOAL0, STAYS_IN_CENTRE, BOTH_GOALS]


def test_route_and_first_goal_per_trajectory():
    assert [exit_route(t) for t in TRAJECTORIES] == ["N", "E", "W", "", "N"]
    assert exit_route(path_through((0, 0), (0, -3), (-3, -3))) == "S"
    assert [first_goal_reached(t) for t in TRAJECTORIES] == [0, 1, 0, -1, 0]
    returning = path_through((0, 0), (3, 0), (3, -3), (3, 0), (0, 0), (0, 3), (-3, 3))
    assert first_goal_reached(returning) == 1


def test_maze_metrics_on_known_trajectories():
    episode_goals = [GOAL_XY[0], GOAL_XY[1], GOAL_XY[1], GOAL_XY[0], GOAL_XY[1]]
    m = maze_metrics(TRAJECTORIES, episode_goals=episode_goals)
    p = np.array([0.75, 0.25])
    expected = {
        "n_episodes": 5,
        "goal0_frac": 3 / 5,
        "goal1_frac": 2 / 5,
        "any_goal_frac": 4 / 5,
        "both_goals_reached": 1.0,
        "both_in_episode_frac": 1 / 5,
        "first_goal0_frac": 3 / 5,
        "first_goal1_frac": 1 / 5,
        "first_goal_entropy": -(p * np.log(p)).sum() / np.log(2),
        "route_N_frac": 2 / 5,
        "route_E_frac": 1 / 5,
        "route_S_frac": 0.0,
        "route_W_frac": 1 / 5,
        "num_routes": 3,
        "success_frac": 3 / 5,
    }
    assert set(m) == set(expected)
    for key, value in expected.items():
        assert m[key] == pytest.approx(value), key
    assert all(isinstance(v, float) for v in m.values())


def test_maze_metrics_single_mode_and_radius():
    m = maze_metrics([NORTH_TO_GOAL0, WEST_TO_GOAL0])
    assert m["both_goals_reached"] == 0.0 and m["first_goal_entropy"] == 0.0 and m["goal1_frac"] == 0.0
    inside = path_through((0, 0), (3, 0), (3, -3 + GOAL_RADIUS - 0.01))
    outside = path_through((0, 0), (3, 0), (3, -3 + GOAL_RADIUS + 0.01))
    assert maze_metrics([inside])["goal1_frac"] == 1.0
    assert maze_metrics([outside])["goal1_frac"] == 0.0
    observations = np.concatenate([EAST_TO_GOAL1, np.zeros_like(EAST_TO_GOAL1)], axis=1)  # (T, 4)
    assert maze_metrics([observations])["goal1_frac"] == 1.0
    with pytest.raises(ValueError):
        maze_metrics([])


def test_metrics_on_env_rollouts(env):
    # A scripted rollout in the real env: push north, then steer to goal 0 along the top corridor.
    obs, info = env.reset(seed=0, options={"goal_index": 0})
    positions = [obs[:2]]
    for t in range(400):
        action = (0.0, 1.0) if t < 150 else np.clip(2.0 * (info["goal"] - obs[:2]) - 0.5 * obs[2:], -1, 1)
        obs, *_ = env.step(np.array(action, np.float32))
        positions.append(obs[:2])
    m = maze_metrics([np.array(positions)], episode_goals=[info["goal"]])
    assert m["goal0_frac"] == 1.0 and m["route_N_frac"] == 1.0 and m["success_frac"] == 1.0


def test_exit_sides_lead_to_the_documented_goals():
    # Breadth-first search outside the centre 3×3 block from each side's exit cells.
    free = {(i, j) for i, row in enumerate(MAZE_LAYOUT) for j, c in enumerate(row) if c != "1"}
    centre = {(i, j) for i in range(3, 6) for j in range(3, 6)}
    goals = {tuple(xy_to_cell(g)): k for k, g in enumerate(GOAL_XY)}
    sides = {"N": (-1, 0), "S": (1, 0), "W": (0, -1), "E": (0, 1)}
    reachable = {}
    for side, (di, dj) in sides.items():
        frontier = deque({(i + di, j + dj) for i, j in centre} & free - centre)
        seen = set(frontier)
        while frontier:
            i, j = frontier.popleft()
            for ni, nj in [(i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)]:
                if (ni, nj) in free - centre - seen:
                    seen.add((ni, nj))
                    frontier.append((ni, nj))
        reachable[side] = {goals[c] for c in seen if c in goals}
    assert reachable == {"N": {0}, "W": {0}, "S": {0}, "E": {1}}


def test_plot_trajectories_writes_png(tmp_path):
    path = tmp_path / "maze.png"
    assert plot_trajectories(TRAJECTORIES, path, title="hand-made") == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["maze.png"]
