"""The real `boltzrl` entry point, end to end, and its handling of bad input."""

import json
import os
import subprocess
import sys

import pytest

from boltzrl.cli import main


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "boltzrl.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("env_id", ["cheetah-run", "Hopper-v5"])
def test_train_end_to_end_writes_the_run_folder(tmp_path, env_id):
    out = tmp_path / "run"
    proc = run_cli("train", "--algo", "sac", "--env", env_id, "--steps", "300", "--warmup-steps", "100",
                   "--batch-size", "32", "--eval-every", "150", "--eval-episodes", "1", "--log-every", "100",
                   "--actor-hidden", "32", "32", "--critic-hidden", "32", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.json", "eval.csv", "train.csv", "summary.json", "checkpoint/agent.msgpack"):
        assert (out / name).exists(), name
    assert list((out / "tb").iterdir()), "no TensorBoard events"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["env_steps"] == 300
    for key in ("final_eval_return", "best_eval_return", "wall_time_s", "env_steps_per_s"):
        assert summary[key] is not None
    config = json.loads((out / "config.json").read_text())
    assert config["agent"]["actor_hidden"] == [32, 32] and config["agent"]["critic_hidden"] == [32]
    assert config["train"]["env"] == env_id
    header = (out / "eval.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["env_step", "eval_return"]
    assert "critic_loss" in (out / "train.csv").read_text().splitlines()[0]

    proc = run_cli("eval", str(out), "--episodes", "2")
    assert proc.returncode == 0 and "eval return" in proc.stdout, proc.stderr[-2000:]

    proc = run_cli("train", "--algo", "sac", "--env", env_id, "--out", str(out))  # never overwrite a run
    assert proc.returncode == 2 and "already holds a run" in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--steps", "-5"], "--steps must be positive"),
        (["train", "--algo", "sacc"], "did you mean sac"),
        (["train", "--learning-rate", "3"], "Unrecognized options"),
        (["train", "--actor-lr", "abc"], "--actor-lr"),
        (["train", "--env", "chetah-run", "--steps", "10"], "did you mean: cheetah-run"),
        (["train", "--algo", "sdac", "--preset", "fast"], "Unknown preset"),
        (["train", "--resume"], "--resume needs --out"),
        (["eval", "/nonexistent/run"], "not a run folder"),
        (["trian"], "did you mean train"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default run folder must not leak into the repository
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err


def test_dqs_maze_preset_anneals_alpha_from_the_cli_and_logs_goal_fractions(tmp_path):
    out = tmp_path / "maze"
    proc = run_cli("train", "--algo", "dqs", "--preset", "maze", "--steps", "400", "--warmup-steps", "200",
                   "--batch-size", "32", "--eval-every", "400", "--eval-episodes", "2", "--log-every", "200",
                   "--alpha", "4", "--alpha-final", "2", "--alpha-horizon", "100", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["env"] == "multigoal-maze" and config["agent"]["alpha_schedule"] == "geometric"
    header = (out / "eval.csv").read_text().splitlines()[0]
    assert "goal0_frac" in header and "num_routes" in header
    assert (out / "figures").is_dir()
    alphas = [line.split(",") for line in (out / "train.csv").read_text().splitlines()]
    column = alphas[0].index("alpha")
    assert float(alphas[-1][column]) < 4.0  # annealed from α₀ = 4 toward α₁ = 2 over 100 updates


def test_list_shows_algorithms_presets_and_envs(capsys):
    from boltzrl.agents import PRESETS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    words = ("sac", "td3", "ddpg", "sdac", "paper", "cpu", "cheetah-run", "HalfCheetah-v5", "Pendulum-v1", "gmm-nav")
    for word in words:
        assert word in out
    for named in PRESETS.values():
        for name, preset in named.items():
            assert f"{name:10s} {preset.description}" in out


@pytest.mark.parametrize("args", [["--help"], ["list"]])
def test_output_into_a_closed_pipe_ends_quietly(args):
    """`boltzrl list | head` where head has left: no traceback, the shell's exit status for SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "boltzrl.cli", *args], stdout=write_end, stderr=subprocess.PIPE,
                                text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141
