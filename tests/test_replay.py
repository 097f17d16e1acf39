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
    a = buf.gather(buf.sample_indices(np.random.default_rng(0), 4, 16))
    b = buf.gather(buf.sample_indices(np.random.default_rng(0), 4, 16))
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


def _episodes_into(buf, num_envs: int, steps: int, seed: int = 0):
    """Fill buf the way the collector does (rows of one vector step side by side; a finished episode stores its
    final observation as next_obs and the env restarts from a new one), with episodes that end in terminations
    and truncations; returns each row's (env, time, reward, next_obs, terminated, ended) in the order written."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(num_envs, 3)).astype(np.float32)
    written = []
    for t in range(steps):
        reward = rng.normal(size=num_envs).astype(np.float32)
        next_obs = rng.normal(size=(num_envs, 3)).astype(np.float32)
        terminated = rng.random(num_envs) < 0.1
        ended = terminated | (rng.random(num_envs) < 0.1)  # the rest of the ends are truncations
        buf.add(obs, rng.uniform(-1, 1, (num_envs, 2)), reward, next_obs, terminated.astype(np.float32))
        written += [(env, t, reward[env], next_obs[env], terminated[env], ended[env]) for env in range(num_envs)]
        obs = np.where(ended[:, None], rng.normal(size=(num_envs, 3)).astype(np.float32), next_obs)
    return written


def _n_step_by_hand(written, row: int, n: int, gamma: float):
    """(reward, next_obs, terminated) of written[row] as an n-step transition, followed along its own env."""
    env = written[row][0]
    later = [w for w in written[row:] if w[0] == env]
    total, discount = 0.0, 1.0
    for k, (_, _, reward, next_obs, terminated, ended) in enumerate(later[:n]):
        total += discount * reward
        if ended or k == n - 1 or k == len(later) - 1:
            return total, next_obs, 1.0 - discount * (1.0 - terminated)
        discount *= gamma


@pytest.mark.parametrize("num_envs, capacity", [(1, 1000), (3, 1000), (3, 100), (2, 97)])
def test_n_step_transitions_sum_rewards_along_each_env_up_to_its_episode_end(num_envs, capacity):
    """Against a by-hand walk along each env's own rows: rewards discounted and summed up to n steps, stopping at a
    termination, a truncation or the newest row; the bootstrap weight γ·(1 − terminated) is γ^m, 0 after a
    termination. Capacities below the data written wrap the buffer (the oldest rows gone)."""
    gamma, n = 0.9, 4
    buf = ReplayBuffer(capacity, 3, 2)
    written = _episodes_into(buf, num_envs, steps=300 // num_envs)
    oldest = len(written) - buf.size
    idx = np.arange(buf.size)
    batch = buf.gather_n_step(idx, n, gamma, stride=num_envs)
    for i in idx:
        row = oldest + (int(i) - buf.pos) % buf.size if buf.size == capacity else int(i)
        reward, next_obs, terminated = _n_step_by_hand(written, row, n, gamma)
        np.testing.assert_allclose(batch.reward[i], reward, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(batch.next_obs[i], next_obs)
        np.testing.assert_allclose(batch.terminated[i], terminated, rtol=1e-6)
    one_step = buf.gather(idx)
    for got, want in zip(buf.gather_n_step(idx, 1, gamma, stride=num_envs), one_step):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(batch.obs, one_step.obs)
    np.testing.assert_array_equal(batch.action, one_step.action)
    for name in ("reward", "next_obs", "terminated"):  # each n-step row carries its own first transition
        np.testing.assert_array_equal(getattr(batch.one_step, name), getattr(one_step, name))
    assert buf.gather_n_step(idx, 1, gamma, stride=num_envs).one_step is None
