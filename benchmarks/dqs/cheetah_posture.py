"""How often a cheetah-run run's training steps were upside down, per 10k env steps, from its replay buffer.

    python benchmarks/dqs/cheetah_posture.py RUN [RUN ...] > benchmarks/dqs/cheetah_posture.md

cheetah-run's observation starts with the joint positions after rootx: rootz, then rooty, the torso's pitch; cos(pitch)
< 0 is a cheetah on its back, the known trap of this task (it can still move forward that way, slowly). Each cell:
the share of steps upside down / the mean reward per step × 1000 over those 10k steps of the replay."""

from __future__ import annotations

import sys
from datetime import date

import numpy as np

PITCH, CHUNK = 1, 10_000


def main():
    runs = sys.argv[1:]
    if not runs:
        sys.exit(__doc__)
    print(f"<!-- {date.today()}: python benchmarks/dqs/cheetah_posture.py {' '.join(runs)} -->")
    print("| run | " + " | ".join(f"{k}–{k + 10}k" for k in range(0, 100, 10)) + " |")
    print("|---|" + "---|" * 10)
    for run in runs:
        with np.load(f"{run}/checkpoint/replay.npz") as replay:
            size = int(replay["size"])
            upside_down = np.cos(replay["obs"][:size, PITCH]) < 0
            reward = replay["reward"][:size]
        cells = [f"{upside_down[i:i + CHUNK].mean():.2f} / {1000 * reward[i:i + CHUNK].mean():.0f}"
                 for i in range(0, size, CHUNK)]
        print(f"| {run} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
