"""What users of other RL libraries expect: a trained run's policy as a function (`boltzrl.load`), a new run from a
saved config.json (`boltzrl train --config`), and the package's environments under Gymnasium ids."""

import json
import shutil
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
import pytest

import boltzrl
from boltzrl.agents import get_algo
from boltzrl.cli import main
from boltzrl.envs import make_env
from boltzrl.envs.factory import _CUSTOM_ENVS
from boltzrl.training import TrainConfig, train
from boltzrl.training import evaluate_run as evaluate_module
from boltzrl.training.evaluate_run import evaluate_run, load_agent

TINY_AGENT = dict(actor_hidden=(8, 8), critic_hidden=(8, 8))


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    """A finished tiny SAC run on Pendulum-v1 with its checkpoint."""
    out = tmp_path_factory.mktemp("sac") / "run"
    cfg = TrainConfig(env="Pendulum-v1", steps=200, warmup_steps=100, batch_size=16, eval_every=200,
                      eval_episodes=1, log_every=100, checkpoint_every=0)
    train("sac", get_algo("sac").config(None, **TINY_AGENT), cfg, out, verbose=False)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".train.lock"}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# boltzrl.load ---------------------------------------------------------------------------------------------------
def test_load_gives_the_action_eval_takes_for_the_same_observation_and_key(sac_run, monkeypatch):
    seen = []  # (obs, key, actions) of the evaluation's first steps, as `boltzrl eval` computes them

    def recording_load_agent(run):
        agent, state, cfg = load_agent(run)

        def act(state, obs, key, deterministic=False):
            actions, extras = agent.act(state, obs, key, deterministic=deterministic)
            if len(seen) < 3:
                seen.append((np.array(obs), key, np.array(actions), deterministic))
            return actions, extras

        return agent._replace(act=act), state, cfg

    monkeypatch.setattr(evaluate_module, "load_agent", recording_load_agent)
    evaluate_run(sac_run, episodes=1, seed=0)
    policy = boltzrl.load(sac_run)
    assert policy.env_id == "Pendulum-v1"
    for obs, key, actions, deterministic in seen:
        assert deterministic
        np.testing.assert_array_equal(policy(obs, key=key), actions)  # a batch, as eval gives it
        np.testing.assert_array_equal(policy(obs[0], key=key), actions[0])  # one observation


def test_loaded_policy_acts_with_the_trained_weights_in_bounds_and_reproducibly(sac_run):
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32) * 3
    policy = boltzrl.load(sac_run)
    single = policy(obs[0])
    assert isinstance(single, np.ndarray) and single.shape == (1,) and single.dtype == np.float32
    actions = policy(obs)
    assert actions.shape == (64, 1) and np.all(np.abs(actions) <= 1.0)
    assert np.array_equal(policy(obs.tolist()), actions)  # plain lists and float64 are accepted

    # the checkpoint's weights, not a fresh initialisation: an untrained agent acts differently
    agent, _, _ = load_agent(sac_run)
    untrained = np.asarray(agent.act(agent.init(jax.random.PRNGKey(0)), obs, jax.random.PRNGKey(0), True)[0])
    assert not np.allclose(untrained, actions)
    np.testing.assert_array_equal(boltzrl.load(sac_run / "checkpoint")(obs), actions)  # the checkpoint folder too

    # the exploration policy: random, reproducible from the seed, and different from the evaluation policy
    first = boltzrl.load(sac_run, seed=1, deterministic=False)
    again = boltzrl.load(sac_run, seed=1, deterministic=False)
    draws = [first(obs) for _ in range(2)]
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], actions)
    np.testing.assert_array_equal(again(obs), draws[0])
    np.testing.assert_array_equal(first(obs, deterministic=True), actions)


def test_load_errors_are_one_sentence_naming_the_path(sac_run, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing is not a run folder \(no config.json\)\.$"):
        boltzrl.load(tmp_path / "missing")

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(sac_run / "config.json", fresh / "config.json")
    with pytest.raises(FileNotFoundError, match=r"fresh has no checkpoint yet\.$"):
        boltzrl.load(fresh)

    broken = tmp_path / "broken"
    shutil.copytree(sac_run, broken)
    agent_file = broken / "checkpoint" / "agent.msgpack"
    agent_file.write_bytes(agent_file.read_bytes()[:100])
    with pytest.raises(ValueError) as info:
        boltzrl.load(broken)
    assert str(agent_file) in str(info.value) and "\n" not in str(info.value)

    (broken / "config.json").write_text('{"format": 2, "algo": "sac", "agent": {')
    with pytest.raises(ValueError) as info:
        boltzrl.load(broken)
    assert f"{broken / 'config.json'} is not valid JSON" in str(info.value) and "\n" not in str(info.value)

    policy = boltzrl.load(sac_run)
    with pytest.raises(ValueError, match=r"shape \(4,\) do not fit the agent trained on Pendulum-v1, whose "
                                         r"observations have 3 values\.$"):
        policy(np.zeros(4))
    with pytest.raises(ValueError, match=r"one observation \(obs_dim,\) or a batch"):
        policy(np.zeros((2, 2, 3)))


# boltzrl train --config -----------------------------------------------------------------------------------------
def test_train_config_starts_a_new_run_with_the_saved_settings_and_the_flags_given(sac_run, tmp_path, capsys):
    before = _files(sac_run)
    out = tmp_path / "again"
    code = main(["train", "--config", str(sac_run / "config.json"), "--seed", "3", "--steps", "150",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()  # the new run's progress lines
    old, new = (json.loads((run / "config.json").read_text()) for run in (sac_run, out))
    assert new["algo"] == old["algo"] and new["preset"] == old["preset"] and new["agent"] == old["agent"]
    assert new["agent"]["actor_hidden"] == [8, 8]
    assert new["train"] == {**old["train"], "seed": 3, "steps": 150}
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 150
    assert _files(sac_run) == before  # the saved run is only read

    code = main(["train", "--config", str(sac_run), "--out", str(sac_run)])  # the run folder itself: never reused
    assert code == 2 and "already holds a run" in _one_line_error(capsys)
    assert _files(sac_run) == before


@pytest.mark.parametrize("extra, message", [
    (["--config", "{missing}"], "no such file; give a run's config.json"),
    (["--config", "{garbled}"], "config.json is not valid JSON"),
    (["--config", "{old}"], "was written by an older boltzrl"),
    (["--config", "{run}", "--resume"], "give one of them"),
    (["--config", "{run}", "--algo", "td3"], "--algo td3 contradicts"),
    (["--config", "{run}", "--preset", "cpu"], "--preset cpu cannot be applied on top of"),
    (["--config", "{run}", "--gamma", "2"], "--gamma must be in [0, 1]"),
    (["--config"], "--config needs a file"),
])
def test_train_config_refuses_bad_files_and_contradicting_flags_in_one_sentence(sac_run, tmp_path, capsys,
                                                                               monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)  # a default run folder would land here
    garbled, old = tmp_path / "garbled" / "config.json", tmp_path / "old" / "config.json"
    for path in (garbled, old):
        path.parent.mkdir()
    garbled.write_text((sac_run / "config.json").read_text()[:50])
    old.write_text(json.dumps({**json.loads((sac_run / "config.json").read_text()), "format": 1}))
    names = {"missing": tmp_path / "nowhere.json", "garbled": garbled, "old": old, "run": sac_run}
    argv = [arg.format(**names) for arg in extra]
    assert main(["train", *argv, "--out", str(tmp_path / "new")]) == 2
    assert message in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbled", "old"]  # nothing was written


# Gymnasium ids --------------------------------------------------------------------------------------------------
PACKAGE_ENVS = sorted(env_id for env_id, entry in _CUSTOM_ENVS.items()
                      if getattr(entry.factory, "__module__", "").startswith("boltzrl."))


def test_every_environment_of_the_package_has_a_gymnasium_id():
    assert PACKAGE_ENVS == ["gmm-nav", "multigoal-maze"]
    assert sorted(boltzrl.GYMNASIUM_IDS) == [f"boltzrl/{env_id}" for env_id in PACKAGE_ENVS]
    for env_id in PACKAGE_ENVS:
        assert gym.spec(f"boltzrl/{env_id}").entry_point == (f"{_CUSTOM_ENVS[env_id].factory.__module__}:"
                                                            f"{_CUSTOM_ENVS[env_id].factory.__qualname__}")


@pytest.mark.parametrize("env_id", PACKAGE_ENVS)
def test_gym_make_gives_the_environment_make_env_gives(env_id):
    ours, theirs = make_env(env_id), gym.make(f"boltzrl/{env_id}")
    assert theirs.action_space == ours.action_space and theirs.observation_space == ours.observation_space
    obs_a, _ = ours.reset(seed=3)
    obs_b, _ = theirs.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)
    for action in np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32):
        step_a, step_b = ours.step(action), theirs.step(action)
        np.testing.assert_array_equal(step_a[0], step_b[0])
        assert step_a[1:4] == step_b[1:4]
    ours.close()
    theirs.close()


# a corrupt checkpoint file is named --------------------------------------------------------------------------------
@pytest.mark.parametrize("loop_json", ['{"env_steps": 2', "[]"])
def test_resume_from_a_corrupt_loop_json_names_that_file_in_one_sentence(sac_run, tmp_path, capsys, loop_json):
    run = tmp_path / "run"
    shutil.copytree(sac_run, run)
    (run / "checkpoint" / "loop.json").write_text(loop_json)
    before = _files(run)
    assert main(["train", "--out", str(run), "--resume"]) == 2
    err = _one_line_error(capsys)
    assert f"{run / 'checkpoint' / 'loop.json'} is truncated or corrupt" in err, err
    assert _files(run) == before
