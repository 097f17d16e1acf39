"""Fixed-seed short runs of every off-policy agent on Pendulum-v1, reduced to their evaluation returns and a hash
of the final agent bytes, so a refactoring can be checked for bit-identical behaviour.

    python benchmarks/behaviour/check.py record before.json     # on the old code
    python benchmarks/behaviour/check.py compare before.json    # on the new code: lists every difference
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = {"sac": [], "td3": [], "ddpg": [], "sdac": ["--preset", "cpu"], "dqs": ["--preset", "cpu"]}
LOOP = ["--env", "Pendulum-v1", "--steps", "1200", "--warmup-steps", "400", "--eval-every", "400",
        "--eval-episodes", "2", "--log-every", "400", "--batch-size", "64", "--seed", "3"]


def fingerprint(algo: str, flags: list[str], root: Path) -> dict:
    out = root / algo
    subprocess.run(["boltzrl", "train", "--algo", algo, *flags, *LOOP, "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    with open(out / "eval.csv", newline="") as f:
        returns = [float(row["eval_return"]) for row in csv.DictReader(f)]
    agent = (out / "checkpoint" / "agent.msgpack").read_bytes()
    return {"eval_returns": returns, "agent_sha256": hashlib.sha256(agent).hexdigest()}


def main(argv: list[str]) -> int:
    mode, path = argv
    with tempfile.TemporaryDirectory() as tmp:
        now = {algo: fingerprint(algo, flags, Path(tmp)) for algo, flags in RUNS.items()}
    if mode == "record":
        Path(path).write_text(json.dumps(now, indent=2) + "\n")
        return 0
    before = json.loads(Path(path).read_text())
    different = [algo for algo in RUNS if before.get(algo) != now[algo]]
    for algo in RUNS:
        print(f"{algo:5s} {'identical' if algo not in different else 'DIFFERS'}  {now[algo]['eval_returns']}")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
