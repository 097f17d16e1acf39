"""Learning curves: evaluation return against env steps, one figure per task, one line per algorithm."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from boltzrl.results.load import load_paper

CURVE_REPS = 1_000  # bootstrap resamples per evaluation step (a band, not a reported number)


def curve(runs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, low, high) over the seeds evaluated at each step (95 % percentile bootstrap band)."""
    by_step: dict[int, list[float]] = {}
    for run in runs:
        for step, value in zip(run.steps.tolist(), run.returns.tolist()):
            by_step.setdefault(step, []).append(value)
    steps = np.array(sorted(by_step))
    rng = np.random.default_rng(0)
    mean, low, high = [], [], []
    for step in steps:
        values = np.array(by_step[step])
        means = values[rng.integers(0, len(values), (CURVE_REPS, len(values)))].mean(1)
        mean.append(values.mean())
        lo, hi = np.quantile(means, [0.025, 0.975])
        low.append(lo)
        high.append(hi)
    return steps, np.array(mean), np.array(low), np.array(high)


def short_labels(runs) -> tuple[dict[str, str], str]:
    """Legend labels without the variant settings every line shares, and those shared settings as one text."""
    parts = {r.label: [] if r.variant == "default" else r.variant.split(",") for r in runs}
    shared = set.intersection(*(set(p) for p in parts.values())) if parts else set()
    shared_text = ", ".join(p for p in next(iter(parts.values()), []) if p in shared)
    labels = {}
    for run in runs:
        own = [p for p in parts[run.label] if p not in shared]
        labels[run.label] = run.algo + (f" [{','.join(own)}]" if own else "")
    return labels, shared_text


def _file_name(task: str) -> str:
    return "curves_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in task) + ".png"


def task_figure(task: str, task_runs):
    """The learning-curve figure of one task's runs (each with at least one evaluation)."""
    from matplotlib.figure import Figure  # no pyplot: renders with Agg and leaves the user's backend alone

    paper = load_paper()["dqs"]["returns"]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    short, shared = short_labels(task_runs)
    any_paper = False
    for i, label in enumerate(sorted(short)):
        group = [r for r in task_runs if r.label == label]
        steps, mean, low, high = curve(group)
        color = f"C{i % 10}"
        text = f"{short[label]} ({len(group)} seeds)"
        if len(steps) == 1:  # a line through one point draws nothing: a marker with its interval as an error bar
            ax.errorbar(steps, mean, yerr=[mean - low, high - mean], color=color, marker="o", capsize=4,
                        label=text)
        else:
            ax.plot(steps, mean, color=color, label=text)
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        points = [(int(b), paper[b][task][group[0].algo]) for b in paper
                  if group[0].algo in paper[b].get(task, {})]
        if points:
            xs, ys = zip(*points)
            ax.scatter(xs, ys, marker="x", color=color, zorder=3)
            any_paper = True
    if any_paper:
        ax.scatter([], [], marker="x", color="gray", label="DQS paper")
    ax.set_title(task + (f"\n{textwrap.fill(shared, 70)}" if shared else ""), fontsize=10)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(runs, out: str | Path) -> dict[str, Path]:
    """Write curves_TASK.png into `out` for every task; returns {task: path}."""
    out = Path(out)
    written = {}
    for task in sorted({r.task for r in runs}):
        task_runs = [r for r in runs if r.task == task and len(r.steps)]
        if not task_runs:
            continue
        path = out / _file_name(task)
        task_figure(task, task_runs).savefig(path, dpi=110)
        written[task] = path
    return written
