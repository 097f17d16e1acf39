"""The run folder: one directory per run, in a documented format that users and other tools can rely on.

    config.json        resolved configuration (algo, preset, agent, train, versions)
    eval.csv           env_step, eval_return, eval_return_std, eval_length, wall_time_s, [env-specific metrics]
    train.csv          env_step, update_step, steps_per_s, episode_return, [agent losses, α, ...]
    summary.json       final_eval_return, best_eval_return, env_steps, wall_time_s, env_steps_per_s, complete, ...
    tb/                TensorBoard event files
    checkpoint/        latest checkpoint (agent state, replay buffer if any, env state, loop counters and RNG)
    .train.lock        held (flock) by the process training the folder; holds its PID

Every JSON file is written atomically (write, then rename), so an interrupted run never leaves a torn file.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoint"
LOCK_NAME = ".train.lock"
LOGS = ("train.csv", "eval.csv", "summary.json", "tb")  # what a run logs (figures are overwritten by name)


class FolderError(ValueError):
    """A run folder that cannot be used as asked; the message is one sentence that names the path."""


def atomic_write(path: Path, data: bytes | str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half-written files behind
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_json_file(path: Path, what: str = "file") -> Any:
    """read_json whose failures are one sentence naming the file."""
    try:
        return read_json(path)
    except json.JSONDecodeError as exc:
        raise FolderError(f"{path} is not valid JSON ({exc}); the {what} is corrupt or truncated.") from None
    except UnicodeDecodeError:
        raise FolderError(f"{path} is not valid JSON (it is not even text); the {what} is corrupt.") from None
    except OSError as exc:
        raise FolderError(f"cannot read {path}: {exc.strerror or exc}.") from None


def describe_os_error(exc: OSError) -> str:
    """`strerror` with a hint for the usual causes."""
    hint = {errno.ENOSPC: "; free some space", errno.EDQUOT: "; free some space",
            errno.EROFS: "; choose another --out", errno.EACCES: "; choose another --out",
            errno.EPERM: "; choose another --out", errno.ENOTDIR: "; choose another --out"}
    return f"{exc.strerror or exc}{hint.get(exc.errno, '')}"


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


class TensorBoardLog:
    """TensorBoard scalars in tb/, written synchronously so that `flush` (called at every checkpoint) puts every
    point logged so far on disk; tensorboardX's SummaryWriter hands events to a thread whose flush does not wait
    for its queue, so a kill could lose the points before the checkpoint. NaN points (no episode finished yet)
    are left out.

    With `purge_step`, TensorBoard drops the points at or after it that earlier event files hold: those an
    interrupted run logged after the checkpoint it resumes from.

    When the run's config.json (beside `logdir`) names a W&B project, every point also goes there (see
    `wandb_log`)."""

    def __init__(self, logdir: Path, purge_step: int | None = None):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.summary import scalar

        self._event, self._scalar = Event, scalar
        Path(logdir).mkdir(parents=True, exist_ok=True)
        # A unique suffix: two sessions started within one second would otherwise share (and truncate) a file.
        self._writer = EventsWriter(os.path.join(logdir, "events"), f".{os.getpid()}.{time.time_ns()}")
        if purge_step:
            self._writer.write_event(Event(step=purge_step, wall_time=time.time(),
                                           session_log=SessionLog(status=SessionLog.START)))
        self._writer.flush()
        from boltzrl.training.wandb_log import mirror_for

        try:
            self._mirror = mirror_for(Path(logdir).parent)
        except BaseException:
            self._writer.close()
            raise

    def add_scalar(self, tag: str, value, step: int) -> None:
        value = float(value)
        if not math.isnan(value):
            self._writer.write_event(self._event(summary=self._scalar(tag, value), step=int(step),
                                                 wall_time=time.time()))
            if self._mirror is not None:
                self._mirror.add_scalar(tag, value, int(step))

    def flush(self) -> None:
        self._writer.flush()
        if self._mirror is not None:
            self._mirror.flush()

    def close(self) -> None:
        self._writer.close()
        if self._mirror is not None:
            self._mirror.close()
            self._mirror = None


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

    def read_config(self) -> dict:
        return read_json_file(self.config_path, "run's configuration")

    def clear_logs(self) -> None:
        """Remove what an earlier attempt logged (the run restarts from step 0), and any unfinished checkpoint."""
        for name in (*LOGS, CHECKPOINT + ".tmp", CHECKPOINT + ".old"):
            path = self.path / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        self.eval_log = CsvLog(self.path / "eval.csv")
        self.train_log = CsvLog(self.path / "train.csv")

    def lock(self) -> RunLock:
        """Take the folder's lock (creating the folder); FolderError names the process that holds it."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            return RunLock(self.path / LOCK_NAME)
        except OSError as exc:
            raise FolderError(f"cannot write the run folder {self.path}: {describe_os_error(exc)}.") from None

    def has_checkpoint(self) -> bool:
        if not (self.checkpoint_dir / "loop.json").exists():
            old = self.path / (CHECKPOINT + ".old")
            if (old / "loop.json").exists():  # killed between the two renames of save_checkpoint
                shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
                os.replace(old, self.checkpoint_dir)
        return (self.checkpoint_dir / "loop.json").exists()

    def checkpoint_step(self) -> int | None:
        """The env step of the folder's checkpoint, or None when it has none (or an unreadable one)."""
        if not self.has_checkpoint():
            return None
        try:
            return int(read_json(self.checkpoint_dir / "loop.json")["env_steps"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def is_complete(self) -> bool:
        return self.summary_path.exists() and bool(read_json(self.summary_path).get("complete"))

    # checkpoints --------------------------------------------------------------------------------------------
    def save_checkpoint(self, agent_bytes: bytes, replay_bytes: bytes | None, env_state: bytes, loop: dict) -> None:
        """Write a complete checkpoint next to the old one, then swap it in, so a kill at any moment leaves one
        intact checkpoint behind. replay_bytes is None for a collector that keeps no memory between iterations."""
        tmp = self.path / (CHECKPOINT + ".tmp")
        old = self.path / (CHECKPOINT + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            (tmp / "agent.msgpack").write_bytes(agent_bytes)
            if replay_bytes is not None:
                (tmp / "replay.npz").write_bytes(replay_bytes)
            (tmp / "envs.pkl").write_bytes(env_state)
            write_json(tmp / "loop.json", loop)  # written last: its presence marks a complete checkpoint
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            kept = "the previous checkpoint is intact" if self.has_checkpoint() else "no checkpoint exists yet"
            raise FolderError(f"cannot write the checkpoint in {self.path} ({describe_os_error(exc)}); {kept}, "
                              f"so the run can continue with --resume once that is fixed.") from None
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
            files = ((d / "agent.msgpack").read_bytes(), replay.read_bytes() if replay.exists() else None,
                     (d / "envs.pkl").read_bytes(), read_json(d / "loop.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # only loop.json is parsed here
            raise FolderError(_corrupt_checkpoint_file(d / "loop.json", exc)) from None
        except OSError as exc:
            raise FolderError(f"the checkpoint in {d} is unreadable ({exc}); delete that folder and --resume to "
                              f"restart the run from step 0.") from None
        if not isinstance(files[3], dict):
            raise FolderError(_corrupt_checkpoint_file(d / "loop.json", "not a JSON object"))
        if "format" not in files[3] and "env_steps" not in files[3]:
            # Every layout wrote env_steps (older ones without a format number), so this is damage, not age.
            raise FolderError(f"{d / 'loop.json'} is empty or incomplete (it holds none of the checkpoint's "
                              f"fields); delete {d} and --resume to restart the run from step 0.")
        return files


def _corrupt_checkpoint_file(path: Path, detail) -> str:
    detail = " ".join(str(detail).split())[:160]
    return (f"{path} is truncated or corrupt ({detail}); delete {path.parent} and --resume to restart the run "
            f"from step 0.")


class RunLock:
    """An exclusive flock on the folder's lock file, so two processes never train one folder at once.

    The OS drops a flock when its process dies, however it dies, so a crashed run leaves no stale lock: the
    file stays, unlocked, and the next run takes it. The holder writes its PID into it for the message."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(self.fd, 32).decode(errors="replace").strip()
            os.close(self.fd)
            holder = f"process {pid}" if pid.isdigit() else "another process"
            raise FolderError(f"{self.path.parent} is being trained by {holder} right now; wait for it to end or stop "
                              f"it (its lock, {self.path.name}, is released when it exits).") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

