"""Run folders as records: config, evaluations and summary of each run, what a sweep asked for and what is still
running; also the papers' numbers they are compared with.

Budget rule: a run counts at budget B once it has been evaluated at an env step ≥ B (a run still short of B, or
stopped before it, does not count yet); its value is the evaluation return of its eval.csv row at the largest
env_step ≤ B. With evaluations every 10k steps and B = 100k that is the row at exactly 100k; the "step" column
shows the steps actually used when they differ from B.
"""

from __future__ import annotations

import csv
import fcntl
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PAPER_FILE = Path(__file__).resolve().parent.parent / "data" / "paper_results.json"
_DMC_ALIAS = re.compile(r"^dm_control/(?P<name>.+)-v\d+$")


@dataclass
class RunRecord:
    path: Path
    algo: str
    env: str
    task: str
    seed: int
    variant: str
    target_steps: int
    complete: bool
    steps: np.ndarray
    returns: np.ndarray
    summary: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.algo if self.variant == "default" else f"{self.algo} [{self.variant}]"

    @property
    def last_eval_step(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else 0


def task_name(env: str) -> str:
    """The task an env id names: "dm_control/cheetah-run-v0" -> "cheetah-run"; other ids unchanged."""
    match = _DMC_ALIAS.match(env)
    return match["name"] if match else env


@functools.cache
def _dmc_tasks() -> frozenset[str]:
    try:
        from boltzrl.envs.factory import dmc_task_ids

        return frozenset(dmc_task_ids())
    except ImportError:  # no dm_control: fall back to the paper's tasks
        return frozenset(load_paper()["dqs"]["tasks"])


def is_dmc(task: str) -> bool:
    return task in _dmc_tasks()


@functools.cache
def load_paper() -> dict:
    return json.loads(PAPER_FILE.read_text())


def paper_value(algo: str, task: str, budget: int) -> float | None:
    return load_paper()["dqs"]["returns"].get(str(budget), {}).get(task, {}).get(algo)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _read_eval(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, returns) of eval.csv, sorted by step; a torn last line (run being written) is dropped."""
    rows = []
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    rows.append((int(float(row["env_step"])), float(row["eval_return"])))
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError:
        pass
    rows.sort()
    return np.array([s for s, _ in rows], np.int64), np.array([r for _, r in rows], np.float64)


def _variant(root: Path, folder: Path, algo: str, env: str, seed: int, preset: str | None) -> str:
    """The sweep's variant folder for runs in its layout ALGO/ENV/VARIANT/seedS; else the preset. No preset (runs
    written before presets were recorded) and the preset named "default" are the algorithm's defaults alike."""
    parts = folder.relative_to(root).parts if folder != root else ()
    if len(parts) >= 4 and parts[-1] == f"seed{seed}" and parts[-4] == algo and parts[-3] == env.replace("/", "_"):
        return parts[-2]
    return f"preset={preset}" if preset and preset != "default" else "default"


def load_runs(root: str | Path) -> list[RunRecord]:
    """Every run folder (a folder with config.json) under `root`, which may itself be one."""
    root = Path(root)
    runs = []
    for config_path in sorted(root.rglob("config.json")):
        folder = config_path.parent
        config = _read_json(config_path)
        if not config or "algo" not in config or "train" not in config:
            continue
        train = config["train"]
        summary = _read_json(folder / "summary.json") or {}
        steps, returns = _read_eval(folder / "eval.csv")
        runs.append(RunRecord(
            path=folder, algo=config["algo"], env=train["env"], task=task_name(train["env"]), seed=int(train["seed"]),
            variant=_variant(root, folder, config["algo"], train["env"], int(train["seed"]), config.get("preset")),
            target_steps=int(train["steps"]), complete=bool(summary.get("complete")), steps=steps, returns=returns,
            summary=summary))
    return runs


def drop_duplicate_seeds(runs: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """One run per (task, algorithm, variant, seed), so that no seed counts twice; also a note per run left out.

    Two folders hold the same seed when a run was trained again in a new folder (`boltzrl train` without --resume)
    or when one env is spelt two ways (cheetah-run and dm_control/cheetah-run-v0). The one kept is the complete
    one, else the one evaluated furthest; on a tie the first in path order.
    """
    best: dict[tuple, RunRecord] = {}
    for run in runs:
        key = (run.task, run.algo, run.variant, run.seed)
        kept = best.get(key)
        if kept is None or (run.complete, run.last_eval_step) > (kept.complete, kept.last_eval_step):
            best[key] = run
    kept_ids = {id(r) for r in best.values()}
    notes = [f"duplicate: {run.label} {run.env} seed {run.seed} in {run.path} is not counted; the same seed in "
             f"{best[(run.task, run.algo, run.variant, run.seed)].path} is"
             for run in runs if id(run) not in kept_ids]
    return [r for r in runs if id(r) in kept_ids], notes


def value_at_budget(run: RunRecord, budget: int) -> tuple[int, float] | None:
    """(step, return) of the row at the largest env_step ≤ budget, once the run has been evaluated at ≥ budget."""
    if run.last_eval_step < budget:
        return None
    i = int(np.searchsorted(run.steps, budget, side="right")) - 1
    return (int(run.steps[i]), float(run.returns[i])) if i >= 0 else None


# missing and partial runs -------------------------------------------------------------------------------------
def _is_running(folder: Path) -> bool:
    """True while a sweep's training process holds the run folder's lock."""
    lock = folder / ".sweep.lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def manifest_runs(root: Path) -> list[dict]:
    """The runs every sweep.json under `root` asked for, with absolute paths and their task."""
    entries = []
    for manifest in sorted(Path(root).rglob("sweep.json")):
        for entry in (_read_json(manifest) or {}).get("runs", []):
            entries.append(dict(entry, path=manifest.parent / entry["path"], task=task_name(entry["env"])))
    return entries


def status_notes(root: Path, runs: list[RunRecord], budgets: list[int]) -> tuple[list[str], dict]:
    """Lines on what is missing or unfinished; also the number of runs known per (task, algo, variant)."""
    notes, expected = [], {}
    found = {r.path.resolve() for r in runs}
    for entry in manifest_runs(root):
        key = (entry["task"], entry["algo"], entry["variant"])
        expected[key] = expected.get(key, 0) + 1
        if Path(entry["path"]).resolve() not in found:
            notes.append(f"not started: {entry['algo']} {entry['env']} {entry['variant']} seed {entry['seed']} "
                         f"({entry['path']})")
    for run in runs:
        if run.complete:
            continue
        state = "running" if _is_running(run.path) else "stopped"
        short = [b for b in budgets if run.last_eval_step < b]
        tail = f"; not yet counted at {', '.join(f'{b:,}' for b in short)} steps" if short else ""
        trained = (_read_json(run.path / "checkpoint" / "loop.json") or {}).get("env_steps", 0)
        evaluated = f"evaluated up to step {run.last_eval_step:,}" if run.last_eval_step else "not evaluated yet"
        notes.append(f"{state}: {run.label} {run.env} seed {run.seed}, at step {max(trained, run.last_eval_step):,} "
                     f"of {run.target_steps:,}, {evaluated}{tail} ({run.path})")
    return notes, expected
