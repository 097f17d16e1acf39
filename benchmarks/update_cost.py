"""Median cost of one gradient update of agents, side by side with SAC in the same process.

Usage: python benchmarks/update_cost.py ALGO[:PRESET][:field=value,...] ... [--obs-dim 17 --act-dim 6 --repeats 7]
Each configuration runs `--chunk` updates per compiled call on random minibatches of 256 (cheetah-run sizes by
default), and 20 single-environment behaviour actions per round; SAC is always measured first and interleaved,
and every ratio uses the SAC medians of the same rounds. The per-env-step ratio counts one update and one action.
"""

from __future__ import annotations

import argparse
import ast
import re
import os
import platform
import time
from datetime import date

import jax
import numpy as np

from boltzrl.agents import get_algo
from boltzrl.agents.base import random_batches


def parse_spec(text: str):
    parts = text.split(":")
    algo, preset = parts[0], (parts[1] or None) if len(parts) > 1 else None
    overrides = {}
    if len(parts) > 2 and parts[2]:
        for item in re.split(r",(?=\w+=)", parts[2]):  # commas inside values, e.g. critic_hidden=(256,256), stay
            key, value = item.split("=")
            try:
                overrides[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                overrides[key] = value
    return algo, preset, overrides


def make_timer(algo, preset, overrides, obs_dim, act_dim, chunk, batch_size=256):
    spec = get_algo(algo)
    agent = spec.make(spec.config(preset, **overrides), obs_dim, act_dim)
    state = agent.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batch = random_batches(chunk, batch_size, obs_dim, act_dim)
    holder = {"state": state, "i": 0}

    def run_once() -> float:
        holder["i"] += 1
        start = time.perf_counter()
        holder["state"], info = agent.update(holder["state"], batch, jax.random.PRNGKey(holder["i"]))
        jax.block_until_ready(holder["state"])
        return (time.perf_counter() - start) / chunk * 1000.0

    run_once()  # compile
    obs = rng.normal(size=(1, obs_dim)).astype(np.float32)

    def act_once() -> float:
        """One behaviour action for one environment, as the loop asks for it at every env step."""
        holder["i"] += 1
        start = time.perf_counter()
        jax.block_until_ready(agent.act(holder["state"], obs, jax.random.PRNGKey(holder["i"]), deterministic=False)[0])
        return (time.perf_counter() - start) * 1000.0

    act_once()  # compile
    return run_once, act_once


def measure_interleaved(timers: dict, repeats: int) -> dict:
    """{name: (update ms per round, median action ms per round)} for {name: (update, act)} timers, their calls
    interleaved so that load changes hit every configuration alike; 20 actions per configuration and round."""
    times = {name: ([], []) for name in timers}
    for _ in range(repeats):
        for name, (update, act) in timers.items():
            times[name][0].append(update())
            times[name][1].append(float(np.median([act() for _ in range(20)])))
    return times


def print_cost_table(times: dict, first_column: str, ratio_digits: int = 1) -> None:
    """The medians of `measure_interleaved`'s times as a Markdown table, with ratios to its "sac" row."""
    sac_update, sac_act = (float(np.median(v)) for v in times["sac"])
    print(f"| {first_column} | median ms / update | ratio to SAC | ms / action "
          "| ratio per env step (1 update + 1 action) |")
    print("|---|---|---|---|---|")
    for name, (updates, acts) in times.items():
        update, act = float(np.median(updates)), float(np.median(acts))
        print(f"| {name} | {update:.2f} | {update / sac_update:.{ratio_digits}f} | {act:.2f} | "
              f"{(update + act) / (sac_update + sac_act):.{ratio_digits}f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--act-dim", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=4, help="updates per compiled call")
    args = parser.parse_args()

    timers = {"sac": make_timer("sac", None, {}, args.obs_dim, args.act_dim, args.chunk)}
    for text in args.configs:
        timers[text] = make_timer(*parse_spec(text), args.obs_dim, args.act_dim, args.chunk)
    times = measure_interleaved(timers, args.repeats)
    print(f"<!-- {date.today()}, {platform.machine()} {os.cpu_count()} CPUs, jax {jax.__version__}, "
          f"obs {args.obs_dim}, act {args.act_dim}, batch 256, {args.repeats} rounds -->")
    print_cost_table(times, "configuration")


if __name__ == "__main__":
    main()
