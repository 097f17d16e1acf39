"""Statistics of the report: 95 % percentile bootstrap of the mean over seeds (10,000 resamples, fixed seed) and,
across tasks, the interquartile mean (rliable's IQM) with a stratified bootstrap (seeds resampled within each task,
as rliable does).
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_REPS = 10_000
LEVEL = 0.95


def bootstrap_ci(values, reps: int = BOOTSTRAP_REPS, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (a single value gives a zero-width interval)."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (reps, len(values)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def iqm(scores) -> float:
    """Interquartile mean of all scores (rliable's aggregate_iqm: the mean of the middle 50 %)."""
    try:
        from rliable.metrics import aggregate_iqm
    except ImportError:
        from scipy.stats import trim_mean

        return float(trim_mean(np.asarray(scores).ravel(), 0.25))
    return float(aggregate_iqm(np.asarray(scores)))


def stratified_bootstrap(scores: np.ndarray, reps: int = BOOTSTRAP_REPS, level: float = LEVEL,
                         seed: int = 0) -> dict[str, tuple[float, float]]:
    """Intervals of the IQM and the mean of a (seeds, tasks) matrix, seeds resampled within each task."""
    from scipy.stats import trim_mean

    n, tasks = scores.shape
    rng = np.random.default_rng(seed)
    resampled = scores[rng.integers(0, n, (reps, n, tasks)), np.arange(tasks)].reshape(reps, -1)
    q = [(1 - level) / 2, (1 + level) / 2]
    out = {}
    for name, stat in (("iqm", trim_mean(resampled, 0.25, axis=1)), ("mean", resampled.mean(1))):
        lo, hi = np.quantile(stat, q)
        out[name] = (float(lo), float(hi))
    return out
