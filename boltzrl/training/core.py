"""The run core: what every run does whatever collects its data.

It owns the run folder and config.json, the RNG streams, the stop flag, the evaluation / log / checkpoint
schedule, the summary, resume and the divergence stop. A collector (`offpolicy.OffPolicyCollector` or
`onpolicy.OnPolicyCollector`, chosen by the algorithm's spec) owns the environments' data path: it acts, steps
the vector env, keeps what it collected and calls the agent's update. Everything the run does after a checkpoint
depends only on what the checkpoint holds (agent state, the collector's memory, env state, RNG states, counters),
so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import numpy as np

from boltzrl.agents import get_algo
from boltzrl.envs import load_vec_env_state, make_vec_env, save_vec_env_state
from boltzrl.training.config import (CHECKPOINT_FORMAT, TrainConfig, check_field_ranges, config_from_dict,
                                     refuse_conflicts, resume_conflicts, run_config_dict)
from boltzrl.training.evaluation import Evaluator
from boltzrl.training.loop_state import EVAL_STREAM, INIT_STREAM, LoopState, NonFinite, step_key
from boltzrl.training.offpolicy import OffPolicyCollector
from boltzrl.training.onpolicy import OnPolicyCollector
from boltzrl.training.progress import Progress
from boltzrl.training.run_folder import FolderError, RunFolder, TensorBoardLog, describe_os_error, write_json


class Interrupted(Exception):
    """Raised after an interrupted run saved its checkpoint."""


class Diverged(Exception):
    """Raised when a NaN or infinity stopped the run; its summary says complete: false and the checkpoint, if
    any, is the last one written before it."""


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between iterations, so the loop stops at a consistent point."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: signals cannot be caught here
            pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RunRecord:
    """What one run writes about itself: train.csv and TensorBoard rows, eval.csv rows, summary.json.

    Shared by the single-run core and the seeds-as-a-batch loop (one record per seed)."""

    def __init__(self, folder: RunFolder, algo: str, cfg: TrainConfig, loop: LoopState, writer=None,
                 progress: Progress | None = None, extra_summary: dict | None = None):
        self.folder, self.algo, self.cfg, self.loop = folder, algo, cfg, loop
        self.writer, self.progress, self.extra_summary = writer, progress, extra_summary or {}

    def accumulate(self, info: dict, n: int) -> None:
        """Running sums per metric, weighted by the n steps they average; NaN marks a metric not computed in
        this call (a delayed actor update) and is skipped, but a non-finite critic loss, or an infinite loss,
        means divergence."""
        loop = self.loop
        for name, value in info.items():
            value = float(value)
            if (name == "critic_loss" and not math.isfinite(value)) or (name.endswith("_loss") and math.isinf(value)):
                raise self.diverged(f"the {name.replace('_', ' ')} became {value} in an update whose data was "
                                    f"finite (too high learning rates or badly scaled rewards are the usual causes)")
            if not math.isnan(value):
                total, count = loop.info_sums.get(name, (0.0, 0))
                loop.info_sums[name] = [total + value * n, count + n]

    def diverged(self, what: str) -> Diverged:
        """The divergence stop for `what` went wrong: the summary is written (incomplete) and the message names
        the last checkpoint only if there is one."""
        loop = self.loop
        self.summary(complete=False, diverged_at=loop.env_steps)
        saved = self.folder.checkpoint_step()
        if saved is None:
            where = "no checkpoint was written before it"
        else:
            where = f"the last checkpoint, from env step {saved}, is in {self.folder.checkpoint_dir}"
        return Diverged(f"Training diverged at env step {loop.env_steps}: {what}; {where}.")

    def log(self, steps_per_s: float) -> None:
        loop = self.loop
        info = {name: total / count for name, (total, count) in loop.info_sums.items()}
        recent = loop.finished_returns[-10:]
        row = {"env_step": loop.env_steps, "update_step": loop.update_steps, "steps_per_s": steps_per_s,
               "wall_time_s": loop.wall_time_s,
               "episode_return": float(np.mean(recent)) if recent else float("nan"), **info}
        self.folder.train_log.append(row)
        if self.writer is not None:
            for name, value in row.items():
                if name != "env_step":
                    self.writer.add_scalar(f"train/{name}", value, loop.env_steps)
        loop.info_sums, loop.finished_returns = {}, loop.finished_returns[-10:]
        if self.progress is not None:
            self.progress.update(loop.env_steps, loop.evals[-1][1] if loop.evals else None)

    def evaluate(self, evaluator: Evaluator, agent, state) -> None:
        loop = self.loop
        eval_index = len(loop.evals)
        key = step_key(self.cfg.seed, EVAL_STREAM, eval_index)
        result = evaluator.run(agent, state, key, eval_index, self.folder.path)
        self.folder.eval_log.append({"env_step": loop.env_steps, **result, "wall_time_s": loop.wall_time_s})
        if self.writer is not None:
            for name, value in result.items():
                self.writer.add_scalar(f"eval/{name}", value, loop.env_steps)
        loop.evals.append([loop.env_steps, result["eval_return"]])
        self.summary(complete=False)

    def summary(self, complete: bool, session_steps: int | None = None, session_time: float | None = None,
                diverged_at: int | None = None):
        loop = self.loop
        returns = [r for _, r in loop.evals]
        wall = loop.wall_time_s
        summary = {
            "algo": self.algo, "env": self.cfg.env, "seed": self.cfg.seed,
            "final_eval_return": returns[-1] if returns else None,
            "best_eval_return": max(returns) if returns else None,
            "env_steps": loop.env_steps, "update_steps": loop.update_steps, "wall_time_s": wall,
            "env_steps_per_s": loop.env_steps / wall if wall > 0 else None,
            "peak_memory_mb": peak_memory_mb(), "complete": complete, **self.extra_summary,
        }
        if session_steps and session_time:
            summary["session_env_steps_per_s"] = session_steps / session_time
        if diverged_at is not None:
            summary["diverged_at_env_step"] = diverged_at
        write_json(self.folder.summary_path, summary)
        return summary


def train(algo: str, agent_cfg, train_cfg: TrainConfig, out: str | Path, preset: str | None = None,
          resume: bool = False, verbose: bool = True) -> dict[str, Any]:
    """Train (or resume) one run into the folder `out`; returns the summary dict.

    Everything that can be checked is checked before the folder is touched: the configs, that the run can learn,
    on resume that nothing fixed at the start changes, and that the environment and the agent can be built; a
    failed start therefore leaves no config.json behind. The folder is then locked for the life of the run.
    Resuming a run that has no checkpoint yet restarts it from step 0 (see `RunFolder.clear_logs`)."""
    train_cfg.validate()
    check_field_ranges(agent_cfg)
    spec = get_algo(algo)
    folder = RunFolder(out)
    saved_train = None
    if resume:
        if not folder.has_run():
            raise FileNotFoundError(f"Nothing to resume in {folder.path}: it has no config.json.")
        saved = folder.read_config()
        saved_spec, saved_agent, saved_train = config_from_dict(saved, folder.config_path)
        refuse_conflicts(folder.path, resume_conflicts(saved_spec.name, saved["preset"], saved_agent, saved_train,
                                                       spec.name, preset, agent_cfg, train_cfg))
        preset = saved["preset"]
    elif folder.has_run():
        raise FileExistsError(f"{folder.path} already holds a run; pass --resume to continue it "
                              f"or choose another --out.")
    run = _Run(spec, agent_cfg, train_cfg, folder, verbose)  # builds the envs and the agent: a bad env id fails here
    try:
        train_cfg.check_can_learn(spec.on_policy, getattr(agent_cfg, "gamma", None),
                                  getattr(agent_cfg, "n_step_lower_bound", False))
        with folder.lock():
            if not resume and folder.has_run():  # another process started a run here meanwhile
                raise FileExistsError(f"{folder.path} already holds a run; pass --resume to continue it or choose "
                                      f"another --out.")
            restart = resume and not folder.has_checkpoint()
            loop = run.restore(saved_train) if resume and not restart else run.fresh()
            if restart and verbose:
                print(f"boltzrl: {folder.path} has no checkpoint yet (the run stopped before its first one): "
                      f"restarting it from step 0 with its saved configuration; its logs are cleared so that no "
                      f"row appears twice.", file=sys.stderr, flush=True)
            try:
                if restart:
                    folder.clear_logs()
                folder.create()
                write_json(folder.config_path, run_config_dict(spec.name, preset, agent_cfg, train_cfg))
            except OSError as exc:
                raise FolderError(f"cannot write the run folder {folder.path}: {describe_os_error(exc)}.") from None
            return run.run(loop, resumed=resume and not restart)
    finally:
        run.close()


class _Run:
    def __init__(self, spec, agent_cfg, cfg: TrainConfig, folder: RunFolder, verbose: bool):
        self.spec, self.cfg, self.folder = spec, cfg, folder
        envs = make_vec_env(cfg.env, cfg.num_envs, cfg.seed)
        obs_dim = envs.single_observation_space.shape[0]
        act_dim = envs.single_action_space.shape[0]
        self.agent = spec.make(agent_cfg, obs_dim, act_dim)
        if spec.on_policy:
            self.collector = OnPolicyCollector(self.agent, envs, cfg)
        else:
            self.collector = OffPolicyCollector(self.agent, envs, cfg, gamma=getattr(agent_cfg, "gamma", None))
        self.evaluator = Evaluator(cfg.env, cfg.eval_episodes, cfg.seed)
        self.progress = Progress(f"{spec.name} {cfg.env} seed {cfg.seed}", cfg.steps, enabled=verbose)

    def close(self):
        self.collector.envs.close()
        self.evaluator.close()

    # state --------------------------------------------------------------------------------------------------
    def fresh(self) -> LoopState:
        self.state = self.agent.init(step_key(self.cfg.seed, INIT_STREAM, 0))
        self.collector.start()
        return LoopState.fresh(self.cfg)

    def _save(self):
        if self.record.writer is not None:
            self.record.writer.flush()  # TensorBoard's points up to the checkpoint survive a kill
        loop = {**dataclasses.asdict(self.record.loop), **self.collector.loop_fields(),
                "format": CHECKPOINT_FORMAT}
        self.folder.save_checkpoint(flax.serialization.to_bytes(self.state), self.collector.memory_bytes(),
                                    save_vec_env_state(self.collector.envs), loop)

    def restore(self, saved_cfg: TrainConfig) -> LoopState:
        """The checkpoint's state, read without writing anything; a file that does not parse is named.
        `saved_cfg` is the loop configuration the run was saved with."""
        agent_bytes, memory_bytes, env_state, saved = self.folder.load_checkpoint()
        d = self.folder.checkpoint_dir
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"The checkpoint in {d} was written by an older boltzrl "
                             f"(format {saved.get('format', 1)}, this version reads {CHECKPOINT_FORMAT}); "
                             f"start a new run.")
        with _reading(d / "agent.msgpack"):
            self.state = flax.serialization.from_bytes(self.agent.init(jax.random.PRNGKey(0)), agent_bytes)
        with _reading(d / "envs.pkl"):
            envs = load_vec_env_state(env_state)
        with _reading(d / "replay.npz"):
            self.collector.load_memory(memory_bytes)
        self.collector.envs.close()
        with _reading(d / "loop.json"):
            self.collector.restore(envs, saved)
            loop = LoopState(**{f.name: saved[f.name] for f in dataclasses.fields(LoopState)})
        self._follow_cadence(loop, saved_cfg)
        return loop

    def _follow_cadence(self, loop: LoopState, saved: TrainConfig) -> None:
        """After a resume that changed the eval / log / checkpoint cadence, schedule the next of each on the new
        one (the saved counters follow the old); an unchanged cadence keeps the saved counters exactly."""
        cfg = self.cfg

        def following(every: int) -> int:
            return (loop.env_steps // every + 1) * every

        if cfg.eval_every != saved.eval_every:
            loop.next_eval = following(cfg.eval_every)
        if cfg.log_every != saved.log_every:
            loop.next_log = following(cfg.log_every)
        if cfg.checkpoint_every != saved.checkpoint_every:
            loop.next_checkpoint = following(cfg.checkpoint_every) if cfg.checkpoint_every else None

    # main loop ----------------------------------------------------------------------------------------------
    def run(self, loop: LoopState, resumed: bool) -> dict[str, Any]:
        try:
            if resumed:  # the rows an uninterrupted run would not have yet
                self.folder.eval_log.truncate_after(loop.env_steps)
                self.folder.train_log.truncate_after(loop.env_steps)
            writer = TensorBoardLog(self.folder.path / "tb", purge_step=loop.env_steps or None)
        except OSError as exc:
            raise FolderError(f"cannot write the run folder {self.folder.path}: {describe_os_error(exc)}.") from None
        self.record = RunRecord(self.folder, self.spec.name, self.cfg, loop, writer, self.progress)
        self.progress.start(loop.env_steps)
        start = time.perf_counter()
        start_steps, wall_before = loop.env_steps, loop.wall_time_s
        try:
            with StopFlag() as stop:
                while loop.env_steps < self.cfg.steps:
                    if stop.requested:
                        loop.wall_time_s = wall_before + time.perf_counter() - start
                        self._save()
                        raise Interrupted(f"Interrupted at step {loop.env_steps}; checkpoint saved in "
                                          f"{self.folder.checkpoint_dir}. Continue with --resume.")
                    self.state = self.collector.iteration(self.state, loop, self.record.accumulate)
                    loop.wall_time_s = wall_before + time.perf_counter() - start
                    self._on_schedule(loop)
            loop.wall_time_s = wall_before + time.perf_counter() - start
            if not loop.evals or loop.evals[-1][0] != loop.env_steps:
                self.record.evaluate(self.evaluator, self.agent, self.state)
            self._save()
        except NonFinite as exc:
            raise self.record.diverged(str(exc)) from None
        except OSError as exc:  # e.g. a full disk while logging
            saved = self.folder.checkpoint_step()
            kept = "no checkpoint exists yet" if saved is None else f"the checkpoint from env step {saved} is intact"
            raise FolderError(f"cannot write to the run folder {self.folder.path} ({describe_os_error(exc)}); "
                              f"{kept}, so the run can continue with --resume once that is fixed.") from None
        finally:
            writer.close()
        summary = self.record.summary(complete=True, session_steps=loop.env_steps - start_steps,
                                      session_time=time.perf_counter() - start)
        self.progress.finish(summary)
        return summary

    def _on_schedule(self, loop: LoopState):
        if loop.env_steps >= loop.next_eval:
            self.record.evaluate(self.evaluator, self.agent, self.state)
            loop.next_eval += self.cfg.eval_every
        if loop.env_steps >= loop.next_log:
            self.record.log(self.progress.rate(loop.env_steps))
            loop.next_log += self.cfg.log_every
        if loop.next_checkpoint is not None and loop.env_steps >= loop.next_checkpoint:
            loop.next_checkpoint += self.cfg.checkpoint_every
            self._save()


class _reading:
    """Turns any failure to parse one checkpoint file into one sentence that names it."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, (FolderError, KeyboardInterrupt)):
            return False
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise FolderError(f"{self.path} is truncated or corrupt ({detail}); delete {self.path.parent} and --resume "
                          f"to restart the run from step 0.") from None
