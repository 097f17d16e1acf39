"""End-to-end checks of the off-policy loop: learning, determinism, exact resume after an interruption."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from boltzrl.agents import get_algo
from boltzrl.training import TrainConfig, train


def _eval_curve(run: Path):
    with open(run / "eval.csv") as f:
        return [(int(r["env_step"]), float(r["eval_return"])) for r in csv.DictReader(f)]


def _train_columns(run: Path):
    with open(run / "train.csv") as f:
        rows = list(csv.DictReader(f))
    timing = {"steps_per_s", "wall_time_s"}
    return [{k: v for k, v in r.items() if k not in timing} for r in rows]


@pytest.mark.slow
def test_sac_learns_pendulum(tmp_path):
    """Minibatches of 128 (an update on 256 costs 15 ms here, on 64 5.6 ms). Measured with evaluations every 1k
    steps: seed 0 −1043 at 3k, −317 at 4k, −89 at 5k, −98 at 6k (checked here); seed 1 −1122, −279, −192, −86.
    At 64, seed 1 fell back to −278 at 6k; at 256, seed 0: −1015, −329, −88, −98."""
    cfg = TrainConfig(env="Pendulum-v1", steps=6_000, warmup_steps=1_000, batch_size=128, eval_every=6_000,
                      eval_episodes=10, checkpoint_every=0, seed=0)
    summary = train("sac", get_algo("sac").config(), cfg, tmp_path / "run", verbose=False)
    assert summary["final_eval_return"] >= -250, summary


SMALL = dict(env="Pendulum-v1", steps=1_200, warmup_steps=300, batch_size=64, eval_every=400, eval_episodes=2,
             log_every=200, checkpoint_every=400, update_every=2, seed=3)


def test_same_seed_same_curve(tmp_path):
    cfg = TrainConfig(**SMALL)
    agent_cfg = get_algo("td3").config(None, actor_hidden=(64, 64), critic_hidden=(64, 64))
    train("td3", agent_cfg, cfg, tmp_path / "a", verbose=False)
    train("td3", agent_cfg, cfg, tmp_path / "b", verbose=False)
    assert _eval_curve(tmp_path / "a") == _eval_curve(tmp_path / "b")
    assert _train_columns(tmp_path / "a") == _train_columns(tmp_path / "b")
    assert (tmp_path / "a/checkpoint/agent.msgpack").read_bytes() == (tmp_path / "b/checkpoint/agent.msgpack").read_bytes()


def _cli(out, *extra):
    args = [sys.executable, "-m", "boltzrl.cli", "train", "--algo", "sac", "--out", str(out),
            "--actor-hidden", "64", "64", "--critic-hidden", "64", "64"]
    for k, v in SMALL.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args + list(extra)


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    """The CLI run every interrupted one is compared with (trained once for the module)."""
    full = tmp_path_factory.mktemp("uninterrupted") / "full"
    subprocess.run(_cli(full), check=True, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True)
    return full


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_run_resumes_exactly(tmp_path, how, uninterrupted_run):
    """A run stopped half-way (Ctrl-C, or killed outright) and resumed ends exactly like an uninterrupted one."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")

    proc = subprocess.Popen(_cli(tmp_path / "cut"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    marker = tmp_path / "cut" / "checkpoint" / "loop.json"
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    code = proc.wait(timeout=60)
    assert code == (130 if how == "sigint" else -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
    assert not (tmp_path / "cut" / "summary.json").exists() or "true" not in (tmp_path / "cut/summary.json").read_text()

    subprocess.run(_cli(tmp_path / "cut", "--resume"), check=True, env=env, capture_output=True)
    assert _eval_curve(tmp_path / "cut") == _eval_curve(uninterrupted_run)
    assert _train_columns(tmp_path / "cut") == _train_columns(uninterrupted_run)
    full = (uninterrupted_run / "checkpoint/agent.msgpack").read_bytes()
    assert (tmp_path / "cut/checkpoint/agent.msgpack").read_bytes() == full
