"""Loop efficiency of SAC on cheetah-run: end-to-end env steps/s of the learning phase beside the cost of the
bare jitted update measured in the same process, so that a loaded machine slows both alike.

Usage: python benchmarks/sac_cheetah/throughput.py [--steps 15000] [--warmup 5000] [--update-every 1]
"""

import argparse
import csv
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np

from boltzrl.agents import get_algo
from boltzrl.agents.base import random_batches
from boltzrl.training import TrainConfig, train


def bare_update_ms(repeats=200):
    spec = get_algo("sac")
    agent = spec.make(spec.config(), 17, 6)
    state = agent.init(jax.random.PRNGKey(0))
    batch = random_batches(1, 256, 17, 6)
    times = []
    for i in range(repeats + 5):
        start = time.perf_counter()
        state, _ = agent.update(state, batch, jax.random.PRNGKey(i))
        jax.block_until_ready(state)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[5:]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--update-every", type=int, default=1, help="env steps between compiled update calls")
    args = parser.parse_args()
    before = bare_update_ms()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(env="cheetah-run", steps=args.steps, warmup_steps=args.warmup, eval_every=10**9,
                          eval_episodes=1, checkpoint_every=0, log_every=1000, update_every=args.update_every)
        train("sac", get_algo("sac").config(), cfg, Path(tmp) / "run", verbose=False)
        with open(Path(tmp) / "run" / "train.csv") as f:
            rows = list(csv.DictReader(f))
    after = bare_update_ms()
    learning = [r for r in rows if int(r["env_step"]) > args.warmup + 1000]
    t0, t1 = float(learning[0]["wall_time_s"]), float(learning[-1]["wall_time_s"])
    steps = int(learning[-1]["env_step"]) - int(learning[0]["env_step"])
    sps = steps / (t1 - t0)
    update_ms = (before + after) / 2
    print(f"<!-- {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} -->")
    print(f"- learning-phase throughput: {sps:.1f} env steps/s (1 update per step, update_every "
          f"{args.update_every})")
    print(f"- bare SAC update: {update_ms:.2f} ms (before {before:.2f}, after {after:.2f}) → at most "
          f"{1000 / update_ms:.0f} steps/s if nothing else cost anything")
    print(f"- loop efficiency: {sps * update_ms / 1000:.2f} (fraction of the time spent inside the update)")


if __name__ == "__main__":
    main()
