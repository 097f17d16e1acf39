"""Cost per env step of the exploration noise correlated along the episode (ColoredNoise.draw), sequences included.

    python benchmarks/dqs/noise_cost.py > benchmarks/dqs/noise_cost.md

One env, episodes of 1000 steps (each starts a new sequence), 3000 draws per round, the median of 5 rounds, for the
draws per action of the `auto` preset's ancestral chain ((N + 1) × action dimensions, its Agent.noise_dim) on Pendulum
(1), cheetah-run (6) and humanoid (21)."""

from __future__ import annotations

import platform
import statistics
import time
from datetime import date

import numpy as np

from boltzrl.agents import get_algo
from boltzrl.training.exploration_noise import ColoredNoise

DRAWS, ROUNDS, EPISODE = 3000, 5, 1000


def ms_per_draw(dim: int, beta: float) -> float:
    noise = ColoredNoise(beta, num_envs=1, dim=dim, seed=0)
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for step in range(DRAWS):
            noise.draw(1.0)
            if step % EPISODE == EPISODE - 1:
                noise.episodes_ended(np.array([True]))
        rounds.append((time.perf_counter() - start) / DRAWS * 1e3)
    return statistics.median(rounds)


def main():
    print(f"<!-- {date.today()}, {platform.machine()} {platform.system()}: python benchmarks/dqs/noise_cost.py -->")
    print("| action dimensions | draws per action | ms per draw, β = 0.5 | ms per draw, β = 1 |")
    print("|---|---|---|---|")
    dqs = get_algo("dqs")
    for act_dim in (1, 6, 21):
        dim = dqs.make(dqs.config("auto"), 3, act_dim).noise_dim
        print(f"| {act_dim} | {dim} | {ms_per_draw(dim, 0.5):.4f} | {ms_per_draw(dim, 1.0):.4f} |")


if __name__ == "__main__":
    main()
