"""DPPO: the stored chain and its per-step log-densities, the std floor, the denoising discount and clip schedule at
hand-made cases, a first minibatch at ratio 1 with one compilation, an exactly resumable run, and learning
InvertedPendulum from scratch."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from boltzrl import diffusion, nets
from boltzrl.agents import get_algo
from boltzrl.agents import dppo, ppo
from boltzrl.training import TrainConfig, train
from conftest import eval_returns, make_rollout

TINY = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), update_epochs=2, num_minibatches=4, target_kl=0.0)


def _independent_step(config, params, obs, x_in, t):
    """Mean and std of the denoising step from x_t (step index t, 0 = last) written out from the DDPM formulas, in
    float64 NumPy, apart from the network itself."""
    betas = np.asarray(diffusion.make_vp_schedule(config.schedule, config.denoising_steps).betas, np.float64)
    alpha_bars = np.cumprod(1.0 - betas)
    ab, ab_prev = alpha_bars[t], (alpha_bars[t - 1] if t > 0 else 1.0)
    eps = np.asarray(nets.EpsNet(config.actor_hidden, x_in.shape[-1], config.actor_activation, config.time_dim).apply(
        params["actor"], obs, x_in, jnp.int32(t)), np.float64)
    x0 = np.clip((x_in - np.sqrt(1 - ab) * eps) / np.sqrt(ab), -1, 1)
    mean = betas[t] * np.sqrt(ab_prev) / (1 - ab) * x0 + (1 - ab_prev) * np.sqrt(1 - betas[t]) / (1 - ab) * x_in
    return mean, max(np.sqrt(betas[t] * (1 - ab_prev) / (1 - ab)), config.std_min)


def test_chain_log_probability_is_the_sum_of_the_step_densities_stored_while_acting():
    config = get_algo("dppo").config(None, **TINY, denoising_steps=6, ft_denoising_steps=4)
    agent = dppo.make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    action, extras = jax.device_get(agent.act(state, obs, jax.random.PRNGKey(1)))
    chain, log_prob = extras["chain"], extras["log_prob"]
    assert chain.shape == (5, 5, 2) and log_prob.shape == (5, 4, 2) and extras["value"].shape == (5,)
    np.testing.assert_array_equal(action, np.clip(chain[:, -1], -1, 1))

    obs_n = ppo.normalize_obs(config, state.obs_stats, obs)
    expected = np.zeros(5)
    for i in range(4):  # chain[:, i] → chain[:, i + 1] is the step at index t = K′ − 1 − i
        mean, std = _independent_step(config, state.params, obs_n, chain[:, i], 3 - i)
        expected += np.asarray(norm.logpdf(chain[:, i + 1], mean, std), np.float64).sum(-1)
    np.testing.assert_allclose(log_prob.sum((1, 2)), expected, rtol=1e-5, atol=1e-4)
    assert np.isfinite(expected).all()


def test_every_denoising_step_keeps_the_std_floor():
    """The schedule's posterior std vanishes at the last steps; acting still draws each step with std ≥ std_min.
    One observation, 4096 chains: the residuals of each stored step about its mean have the floored std (a standard
    normal clipped at ±3 has std 0.9866) and never pass noise_clip stds."""
    config = get_algo("dppo").config(None, **TINY, denoising_steps=20, ft_denoising_steps=3, std_min=0.1)
    post_std = np.asarray(dppo.posterior_coefficients(diffusion.make_vp_schedule("cosine", 20))[2])
    assert post_std[0] == 0.0 and post_std[1] < 0.1 < post_std[2]  # the floor binds at the last two steps
    agent = dppo.make(config, 3, 1)
    state = agent.init(jax.random.PRNGKey(0))
    obs = np.tile(np.array([[0.3, -0.2, 1.0]], np.float32), (4096, 1))
    _, extras = jax.device_get(agent.act(state, obs, jax.random.PRNGKey(2)))
    obs_n = ppo.normalize_obs(config, state.obs_stats, obs)
    clipped_normal_std = math.sqrt(1 - 2 * 3 * norm.pdf(3.0) / (2 * norm.cdf(3.0) - 1))
    for i, t in enumerate(range(2, -1, -1)):
        mean, std = _independent_step(config, state.params, obs_n, extras["chain"][:, i], t)
        residual = extras["chain"][:, i + 1] - mean
        assert std >= 0.1
        np.testing.assert_allclose(residual.std(), std * clipped_normal_std, rtol=0.05)
        assert np.abs(residual).max() <= 3 * std * (1 + 1e-4)


def test_denoising_discount_and_clip_schedule_at_a_hand_made_case():
    config = get_algo("dppo").config(None, ft_denoising_steps=4, denoising_discount=0.9, clip_coef=0.2,
                                     clip_coef_base=0.02, clip_coef_rate=3.0)
    steps = jnp.arange(4)  # 0: x_4 → x_3, ..., 3: x_1 → x_0 (the last step, undiscounted)
    np.testing.assert_allclose(dppo.step_discount(config, steps), [0.729, 0.81, 0.9, 1.0], rtol=1e-6)
    # ε = base + (clip − base)·(e^{3u} − 1)/(e^3 − 1), u = 0, 1/3, 2/3, 1
    shape = np.array([0.0, (math.e - 1) / (math.e ** 3 - 1), (math.e ** 2 - 1) / (math.e ** 3 - 1), 1.0])
    np.testing.assert_allclose(dppo.clip_schedule(config, steps), 0.02 + 0.18 * shape, rtol=1e-6)
    linear = dataclasses.replace(config, clip_coef_rate=0.0)
    np.testing.assert_allclose(dppo.clip_schedule(linear, steps), [0.02, 0.08, 0.14, 0.2], rtol=1e-6)
    single = dataclasses.replace(config, ft_denoising_steps=1)
    np.testing.assert_allclose(dppo.clip_schedule(single, jnp.zeros(3)), 0.2)
    np.testing.assert_allclose(dppo.step_discount(single, jnp.zeros(3)), 1.0)


def test_first_minibatch_is_at_ratio_one_its_loss_is_the_discounted_advantage_and_update_compiles_once():
    """With one epoch of one minibatch (every pair) and no advantage standardisation, the logged first-minibatch
    quantities are: ratio 1 (the stored chain re-evaluated with the acting-time parameters and statistics), so the
    surrogate is −mean over pairs of A·γ_d^t = −mean(A)·mean_t(γ_d^t)."""
    spec = get_algo("dppo")
    config = spec.config(None, **{**TINY, "update_epochs": 1, "num_minibatches": 1}, denoising_steps=5,
                         ft_denoising_steps=3, denoising_discount=0.8, normalize_advantages=False)
    agent = spec.make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    state, _ = agent.update(state, make_rollout(agent, state, 16, 4, seed=0, obs_mean=3.0, obs_std=2.0),
                            jax.random.PRNGKey(0))
    assert np.all(np.asarray(state.obs_stats.mean) > 2.0)  # the next rollout's normalisation differs from before
    rollout = make_rollout(agent, state, 16, 4, seed=1, obs_mean=-4.0, obs_std=0.5)
    _, advantage, _ = ppo.rollout_advantages(
        config, lambda o: ppo.ValueNet(config.critic_hidden, config.critic_activation).apply(
            state.params["critic"], o), state, rollout)
    after, info = agent.update(state, rollout, jax.random.PRNGKey(1))
    assert abs(float(info["ratio"]) - 1.0) < 1e-5 and float(info["approx_kl"]) < 1e-9
    assert float(info["clip_fraction"]) == 0.0
    expected = -float(np.mean(advantage)) * (0.8 ** 2 + 0.8 + 1.0) / 3
    np.testing.assert_allclose(float(info["actor_loss"]), expected, rtol=1e-4, atol=1e-6)

    state = after
    for i in range(2, 5):
        state, info = agent.update(state, make_rollout(agent, state, 16, 4, seed=i), jax.random.PRNGKey(i))
    assert all(np.isfinite(v) for v in jax.device_get(info).values())
    assert agent.update.traces == 1 and agent.act.traces == 1


def test_target_kl_skips_the_rest_of_the_update():
    spec = get_algo("dppo")
    config = spec.config(None, **{**TINY, "target_kl": 1e-6}, denoising_steps=3, ft_denoising_steps=3,
                         actor_lr=3e-2, clip_coef=10.0, clip_coef_base=10.0)
    agent = spec.make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    after, info = agent.update(state, make_rollout(agent, state, 16, 4, seed=0), jax.random.PRNGKey(0))
    # 2 epochs × 4 minibatches: the first sits at KL 0, so its step applies; the second passes 1e-6 (its step
    # applies too, as in the official code) and the remaining six are skipped
    assert float(info["skipped_fraction"]) == 6 / 8
    assert float(info["approx_kl"]) > 0  # the mean over the two minibatches that were stepped on
    moved = jax.tree_util.tree_map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(), after.params, state.params)
    assert max(jax.tree_util.tree_leaves(moved)) > 0


@pytest.mark.parametrize("field, value", [("ft_denoising_steps", 7), ("std_min", 0.0), ("denoising_discount", 1.5),
                                          ("schedule", "sigmoid"), ("target_kl", -1.0)])
def test_invalid_configs_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        dppo.DPPOConfig(**{"denoising_steps": 5, "ft_denoising_steps": 5, field: value})


def test_interrupted_dppo_run_resumes_exactly(tmp_path, interruptible):
    """Stopped after 3 of 6 updates and resumed, a run ends exactly as an uninterrupted one (parameters, optimiser,
    normalisation statistics and per-env returns are the checkpointed state)."""
    algo = interruptible.register("dppo")
    config = get_algo("dppo").config(None, **TINY, denoising_steps=4, ft_denoising_steps=3)
    cfg = TrainConfig(env="Pendulum-v1", steps=384, num_envs=2, rollout_steps=32, eval_every=128, eval_episodes=2,
                      log_every=64, checkpoint_every=0, seed=4)
    train(algo, config, cfg, tmp_path / "full", verbose=False)
    interruptible.cut(algo, config, cfg, tmp_path / "cut", after=3)
    assert len(eval_returns(tmp_path / "cut")) == 1
    train(algo, config, cfg, tmp_path / "cut", resume=True, verbose=False)
    assert eval_returns(tmp_path / "cut") == eval_returns(tmp_path / "full")
    assert len(eval_returns(tmp_path / "full")) == 3
    agent_bytes = [(tmp_path / run / "checkpoint" / "agent.msgpack").read_bytes() for run in ("full", "cut")]
    assert agent_bytes[0] == agent_bytes[1]
    assert interruptible.compilations() == [1]


@pytest.mark.slow
def test_dppo_cpu_preset_learns_inverted_pendulum(tmp_path):
    """Measured with the cpu preset (4 envs × 256-step rollouts, evaluated every 5,120 steps, 5 episodes; returns cap
    at 1000):

        seed    5,120   10,240   15,360   20,480   25,600 steps
        0         7       12       76       60      834
        1        33       47      101       62      861
        2         8       34      159      292     1000
        3        10       43       51      109      241
        4        12       64      187      780     1000
        0, actor_lr 0:   4        4        3        3        4

    so 150 at 25,600 steps passes every seed with a margin and fails a policy that does not learn (its return stays
    at the untrained policy's 4). This test's own run (evaluated at 13,312 and 25,600 steps) measured 48 and 628.
    About 40 s of CPU time (one core); five minutes on two busy cores."""
    cfg = TrainConfig(env="InvertedPendulum-v5", steps=25_600, num_envs=4, rollout_steps=256, eval_every=12_800,
                      eval_episodes=5, log_every=6_400, checkpoint_every=0, seed=0)
    summary = train("dppo", get_algo("dppo").config("cpu"), cfg, tmp_path / "run", verbose=False)
    assert summary["final_eval_return"] >= 150, eval_returns(tmp_path / "run")
