"""PPO: the clipped surrogate and value loss at hand-made batches, normalisation statistics as the wrappers keep them,
a first epoch that starts at ratio 1, learning InvertedPendulum, and an exactly resumable run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzrl.agents import get_algo
from boltzrl.agents import ppo
from boltzrl.agents.normalization import RunningStats
from boltzrl.training import TrainConfig, train
from conftest import eval_returns, make_rollout


def test_clipped_surrogate_is_the_policy_gradient_at_ratio_one_and_clips_outside_the_band():
    advantage = jnp.array([1.0, -2.0, 0.5, -0.5, 1.5, -1.0, 2.0, -3.0])
    old = jnp.array([-1.0, 0.3, 0.0, 2.0, -0.7, 0.1, 0.5, -0.2])
    loss = ppo.clipped_surrogate(old, old, advantage, 0.2)
    np.testing.assert_allclose(loss, -advantage.mean(), rtol=1e-6)
    grad = jax.grad(ppo.clipped_surrogate)(old, old, advantage, 0.2)
    np.testing.assert_allclose(grad, -advantage / len(advantage), rtol=1e-6)  # d(−mean ρA)/d log π at ρ = 1

    ratio = jnp.array([1.3, 0.7, 1.1, 0.9, 0.75, 1.25, 1.199, 0.801])
    log_prob = old + jnp.log(ratio)
    loss = ppo.clipped_surrogate(log_prob, old, advantage, 0.2)
    clipped = jnp.clip(ratio, 0.8, 1.2)
    np.testing.assert_allclose(loss, -jnp.minimum(ratio * advantage, clipped * advantage).mean(), rtol=1e-6)
    grad = np.asarray(jax.grad(ppo.clipped_surrogate)(log_prob, old, advantage, 0.2))
    # past the band in the direction the advantage pushes (ρ > 1 + ε with A > 0, ρ < 1 − ε with A < 0): no gradient
    assert grad[0] == 0.0 and grad[1] == 0.0
    # inside the band (also just inside its edges), or outside it against the advantage: the unclipped gradient
    inside = [2, 3, 4, 5, 6, 7]
    np.testing.assert_allclose(grad[inside], -np.asarray(ratio * advantage)[inside] / len(advantage), rtol=1e-5)
    assert np.all(grad[inside] != 0.0)


def test_value_loss_is_pessimistic_about_values_that_left_the_clip_range():
    old, target = jnp.array([0.0, 0.0, 0.0]), jnp.array([1.0, 1.0, -1.0])
    value = jnp.array([0.1, 0.5, 0.5])
    np.testing.assert_allclose(ppo.value_loss(value, old, target, None), 0.5 * ((value - target) ** 2).mean())
    # 0.1 is inside the range; 0.5 moved to the target past the range (clipped to 0.2: loss of 0.2); 0.5 moved away
    # from the target, where the unclipped loss is already the larger one
    expected = 0.5 * np.mean([0.9 ** 2, 0.8 ** 2, 1.5 ** 2])
    np.testing.assert_allclose(ppo.value_loss(value, old, target, 0.2), expected, rtol=1e-6)
    grad = jax.grad(ppo.value_loss)(value, old, target, 0.2)
    assert grad[1] == 0.0 and grad[0] != 0.0 and grad[2] != 0.0


def test_running_statistics_and_returns_follow_the_normalisation_wrappers():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3.0, 2.0, (50, 4)).astype(np.float32), rng.normal(-1.0, 0.5, (30, 4)).astype(np.float32)
    stats = RunningStats.create((4,)).merge(a).merge(b)
    both = np.concatenate([a, b])
    np.testing.assert_allclose(stats.mean, both.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats.var, both.var(0), rtol=1e-3)

    # the running discounted return per env: G ← γ·G + r, reported, then zeroed at an episode end
    reward = rng.normal(size=(7, 3)).astype(np.float32)
    done = np.zeros((7, 3), np.float32)
    done[2, 0] = done[5, 1] = 1.0
    start = np.array([0.5, -1.0, 2.0], np.float32)
    per_step, final = ppo.discounted_returns(start, reward, done, 0.9)
    running, expected = start.copy(), []
    for t in range(7):
        running = 0.9 * running + reward[t]
        expected.append(running.copy())
        running[done[t] == 1] = 0.0
    np.testing.assert_allclose(per_step, np.stack(expected), rtol=1e-5)
    np.testing.assert_allclose(final, running, rtol=1e-5)


SMALL = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), num_minibatches=4)


def test_first_epoch_starts_at_ratio_one_and_update_compiles_once():
    """The rollout is re-evaluated with the parameters and observation statistics the policy acted with; the
    statistics move only after the epochs. With one epoch of one minibatch, the update's logged ratio statistics are
    those of its first minibatch, before any gradient step."""
    spec = get_algo("ppo")
    config = spec.config(None, **{**SMALL, "update_epochs": 1, "num_minibatches": 1, "log_std_init": -1.0})
    agent = spec.make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    state, _ = agent.update(state, make_rollout(agent, state, 16, 4, seed=0, obs_mean=3.0, obs_std=2.0),
                            jax.random.PRNGKey(0))
    assert np.all(np.asarray(state.obs_stats.mean) > 2.0) and state.env_returns.shape == (4,)
    # observations far from the first rollout's, so normalising them with updated statistics shifts the log-probs
    rollout = make_rollout(agent, state, 16, 4, seed=1, obs_mean=-4.0, obs_std=0.5)

    def ratio(stats):
        obs = ppo.normalize_obs(config, stats, rollout.obs)
        log_prob, _, value = ppo.evaluate_actions(config, state.params, obs, rollout.extras["raw_action"])
        return np.exp(log_prob - rollout.extras["log_prob"]), value

    acting_ratio, value = ratio(state.obs_stats)
    np.testing.assert_allclose(acting_ratio, 1.0, atol=1e-5)
    np.testing.assert_allclose(value, rollout.extras["value"], atol=1e-5)
    after, info = agent.update(state, rollout, jax.random.PRNGKey(1))
    assert float(info["approx_kl"]) < 1e-9 and float(info["clip_fraction"]) == 0.0
    assert np.abs(ratio(after.obs_stats)[0] - 1.0).max() > 1e-2  # the check above would see stale statistics

    state = after
    for i in range(2, 5):
        state, info = agent.update(state, make_rollout(agent, state, 16, 4, seed=i), jax.random.PRNGKey(i))
    assert all(np.isfinite(v) for v in jax.device_get(info).values())
    assert agent.update.traces == 1 and agent.act.traces == 1


@pytest.mark.slow
def test_ppo_learns_inverted_pendulum(tmp_path):
    """Measured with these settings (evaluated every 5,120 steps, 5 episodes; returns cap at 1000):

        seed    5,120   10,240   15,360   20,480 steps
        0       172      396     1000     1000
        1       104      376     1000     1000
        2       102     1000     1000     1000

    so 500 at 20,480 steps leaves a wide margin. About 25 s on an idle machine, 80 s on two busy cores."""
    cfg = TrainConfig(env="InvertedPendulum-v5", steps=20_480, num_envs=4, rollout_steps=256, eval_every=10_240,
                      eval_episodes=5, log_every=5_120, checkpoint_every=0, seed=0)
    summary = train("ppo", get_algo("ppo").config(), cfg, tmp_path / "run", verbose=False)
    assert summary["final_eval_return"] >= 500, eval_returns(tmp_path / "run")


def test_interrupted_ppo_run_resumes_exactly(tmp_path, interruptible):
    """Stopped after 3 of 8 updates and resumed, a run ends exactly as an uninterrupted one: the normalisation
    statistics, the per-env returns and the learning-rate schedule's count are part of the checkpointed state."""
    algo = interruptible.register("ppo")
    config = get_algo("ppo").config(None, **SMALL, anneal_updates=8)
    cfg = TrainConfig(env="Pendulum-v1", steps=1_024, num_envs=2, rollout_steps=64, eval_every=256, eval_episodes=2,
                      log_every=128, checkpoint_every=0, seed=4)
    train(algo, config, cfg, tmp_path / "full", verbose=False)
    interruptible.cut(algo, config, cfg, tmp_path / "cut", after=3)
    assert len(eval_returns(tmp_path / "cut")) == 1
    train(algo, config, cfg, tmp_path / "cut", resume=True, verbose=False)
    assert eval_returns(tmp_path / "cut") == eval_returns(tmp_path / "full")
    assert len(eval_returns(tmp_path / "full")) == 4
    agent_bytes = [(tmp_path / run / "checkpoint" / "agent.msgpack").read_bytes() for run in ("full", "cut")]
    assert agent_bytes[0] == agent_bytes[1]
    assert interruptible.compilations() == [1]  # three runs, a restored state among them: one compilation
