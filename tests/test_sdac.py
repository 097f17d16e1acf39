"""SDAC: its options are wired, its RSSM weights follow Q, and it learns Pendulum with the cpu preset."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from boltzrl import diffusion as D, nets
from boltzrl.agents import get_algo
from boltzrl.agents.sdac import SDACConfig
from boltzrl.training import TrainConfig, train
from conftest import make_batches

TINY = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), denoising_steps=3, num_candidates=3, num_draws=5)


@pytest.mark.parametrize("proposal, schedule, q_normalization",
                         [("policy", "cosine", "batch"), ("replay", "linear", "per_state"),
                          ("uniform", "vp_sde", "none"), ("acting", "edm", "action_spread")])
def test_every_proposal_and_schedule_trains(proposal, schedule, q_normalization):
    spec = get_algo("sdac")
    config = spec.config(None, proposal=proposal, schedule=schedule, q_normalization=q_normalization, **TINY)
    agent = spec.make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    before = jax.tree_util.tree_leaves(state.policy)[0]
    state, info = agent.update(state, make_batches(), jax.random.PRNGKey(1))
    assert np.isfinite(float(info["actor_loss"])) and np.isfinite(float(info["critic_loss"]))
    assert not np.allclose(before, jax.tree_util.tree_leaves(state.policy)[0])


def test_alpha_moves_toward_the_target_entropy():
    """Noise std 0.1·α = 0.5 has entropy far above −0.9 per dimension, so α must fall."""
    spec = get_algo("sdac")
    agent = spec.make(spec.config(None, alpha_every=1, **TINY), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    state, info = agent.update(state, make_batches(n=20), jax.random.PRNGKey(1))
    assert float(jnp.exp(state.log_alpha)) < 5.0


@pytest.mark.parametrize("target, direction", [(0.05, -1), (0.9, +1)])
def test_auto_temperature_cools_a_too_wide_policy_and_warms_a_too_narrow_one(target, direction):
    """A fresh chain's samples spread ≈ 0.6 per dimension: wider than 0.05, narrower than 0.9 (wider than the
    box allows, so the temperature must keep rising). Every update's measured std is logged."""
    spec = get_algo("sdac")
    config = spec.config(None, auto_temperature=True, target_policy_std=target, energy_scale=0.3,
                         temperature_follows_alpha=False, policy_delay=1, std_states=8, std_samples=4, **TINY)
    agent = spec.make(config, 3, 2)
    state, info = agent.update(agent.init(jax.random.PRNGKey(0)), make_batches(n=20), jax.random.PRNGKey(1))
    moved = float(state.log_temperature) - np.log(0.3)
    assert direction * moved > 0.01, (moved, info)
    assert 0.3 < float(info["policy_std"]) < 0.8, info


def test_evaluation_takes_the_best_of_eval_candidates_while_acting_takes_one_sample():
    """With eval_candidates = 16 the evaluation action is the best of 16 policy samples under the critic, so its Q
    exceeds that of the one-sample behaviour action at almost every state; both stay in the box."""
    spec = get_algo("sdac")
    config = spec.config(None, **{**TINY, "num_candidates": 1}, eval_candidates=16, noise_scale=0.0,
                         autotune_alpha=False)
    agent = spec.make(config, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
    greedy, _ = agent.act(state, obs, jax.random.PRNGKey(2), deterministic=True)
    behaviour, _ = agent.act(state, obs, jax.random.PRNGKey(2), deterministic=False)
    critic = nets.Critics(2, TINY["critic_hidden"], "mish")
    q = lambda a: critic.apply(state.critic, obs, a).min(0)
    assert np.all(np.abs(greedy) <= 1.0) and np.all(np.abs(behaviour) <= 1.0)
    assert float(jnp.mean(q(greedy) > q(behaviour))) > 0.9


def test_noise_free_evaluation_is_a_deterministic_function_of_the_state():
    spec = get_algo("sdac")
    agent = spec.make(spec.config(None, **{**TINY, "num_candidates": 1}, eval_noise_scale=0.0), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 3))
    first, second = (agent.act(state, obs, jax.random.PRNGKey(k), deterministic=True)[0] for k in (2, 3))
    np.testing.assert_allclose(first, second)
    sampled = [agent.act(state, obs, jax.random.PRNGKey(k), deterministic=False)[0] for k in (2, 3)]
    assert not np.allclose(*sampled)


def test_action_ascent_raises_the_critics_value_of_every_action_and_stays_in_the_box():
    spec = get_algo("sdac")
    base = dict(TINY, num_candidates=1, noise_scale=0.0, autotune_alpha=False)
    plain, refined = (spec.make(spec.config(None, **base, action_ascent_steps=steps), 3, 2) for steps in (0, 10))
    state = plain.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
    critic = nets.Critics(2, TINY["critic_hidden"], "mish")
    q = lambda a: critic.apply(state.critic, obs, a).min(0)
    for deterministic in (False, True):
        before, _ = plain.act(state, obs, jax.random.PRNGKey(2), deterministic=deterministic)
        after, _ = refined.act(state, obs, jax.random.PRNGKey(2), deterministic=deterministic)
        assert np.all(np.abs(after) <= 1.0)
        assert float(jnp.mean(q(after) > q(before))) > 0.9


def test_target_ascent_raises_the_td_targets_next_action_value(monkeypatch):
    """With target_ascent_steps the TD target values the ascended next action, as the agent acts, not the raw
    policy sample: the target critics' min Q of the next actions rises."""
    import boltzrl.agents.sdac as sdac

    critic = nets.Critics(2, TINY["critic_hidden"], "mish")

    def recording_update(critic_net, opt, state, batch, next_action, *args, **kwargs):
        state_after, info = critic_update(critic_net, opt, state, batch, next_action, *args, **kwargs)
        next_q = critic.apply(state.target_critic, batch.next_obs, next_action).min(0).mean()
        return state_after, {**info, "next_q": next_q}

    critic_update = sdac.critic_update
    monkeypatch.setattr(sdac, "critic_update", recording_update)
    spec = get_algo("sdac")
    base = dict(TINY, num_candidates=1, noise_scale=0.0, autotune_alpha=False, action_ascent_lr=0.1)
    plain, ascended = (spec.make(spec.config(None, **base, target_ascent_steps=steps), 3, 2) for steps in (0, 5))
    state, batches = plain.init(jax.random.PRNGKey(0)), make_batches(1, 64)
    next_q = [float(agent.update(state, batches, jax.random.PRNGKey(1))[1]["next_q"]) for agent in (plain, ascended)]
    assert next_q[1] > next_q[0]
    with pytest.raises(ValueError, match="target_ascent_steps must be non-negative"):
        SDACConfig(target_ascent_steps=-1)


def test_bad_proposal_and_state_counts_are_rejected():
    with pytest.raises(ValueError, match="proposal must be one of"):
        SDACConfig(proposal="gaussian")
    with pytest.raises(ValueError, match="spread_states must be 0"):
        SDACConfig(spread_states=-1)


@pytest.mark.slow
def test_sdac_cpu_preset_learns_pendulum(tmp_path):
    """SAC's threshold in this suite (≥ −250 at 10k steps), reached in half the steps and on minibatches of 64, which
    keep the test cheap: measured −141 and −153 at 5k (seeds 0, 1; −142 and −153 with the earlier fixed temperature
    of 0.05 in Q's units; −409 and −351 at 4k)."""
    spec = get_algo("sdac")
    preset = spec.preset("cpu")
    cfg = TrainConfig(**{**preset.train, "env": "Pendulum-v1", "steps": 5_000, "warmup_steps": 2_000,
                         "batch_size": 64, "eval_every": 5_000, "eval_episodes": 10, "checkpoint_every": 0})
    summary = train("sdac", spec.config("cpu"), cfg, tmp_path / "run", verbose=False)
    assert summary["final_eval_return"] >= -250, summary


# ------------------------------------------------------------------ RSSM against a known Boltzmann policy

MODES, MODE_STD, MODE_WEIGHTS = np.array([-0.5, 0.5]), 0.12, np.array([0.7, 0.3])


def _two_mode_q(a):
    """Q(a)/α = log of a two-mode Gaussian mixture on [-1, 1] (α = 1): exp(Q/α) puts 0.7 / 0.3 on the modes."""
    comp = jnp.log(MODE_WEIGHTS) - 0.5 * ((a - MODES) / MODE_STD) ** 2
    return jax.scipy.special.logsumexp(comp, axis=-1)


def _fit_rssm(proposal: str, temperature: float, steps=1000, batch=128, num_steps=10, num_draws=32):
    """The SDAC policy loss (truncated reverse draws, weights softmax(Q/temperature)) on a fixed Q, one state.
    replay: a memory of uniform actions, which a policy that only clones its proposal would reproduce."""
    schedule = D.make_vp_schedule("cosine", num_steps)
    net = nets.EpsNet((64, 64), 1, "relu")
    obs = jnp.zeros((batch, 1))
    params = net.init(jax.random.PRNGKey(0), obs, jnp.zeros((batch, 1)), jnp.zeros((), jnp.int32))
    opt = optax.adam(1e-3)

    def sample(params, key, n):
        return D.ddpm_sample(lambda x, t: net.apply(params, jnp.zeros((n, 1)), x, t), key, (n, 1), schedule)

    @jax.jit
    def fit(params, key):
        def step(carry, key):
            params, opt_state = carry
            k_t, k_a, k_noise, k_draw = jax.random.split(key, 4)
            t = jax.random.randint(k_t, (batch,), 0, num_steps)
            a0 = (sample(params, k_a, batch) if proposal == "policy"
                  else jax.random.uniform(k_a, (batch, 1), minval=-1.0, maxval=1.0))
            a_t = D.vp_forward(a0, t, jax.random.normal(k_noise, a0.shape), schedule)
            draws, eps = D.rssm_reverse_draws(a_t, t, schedule, k_draw, num_draws, clip=1.0, truncate=True)
            weights = D.rssm_weights(_two_mode_q(draws), temperature=temperature)
            grads = jax.grad(lambda p: D.rssm_loss(net.apply(p, obs, a_t, t), eps, weights))(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
        return sample(params, jax.random.PRNGKey(99), 4000)[:, 0]

    return np.asarray(fit(params, jax.random.PRNGKey(1)))


def _matches_two_mode_target(a) -> tuple[bool, str]:
    """Mode weights within 0.06 of (0.7, 0.3) (4000 samples: SE 0.007; the rest is the fit's bias after 1000
    updates, measured 0.02); at least 85 % of the samples within 2.5 mode-stds of a mode (exact samples 98.8 %,
    the fit 91 %, a uniform policy 60 %); MMD² (Gaussian kernel, width 0.1) to exact samples below 0.04 (exact
    samples 0.0005, the fit 0.019, a uniform policy 0.16)."""
    rng = np.random.default_rng(0)
    exact = rng.choice(MODES, 4000, p=MODE_WEIGHTS) + MODE_STD * rng.normal(size=4000)
    exact = exact[np.abs(exact) <= 1][:2000]
    x = a[:2000]
    kernel = lambda u, v: np.exp(-((u[:, None] - v[None]) ** 2) / (2 * 0.1**2))
    mmd2 = kernel(x, x).mean() + kernel(exact, exact).mean() - 2 * kernel(x, exact).mean()
    left = float(np.mean(a < 0))
    near = float(np.mean(np.min(np.abs(a[:, None] - MODES), axis=1) < 2.5 * MODE_STD))
    ok = abs(left - 0.7) < 0.06 and near > 0.85 and mmd2 < 0.04
    return ok, f"left-mode weight {left:.3f}, near a mode {near:.3f}, MMD² {mmd2:.4f}"


@pytest.mark.parametrize("proposal", ["policy", "replay"])
def test_rssm_learns_a_known_two_mode_boltzmann_policy(proposal):
    ok, stats = _matches_two_mode_target(_fit_rssm(proposal, temperature=1.0))
    assert ok, stats


def test_a_policy_that_clones_its_proposal_fails_the_known_policy_check():
    """Uniform weights (infinite temperature) reduce RSSM to cloning the replay memory: the check must catch it."""
    ok, stats = _matches_two_mode_target(_fit_rssm("replay", temperature=1e6))
    assert not ok, stats


def test_scale_free_temperature_keeps_a_useful_effective_sample_size_across_reward_scales():
    """The RSSM weights of the `cpu` preset's default temperature at reward scales 0.01–100: neither collapsed
    onto one draw (ESS ≈ 1: the policy chases critic noise) nor uniform (ESS ≈ M: it only clones its proposal), and
    the same at every scale. Q is a synthetic critic, −‖a − c(s)‖² plus a ripple, times the scale."""
    config = get_algo("sdac").config("cpu")
    assert config.q_normalization == "action_spread" and not config.temperature_follows_alpha
    schedule = D.make_vp_schedule(config.schedule, config.denoising_steps)
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    batch, d, m = 256, 6, config.num_draws
    centres = jax.random.uniform(keys[0], (batch, 1, d), minval=-0.8, maxval=0.8)
    q_unit = lambda a: -jnp.sum((a - centres) ** 2, -1) + 0.1 * jnp.sin(5 * a).sum(-1)
    t = jax.random.randint(keys[1], (batch,), 0, config.denoising_steps)
    a0 = jax.random.uniform(keys[2], (batch, d), minval=-1.0, maxval=1.0)
    a_t = D.vp_forward(a0, t, jax.random.normal(keys[3], a0.shape), schedule)
    draws, _ = D.rssm_reverse_draws(a_t, t, schedule, keys[4], m, clip=1.0, truncate=config.truncated_draws)
    reference = q_unit(jax.random.uniform(keys[0], (batch, config.spread_actions, d), minval=-1.0, maxval=1.0))
    ess = []
    for scale in (0.01, 1.0, 100.0):
        w = D.rssm_weights(scale * q_unit(draws), config.q_normalization, config.energy_scale, scale * reference)
        ess.append(float(jnp.mean(1.0 / jnp.sum(w**2, -1))))
    assert all(1.5 < e < 0.8 * m for e in ess), ess
    np.testing.assert_allclose(ess, ess[0], rtol=1e-3)
