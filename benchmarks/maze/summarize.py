"""Goal fractions of the maze runs in this folder, one row per (run, evaluation)."""

import csv
from pathlib import Path

here = Path(__file__).parent
print("| run | env step | eval return | goal (−3, 3) | goal (3, −3) | both goals reached | routes |")
print("|---|---|---|---|---|---|---|")
for run in sorted(p for p in here.iterdir() if (p / "eval.csv").exists()):
    with open(run / "eval.csv") as f:
        for row in csv.DictReader(f):
            print(f"| {run.name} | {row['env_step']} | {float(row['eval_return']):.1f} | "
                  f"{float(row['goal0_frac']):.2f} | "
                  f"{float(row['goal1_frac']):.2f} | {row['both_goals_reached']} | {row['num_routes']} |")
