"""Geometry of the multi-goal maze: the 9×9 map, its cell ↔ (x, y) frame, start and goals.

Apart from the env so that the maze's metrics can share it without importing the env.
"""

from __future__ import annotations

import numpy as np

# '1' wall, '0' free, 'g' goal, 'r' start; row 0 is the top (largest y).
MAZE_LAYOUT = (
    "111111111",
    "1g0000101",
    "101100101",
    "100000101",
    "1000r0001",
    "101000001",
    "101100101",
    "1000011g1",
    "111111111",
)
CELL_SIZE = 1.0
GOAL_RADIUS = 0.45

ROWS, COLS = len(MAZE_LAYOUT), len(MAZE_LAYOUT[0])
_FREE = np.array([[c != "1" for c in line] for line in MAZE_LAYOUT])


def cell_centre(row: int, col: int) -> np.ndarray:
    """(x, y) of a cell's centre; the maze is centred on the origin, as in PointMaze."""
    x = (col + 0.5) * CELL_SIZE - COLS * CELL_SIZE / 2
    y = ROWS * CELL_SIZE / 2 - (row + 0.5) * CELL_SIZE
    return np.array([x, y])


def xy_to_cell(xy: np.ndarray) -> np.ndarray:
    """Integer (row, col) of the cell holding each point; xy has shape (..., 2)."""
    xy = np.asarray(xy, dtype=np.float64)
    row = np.floor((ROWS * CELL_SIZE / 2 - xy[..., 1]) / CELL_SIZE)
    col = np.floor((xy[..., 0] + COLS * CELL_SIZE / 2) / CELL_SIZE)
    return np.stack([row, col], axis=-1).astype(np.int64)


def is_free(xy: np.ndarray) -> np.ndarray:
    """Whether each point lies inside the maze in a non-wall cell."""
    cell = xy_to_cell(xy)
    row, col = cell[..., 0], cell[..., 1]
    inside = (row >= 0) & (row < ROWS) & (col >= 0) & (col < COLS)
    return inside & _FREE[np.clip(row, 0, ROWS - 1), np.clip(col, 0, COLS - 1)]


def _cells_marked(mark: str) -> list[tuple[int, int]]:
    return [(i, j) for i, line in enumerate(MAZE_LAYOUT) for j, c in enumerate(line) if c == mark]


WALL_CELLS = tuple(_cells_marked("1"))
START_XY = cell_centre(*_cells_marked("r")[0])  # (0, 0)
GOAL_XY = np.stack([cell_centre(*cell) for cell in _cells_marked("g")])  # [(-3, 3), (3, -3)]
