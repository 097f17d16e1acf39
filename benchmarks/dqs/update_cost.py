"""Per-update cost of DQS against SAC, measured in one process with the calls interleaved.

Each candidate runs one compiled update (one gradient step, batch 256) on random data with the observation and
action sizes of cheetah-run (17, 6); SAC's update is timed right after each DQS call, so both see the same load.
On a shared machine wall time mostly measures the other tenants, so the process CPU time (all threads) is
reported too: it counts only the cycles the update itself used and is the steadier measure of cost.
Prints a Markdown table.

    python benchmarks/dqs/update_cost.py k-sweep      # K in {16, 64, 256, 1000} at the paper's other settings
    python benchmarks/dqs/update_cost.py cpu          # candidate settings for the cpu preset
"""

from __future__ import annotations

import sys
import time

import jax
import numpy as np

from boltzrl.agents import get_algo
from boltzrl.agents.base import random_batches

OBS_DIM, ACT_DIM, BATCH = 17, 6, 256

SWEEPS = {
    "k-sweep": [(f"K={k}", {"num_mc_samples": k}) for k in (16, 64, 256, 1000)],
    "cpu": [
        ("K=16 N=20 w256", {"num_mc_samples": 16}),
        ("K=16 N=20 w256 B_s=64", {"num_mc_samples": 16, "score_batch_size": 64}),
        ("K=32 N=20 w128 B_s=64", {"num_mc_samples": 32, "score_batch_size": 64, "actor_width": 128,
                                   "embed_dim": 64}),
        ("K=16 N=20 w128 B_s=64", {"num_mc_samples": 16, "score_batch_size": 64, "actor_width": 128,
                                   "embed_dim": 64}),
        ("K=16 N=20 w128 B_s=128", {"num_mc_samples": 16, "score_batch_size": 128, "actor_width": 128,
                                    "embed_dim": 64}),
        ("K=16 N=10 w128 B_s=64", {"num_mc_samples": 16, "score_batch_size": 64, "actor_width": 128,
                                   "embed_dim": 64, "denoising_steps": 10}),
    ],
}


def batches(seed: int):
    return random_batches(1, BATCH, OBS_DIM, ACT_DIM, seed)


def timed(agent, state, data, key):
    """(new state, wall seconds, CPU seconds) of one update call."""
    wall, cpu = time.perf_counter(), time.process_time()
    state, info = agent.update(state, data, key)
    jax.block_until_ready((state, info))
    return state, time.perf_counter() - wall, time.process_time() - cpu


def measure(overrides: dict, reps: int):
    spec = get_algo("dqs")
    dqs = spec.make(spec.config(None, **overrides), OBS_DIM, ACT_DIM)
    sac = get_algo("sac").make(get_algo("sac").config(), OBS_DIM, ACT_DIM)
    d_state, s_state = dqs.init(jax.random.PRNGKey(0)), sac.init(jax.random.PRNGKey(0))
    data = batches(0)
    d_state = timed(dqs, d_state, data, jax.random.PRNGKey(0))[0]  # compile
    s_state = timed(sac, s_state, data, jax.random.PRNGKey(0))[0]
    d_times, s_times = [], []
    for i in range(reps):
        d_state, *dt = timed(dqs, d_state, data, jax.random.PRNGKey(i))
        s_state, *st = timed(sac, s_state, data, jax.random.PRNGKey(i))
        d_times.append(dt)
        s_times.append(st)
    d, s = np.array(d_times) * 1e3, np.array(s_times) * 1e3  # (reps, [wall, cpu]) in ms
    return np.median(d, 0), np.median(s, 0), np.median(d / s, 0)


def main(sweep: str, reps: int = 7):
    print("Medians over the repetitions (paired ratios: median of DQS/SAC over back-to-back calls).\n")
    print("| setting | reps | DQS wall ms | DQS CPU ms | SAC wall ms | SAC CPU ms | ratio wall | ratio CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for name, overrides in SWEEPS[sweep]:
        n = max(3, reps // 3) if overrides.get("num_mc_samples", 1000) >= 1000 else reps
        (d_wall, d_cpu), (s_wall, s_cpu), (r_wall, r_cpu) = measure(overrides, n)
        cells = [d_wall, d_cpu, s_wall, s_cpu, r_wall, r_cpu]
        print(f"| {name} | {n} | " + " | ".join(f"{c:.1f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "k-sweep", int(sys.argv[2]) if len(sys.argv) > 2 else 7)
