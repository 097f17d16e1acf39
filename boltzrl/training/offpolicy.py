"""The off-policy training loop shared by every off-policy agent.

act → step the vector env → store → (every `update_every` iterations) n gradient steps in one compiled call →
evaluate, log and checkpoint on schedule. Everything the loop does after a checkpoint depends only on what the
checkpoint holds (agent state, replay buffer, env state, RNG states, counters), so a resumed run continues
exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import numpy as np

from boltzrl.agents import get_algo
from boltzrl.envs import load_vec_env_state, make_vec_env, save_vec_env_state
from boltzrl.training.evaluation import Evaluator
from boltzrl.training.progress import Progress
from boltzrl.training.replay import ReplayBuffer
from boltzrl.training.config import TrainConfig, run_config_dict
from boltzrl.training.run_folder import RunFolder, read_json, write_json


INIT_STREAM, ACT_STREAM, UPDATE_STREAM, EVAL_STREAM = range(4)


def step_key(seed: int, stream: int, counter: int) -> np.ndarray:
    """A raw threefry key (uint32[2]) for one (seed, stream, counter), built on the host.

    Deriving keys from counters needs no state to checkpoint and no per-step `jax.random.split` dispatch
    (≈0.1–0.3 ms each outside jit); distinct keys give independent threefry streams."""
    return np.array([(seed * 4 + stream) & 0xFFFFFFFF, counter & 0xFFFFFFFF], np.uint32)


class _StopFlag:
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


class Interrupted(Exception):
    """Raised after an interrupted run saved its checkpoint."""


class Diverged(Exception):
    pass


def train(algo: str, agent_cfg, train_cfg: TrainConfig, out: str | Path, preset: str | None = None,
          resume: bool = False, verbose: bool = True) -> dict[str, Any]:
    """Train (or resume) one run into the folder `out`; returns the summary dict."""
    train_cfg.validate()
    spec = get_algo(algo)
    if spec.on_policy:
        raise ValueError(f"{algo} is an on-policy algorithm; the off-policy loop cannot train it.")
    folder = RunFolder(out)
    if resume:
        if not folder.has_run():
            raise FileNotFoundError(f"Nothing to resume in {folder.path}: it has no config.json.")
        saved = read_json(folder.config_path)
        if saved["algo"] != algo:
            raise ValueError(f"{folder.path} holds a {saved['algo']} run, not {algo}.")
    elif folder.has_run():
        raise FileExistsError(f"{folder.path} already holds a run; pass --resume to continue it or choose another --out.")
    folder.create()
    write_json(folder.config_path, run_config_dict(algo, preset, agent_cfg, train_cfg))
    return _Loop(spec, agent_cfg, train_cfg, folder, verbose).run(resume and folder.has_checkpoint())


class _Loop:
    def __init__(self, spec, agent_cfg, cfg: TrainConfig, folder: RunFolder, verbose: bool):
        self.spec, self.cfg, self.folder = spec, cfg, folder
        self.envs = make_vec_env(cfg.env, cfg.num_envs, cfg.seed)
        obs_dim = self.envs.single_observation_space.shape[0]
        act_dim = self.envs.single_action_space.shape[0]
        self.agent = spec.make(agent_cfg, obs_dim, act_dim)
        self.buffer = ReplayBuffer(cfg.buffer_size, obs_dim, act_dim)
        self.evaluator = Evaluator(cfg.env, cfg.eval_episodes, cfg.seed)
        self.progress = Progress(f"{spec.name} {cfg.env} seed {cfg.seed}", cfg.steps, enabled=verbose)
        self.writer = None

    # state --------------------------------------------------------------------------------------------------
    def _fresh(self):
        self.state = self.agent.init(step_key(self.cfg.seed, INIT_STREAM, 0))
        self.rng = np.random.default_rng(self.cfg.seed)
        self.obs, _ = self.envs.reset(seed=self.cfg.seed)
        self.c = dict(env_steps=0, update_steps=0, iterations=0, update_credit=0.0, wall_time_s=0.0,
                      episode_returns=[0.0] * self.cfg.num_envs, finished_returns=[], info_sums={},
                      evals=[], next_eval=self.cfg.eval_every, next_log=self.cfg.log_every,
                      next_checkpoint=self.cfg.checkpoint_every or math.inf)

    def _save(self):
        loop = dict(self.c, rng=self.rng.bit_generator.state, obs=np.asarray(self.obs).tolist())
        loop["next_checkpoint"] = None if math.isinf(loop["next_checkpoint"]) else loop["next_checkpoint"]
        self.folder.save_checkpoint(flax.serialization.to_bytes(self.state), self.buffer.to_bytes(),
                                    save_vec_env_state(self.envs), loop)

    def _restore(self):
        agent_bytes, replay_bytes, env_state, loop = self.folder.load_checkpoint()
        self.state = flax.serialization.from_bytes(self.agent.init(jax.random.PRNGKey(0)), agent_bytes)
        self.buffer.load_bytes(replay_bytes)
        self.envs.close()
        self.envs = load_vec_env_state(env_state)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = loop.pop("rng")
        self.obs = np.array(loop.pop("obs"), np.float32)
        if loop["next_checkpoint"] is None:
            loop["next_checkpoint"] = math.inf
        self.c = loop
        step = self.c["env_steps"]
        self.folder.eval_log.truncate_after(step)
        self.folder.train_log.truncate_after(step)

    # main loop ----------------------------------------------------------------------------------------------
    def run(self, resume: bool) -> dict[str, Any]:
        from tensorboardX import SummaryWriter

        if resume:
            self._restore()
        else:
            self._fresh()
        self.writer = SummaryWriter(str(self.folder.path / "tb"), purge_step=self.c["env_steps"] or None)
        self.progress.start(self.c["env_steps"])
        start = time.perf_counter()
        start_steps = self.c["env_steps"]
        wall_before = self.c["wall_time_s"]
        try:
            with _StopFlag() as stop:
                while self.c["env_steps"] < self.cfg.steps:
                    if stop.requested:
                        self.c["wall_time_s"] = wall_before + time.perf_counter() - start
                        self._save()
                        raise Interrupted(f"Interrupted at step {self.c['env_steps']}; checkpoint saved in "
                                          f"{self.folder.checkpoint_dir}. Continue with --resume.")
                    self._iteration()
                    self.c["wall_time_s"] = wall_before + time.perf_counter() - start
                    self._on_schedule()
        finally:
            self.writer.close()
        self.c["wall_time_s"] = wall_before + time.perf_counter() - start
        if not self.c["evals"] or self.c["evals"][-1][0] != self.c["env_steps"]:
            self._evaluate()
        self._save()
        summary = self._summary(complete=True, session_steps=self.c["env_steps"] - start_steps,
                                session_time=time.perf_counter() - start)
        self.progress.finish(summary)
        self.envs.close()
        self.evaluator.close()
        return summary

    def _iteration(self):
        cfg, c = self.cfg, self.c
        if c["env_steps"] < cfg.warmup_steps:
            actions = self.rng.uniform(-1.0, 1.0, (cfg.num_envs,) + self.envs.single_action_space.shape)
            actions = actions.astype(np.float32)
        else:
            key = step_key(self.cfg.seed, ACT_STREAM, c["iterations"])
            actions = np.asarray(self.agent.act(self.state, self.obs, key, deterministic=False)[0])
        next_obs, reward, terminated, truncated, infos = self.envs.step(actions)
        done = np.logical_or(terminated, truncated)
        real_next = next_obs
        if done.any():  # SAME_STEP autoreset: next_obs of a finished env is already the reset observation
            real_next = next_obs.copy()
            real_next[done] = np.stack(infos["final_obs"][done])
        self.buffer.add(self.obs, actions, reward, real_next, terminated)
        self.obs = next_obs
        for i in range(cfg.num_envs):
            c["episode_returns"][i] += float(reward[i])
            if done[i]:
                c["finished_returns"].append(c["episode_returns"][i])
                c["episode_returns"][i] = 0.0
        c["env_steps"] += cfg.num_envs
        c["iterations"] += 1

        if c["env_steps"] >= cfg.warmup_steps and self.buffer.size >= cfg.batch_size:
            c["update_credit"] += cfg.num_envs * cfg.utd
            if c["iterations"] % cfg.update_every == 0 and c["update_credit"] >= 1.0:
                n = int(c["update_credit"])
                c["update_credit"] -= n
                batches = self.buffer.sample(self.rng, n, cfg.batch_size)
                key = step_key(self.cfg.seed, UPDATE_STREAM, c["iterations"])
                self.state, info = self.agent.update(self.state, batches, key)
                c["update_steps"] += n
                self._accumulate(jax.device_get(info), n)

    def _accumulate(self, info: dict, n: int):
        """Running sums per metric, weighted by the n steps they average; NaN marks a metric not computed in
        this call (a delayed actor update) and is skipped, but a non-finite critic loss means divergence."""
        c = self.c
        for name, value in info.items():
            value = float(value)
            if name == "critic_loss" and not math.isfinite(value):
                self._summary(complete=False)
                raise Diverged(f"Training diverged: the critic loss is {value} at env step {c['env_steps']}. The "
                               f"last good checkpoint is in {self.folder.checkpoint_dir}; try a smaller learning rate.")
            if not math.isnan(value):
                total, count = c["info_sums"].get(name, (0.0, 0))
                c["info_sums"][name] = (total + value * n, count + n)

    def _on_schedule(self):
        c = self.c
        if c["env_steps"] >= c["next_eval"]:
            self._evaluate()
            c["next_eval"] += self.cfg.eval_every
        if c["env_steps"] >= c["next_log"]:
            self._log()
            c["next_log"] += self.cfg.log_every
        if c["env_steps"] >= c["next_checkpoint"]:
            c["next_checkpoint"] += self.cfg.checkpoint_every
            self._save()

    def _log(self):
        c = self.c
        info = {name: total / count for name, (total, count) in c["info_sums"].items()}
        recent = c["finished_returns"][-10:]
        row = {"env_step": c["env_steps"], "update_step": c["update_steps"],
               "steps_per_s": self.progress.rate(c["env_steps"]), "wall_time_s": c["wall_time_s"],
               "episode_return": float(np.mean(recent)) if recent else float("nan"), **info}
        self.folder.train_log.append(row)
        for name, value in row.items():
            if name != "env_step":
                self.writer.add_scalar(f"train/{name}", value, c["env_steps"])
        c["info_sums"], c["finished_returns"] = {}, c["finished_returns"][-10:]
        self.progress.update(c["env_steps"], c["evals"][-1][1] if c["evals"] else None)

    def _evaluate(self):
        c = self.c
        eval_index = len(c["evals"])
        key = step_key(self.cfg.seed, EVAL_STREAM, eval_index)
        result = self.evaluator.run(self.agent, self.state, key, eval_index, self.folder.path)
        row = {"env_step": c["env_steps"], **result, "wall_time_s": c["wall_time_s"]}
        self.folder.eval_log.append(row)
        for name, value in result.items():
            self.writer.add_scalar(f"eval/{name}", value, c["env_steps"])
        c["evals"].append([c["env_steps"], result["eval_return"]])
        self._summary(complete=False)

    def _summary(self, complete: bool, session_steps: int | None = None, session_time: float | None = None):
        c = self.c
        returns = [r for _, r in c["evals"]]
        wall = c["wall_time_s"]
        summary = {
            "algo": self.spec.name, "env": self.cfg.env, "seed": self.cfg.seed,
            "final_eval_return": returns[-1] if returns else None,
            "best_eval_return": max(returns) if returns else None,
            "env_steps": c["env_steps"], "update_steps": c["update_steps"], "wall_time_s": wall,
            "env_steps_per_s": c["env_steps"] / wall if wall > 0 else None,
            "peak_memory_mb": _peak_memory_mb(), "complete": complete,
        }
        if session_steps and session_time:
            summary["session_env_steps_per_s"] = session_steps / session_time
        write_json(self.folder.summary_path, summary)
        return summary



def _peak_memory_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
