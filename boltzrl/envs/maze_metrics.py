"""Multimodality metrics for the multi-goal maze: which goals a policy reaches, and by which routes.

Each trajectory is an array of positions, shape (T, 2) (or raw (T, 4) observations: only x, y are used).
A goal counts as reached when the mass comes within `radius` of it at any step. A route is the side of the
centre 3×3 block through which the trajectory first leaves it: N, E, S or W. In this map goal (−3, 3) is
reachable through N, W and (a long way round) S, goal (3, −3) only through E.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from boltzrl.envs.maze_layout import CELL_SIZE, GOAL_RADIUS, GOAL_XY, START_XY, WALL_CELLS, cell_centre

ROUTES = ("N", "E", "S", "W")
CENTRE_HALF_WIDTH = 1.5 * CELL_SIZE


def _positions(trajectory: np.ndarray) -> np.ndarray:
    xy = np.asarray(trajectory, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2 or len(xy) == 0:
        raise ValueError(f"a trajectory must have shape (T, 2) or (T, 4) with T > 0, got {xy.shape}.")
    return xy[:, :2]


def _first_hits(trajectory: np.ndarray, goals: np.ndarray, radius: float) -> np.ndarray:
    """First step at which each goal is within radius, or T (never); shape (K,)."""
    xy = _positions(trajectory)
    within = np.linalg.norm(xy[:, None, :] - goals[None], axis=-1) <= radius  # (T, K)
    return np.where(within.any(axis=0), within.argmax(axis=0), len(xy))


def goals_reached(trajectory: np.ndarray, goals: np.ndarray = GOAL_XY, radius: float = GOAL_RADIUS) -> np.ndarray:
    """Boolean (K,): whether each goal was within radius at some step."""
    return _first_hits(trajectory, np.asarray(goals), radius) < len(trajectory)


def first_goal_reached(trajectory: np.ndarray, goals: np.ndarray = GOAL_XY, radius: float = GOAL_RADIUS) -> int:
    """Index of the goal reached first, or −1 if none was reached."""
    hits = _first_hits(trajectory, np.asarray(goals), radius)
    return int(hits.argmin()) if hits.min() < len(trajectory) else -1


def exit_route(trajectory: np.ndarray, centre: np.ndarray = START_XY, half_width: float = CENTRE_HALF_WIDTH) -> str:
    """Side ("N", "E", "S", "W") through which the trajectory first leaves the centre block; "" if it never does."""
    offset = _positions(trajectory) - centre
    outside = np.abs(offset).max(axis=1) > half_width
    if not outside.any():
        return ""
    dx, dy = offset[outside.argmax()]
    if abs(dx) > abs(dy):
        return "E" if dx > 0 else "W"
    return "N" if dy > 0 else "S"


def maze_metrics(
    trajectories: Sequence[np.ndarray],
    episode_goals: np.ndarray | None = None,
    goals: np.ndarray = GOAL_XY,
    radius: float = GOAL_RADIUS,
) -> dict[str, float]:
    """Flat dict of scalars for a CSV row.

    goal{k}_frac: episodes that reached goal k; any_goal_frac; both_goals_reached: 1 if every goal was
    reached in at least one episode (the multimodality claim); both_in_episode_frac; first_goal{k}_frac:
    episodes whose first goal was k; first_goal_entropy: entropy of the first-goal distribution over the
    episodes that reached one, divided by log K (1 = balanced, 0 = one goal only); route_{N,E,S,W}_frac and
    num_routes (routes taken by at least one episode); success_frac: episodes that came within radius of
    their own goal (`episode_goals`, shape (n, 2), e.g. `info["goal"]`), which is a positive return.
    """
    if len(trajectories) == 0:
        raise ValueError("maze_metrics needs at least one trajectory.")
    goals = np.asarray(goals, dtype=np.float64)
    num_goals = len(goals)
    reached = np.stack([goals_reached(t, goals, radius) for t in trajectories])  # (n, K)
    first = np.array([first_goal_reached(t, goals, radius) for t in trajectories])
    routes = [exit_route(t) for t in trajectories]

    metrics: dict[str, float] = {"n_episodes": float(len(trajectories))}
    for k in range(num_goals):
        metrics[f"goal{k}_frac"] = float(reached[:, k].mean())
    metrics["any_goal_frac"] = float(reached.any(axis=1).mean())
    metrics["both_goals_reached"] = float(reached.any(axis=0).all())
    metrics["both_in_episode_frac"] = float(reached.all(axis=1).mean())
    first_counts = np.array([(first == k).sum() for k in range(num_goals)], dtype=np.float64)
    for k in range(num_goals):
        metrics[f"first_goal{k}_frac"] = float(first_counts[k] / len(trajectories))
    p = first_counts[first_counts > 0] / max(first_counts.sum(), 1.0)
    metrics["first_goal_entropy"] = float(-(p * np.log(p)).sum() / np.log(num_goals)) if num_goals > 1 else 0.0
    for route in ROUTES:
        metrics[f"route_{route}_frac"] = float(np.mean([r == route for r in routes]))
    metrics["num_routes"] = float(len({r for r in routes if r}))
    if episode_goals is not None:
        episode_goals = np.asarray(episode_goals, dtype=np.float64).reshape(len(trajectories), 2)
        success = [goals_reached(t, g[None], radius)[0] for t, g in zip(trajectories, episode_goals)]
        metrics["success_frac"] = float(np.mean(success))
    return metrics


def plot_trajectories(
    trajectories: Sequence[np.ndarray],
    path: str | os.PathLike,
    goals: np.ndarray = GOAL_XY,
    radius: float = GOAL_RADIUS,
    title: str | None = None,
) -> str:
    """Draw walls, goals (radius circles) and trajectories coloured by the goal reached first; write a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, Rectangle

    goals = np.asarray(goals, dtype=np.float64)
    colours = [f"C{k}" for k in range(len(goals))]
    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, j in WALL_CELLS:
        x, y = cell_centre(i, j) - CELL_SIZE / 2
        ax.add_patch(Rectangle((x, y), CELL_SIZE, CELL_SIZE, color="0.35", lw=0))
    for trajectory in trajectories:
        xy = _positions(trajectory)
        first = first_goal_reached(xy, goals, radius)
        ax.plot(xy[:, 0], xy[:, 1], lw=0.8, alpha=0.6, color=colours[first] if first >= 0 else "0.6")
    for k, goal in enumerate(goals):
        ax.add_patch(Circle(goal, radius, fill=False, lw=2, color=colours[k]))
        ax.annotate(f"goal {k}", goal, ha="center", va="center", fontsize=8)
    ax.plot(*START_XY, marker="o", color="k", ms=5)
    extent = np.array([cell_centre(i, j) for i, j in WALL_CELLS])
    lo, hi = extent.min(axis=0) - CELL_SIZE / 2, extent.max(axis=0) + CELL_SIZE / 2
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    os.replace(tmp, path)  # never leave a half-written plot
    return path
