"""Branch a running run: once its checkpoint reaches a given env step, copy the run folder and continue the copy with
some training fields changed. Both branches share everything up to that step (agent, replay, envs, RNGs), so the
two continuations differ only by the change: a paired comparison that the seeds' spread does not drown.

    python benchmarks/dqs/branch_at_checkpoint.py RUN STEP COPY deterministic_episode_share=0 \
        deterministic_episodes_from=0

waits for RUN/checkpoint to hold STEP env steps (a checkpoint must fall on STEP), copies RUN to COPY, sets the
fields in COPY's config.json, drops the loop fields that only a removed option writes, and resumes COPY
(`boltzrl train --out COPY --resume`). Only what the checkpoint does not fix may change: training options the
collector reads as it goes, and agent options written `agent.NAME=value` that leave the networks' and the optimisers'
shapes alone (e.g. `agent.policy_delay=2`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

OPTION_LOOP_FIELDS = {"deterministic_episode_share": "deterministic_episodes"}


def wait_for_step(run: Path, step: int, poll_s: float = 10.0) -> None:
    loop_json = run / "checkpoint" / "loop.json"
    while True:
        try:
            reached = json.loads(loop_json.read_text())["env_steps"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            reached = -1
        if reached == step:
            return
        if reached > step:
            sys.exit(f"{run}'s checkpoint is already past {step} env steps ({reached}); branch earlier next time.")
        time.sleep(poll_s)


def branch(run: Path, step: int, copy: Path, changes: dict[str, float]) -> None:
    # The run's config does not change while it trains: check the names before waiting and copying, so that a
    # misspelt one neither waits for the checkpoint nor leaves a half-made copy behind.
    config = json.loads((run / "config.json").read_text())
    for name, value in changes.items():
        section, _, field = name.rpartition(".")
        section = section or "train"
        if section not in ("train", "agent") or field not in config[section]:
            sys.exit(f"{name} is not a training field (or agent.FIELD an agent field) of {run}.")
        config[section][field] = value
    wait_for_step(run, step)
    time.sleep(5)  # let the checkpoint's writes finish before copying
    staging = copy.with_name(copy.name + ".tmp")
    shutil.copytree(run, staging)
    (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    loop = json.loads((staging / "checkpoint" / "loop.json").read_text())
    for option, field in OPTION_LOOP_FIELDS.items():
        if not config["train"].get(option):
            loop.pop(field, None)
    (staging / "checkpoint" / "loop.json").write_text(json.dumps(loop))
    staging.rename(copy)
    os.execvp("boltzrl", ["boltzrl", "train", "--out", str(copy), "--resume"])


def main() -> None:
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    run, step, copy = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    changes = {}
    for arg in sys.argv[4:]:
        name, _, value = arg.partition("=")
        changes[name] = json.loads(value)
    branch(run, step, copy, changes)


if __name__ == "__main__":
    main()
