"""DQS: the iDEM score target against an analytic Boltzmann policy, the temperature schedule, compilation,
the GMM-navigation evaluation hook, and learning on Pendulum."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzrl import diffusion
from boltzrl.agents import get_algo
from boltzrl.agents.base import OneStep
from boltzrl.agents.dqs import (DQSAutoState, DQSConfig, DQSState, critic_agreement, entropy_target, make,
                               score_entropy, temperature)
from boltzrl.diffusion import boltzmann_energy, log_tanh_jacobian, pre_tanh, score_matching_batch
from boltzrl.training import TrainConfig, train
from conftest import make_batches

ALPHA, VAR = 0.3, 0.5  # temperature and pre-tanh variance of the analytic policy below


def gaussian_policy_critic(mean_of_state):
    """Q(s, a) = −α·(‖atanh a − m(s)‖²/(2v) + Σ log(1 − a²)): its Boltzmann policy at temperature α, in pre-tanh
    coordinates u = atanh a, is exactly N(m(s), v·I) (the log(1 − a²) term cancels the tanh Jacobian)."""

    def q_fn(s, a):
        u = jnp.arctanh(a)
        return -ALPHA * (jnp.sum((u - mean_of_state(s)) ** 2) / (2 * VAR) + jnp.sum(jnp.log1p(-a**2)))

    return q_fn


def test_score_target_inside_the_agent_matches_the_noised_gaussian_score():
    """With that critic, the regression target the agent builds at (x, t) must be ∇log N(m, (v + h(t))·I)(x)."""
    mean_of_state = lambda s: jnp.tanh(s[:2]) * 0.8
    q_fn = gaussian_policy_critic(mean_of_state)
    schedule = diffusion.VESchedule(1e-5, 1.0)
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(64, 3)), jnp.float32)
    action = jnp.asarray(rng.uniform(-0.95, 0.95, (64, 2)), jnp.float32)
    x, t, target = score_matching_batch(q_fn, obs, action, ALPHA, schedule, jax.random.PRNGKey(0), 4096)

    h = schedule.variance(t)[:, None]
    expected = (jax.vmap(mean_of_state)(obs) - x) / (VAR + h)
    # x is the replay action's pre-tanh value noised at level t: the noise it carries is standard normal.
    z = (x - jnp.arctanh(action)) / jnp.sqrt(h)
    assert abs(float(z.mean())) < 0.2 and abs(float(z.std()) - 1.0) < 0.15
    err = np.linalg.norm(target - expected, axis=-1) / np.maximum(np.linalg.norm(expected, axis=-1), 1.0)
    assert np.median(err) < 0.03 and err.max() < 0.15, (np.median(err), err.max())


def test_energy_is_the_pushforward_of_the_boltzmann_policy():
    """exp(−E(u)) with a flat critic is sech²(u)/…, whose tanh image is uniform on the box; and the Jacobian term
    stays finite where tanh saturates."""
    energy = boltzmann_energy(lambda s, a: jnp.float32(0.0), 0.1)
    u = jnp.linspace(-3.0, 3.0, 7)[:, None]
    np.testing.assert_allclose(jax.vmap(energy, (0, None))(u, jnp.zeros(1)), -np.log(1.0 / np.cosh(u[:, 0]) ** 2),
                               rtol=1e-5, atol=1e-5)
    big = log_tanh_jacobian(jnp.array([[40.0, -40.0]]))
    np.testing.assert_allclose(big, [2 * (2 * math.log(2) - 80.0)], rtol=1e-6)
    assert np.isfinite(pre_tanh(jnp.array([1.0, -1.0]))).all()


def test_temperature_schedule():
    fixed = DQSConfig(alpha=0.05)
    assert float(temperature(fixed, 0)) == pytest.approx(0.05)
    assert float(temperature(fixed, 10**6)) == pytest.approx(0.05)
    geo = DQSConfig(alpha=10.0, alpha_final=1.0, alpha_schedule="geometric", alpha_horizon=1000)
    for steps, expected in [(0, 10.0), (500, math.sqrt(10.0)), (250, 10.0**0.75), (1000, 1.0), (5000, 1.0)]:
        assert float(temperature(geo, steps)) == pytest.approx(expected, rel=1e-5)


SMALL = dict(num_mc_samples=8, denoising_steps=4, actor_width=32, embed_dim=16, critic_hidden=(32, 32))


def test_update_compiles_once_and_the_score_net_sees_the_annealed_alpha():
    config = DQSConfig(**SMALL, alpha=4.0, alpha_final=1.0, alpha_schedule="geometric", alpha_horizon=2)
    agent = make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    alphas = []
    for i in range(4):
        state, info = agent.update(state, make_batches(1, 32, 3, 2, seed=i), jax.random.PRNGKey(i))
        alphas.append(float(info["alpha"]))
        assert all(np.isfinite(v) for v in jax.device_get(info).values())
    assert agent.update.traces == 1
    np.testing.assert_allclose(alphas, [4.0, 2.0, 1.0, 1.0], rtol=1e-5)
    assert int(state.steps) == 4


def test_uniform_loss_weight_counts_the_low_noise_errors_as_much_as_the_high():
    """Same state, batch and key: the same targets and predictions, so the uniform loss is the plain mean squared
    error and the variance-weighted one is below it by the weights h(t) + 1e-3 ∈ [1e-3, 1 + 1e-3]."""
    losses = {}
    for weight in ("variance", "uniform"):
        agent = make(DQSConfig(**SMALL, score_loss_weight=weight), 3, 2)
        _, info = agent.update(agent.init(jax.random.PRNGKey(0)), make_batches(1, 32, 3, 2), jax.random.PRNGKey(1))
        losses[weight] = float(info["actor_loss"])
    assert 0 < losses["variance"] < 0.7 * losses["uniform"], losses


def test_mean_of_the_critics_trains_finitely_and_differs_from_their_minimum():
    """critic_pessimism reaches both the TD target and the score's energy: both losses change, and stay finite."""
    batches, key = make_batches(2, 32, 3, 2), jax.random.PRNGKey(1)
    losses = {}
    for pessimism in (1.0, 0.0):
        agent = make(DQSConfig(**SMALL, critic_pessimism=pessimism), 3, 2)
        _, info = agent.update(agent.init(jax.random.PRNGKey(0)), batches, key)
        assert all(np.isfinite(v) for v in jax.device_get(info).values())
        losses[pessimism] = (float(info["critic_loss"]), float(info["actor_loss"]))
    assert losses[1.0][0] != losses[0.0][0] and losses[1.0][1] != losses[0.0][1]
    with pytest.raises(ValueError, match="critic_pessimism"):
        DQSConfig(critic_pessimism=-0.5)


def test_a_larger_critic_ensemble_trains_every_member():
    """num_critics builds that many critics; one update moves each of them and stays finite."""
    agent = make(DQSConfig(**SMALL, num_critics=4, critic_pessimism=0.8), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    assert sorted(state.critic["params"]) == ["q1", "q2", "q3", "q4"]
    new_state, info = agent.update(state, make_batches(2, 32, 3, 2), jax.random.PRNGKey(1))
    assert all(np.isfinite(v) for v in jax.device_get(info).values())
    for name in ("q1", "q2", "q3", "q4"):
        before, after = state.critic["params"][name], new_state.critic["params"][name]
        assert any(np.any(b != a) for b, a in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    with pytest.raises(ValueError, match="num_critics"):
        DQSConfig(num_critics=1)


@pytest.mark.parametrize("eval_sampler", ["euler", "ode"])
def test_act_is_in_the_box_and_evaluation_injects_no_noise(eval_sampler):
    agent = make(DQSConfig(**SMALL, eval_sampler=eval_sampler), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    obs = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    key = jax.random.PRNGKey(2)
    explore = np.asarray(agent.act(state, obs, key, deterministic=False)[0])
    evaluate = np.asarray(agent.act(state, obs, key, deterministic=True)[0])
    assert explore.shape == evaluate.shape == (64, 2)
    assert np.all(np.abs(explore) <= 1.0) and np.all(np.abs(evaluate) <= 1.0)
    np.testing.assert_array_equal(evaluate, np.asarray(agent.act(state, obs, key, deterministic=True)[0]))
    assert not np.allclose(explore, evaluate)  # the exploring chain adds noise at every step


def test_presets():
    spec = get_algo("dqs")
    paper = spec.config("paper")
    assert (paper.num_mc_samples, paper.alpha, paper.denoising_steps, paper.gamma) == (1000, 0.05, 20, 0.99)
    assert spec.preset("paper").train["warmup_steps"] == 10_000
    cpu = spec.config("cpu")
    assert cpu.num_mc_samples < 100
    assert spec.config("gmm").gamma == 0.0
    with pytest.raises(ValueError, match="eval_sampler"):
        DQSConfig(eval_sampler="ddim")


def test_gmm_evaluation_hook_prefers_true_samples(tmp_path):
    from boltzrl.envs import GMM40Nav, sample_gmm

    env = GMM40Nav()
    start = np.zeros(2)

    def metrics(points, out_dir=None):
        return env.evaluation_metrics([np.stack([start, p]) for p in points], [{}] * len(points), out_dir, "eval007")

    exact = metrics(sample_gmm(300, 1), tmp_path)
    collapsed = metrics(np.repeat(env.sample(1, 2), 300, axis=0))  # every episode ends at the same point
    assert exact["eval_mmd"] < 0.1 < collapsed["eval_mmd"]
    assert exact["eval_modes_covered"] >= 38 and collapsed["eval_modes_covered"] <= 1
    assert (tmp_path / "figures" / "eval007.png").stat().st_size > 0


@pytest.mark.slow
def test_dqs_with_automatic_temperature_learns_pendulum(tmp_path):
    """The auto preset, no α given: Pendulum's rewards reach −16 per step against DMC's [0, 1], and the hand-tuned
    fixed α here was 0.5 (the paper's DMC value 0.05 makes a far colder policy). Minibatches of 64 and one update
    per two env steps keep the test cheap; measured (10 evaluation episodes at 2k…10k steps): seed 0 −1284, −1457,
    −908, −295, −90; seed 1 −1310, −1602, −968, −280, −91; evaluated only at 10k, as here, seed 0 −139 (the
    evaluation cadence changes the run). With one update per step: seed 0 −1322, −853, −214, −241, −88; seed 1
    −1289, −732, −684, −658, −87 (minibatches of 256, seed 0: −1322, −889, −208, −277, −88, with α tuned from 0.1
    up to 0.70 by 9k steps, i.e. to the hand-tuned value by itself). A policy that does not learn scores about
    −1300. The preset's target entropy moves from 0 to −1 nat over 50k updates, so over this test's 4k updates it
    would stay near its warm start: with it, 10k steps gave −169 / −975 / −161 (seeds 0–2) and 15k steps −135 /
    −135 / −494, against −139 / −206 / −138 at 10k with the constant target, which the test therefore uses: it
    checks the temperature that tunes itself, not the annealing schedule sized for 100k-step benchmarks. With the
    score trained from std 0.1 under a uniform loss weight: −124 / −164 / −149 at 10k; with the preset's exploration
    noise correlated along the episode (β = 0.5, used here as in the preset): −150 / −161 / −147; with the preset's
    LayerNorm critics too: −137 / −161 / −149; and its standardised observations: −141 / −160 / −149."""
    spec = get_algo("dqs")
    cfg = TrainConfig(env="Pendulum-v1", steps=10_000, warmup_steps=2_000, batch_size=64, utd=0.5, eval_every=10_000,
                      eval_episodes=10, checkpoint_every=0, seed=0,
                      exploration_noise_beta=spec.preset("auto").train["exploration_noise_beta"])
    config = spec.config("auto", target_entropy_start_per_dim=None)
    summary = train("dqs", config, cfg, tmp_path / "run", verbose=False)
    assert summary["final_eval_return"] >= -300, summary


# ------------------------------------------------------------------ few-step chains and the automatic temperature

FEW_STEPS = dict(SMALL, denoising_steps=5, time_grid="edm", sampler_step="ancestral")


@pytest.mark.parametrize("width, std_lo, completion", [(0.05, 1e-4, "gaussian"), (0.3, 1e-4, "gaussian"),
                                                       (1.0, 1e-4, "gaussian"), (0.05, 0.1, "gaussian"),
                                                       (0.05, 0.1, "curvature"), (0.3, 0.1, "curvature")])
def test_score_entropy_of_a_gaussian(width, std_lo, completion):
    """With the exact scores of N(μ, width²·I) in d = 3 and 4 samples at each of 64 states, 40 independent
    estimates average to the analytic entropy within 4.5 standard errors plus 0.005 nats per dimension: the
    randomly shifted quadrature is unbiased, the part below std_lo is a Gaussian's (also when std_lo is above
    the width, where only the samples' spread measures it: uncorrected, the log of a 4-sample variance would put
    that case 0.17 nats per dimension low), and what is left of the log-bias of the prior's variance,
    log(h(1) + v̂), after its delta-method correction is ≤ 0.002 per dimension (computed for width = σ_max; raw
    it would be 0.035). The curvature completion takes the part below std_lo from the score's Jacobian there,
    exact for a Gaussian. Measured: within 1.5 SE; one estimate from 64×4 samples spreads by 0.05–0.19 nats per
    dimension, more for a sharper density."""
    schedule, d, mu = diffusion.VESchedule(), 3, 0.3
    score = lambda x, t: -(x - mu) / (width**2 + schedule.variance(t))

    def estimate(key):
        sample_key, key = jax.random.split(key)  # the estimator's own draws must not repeat the samples'
        u0 = mu + width * jax.random.normal(sample_key, (64, 4, d))
        return score_entropy(score, u0, schedule, key, std_lo=std_lo, completion=completion).mean()

    values = np.asarray(jax.jit(jax.vmap(estimate))(jax.random.split(jax.random.PRNGKey(0), 40)))
    exact = 0.5 * d * math.log(2 * math.pi * math.e * width**2)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - exact) < 4.5 * se + 0.005 * d, (values.mean(), exact, se)


def test_score_entropy_of_two_modes_needs_the_scores_only_above_their_width():
    """A 1-d mixture of N(±0.5, 0.1²) has entropy ≈ log 2 + that of one mode (−0.19 nats), far from the Gaussian of
    its variance (0.75). From the exact noised scores, the estimate that trusts them down to std 0.03 and takes the
    part below as Gaussian agrees with the one down to 1e-4 and with the quadrature of −∫p log p, within 4.5
    standard errors plus 0.01 nats: the modes separate at stds above their width, where the integral looks."""
    schedule, width, centre = diffusion.VESchedule(), 0.1, 0.5

    def score(x, t):
        var = width**2 + schedule.variance(t)
        logits = jnp.stack([-(x - centre) ** 2, -(x + centre) ** 2]) / (2 * var)
        weights = jax.nn.softmax(logits, axis=0)
        return (weights[0] * (centre - x) + weights[1] * (-centre - x)) / var

    grid = np.linspace(-2.0, 2.0, 40001)
    density = 0.5 * sum(np.exp(-(grid - c) ** 2 / (2 * width**2)) for c in (centre, -centre)) / (
        math.sqrt(2 * math.pi) * width)
    exact = -np.sum(density * np.log(density + 1e-300)) * (grid[1] - grid[0])

    def estimate(key, std_lo):
        sign_key, sample_key, key = jax.random.split(key, 3)
        signs = jnp.where(jax.random.bernoulli(sign_key, 0.5, (64, 8, 1)), 1.0, -1.0)
        u0 = signs * centre + width * jax.random.normal(sample_key, (64, 8, 1))
        return score_entropy(score, u0, schedule, key, std_lo=std_lo).mean()

    keys = jax.random.split(jax.random.PRNGKey(0), 40)
    for std_lo in (1e-4, 0.03):
        values = np.asarray(jax.jit(jax.vmap(lambda k: estimate(k, std_lo)))(keys))
        se = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean() - exact) < 4.5 * se + 0.01, (std_lo, values.mean(), exact, se)


@pytest.mark.parametrize("width", [0.03, 0.05])
def test_curvature_completion_sees_the_width_of_modes_narrower_than_std_lo(width):
    """Two modes N(±0.5, width²) with width below std_lo = 0.1 (the `auto` preset's), 4 samples per state like the
    agent's: the Gaussian of the samples' variance takes the distance between the modes for their width and puts
    the entropy 0.7–1.1 nats too high (measured), whatever the width; the curvature completion reads each mode's
    width from the score's Jacobian at std_lo and agrees with the quadrature of −∫p log p within 4.5 standard errors
    plus 0.02 nats (measured: within 1.2 SE, 0.016 nats)."""
    schedule, centre = diffusion.VESchedule(), 0.5

    def score(x, t):
        var = width**2 + schedule.variance(t)
        weights = jax.nn.softmax(jnp.stack([-(x - centre) ** 2, -(x + centre) ** 2]) / (2 * var), axis=0)
        return (weights[0] * (centre - x) + weights[1] * (-centre - x)) / var

    exact = math.log(2) + 0.5 * math.log(2 * math.pi * math.e * width**2)  # the modes overlap by < 1e-50

    def estimate(key, completion):
        sign_key, sample_key, key = jax.random.split(key, 3)
        signs = jnp.where(jax.random.bernoulli(sign_key, 0.5, (64, 4, 1)), 1.0, -1.0)
        u0 = signs * centre + width * jax.random.normal(sample_key, (64, 4, 1))
        return score_entropy(score, u0, schedule, key, std_lo=0.1, completion=completion).mean()

    keys = jax.random.split(jax.random.PRNGKey(0), 40)
    curvature = np.asarray(jax.jit(jax.vmap(lambda k: estimate(k, "curvature")))(keys))
    gaussian = np.asarray(jax.jit(jax.vmap(lambda k: estimate(k, "gaussian")))(keys))
    se = curvature.std(ddof=1) / math.sqrt(len(curvature))
    assert abs(curvature.mean() - exact) < 4.5 * se + 0.02, (curvature.mean(), exact, se)
    assert gaussian.mean() - exact > 0.5, (gaussian.mean(), exact)


def test_score_targets_start_at_score_std_min():
    """t is uniform above the time where the std is score_std_min, so the std is log-uniform from there to σ_max:
    all of it at or above 0.1, half of it above √0.1."""
    schedule = diffusion.VESchedule(1e-5, 1.0)
    q_fn = lambda s, a: -jnp.sum(a**2)
    action = jnp.zeros((4096, 2))
    _, t, _ = score_matching_batch(q_fn, jnp.zeros((4096, 3)), action, ALPHA, schedule, jax.random.PRNGKey(0), 2,
                                   std_min=0.1)
    std = np.asarray(schedule.std(t))
    assert std.min() >= 0.1 * (1 - 1e-4) and std.max() <= 1.0
    assert abs(np.mean(std > math.sqrt(0.1)) - 0.5) < 0.03


CURVATURE_BELOW_01 = dict(score_std_min=0.1, entropy_completion="curvature")


@pytest.mark.parametrize("target, direction, below", [(-6.0, -1, {}), (2.0, +1, {}), (-6.0, -1, CURVATURE_BELOW_01),
                                                      (2.0, +1, CURVATURE_BELOW_01)])
def test_auto_alpha_cools_a_too_wide_policy_and_warms_a_too_narrow_one(target, direction, below):
    """A fresh network's policy is spread over the box (measured entropy 0.45 nats per dimension, near the box's
    maximum log 2): far above a target of −6 (α must fall), and below +2 (α must keep rising); also with the
    entropy completed below std 0.1 from the score's curvature."""
    config = DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3, target_entropy_per_dim=target, **below)
    agent = make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    assert isinstance(state, DQSAutoState)
    state, info = agent.update(state, make_batches(20, 32, 3, 2), jax.random.PRNGKey(1))
    moved = float(state.log_alpha) - math.log(0.3)
    assert direction * moved > 0.01, (moved, info)
    assert -3.0 * 2 < float(info["entropy"]) < math.log(2.0) * 2, info
    assert agent.update.traces == 1


def test_alpha_tuned_every_nth_update_moves_only_there():
    """alpha_update_every=3: log α moves at the 1st, 4th and 7th update and stays put in between, and the logged
    entropy is that of the tuning updates only (the others' are left out of the mean, not counted as NaN)."""
    config = DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3, target_entropy_per_dim=-6.0,
                       alpha_update_every=3)
    agent = make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    moved = []
    for i in range(7):
        before = float(state.log_alpha)
        state, info = agent.update(state, make_batches(1, 32, 3, 2, seed=i), jax.random.PRNGKey(i))
        moved.append(float(state.log_alpha) != before)
        assert np.isnan(float(info["entropy"])) != moved[-1], (i, info)
    assert moved == [True, False, False, True, False, False, True]
    assert agent.update.traces == 1


def test_policy_delay_updates_the_score_net_only_every_nth_update_and_the_critics_at_each():
    """policy_delay=2: the score network moves at the 1st and 3rd update and not at the 2nd and 4th, the critics
    and α at every one, and the skipped updates' actor loss is left out of the logged mean."""
    config = DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3, policy_delay=2)
    agent = make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    changed = lambda a, b: any(bool(jnp.any(x != y)) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                                        jax.tree_util.tree_leaves(b)))
    score_moved = []
    for i in range(4):
        before = state
        state, info = agent.update(state, make_batches(1, 32, 3, 2, seed=i), jax.random.PRNGKey(i))
        score_moved.append(changed(before.score, state.score))
        assert changed(before.critic, state.critic) and float(state.log_alpha) != float(before.log_alpha)
        assert np.isnan(float(info["actor_loss"])) != score_moved[-1], (i, info)
    assert score_moved == [True, False, True, False]
    assert agent.update.traces == 1
    with pytest.raises(ValueError, match="policy_delay"):
        DQSConfig(policy_delay=0)


def test_n_step_lower_bound_takes_the_larger_target_and_leaves_one_step_batches_alone():
    """Under auto (the entropy's chains share the TD target's): one-step rewards far above the n-step targets win on
    every row, far below on none; on one-step rows (no one_step) the option changes nothing."""
    config = DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3)
    bounded = make(DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3, n_step_lower_bound=True), 3, 2)
    batches = make_batches(2, 32, 3, 2)
    for one_step_reward, n_step_share in [(100.0, 0.0), (-100.0, 1.0)]:
        one_step = OneStep(reward=np.full_like(batches.reward, one_step_reward), next_obs=batches.next_obs[:, ::-1],
                           terminated=np.zeros_like(batches.terminated))
        _, info = bounded.update(bounded.init(jax.random.PRNGKey(0)), batches._replace(one_step=one_step),
                                 jax.random.PRNGKey(1))
        np.testing.assert_allclose(info["n_step_share"], n_step_share)
        assert np.isfinite(float(info["entropy"]))
    plain = make(config, 3, 2)
    (want, _), (got, info) = (agent.update(agent.init(jax.random.PRNGKey(0)), batches, jax.random.PRNGKey(1))
                              for agent in (plain, bounded))
    assert "n_step_share" not in info
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)


def test_annealed_entropy_target_moves_linearly_then_stays():
    config = DQSConfig(alpha_schedule="auto", target_entropy_start_per_dim=0.5, target_entropy_per_dim=-1.0,
                       target_entropy_horizon=40)
    values = [float(entropy_target(config, 6, steps)) for steps in (0, 10, 40, 400)]
    np.testing.assert_allclose(values, [3.0, 3.0 - 9.0 / 4, -6.0, -6.0], rtol=1e-6)
    assert float(entropy_target(DQSConfig(target_entropy_per_dim=-0.5), 6, 10**6)) == -3.0


def test_critic_agreement_is_the_shared_share_of_the_variance_over_actions():
    """Two critics f + n_j with independent noise n_j of f's variance share half of it; identical critics agree
    fully, independent ones not at all (standard error 1/√(S·(M−1)) ≈ 0.009 here), and offsets between states,
    which say nothing about the ranking of actions, are left out."""
    rng = np.random.default_rng(0)
    signal, noise = rng.normal(size=(4000, 4)), rng.normal(size=(2, 4000, 4))
    offsets = 100.0 * rng.normal(size=(4000, 1))
    assert float(critic_agreement(jnp.stack([signal, signal + offsets]))) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(critic_agreement(jnp.asarray(noise)))) < 0.04
    assert float(critic_agreement(jnp.asarray(signal + noise))) == pytest.approx(0.5, abs=0.04)
    assert float(critic_agreement(jnp.zeros((2, 3, 4)))) == 0.0  # flat critics: no agreement, no NaN


def test_target_following_the_critics_moves_with_their_agreement():
    config = DQSConfig(alpha_schedule="auto", target_entropy_start_per_dim=0.5, target_entropy_per_dim=-1.0,
                       target_entropy_follows="critics", target_entropy_horizon=1)
    values = [float(entropy_target(config, 2, 10**6, agreement)) for agreement in (-0.3, 0.0, 0.5, 1.0, 1.2)]
    np.testing.assert_allclose(values, [1.0, 1.0, -0.5, -2.0, -2.0], rtol=1e-6)


def test_target_following_the_critics_is_the_logged_agreement_mapped_between_its_ends():
    """One update: the target the temperature step used is the one the agreement it logged gives."""
    config = DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3, target_entropy_start_per_dim=2.0,
                       target_entropy_per_dim=-6.0, target_entropy_follows="critics")
    agent = make(config, 3, 2)
    state, info = agent.update(agent.init(jax.random.PRNGKey(0)), make_batches(1, 32, 3, 2), jax.random.PRNGKey(1))
    agreement = float(info["critic_agreement"])
    assert -1.0 <= agreement <= 1.0 and np.isfinite(float(state.log_alpha))
    assert float(info["target_entropy"]) == pytest.approx(4.0 - 16.0 * min(max(agreement, 0.0), 1.0), abs=1e-5)


@pytest.mark.parametrize("done, direction", [(0, +1), (1000, -1)])
def test_annealed_target_warms_early_and_cools_late(done, direction):
    """The same warm-to-cold target (+2 → −6 nats per dimension over 1000 updates) around a fresh policy of about
    0.45 nats per dimension: α rises at the start, where the target is above the policy's entropy, and falls once
    the horizon has passed; the logged target is the schedule's at the updates run (steps done+1 … done+20)."""
    config = DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3, target_entropy_start_per_dim=2.0,
                       target_entropy_per_dim=-6.0, target_entropy_horizon=1000)
    agent = make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0)).replace(steps=jnp.int32(done))
    state, info = agent.update(state, make_batches(20, 32, 3, 2), jax.random.PRNGKey(1))
    assert direction * (float(state.log_alpha) - math.log(0.3)) > 0.01, info
    expected = np.mean([float(entropy_target(config, 2, done + k)) for k in range(1, 21)])
    assert float(info["target_entropy"]) == pytest.approx(expected, rel=1e-5)


def test_exploring_actions_take_their_noise_from_outside():
    """With the ancestral chain act takes the chain's N + 1 standard normal draws per action in place of its key's:
    the same draws give the same actions whatever the key, other draws other actions, and the noise-free evaluation
    ignores them. The Euler chain takes none."""
    agent = make(DQSConfig(**FEW_STEPS), 3, 2)
    assert agent.noise_dim == (5 + 1) * 2
    assert make(DQSConfig(**SMALL), 3, 2).noise_dim == 0
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 3))
    noise = jax.random.normal(jax.random.PRNGKey(2), (8, agent.noise_dim))
    first, _ = agent.act(state, obs, jax.random.PRNGKey(3), noise=noise)
    second, _ = agent.act(state, obs, jax.random.PRNGKey(4), noise=noise)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    other, _ = agent.act(state, obs, jax.random.PRNGKey(3), noise=-noise)
    assert np.abs(np.asarray(other) - np.asarray(first)).max() > 0.05
    evaluated, _ = agent.act(state, obs, jax.random.PRNGKey(3), True, noise=noise)
    noise_free, _ = agent.act(state, obs, jax.random.PRNGKey(3), True)
    np.testing.assert_array_equal(np.asarray(evaluated), np.asarray(noise_free))


def test_fixed_temperature_state_is_unchanged():
    """Only alpha_schedule=auto adds log α to the state: fixed and geometric runs keep their checkpoint layout."""
    for preset in ("cpu", "maze"):
        state = make(get_algo("dqs").config(preset, **SMALL), 3, 2).init(jax.random.PRNGKey(0))
        assert type(state) is DQSState


@pytest.mark.parametrize("eval_sampler", ["euler", "ode"])
def test_few_step_act_is_in_the_box_and_evaluation_injects_no_noise(eval_sampler):
    agent = make(DQSConfig(**FEW_STEPS, eval_sampler=eval_sampler), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    obs = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    key = jax.random.PRNGKey(2)
    explore = np.asarray(agent.act(state, obs, key, deterministic=False)[0])
    evaluate = np.asarray(agent.act(state, obs, key, deterministic=True)[0])
    assert np.all(np.abs(explore) <= 1.0) and np.all(np.abs(evaluate) <= 1.0) and np.isfinite(explore).all()
    np.testing.assert_array_equal(evaluate, np.asarray(agent.act(state, obs, key, deterministic=True)[0]))
    assert not np.allclose(explore, evaluate)


def test_colder_evaluation_is_the_policy_at_the_scaled_alpha_and_leaves_exploration_alone():
    """eval_alpha_scale c: an evaluation action is the one the same network gives at α·c, the exploring action the
    one at α; the chain's inputs are the same key's."""
    plain = make(DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3), 3, 2)
    colder = make(DQSConfig(**FEW_STEPS, alpha_schedule="auto", alpha=0.3, eval_alpha_scale=0.25), 3, 2)
    state = plain.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (16, 3))
    key, noise = jax.random.PRNGKey(2), jax.random.normal(jax.random.PRNGKey(3), (16, plain.noise_dim))
    at_quarter = state.replace(log_alpha=state.log_alpha + jnp.log(0.25))
    np.testing.assert_allclose(np.asarray(colder.act(state, obs, key, True)[0]),
                               np.asarray(plain.act(at_quarter, obs, key, True)[0]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(colder.act(state, obs, key, True)[0]),
                           np.asarray(plain.act(state, obs, key, True)[0]))
    np.testing.assert_array_equal(np.asarray(colder.act(state, obs, key, noise=noise)[0]),
                                  np.asarray(plain.act(state, obs, key, noise=noise)[0]))


def test_auto_preset_and_bad_options():
    auto = get_algo("dqs").config("auto")
    assert (auto.alpha_schedule, auto.time_grid, auto.sampler_step, auto.denoising_steps) == ("auto", "edm",
                                                                                             "ancestral", 5)
    assert auto.num_mc_samples == get_algo("dqs").config("cpu").num_mc_samples
    assert (auto.target_entropy_start_per_dim, auto.target_entropy_per_dim) == (0.0, -1.0)
    assert (auto.score_std_min, auto.score_loss_weight) == (auto.grid_std_min, "uniform")
    assert get_algo("dqs").preset("auto").train["exploration_noise_beta"] == 0.5
    assert auto.critic_layer_norm and not get_algo("dqs").config("cpu").critic_layer_norm
    assert auto.normalize_obs and not get_algo("dqs").config("cpu").normalize_obs
    for bad, message in [(dict(time_grid="cosine"), "time_grid"), (dict(sampler_step="heun"), "sampler_step"),
                         (dict(entropy_samples=1), "entropy_samples"), (dict(alpha_schedule="sac"), "alpha_schedule"),
                         (dict(time_grid="edm", grid_std_min=2.0), "grid_std_min"),
                         (dict(target_entropy_horizon=0), "target_entropy_horizon"),
                         (dict(target_entropy_follows="time"), "target_entropy_follows"),
                         (dict(target_entropy_follows="critics"), "target_entropy_start_per_dim"),
                         (dict(score_std_min=1.5), "score_std_min"),
                         (dict(score_loss_weight="snr"), "score_loss_weight"),
                         (dict(entropy_completion="exact"), "entropy_completion"),
                         (dict(alpha_update_every=0), "alpha_update_every"),
                         (dict(eval_alpha_scale=0.0), "eval_alpha_scale")]:
        with pytest.raises(ValueError, match=message):
            DQSConfig(**bad)


@pytest.mark.parametrize("beta, noise_horizon, normalize_obs", [(0.0, 0, False), (1.0, 0, False), (1.0, 250, False),
                                                                (0.0, 0, True)])
def test_interrupted_auto_run_resumes_exactly(tmp_path, interruptible, beta, noise_horizon, normalize_obs):
    """The auto preset (tiny networks) stopped mid-run and resumed ends exactly like an uninterrupted run: α and
    its optimiser state live in the agent's state; with pink exploration noise (β = 1) the resumed run draws the
    same noise (the cut falls 20 steps into the run's second episode, after a new sequence began), also while its
    correlated share falls; the observation statistics of normalize_obs are part of the state too."""
    name = interruptible.register("dqs")
    config = get_algo("dqs").config("auto", normalize_obs=normalize_obs,
                                    **{k: v for k, v in SMALL.items() if k != "denoising_steps"})
    cfg = TrainConfig(env="Pendulum-v1", steps=300, warmup_steps=100, batch_size=32, eval_every=100,
                      eval_episodes=1, log_every=50, checkpoint_every=0, seed=1, exploration_noise_beta=beta,
                      exploration_noise_horizon=noise_horizon)
    train(name, config, cfg, tmp_path / "full", verbose=False)
    interruptible.cut(name, config, cfg, tmp_path / "cut", after=120)
    train(name, config, cfg, tmp_path / "cut", resume=True, verbose=False)
    for part in ("eval.csv", "checkpoint/agent.msgpack"):
        full, cut = ((tmp_path / run / part).read_bytes() for run in ("full", "cut"))
        if part.endswith(".csv"):  # without the wall-time column
            full, cut = ([line.split(b",")[:2] for line in text.splitlines()] for text in (full, cut))
        assert full == cut, part
    assert interruptible.compilations() == [1]
