"""Estimate the cost of the benchmark protocol's runs from measured per-step costs on this machine.

Measures, in this process: one environment step of every protocol task (CPU time of the env alone), one
acting call and one gradient update of every protocol algorithm (wall time, the fastest of several rounds, so
that other work on a shared machine inflates it least), and estimates one run as
    steps · env step + (steps / envs) · act + steps · utd · update + evaluations · 1000 · (episodes · env step + act)
with envs, utd, evaluations and episodes from the algorithm's preset (an evaluation acts for all its episodes
at once; episodes are taken as 1000 steps long). Prints Markdown; the numbers are estimates, not timed runs.

    python benchmarks/sweep_parallel/protocol_cost.py
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime

import jax
import numpy as np

from boltzrl.agents import get_algo
from boltzrl.agents.base import random_batches
from boltzrl.envs import make_env
from boltzrl.training import TrainConfig

DMC = ["cheetah-run", "finger-spin", "finger-turn_hard", "fish-swim", "hopper-hop", "quadruped-run", "reacher-hard",
       "walker-run"]
MUJOCO = ["HalfCheetah-v4", "Walker2d-v4", "Ant-v4", "Humanoid-v4"]
# (table, tasks, env steps per run, algorithms as (name, preset))
TABLES = [
    ("DQS table (DMC)", DMC, 250_000, [("dqs", "paper"), ("dqs", "cpu"), ("sdac", "cpu"), ("sac", None),
                                       ("td3", None), ("ddpg", None)]),
    ("SDAC table (MuJoCo v4)", MUJOCO, 1_000_000, [("sdac", "paper"), ("sdac", "cpu"), ("sac", None)]),
]
ROUNDS = 7


def env_step_cost(task: str, steps: int = 1000) -> tuple[float, int, int]:
    """CPU seconds per env step with random actions, and the observation and action sizes."""
    env = make_env(task, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    shape = env.action_space.shape
    start = time.process_time()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, shape).astype(np.float32))
        if terminated or truncated:
            env.reset()
    cost = (time.process_time() - start) / steps
    dims = env.observation_space.shape[0], shape[0]
    env.close()
    return cost, *dims


def fastest(fn, rounds: int = ROUNDS) -> float:
    fn()  # compile
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def agent_costs(algo: str, preset: str | None, obs_dim: int, act_dim: int) -> tuple[float, float]:
    """Seconds per acting call (one observation) and per gradient update (batch 256, 8 per compiled call)."""
    spec = get_algo(algo)
    agent = spec.make(spec.config(preset), obs_dim, act_dim)
    state = agent.init(jax.random.PRNGKey(0))
    chunk, batch = 8, spec.preset(preset).train.get("batch_size", 256) if preset else 256
    batches = random_batches(chunk, batch, obs_dim, act_dim)
    obs = np.zeros((1, obs_dim), np.float32)
    key = jax.random.PRNGKey(1)
    act = fastest(lambda: np.asarray(agent.act(state, obs, key, deterministic=False)[0]))
    update = fastest(lambda: jax.block_until_ready(agent.update(state, batches, key)[0])) / chunk
    return act, update


def main() -> None:
    print(f"<!-- {datetime.now():%Y-%m-%d %H:%M}, {platform.machine()}, {len(os.sched_getaffinity(0))} usable CPUs, "
          f"jax {jax.__version__} on {jax.default_backend()}, load average {os.getloadavg()[0]:.1f} -->")
    for title, tasks, steps, algos in TABLES:
        envs = {task: env_step_cost(task) for task in tasks}
        ref = tasks[0]
        _, obs_dim, act_dim = envs[ref]
        costs = {(a, p): agent_costs(a, p, obs_dim, act_dim) for a, p in algos}
        print(f"\n### {title}: {steps:,} env steps per run; agent costs measured at {ref}'s sizes "
              f"({obs_dim}, {act_dim})\n")
        print("| algorithm | act (ms) | update (ms) | " + " | ".join(tasks) + " | all tasks, 1 seed |")
        print("|---|---|---|" + "---|" * len(tasks) + "---|")
        for (algo, preset), (act, update) in costs.items():
            spec = get_algo(algo)
            cfg = TrainConfig(**(spec.preset(preset).train if preset else {}))
            evals = steps / cfg.eval_every
            hours = []
            for task in tasks:
                env = envs[task][0]
                loop = steps * env + (steps / cfg.num_envs) * act + steps * cfg.utd * update
                evaluation = evals * 1000 * (cfg.eval_episodes * env + act)
                hours.append((loop + evaluation) / 3600)
            name = f"{algo} --preset {preset}" if preset else algo
            print(f"| {name} | {act * 1e3:.2f} | {update * 1e3:.2f} | " + " | ".join(f"{h:.1f} h" for h in hours)
                  + f" | {sum(hours):.1f} h |")
        print("\nenv step, CPU ms: " + ", ".join(f"{t} {envs[t][0] * 1e3:.2f}" for t in tasks))


if __name__ == "__main__":
    main()
