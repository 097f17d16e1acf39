"""Fault injection: runs killed outright at random points resume to exactly the uninterrupted result, and damaged
checkpoint files are named in one sentence."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from boltzrl.agents import get_algo
from boltzrl.training import TrainConfig, run_config_dict, train
from boltzrl.training.run_folder import FolderError, RunFolder, write_json

SMALL = dict(env="Pendulum-v1", steps=1_000, warmup_steps=100, batch_size=64, eval_every=400, eval_episodes=2,
             log_every=100, checkpoint_every=200, update_every=2, seed=5)
HIDDEN = (32, 32)

# Trains SAC in a process of its own whose update sends SIGKILL to the process on a chosen call, so the run dies
# mid-iteration with no chance to save anything, as a crash or the OOM killer would leave it.
DRIVER = textwrap.dedent("""
    import ast, dataclasses, os, signal, sys
    from boltzrl.agents import get_algo, register_algo
    from boltzrl.training import TrainConfig, train

    out, kill_at, resume, settings = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", ast.literal_eval(sys.argv[4])
    spec = get_algo("sac")

    def make(config, obs_dim, act_dim):
        agent, calls = spec.make(config, obs_dim, act_dim), [0]

        def update(state, data, key):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return agent.update(state, data, key)

        return agent._replace(update=update)

    register_algo(dataclasses.replace(spec, name="sac-killed", make=make))
    config = spec.config(None, actor_hidden=settings.pop("hidden"), critic_hidden=settings.pop("hidden2"))
    train("sac-killed", config, TrainConfig(**settings), out, resume=resume, verbose=False)
""")


def _drive(out, kill_at: int, resume: bool) -> int:
    """Runs DRIVER (kill_at 0: never killed); its return code. The processes inherit the test session's
    compilation cache, so only the first one compiles the agent."""
    settings = {**SMALL, "hidden": HIDDEN, "hidden2": HIDDEN}
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(out), str(kill_at), "1" if resume else "0",
                           repr(settings)], env=env, capture_output=True, timeout=600)
    assert proc.returncode in (0, -9), proc.stderr.decode()[-2000:]
    return proc.returncode


def test_repeated_sigkills_resume_to_the_uninterrupted_run(tmp_path):
    """Three SIGKILLs in a row at seeded random update calls, each followed by a resume, then a resume that
    completes: the folder's logs and agent equal those of a run never interrupted. These points kill the first
    attempt before its first checkpoint (the resume restarts from step 0), the second after it and the third
    before the next one (two resumes from the same checkpoint)."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _drive(full, 0, resume=False) == 0

    # Updates start at step 100, one call per 2 steps, checkpoints every 200 steps; each process counts its own
    # calls from 1, so every one of these points kills its attempt.
    kill_points = np.random.default_rng(2024).integers(1, 150, size=3)
    checkpoints = []
    for attempt, kill_at in enumerate(kill_points):
        assert _drive(cut, int(kill_at), attempt > 0) == -9, f"attempt {attempt} was not killed"
        checkpoints.append(RunFolder(cut).checkpoint_step())
    assert checkpoints == [None, 200, 200], checkpoints
    assert _drive(cut, 0, resume=True) == 0

    for name in ("train.csv", "eval.csv"):
        assert _logged(cut / name) == _logged(full / name), name
    assert (cut / "checkpoint/agent.msgpack").read_bytes() == (full / "checkpoint/agent.msgpack").read_bytes()


def _logged(path) -> list[list[str]]:
    """A CSV's rows without the timing columns, which depend on the machine's speed."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [[f"{k}={v}" for k, v in row.items() if k not in ("steps_per_s", "wall_time_s")] for row in rows]


def _run_with_loop_json(tmp_path, text: str):
    """A run folder whose checkpoint is complete but for loop.json, which holds `text`."""
    run = tmp_path / "run"
    folder = RunFolder(run)
    folder.create()
    config = get_algo("sac").config(None, actor_hidden=HIDDEN, critic_hidden=HIDDEN)
    write_json(folder.config_path, run_config_dict("sac", None, config, TrainConfig(**SMALL)))
    folder.checkpoint_dir.mkdir()
    for name in ("agent.msgpack", "replay.npz", "envs.pkl"):
        (folder.checkpoint_dir / name).write_bytes(b"\0")
    (folder.checkpoint_dir / "loop.json").write_text(text)
    return run, config


def test_empty_loop_json_is_named_as_empty_not_as_an_older_format(tmp_path):
    run, config = _run_with_loop_json(tmp_path, "{}\n")
    loop_json = run / "checkpoint" / "loop.json"
    with pytest.raises(FolderError) as caught:
        RunFolder(run).load_checkpoint()
    message = str(caught.value)
    assert str(loop_json) in message and "empty or incomplete" in message and "older" not in message
    with pytest.raises(FolderError, match="empty or incomplete"):
        train("sac", config, TrainConfig(**SMALL), run, resume=True, verbose=False)


def test_loop_json_of_an_older_layout_is_still_called_older(tmp_path):
    """Format 1 wrote the loop's fields without a format number: that is an older run, not a damaged file."""
    run, config = _run_with_loop_json(tmp_path, '{"env_steps": 200, "update_steps": 0}\n')
    with pytest.raises(ValueError, match="older boltzrl"):
        train("sac", config, TrainConfig(**SMALL), run, resume=True, verbose=False)
