"""The optional W&B mirror, against a fake `wandb` module: the same scalars as train.csv / eval.csv, the run's
config, the same W&B run after --resume, and one sentence when wandb is missing."""

import csv
import dataclasses
import json
import math
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest

from boltzrl.agents import ALGOS, AlgoSpec, register_algo
from boltzrl.agents.base import Agent
from boltzrl.cli import main
from boltzrl.training import TrainConfig, train
from boltzrl.training.wandb_log import ID_FILE

TOY = "toy-wandb"
# Updates from env step 50 on, an evaluation every 100 steps, a train.csv row every 50.
CFG = TrainConfig(env="Pendulum-v1", steps=300, warmup_steps=50, batch_size=8, buffer_size=1_000, eval_every=100,
                  eval_episodes=1, log_every=50, checkpoint_every=0, seed=0, wandb_project="boltzrl-tests")


@dataclass(frozen=True)
class ToyConfig:
    scale: float = 1.0
    """Multiplies the toy's loss."""


def make_toy(config: ToyConfig, obs_dim: int, act_dim: int) -> Agent:
    """No networks, so a run costs milliseconds; its loss moves with the number of updates."""
    def init(key):
        return {"updates": np.zeros((), np.int64)}

    def act(state, obs, key, deterministic=False):
        return np.full((len(obs), act_dim), 0.1, np.float32), {}

    def update(state, batches, key):
        state = {"updates": state["updates"] + len(batches.reward)}
        return state, {"critic_loss": np.float32(config.scale / (1.0 + state["updates"]))}

    return Agent(init, act, update)


@pytest.fixture
def toy():
    register_algo(AlgoSpec(name=TOY, config_cls=ToyConfig, make=make_toy, description="W&B tests",
                           evaluation="0.1 everywhere"))
    yield TOY
    ALGOS.pop(TOY)


class FakeWandb(types.ModuleType):
    """Records init / log / finish as wandb would receive them."""

    def __init__(self):
        super().__init__("wandb")
        self.calls = []

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        run = types.SimpleNamespace(id=kwargs.get("id") or f"fake{len(self.calls)}")
        run.log = lambda data, step: self.calls.append(("log", dict(data), step))
        run.finish = lambda: self.calls.append(("finish",))
        return run

    def sessions(self):
        """The calls split per init, as (init kwargs, {(step, tag): value}, finished)."""
        out = []
        for call in self.calls:
            if call[0] == "init":
                out.append((call[1], {}, False))
            elif call[0] == "log":
                points = out[-1][1]
                for tag, value in call[1].items():
                    assert (call[2], tag) not in points, f"{tag} logged twice at step {call[2]}"
                    points[(call[2], tag)] = value
            else:
                out[-1] = (*out[-1][:2], True)
        return out


@pytest.fixture
def fake_wandb(monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return fake


def _csv_points(run) -> dict:
    """What TensorBoard gets from the CSV rows: train/<column> and eval/<metric> at env_step, NaN left out."""
    points = {}
    for name, skip in (("train", {"env_step"}), ("eval", {"env_step", "wall_time_s"})):
        with open(run / f"{name}.csv", newline="") as f:
            for row in csv.DictReader(f):
                for column, text in row.items():
                    if column not in skip and text != "" and not math.isnan(float(text)):
                        points[(int(row["env_step"]), f"{name}/{column}")] = float(text)
    return points


def test_every_scalar_and_the_config_go_to_wandb(tmp_path, toy, fake_wandb):
    run = tmp_path / "run"
    train(toy, ToyConfig(), CFG, run, verbose=False)
    [(init, points, finished)] = fake_wandb.sessions()
    assert finished
    assert init["project"] == "boltzrl-tests" and init["id"] is None
    assert init["config"] == json.loads((run / "config.json").read_text())
    assert points == _csv_points(run)
    assert {tag for _, tag in points} >= {"train/critic_loss", "eval/eval_return", "train/episode_return"}
    assert json.loads((run / ID_FILE).read_text())["id"] == "fake1"


def test_a_resumed_run_logs_into_the_same_wandb_run(tmp_path, toy, fake_wandb, interruptible):
    run = tmp_path / "run"
    name = interruptible.register(toy)
    interruptible.cut(name, ToyConfig(), CFG, run, after=120)  # stops near env step 170
    train(name, ToyConfig(), CFG, run, resume=True, verbose=False)
    (first, before, done_first), (second, after, done_second) = fake_wandb.sessions()
    assert done_first and done_second
    assert second["id"] == first_id(run) == "fake1" and second["resume"] == "allow"
    assert max(step for step, _ in before) < min(step for step, _ in after)
    assert {**before, **after} == _csv_points(run)


def first_id(run) -> str:
    return json.loads((run / ID_FILE).read_text())["id"]


def test_wandb_off_by_default(tmp_path, toy, fake_wandb):
    train(toy, ToyConfig(), dataclasses.replace(CFG, wandb_project=""), tmp_path / "run", verbose=False)
    assert fake_wandb.calls == [] and not (tmp_path / "run" / ID_FILE).exists()


def test_missing_wandb_is_one_sentence_before_the_folder_is_touched(tmp_path, toy, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    out = tmp_path / "run"
    code = main(["train", "--algo", toy, "--env", "Pendulum-v1", "--steps", "300", "--warmup-steps", "50",
                 "--batch-size", "8", "--wandb-project", "p", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert "pip install 'boltzrl[wandb]'" in err and len(err.splitlines()) == 1
