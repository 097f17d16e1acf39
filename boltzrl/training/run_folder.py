"""The run folder: one directory per run, in a documented format that users and other tools can rely on.

    config.json        resolved configuration (algo, preset, agent, train, versions)
    eval.csv           env_step, eval_return, eval_return_std, eval_length, wall_time_s, [env-specific metrics]
    train.csv          env_step, update_step, steps_per_s, episode_return, [agent losses, α, ...]
    summary.json       final_eval_return, best_eval_return, env_steps, wall_time_s, env_steps_per_s, complete, ...
    tb/                TensorBoard event files
    checkpoint/        latest checkpoint (agent state, replay buffer if any, env state, loop counters and RNG)

Every JSON file is written atomically (write, then rename), so an interrupted run never leaves a torn file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoint"


def atomic_write(path: Path, data: bytes | str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class CsvLog:
    """Append-only CSV whose columns are fixed by its first row; rows past a resume point can be dropped."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="") as f:
                self.columns = next(csv.reader(f), None)

    def append(self, row: dict[str, Any]) -> None:
        if self.columns is not None and not set(row) <= set(self.columns):
            # A metric appeared later (e.g. losses once learning starts): rewrite with the wider header.
            self._rewrite(self.rows(), self.columns + [k for k in row if k not in self.columns])
        new_file = self.columns is None
        if new_file:
            self.columns = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow({k: _csv_value(v) for k, v in row.items()})

    def _rewrite(self, rows: list[dict], columns: list[str]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)
        self.columns = columns

    def truncate_after(self, env_step: int) -> None:
        """Keep only the rows logged at or before `env_step` (used when resuming from a checkpoint)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [r for r in rows if int(float(r["env_step"])) <= env_step]
        if len(kept) < len(rows):
            self._rewrite(kept, self.columns)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))


def _csv_value(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return v


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.summary_path = self.path / "summary.json"
        self.eval_log = CsvLog(self.path / "eval.csv")
        self.train_log = CsvLog(self.path / "train.csv")
        self.checkpoint_dir = self.path / CHECKPOINT

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.eval_log = CsvLog(self.path / "eval.csv")
        self.train_log = CsvLog(self.path / "train.csv")

    def has_run(self) -> bool:
        return self.config_path.exists()

    def has_checkpoint(self) -> bool:
        if not (self.checkpoint_dir / "loop.json").exists():
            old = self.path / (CHECKPOINT + ".old")
            if (old / "loop.json").exists():  # killed between the two renames of save_checkpoint
                shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
                os.replace(old, self.checkpoint_dir)
        return (self.checkpoint_dir / "loop.json").exists()

    def is_complete(self) -> bool:
        return self.summary_path.exists() and bool(read_json(self.summary_path).get("complete"))

    # checkpoints --------------------------------------------------------------------------------------------
    def save_checkpoint(self, agent_bytes: bytes, replay_bytes: bytes | None, env_state: bytes, loop: dict) -> None:
        """Write a complete checkpoint next to the old one, then swap it in, so a kill at any moment leaves one
        intact checkpoint behind. replay_bytes is None for a collector that keeps no memory between iterations."""
        tmp = self.path / (CHECKPOINT + ".tmp")
        old = self.path / (CHECKPOINT + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "agent.msgpack").write_bytes(agent_bytes)
        if replay_bytes is not None:
            (tmp / "replay.npz").write_bytes(replay_bytes)
        (tmp / "envs.pkl").write_bytes(env_state)
        write_json(tmp / "loop.json", loop)  # written last: its presence marks a complete checkpoint
        shutil.rmtree(old, ignore_errors=True)
        if self.checkpoint_dir.exists():
            os.replace(self.checkpoint_dir, old)
        os.replace(tmp, self.checkpoint_dir)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self) -> tuple[bytes, bytes | None, bytes, dict]:
        if not self.has_checkpoint():
            raise FileNotFoundError(f"no checkpoint in {self.path}")
        d = self.checkpoint_dir
        replay = d / "replay.npz"
        try:
            return ((d / "agent.msgpack").read_bytes(), replay.read_bytes() if replay.exists() else None,
                    (d / "envs.pkl").read_bytes(), read_json(d / "loop.json"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"the checkpoint in {d} is unreadable ({exc}); delete it to start over") from exc

