"""The run core around any collector: replay rows an agent rewrites, and run folders of an older layout."""

import json
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pytest

from boltzrl.agents import ALGOS, AlgoSpec, get_algo, register_algo
from boltzrl.agents.base import REPLAY_ACTIONS, Agent, counted_jit, scan_updates
from boltzrl.training import TrainConfig, config_from_dict, train
from boltzrl.training.evaluate_run import evaluate_run

RELABELLED = 0.5


@dataclass(frozen=True)
class RelabelConfig:
    pass


def make_relabeller(config, obs_dim, act_dim) -> Agent:
    """Acts −0.25 and rewrites every replay row it is given to 0.5, as DIPO writes its improved actions back."""

    def init(key):
        return {"calls": jnp.zeros((), jnp.int32)}

    @counted_jit(static_argnames="deterministic")
    def act(state, obs, key, deterministic=False):
        return jnp.full((obs.shape[0], act_dim), -0.25), {}

    def step(state, batch, key):
        return {"calls": state["calls"] + 1}, {"critic_loss": jnp.float32(0.0),
                                               REPLAY_ACTIONS: jnp.full_like(batch.action, RELABELLED)}

    @counted_jit
    def update(state, batches, key):
        return scan_updates(step, state, batches, key)

    return Agent(init, act, update)


@pytest.fixture
def relabeller():
    register_algo(AlgoSpec(name="toy-relabel", config_cls=RelabelConfig, make=make_relabeller,
                           description="rewrites its replay rows (tests)", evaluation="−0.25"))
    yield "toy-relabel"
    ALGOS.pop("toy-relabel")


def test_an_agent_can_rewrite_the_replay_rows_it_was_given(tmp_path, relabeller):
    cfg = TrainConfig(env="Pendulum-v1", steps=60, warmup_steps=20, batch_size=4, utd=2.0, eval_every=60,
                      eval_episodes=1, log_every=30, checkpoint_every=0)
    summary = train(relabeller, RelabelConfig(), cfg, tmp_path / "run", verbose=False)
    assert summary["update_steps"] == 2 * 41  # utd 2 from env step 20 to 60
    with np.load(tmp_path / "run" / "checkpoint" / "replay.npz") as replay:
        actions = replay["action"][:, 0]
    rewritten = actions == RELABELLED
    assert 20 < rewritten.sum() < 60  # 82 draws of 4 rows among ≤ 60: many, but not all, rows were drawn
    warmup, acted = actions[:20][~rewritten[:20]], actions[20:][~rewritten[20:]]
    assert np.all(acted == -0.25) and np.all(np.abs(warmup) <= 1) and not np.any(warmup == -0.25)
    header = (tmp_path / "run" / "train.csv").read_text().splitlines()[0]
    assert REPLAY_ACTIONS not in header and "critic_loss" in header


def test_run_folders_of_an_older_layout_are_refused_in_one_sentence(tmp_path):
    cfg = TrainConfig(env="Pendulum-v1", steps=200, warmup_steps=100, batch_size=16, eval_every=200,
                      eval_episodes=1, checkpoint_every=0)
    spec = get_algo("ddpg")
    train("ddpg", spec.config(None), cfg, tmp_path / "run", verbose=False)
    config_path = tmp_path / "run" / "config.json"
    saved = json.loads(config_path.read_text())
    assert saved["format"] == 2 and config_from_dict(saved)[0] is spec

    old = {k: v for k, v in saved.items() if k != "format"}
    config_path.write_text(json.dumps(old))
    for attempt in (lambda: config_from_dict(old), lambda: evaluate_run(tmp_path / "run", 1),
                    lambda: train("ddpg", spec.config(None), cfg, tmp_path / "run", resume=True, verbose=False)):
        with pytest.raises(ValueError, match=r"older boltzrl \(config format 1, this version reads 2\)"):
            attempt()

    config_path.write_text(json.dumps(saved))
    loop_path = tmp_path / "run" / "checkpoint" / "loop.json"
    loop = json.loads(loop_path.read_text())
    loop.pop("format")
    loop_path.write_text(json.dumps(loop))
    with pytest.raises(ValueError, match=r"checkpoint .* older boltzrl \(format 1"):
        train("ddpg", spec.config(None), cfg, tmp_path / "run", resume=True, verbose=False)

