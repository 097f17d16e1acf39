"""The registry's contract: every algorithm's options fit on one command line beside the loop's and the CLI's,
use the shared vocabulary, every preset in the preset file builds a valid config, and configs restored from plain
values (config.json) are exactly the configs the command line gives."""

import dataclasses
import json
from dataclasses import dataclass

import pytest

from boltzrl import options
from boltzrl.agents import ALGOS, PRESETS, get_algo
from boltzrl.training import TrainConfig, config_from_dict, run_config_dict

TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
RENAMED = {"hidden": "actor_hidden/critic_hidden", "policy_lr": "actor_lr", "num_steps": "denoising_steps",
           "num_sample_steps": "denoising_steps", "score_width": "actor_width"}
"""Synonyms of shared names that an agent config must not bring back."""


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_agent_options_never_clash_with_the_loop_or_the_cli(name):
    agent = _fields(get_algo(name).config_cls)
    assert not agent & TRAIN_FIELDS, f"{name} reuses TrainConfig names {agent & TRAIN_FIELDS}"
    assert not agent & set(options.CLI_OPTIONS), f"{name} reuses CLI names {agent & set(options.CLI_OPTIONS)}"
    options.args_class(get_algo(name).config_cls)  # the flat command line builds


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_agent_options_use_the_shared_vocabulary(name):
    agent = _fields(get_algo(name).config_cls)
    assert {"actor_lr", "critic_lr", "critic_hidden"} <= agent
    assert "actor_hidden" in agent or "actor_width" in agent
    assert not agent & set(RENAMED), {old: RENAMED[old] for old in agent & set(RENAMED)}


def test_a_clashing_config_is_refused_with_the_names():
    @dataclass(frozen=True)
    class Clashing:
        batch_size: int = 64
        out: str = "x"
        horizon: int = 5

    assert options.clashes(Clashing) == {"batch_size", "out"}
    with pytest.raises(TypeError, match="batch_size, out"):
        options.args_class(Clashing)


def _assert_same(a, b):
    """Equal values of the same types, field by field (a config read back must not turn 1.0 into 1, or a tuple
    into a list)."""
    assert a == b
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert type(x) is type(y), (f.name, x, y)
        if isinstance(x, tuple):
            assert [type(v) for v in x] == [type(v) for v in y], (f.name, x, y)


PRESET_CASES = [(algo, name) for algo, named in PRESETS.items() for name in named]


def test_the_preset_file_names_only_registered_algorithms():
    assert set(PRESETS) <= set(ALGOS)
    for name, spec in ALGOS.items():
        assert spec.presets == PRESETS.get(name, spec.presets)


@pytest.mark.parametrize("algo, name", PRESET_CASES)
def test_every_preset_names_real_fields_and_builds_a_valid_config(algo, name):
    spec, preset = get_algo(algo), PRESETS[algo][name]
    assert preset.description
    assert set(preset.agent) <= _fields(spec.config_cls), set(preset.agent) - _fields(spec.config_cls)
    assert set(preset.train) <= TRAIN_FIELDS, set(preset.train) - TRAIN_FIELDS
    agent, train = spec.config(name), TrainConfig(**preset.train)
    train.validate()
    # the preset's values have the types the command-line parser gives them
    restored = options.configs_from_values(spec.config_cls, dataclasses.asdict(agent), dataclasses.asdict(train))
    _assert_same(restored[0], agent)
    _assert_same(restored[1], train)


def test_config_json_round_trip_gives_the_command_line_configs():
    spec = get_algo("dqs")
    agent, train = spec.config("maze", score_clip=2.5), TrainConfig(env="gmm-nav", utd=0.5)
    saved = json.loads(json.dumps(run_config_dict("dqs", "maze", agent, train)))
    got_spec, got_agent, got_train = config_from_dict(saved)
    assert got_spec is spec
    _assert_same(got_agent, agent)
    _assert_same(got_train, train)
    args = options.parse_args(spec.config_cls, ["--preset", "maze", "--score-clip", "2.5", "--env", "gmm-nav",
                                                "--utd", "0.5"], dataclasses.asdict(spec.config("maze")))
    _assert_same(options.split(spec.config_cls, args)[0], agent)


def test_unknown_saved_fields_fail_in_one_sentence():
    with pytest.raises(ValueError, match="SACConfig has no field.*hidden"):
        options.configs_from_values(get_algo("sac").config_cls, {"hidden": [64, 64]}, {})
