"""A run folder nothing can corrupt: what --resume may change, a resume without a checkpoint, the folder lock,
TensorBoard points that survive a kill, the divergence stop, runs that cannot learn, range checks that hold for
every agent, and one sentence (exit code 2, folder untouched) for every bad input of the real CLI."""

import concurrent.futures
import csv
import dataclasses
import errno
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from boltzrl.agents import ALGOS, AlgoSpec, get_algo, register_algo
from boltzrl.agents.base import Agent
from boltzrl.envs import register_env, registered_envs
from boltzrl.training import Diverged, TrainConfig, train
from boltzrl.training.config import check_field_ranges
from boltzrl.training.run_folder import LOCK_NAME

from conftest import tensorboard_points

TESTS = Path(__file__).resolve().parent
ENV = dict(os.environ, JAX_PLATFORMS="cpu")
TOY, GUARDED = "toy-run-folder", "test-finite-pendulum"


# a toy agent (no networks, so runs cost milliseconds) that can put a NaN where a test asks ------------------------
@dataclass(frozen=True)
class ToyConfig:
    nan_in: str = "none"
    """Where a NaN appears once `nan_after` updates were made: none, act, eval or loss."""
    nan_after: int = 0
    """Updates before the NaN."""
    gamma: float = 0.99
    """Unused; here to show that range checks hold for any agent by the field's name."""
    tau: float = 0.005
    """Unused, as gamma."""
    critic_lr: float = 3e-4
    """Unused, as gamma."""
    critic_hidden: tuple[int, ...] = (8,)
    """Unused, as gamma."""


def make_toy(config: ToyConfig, obs_dim: int, act_dim: int) -> Agent:
    def poisoned(state, where):
        return config.nan_in == where and int(state["updates"]) >= config.nan_after

    def init(key):
        return {"updates": np.zeros((), np.int64)}

    def act(state, obs, key, deterministic=False):
        value = np.nan if poisoned(state, "eval" if deterministic else "act") else 0.1
        return np.full((len(obs), act_dim), value, np.float32), {}

    def update(state, batches, key):
        state = {"updates": state["updates"] + len(batches.reward)}
        return state, {"critic_loss": np.float32(np.nan if poisoned(state, "loss") else 1.0)}

    return Agent(init, act, update)


class FiniteActionsOnly(gym.Wrapper):
    """Pendulum that fails the test if a non-finite action ever reaches it."""

    def step(self, action):
        if not np.all(np.isfinite(action)):
            raise AssertionError(f"a non-finite action reached the environment: {action}")
        return self.env.step(action)


def make_guarded_pendulum():
    return FiniteActionsOnly(gym.make("Pendulum-v1"))


def register_toys():
    if TOY not in ALGOS:
        register_algo(AlgoSpec(name=TOY, config_cls=ToyConfig, make=make_toy, description="tests of the run folder",
                               evaluation="0.1 everywhere"))
    if GUARDED not in registered_envs():
        register_env(GUARDED, make_guarded_pendulum, "Pendulum refusing non-finite actions (tests)")


@pytest.fixture
def toy():
    register_toys()
    yield TOY
    ALGOS.pop(TOY)


# The toy, as `boltzrl train` sees it in a process of its own.
TOY_CLI = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_run_folder as t; "
           "t.register_toys(); from boltzrl.cli import main; sys.exit(main(sys.argv[1:]))", "train"]
# Updates from env step 50 on (one per step), an evaluation every 100 steps, a checkpoint only at the end.
TOY_TRAIN = dict(env=GUARDED, steps=300, warmup_steps=50, batch_size=8, buffer_size=1_000, eval_every=100,
                 eval_episodes=1, log_every=50, checkpoint_every=0, seed=0)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("steps_per_s", "wall_time_s")} for row in csv.DictReader(f)]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the folder and its bytes; the lock file is left out (it holds the PID of the last process
    that took the folder, whatever that process then did)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


# 1. what --resume may change ------------------------------------------------------------------------------------
def test_resume_refuses_what_cannot_change_mid_run_before_touching_the_folder(tmp_path, toy):
    out = tmp_path / "run"
    cfg = TrainConfig(**TOY_TRAIN)
    train(toy, ToyConfig(), cfg, out, verbose=False)
    before = _snapshot(out)
    for algo, agent_cfg, train_cfg, preset, named in [
        (toy, ToyConfig(), dataclasses.replace(cfg, seed=7), None, "--seed (0 → 7)"),
        (toy, ToyConfig(), dataclasses.replace(cfg, env="Pendulum-v1"), None, f"--env ({GUARDED} → Pendulum-v1)"),
        (toy, ToyConfig(), dataclasses.replace(cfg, batch_size=16, warmup_steps=60), None,
         "--warmup-steps (50 → 60), --batch-size (8 → 16)"),
        (toy, ToyConfig(critic_lr=1e-3), cfg, None, "--critic-lr (0.0003 → 0.001)"),
        (toy, ToyConfig(), cfg, "cpu", "--preset (None → cpu)"),
        ("sac", get_algo("sac").config(), cfg, None, f"--algo ({toy} → sac)"),
    ]:
        with pytest.raises(ValueError, match="--resume cannot change") as err:
            train(algo, agent_cfg, train_cfg, out, preset=preset, resume=True, verbose=False)
        assert named in str(err.value) and "start a new run with another --out" in str(err.value)
        assert _snapshot(out) == before, named

    # The length and the cadence of what the run writes may change.
    longer = dataclasses.replace(cfg, steps=500, eval_every=200, log_every=100, checkpoint_every=100, eval_episodes=2)
    summary = train(toy, ToyConfig(), longer, out, resume=True, verbose=False)
    assert summary["complete"] and summary["env_steps"] == 500
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 500
    assert [int(r["env_step"]) for r in _rows(out / "eval.csv")] == [100, 200, 300, 400, 500]
    assert [int(r["env_step"]) for r in _rows(out / "train.csv")] == [50, 100, 150, 200, 250, 300, 400, 500]


# 2. --resume without a checkpoint -------------------------------------------------------------------------------
def test_resume_without_a_checkpoint_restarts_cleanly_and_never_duplicates_rows(tmp_path, toy, capsys):
    cfg = TrainConfig(**TOY_TRAIN)
    train(toy, ToyConfig(), cfg, tmp_path / "full", verbose=False)
    cut = tmp_path / "cut"
    train(toy, ToyConfig(), cfg, cut, verbose=False)
    shutil.rmtree(cut / "checkpoint")  # as if killed before its first checkpoint (or loop.json was deleted)
    capsys.readouterr()
    summary = train(toy, ToyConfig(), cfg, cut, resume=True, verbose=True)
    err = capsys.readouterr().err
    assert "has no checkpoint yet" in err and "restarting it from step 0" in err and "logs are cleared" in err
    assert summary["complete"] and summary["env_steps"] == 300
    for log in ("eval.csv", "train.csv"):
        assert _rows(cut / log) == _rows(tmp_path / "full" / log), log


# 3 and 4. the lock, and TensorBoard after a kill ------------------------------------------------------------------
def _checkpoint_step(run: Path) -> int:
    for name in ("checkpoint", "checkpoint.old"):  # .old: killed between the two renames of a checkpoint swap
        if (run / name / "loop.json").exists():
            return json.loads((run / name / "loop.json").read_text())["env_steps"]
    raise AssertionError("no checkpoint")


def test_one_process_trains_a_folder_and_a_kill_loses_no_tensorboard_point_and_leaves_no_lock(tmp_path, toy):
    """A run (the toy, in a `boltzrl train` process of its own) holds its folder: a second process that tries to
    resume it is refused with the first one's PID. After a SIGKILL the TensorBoard points up to the last
    checkpoint are on disk, and the folder resumes at once: the OS dropped the dead process's lock."""
    out = tmp_path / "run"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in {**TOY_TRAIN, "steps": 10**7, "checkpoint_every": 200}.items()]
    proc = subprocess.Popen(TOY_CLI + ["--algo", TOY, "--out", str(out), *args], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint" / "loop.json").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        cfg = TrainConfig(**{**TOY_TRAIN, "checkpoint_every": 200})
        with pytest.raises(ValueError, match=re.escape(f"{out} is being trained by process {proc.pid} right now")):
            train(toy, ToyConfig(), cfg, out, resume=True, verbose=False)
    finally:
        proc.kill()
        proc.wait()

    step = _checkpoint_step(out)
    points = tensorboard_points(out / "tb")
    assert step >= 200
    assert set(range(50, step + 1, 50)) <= points.get("train/update_step", set()), "train points lost by the kill"
    assert set(range(100, step + 1, 100)) <= points.get("eval/eval_return", set()), "eval points lost by the kill"

    summary = train(toy, ToyConfig(), dataclasses.replace(cfg, steps=step + 100), out, resume=True, verbose=False)
    assert summary["complete"] and summary["env_steps"] == step + 100
    assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())


# 5. divergence --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nan_in, nan_after, checkpoint_every, what", [
    ("act", 20, 0, "the policy returned NaN actions, which were not passed to the environment"),
    ("act", 200, 100, "the policy returned NaN actions"),
    ("eval", 20, 0, "the evaluation policy returned NaN actions, which were not passed to the environment"),
    ("loss", 20, 0, "the critic loss became nan"),
])
def test_divergence_stops_before_a_nan_reaches_the_environment_or_the_logs(tmp_path, toy, nan_in, nan_after,
                                                                          checkpoint_every, what):
    """The toy updates once per env step from step 50 on; the guarded Pendulum fails on a non-finite action."""
    out = tmp_path / "run"
    cfg = TrainConfig(**{**TOY_TRAIN, "checkpoint_every": checkpoint_every})
    with pytest.raises(Diverged) as err:
        train(toy, ToyConfig(nan_in=nan_in, nan_after=nan_after), cfg, out, verbose=False)
    message = str(err.value)
    assert message.startswith("Training diverged at env step") and what in message, message
    if checkpoint_every:
        assert f"the last checkpoint, from env step 200, is in {out / 'checkpoint'}" in message
    else:
        assert "no checkpoint was written" in message and str(out / "checkpoint") not in message
    if nan_in != "loss":  # only a loss that blew up on finite data points at the learning rates
        assert "learning rate" not in message
    if (out / "eval.csv").exists():
        assert all(math.isfinite(float(r["eval_return"])) for r in _rows(out / "eval.csv"))
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["complete"] and summary["diverged_at_env_step"] > 0


# 6 and 9. runs that cannot learn; range checks by field name, for any agent -----------------------------------
@pytest.mark.parametrize("train_changes, agent_changes, message", [
    ({"warmup_steps": 300}, {}, "--warmup-steps (300) must be smaller than --steps (300), or the run never learns"),
    ({"batch_size": 301}, {}, "--batch-size (301) is larger than the 300 transitions"),
    ({"buffer_size": 100, "batch_size": 128}, {}, "(--buffer-size 100), so no update would ever happen"),
    ({"seed": -1}, {}, "--seed must be non-negative, got -1"),
    ({"n_step": 0}, {}, "--n-step must be positive, got 0"),
    ({"n_step_anneal_steps": 100}, {}, "--n-step-anneal-steps lowers n from --n-step to 1; give --n-step 2 or more"),
    ({}, {"gamma": 2.0}, "--gamma must be in [0, 1], got 2.0"),
    ({}, {"tau": -0.1}, "--tau must be in (0, 1], got -0.1"),
    ({}, {"tau": 0.0}, "--tau must be in (0, 1], got 0.0"),
    ({}, {"critic_lr": -1e-3}, "--critic-lr is a learning rate and must be non-negative"),
    ({}, {"critic_lr": float("nan")}, "--critic-lr must be a number, got nan"),
    ({}, {"critic_hidden": (8, 0)}, "--critic-hidden lists layer widths, which must be positive, got 8 0"),
])
def test_runs_that_cannot_learn_and_values_out_of_range_are_refused_before_anything_is_written(
        tmp_path, toy, train_changes, agent_changes, message):
    out = tmp_path / "run"
    with pytest.raises(ValueError) as err:
        train(toy, ToyConfig(**agent_changes), TrainConfig(**{**TOY_TRAIN, **train_changes}), out, verbose=False)
    assert message in str(err.value)
    assert not out.exists()


def test_annealed_n_steps_down_from_n_step_to_one_holding_each_value_equally_long():
    config = TrainConfig(n_step=3, n_step_anneal_steps=60)
    assert [config.n_step_at(t) for t in (0, 29, 30, 59, 60, 10**6)] == [3, 3, 2, 2, 1, 1]
    assert [TrainConfig(n_step=3).n_step_at(t) for t in (0, 10**6)] == [3, 3]


def test_n_step_returns_are_refused_where_they_cannot_be_built():
    TrainConfig(n_step=3).check_can_learn(on_policy=False, discount=0.99)
    TrainConfig().check_can_learn(on_policy=False, discount=None)  # one-step targets need no discount here
    with pytest.raises(ValueError, match="--n-step 3 applies to off-policy agents only"):
        TrainConfig(n_step=3, rollout_steps=64).check_can_learn(on_policy=True, discount=0.99)
    with pytest.raises(ValueError, match="--n-step 3 sums rewards with the agent's discount, and this agent's config "
                                         "has no gamma"):
        TrainConfig(n_step=3).check_can_learn(on_policy=False, discount=None)
    TrainConfig(n_step=3).check_can_learn(on_policy=False, discount=0.99, n_step_lower_bound=True)
    with pytest.raises(ValueError, match="--n-step-lower-bound bounds n-step targets by one-step ones; give --n-step"):
        TrainConfig().check_can_learn(on_policy=False, discount=0.99, n_step_lower_bound=True)


def test_every_shipped_preset_passes_the_generic_range_checks():
    for spec in ALGOS.values():
        for preset in [None, *spec.presets]:
            check_field_ranges(spec.config(preset))
    check_field_ranges(get_algo("sac").config(None, actor_lr=0.0))  # a frozen actor is allowed (tests use it)


def test_a_full_disk_while_checkpointing_is_one_sentence_and_leaves_no_partial_checkpoint(tmp_path, toy,
                                                                                          monkeypatch):
    import boltzrl.training.run_folder as run_folder

    def full_disk(path, obj):
        if Path(path).parent.name == "checkpoint.tmp":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_json(path, obj)

    write_json = run_folder.write_json
    monkeypatch.setattr(run_folder, "write_json", full_disk)
    out = tmp_path / "run"
    with pytest.raises(ValueError) as err:
        train(toy, ToyConfig(), TrainConfig(**{**TOY_TRAIN, "checkpoint_every": 100}), out, verbose=False)
    assert (f"cannot write the checkpoint in {out} (No space left on device; free some space); no checkpoint exists "
            f"yet") in str(err.value)
    assert not (out / "checkpoint.tmp").exists() and not (out / "checkpoint").exists()


def test_the_eta_follows_the_rate_of_learning_not_that_of_the_warm_up():
    import io

    from boltzrl.training.progress import Progress

    clock, stream = [0.0], io.StringIO()
    progress = Progress("run", 10_000, stream=stream, clock=lambda: clock[0])
    progress.start(0)
    for step in range(1_000, 6_000, 1_000):  # random actions: 1,000 steps a second
        clock[0] += 1.0
        progress.update(step, None)
    for step in range(6_000, 9_000, 1_000):  # learning: 100 steps a second; 2,000 steps left at the last line
        clock[0] += 10.0
        progress.update(step, None)
    assert "ETA   0m20s" in stream.getvalue().splitlines()[-1]  # the session's average would say 0m08s


# 7 and 8. bad input through the real CLI: exit code 2, one line, no traceback, the folder unchanged --------------
@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    """A finished tiny SAC run with its checkpoint, copied by the cases that resume it."""
    out = tmp_path_factory.mktemp("sac") / "run"
    cfg = TrainConfig(env="Pendulum-v1", steps=200, warmup_steps=100, batch_size=16, eval_every=200,
                      eval_episodes=1, log_every=100, checkpoint_every=0)
    train("sac", get_algo("sac").config(None, actor_hidden=(8, 8), critic_hidden=(8, 8)), cfg, out, verbose=False)
    return out


def _truncate(name):
    def damage(run: Path):
        path = run / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def _garble(name):
    def damage(run: Path):
        (run / name).write_text('{"format": 2, "algo": "sac", "agent": {')
    return damage


FRESH = ["--steps", "500", "--warmup-steps", "100", "--batch-size", "32"]
BAD_INPUTS = {
    # a fresh run into "new", which must not exist afterwards
    "negative seed": (FRESH + ["--seed=-1"], "--seed must be non-negative", None),
    "zero hidden width": (FRESH + ["--actor-hidden", "0"], "--actor-hidden lists layer widths", None),
    "gamma above one": (FRESH + ["--gamma", "2"], "--gamma must be in [0, 1]", None),
    "negative tau": (FRESH + ["--tau=-0.1"], "--tau must be in (0, 1]", None),
    "negative learning rate": (FRESH + ["--critic-lr=-1e-3"], "--critic-lr is a learning rate", None),
    "misspelt env": (FRESH + ["--env", "Pendulm-v1"], "did you mean", None),
    "warm-up as long as the run": (["--steps", "500", "--warmup-steps", "500"], "or the run never learns", None),
    "batch larger than the run": (["--steps", "500", "--warmup-steps", "100", "--batch-size", "501"],
                                  "no update would ever happen", None),
    "out below a file": (FRESH, "cannot write the run folder", "file"),
    # --resume of a copy of a finished run, which must stay as it was
    "resume with another env, seed, lr": (["--resume", "--env", "Hopper-v5", "--seed", "7", "--critic-lr", "1e-3"],
                                          "--resume cannot change --env (Pendulum-v1 → Hopper-v5), --seed (0 → 7), "
                                          "--critic-lr (0.0003 → 0.001)", "run"),
    "resume with another algo": (["--resume", "--algo", "td3"], "--resume cannot change --algo (sac → td3)", "run"),
    "resume with a preset": (["--resume", "--preset", "cpu"], "--resume cannot change --preset (None → cpu)", "run"),
    "truncated replay.npz": (["--resume", "--steps", "400"], "checkpoint/replay.npz is truncated or corrupt",
                             _truncate("checkpoint/replay.npz")),
    "truncated envs.pkl": (["--resume"], "checkpoint/envs.pkl is truncated or corrupt",
                           _truncate("checkpoint/envs.pkl")),
    "truncated agent file": (["--resume"], "checkpoint/agent.msgpack is truncated or corrupt",
                             _truncate("checkpoint/agent.msgpack")),
    "corrupt config.json": (["--resume"], "config.json is not valid JSON", _garble("config.json")),
}


@pytest.fixture(scope="module")
def cli_results(sac_run, tmp_path_factory):
    """Every case of BAD_INPUTS run at once as `python -m boltzrl.cli train ...`: (result, folder, before, after)."""
    root = tmp_path_factory.mktemp("bad")

    def run_case(name):
        argv, _, setup = BAD_INPUTS[name]
        case = root / name.replace(" ", "_").replace(",", "")
        case.mkdir()
        out = case / "new"
        if setup == "file":
            (case / "file").write_text("not a folder\n")
            out = case / "file" / "run"
        elif setup is not None:
            out = case / "run"
            shutil.copytree(sac_run, out)
            if callable(setup):
                setup(out)
        before = _snapshot(case)
        proc = subprocess.run([sys.executable, "-m", "boltzrl.cli", "train", "--out", str(out), *argv],
                              capture_output=True, text=True, timeout=300, env=ENV)
        return proc, case, before, _snapshot(case)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(BAD_INPUTS, pool.map(run_case, BAD_INPUTS)))


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gives_exit_code_2_one_line_no_traceback_and_leaves_the_folder_unchanged(cli_results, name):
    proc, case, before, after = cli_results[name]
    message = BAD_INPUTS[name][1]
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-3000:]
    assert err.startswith("boltzrl: error: ") and message in err, err
    assert after == before, sorted(set(after) ^ set(before)) or [k for k in after if after[k] != before.get(k)]
    assert not (case / "new").exists()
