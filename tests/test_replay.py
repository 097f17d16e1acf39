import numpy as np
import pytest

from boltzrl.training.replay import ReplayBuffer


def _add(buf, start, n):
    obs = np.arange(start, start + n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    buf.add(obs, np.zeros((n, 2)), np.arange(start, start + n), obs + 1, np.zeros(n))


def test_fifo_wraps_and_keeps_the_newest():
    buf = ReplayBuffer(5, 3, 2)
    _add(buf, 0, 3)
    _add(buf, 3, 4)  # 7 transitions into 5 slots: 0 and 1 are overwritten
    assert buf.size == 5 and buf.pos == 2
    assert sorted(buf.data["reward"].tolist()) == [2, 3, 4, 5, 6]
    np.testing.assert_array_equal(buf.data["next_obs"][:, 0], buf.data["reward"] + 1)


def test_sample_shapes_only_filled_slots_and_determinism():
    buf = ReplayBuffer(100, 3, 2)
    _add(buf, 0, 10)
    a = buf.sample(np.random.default_rng(0), 4, 16)
    b = buf.sample(np.random.default_rng(0), 4, 16)
    assert a.obs.shape == (4, 16, 3) and a.reward.shape == (4, 16)
    assert a.reward.max() < 10
    np.testing.assert_array_equal(a.reward, b.reward)


def test_bytes_round_trip():
    buf = ReplayBuffer(8, 3, 2)
    _add(buf, 0, 11)
    other = ReplayBuffer(8, 3, 2)
    other.load_bytes(buf.to_bytes())
    assert (other.size, other.pos) == (buf.size, buf.pos)
    for name in buf.data:
        np.testing.assert_array_equal(other.data[name], buf.data[name])
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(9, 3, 2).load_bytes(buf.to_bytes())


def test_csv_log_widens_and_truncates(tmp_path):
    from boltzrl.training.run_folder import CsvLog

    log = CsvLog(tmp_path / "t.csv")
    log.append({"env_step": 100, "steps_per_s": 5.0})
    log.append({"env_step": 200, "steps_per_s": 6.0, "critic_loss": 1.5})
    log.append({"env_step": 300, "steps_per_s": 7.0, "critic_loss": 1.0})
    reopened = CsvLog(tmp_path / "t.csv")
    assert reopened.columns == ["env_step", "steps_per_s", "critic_loss"]
    assert [r["critic_loss"] for r in reopened.rows()] == ["", "1.5", "1.0"]
    reopened.truncate_after(200)
    assert [r["env_step"] for r in CsvLog(tmp_path / "t.csv").rows()] == ["100", "200"]


def test_checkpoint_survives_a_kill_between_the_two_renames(tmp_path):
    from boltzrl.training.run_folder import RunFolder

    folder = RunFolder(tmp_path)
    folder.create()
    folder.save_checkpoint(b"agent", b"replay", b"envs", {"env_steps": 10})
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")  # the state a kill can leave behind
    assert folder.has_checkpoint()
    assert folder.load_checkpoint()[3] == {"env_steps": 10}
