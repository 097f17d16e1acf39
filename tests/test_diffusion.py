"""Schedules, samplers and score targets of `boltzrl.diffusion`, checked against a Gaussian target N(μ, Σ),
whose noised marginals and scores are known in closed form.

VP: p_t = N(√ᾱ μ, C_t), C_t = ᾱΣ + (1 − ᾱ)I, ε*(x) = √(1 − ᾱ)·C_t⁻¹(x − √ᾱ μ).
VE: p_t = N(μ, Σ + h(t)I), score −(Σ + h(t)I)⁻¹(x − μ).
Monte-Carlo tolerances are 4.5 standard errors (two-sided p ≈ 7e-6 per check), on top of any bias that is
computed exactly (the sampler's time discretisation).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from boltzrl import diffusion as D
from boltzrl.diffusion.samplers import probability_flow_heun, ve_ancestral
from boltzrl.diffusion.schedules import ve_time_grid
from boltzrl.nets import EpsNet

MU = np.array([0.3, -0.2])
SIGMA = np.array([[0.2, 0.08], [0.08, 0.05]])  # std 0.48 and 0.12 along its axes, correlated
Z = 4.5


def gaussian_energy(mu, cov):
    """E(x) = ½(x − μ)ᵀΣ⁻¹(x − μ) for x (..., d)."""
    prec = jnp.asarray(np.linalg.inv(cov), jnp.float32)
    mu = jnp.asarray(mu, jnp.float32)
    return lambda x: 0.5 * jnp.einsum("...i,ij,...j->...", x - mu, prec, x - mu)


def shifted_inverse(cov, scale, shift):
    """(scale·Σ + shift·I)⁻¹ through Σ's eigendecomposition (cheaper to compile than a batched inverse)."""
    lam, vecs = np.linalg.eigh(cov)
    lam, vecs = jnp.asarray(lam, jnp.float32), jnp.asarray(vecs, jnp.float32)
    return (vecs / (scale * lam + shift)) @ vecs.T


def vp_eps_exact(schedule, mu=MU, cov=SIGMA):
    """ε*(x, t) of the VP-noised Gaussian for a scalar step index t."""
    mu = jnp.asarray(mu, jnp.float32)

    def eps(x, t):
        ab = schedule.alpha_bars[t]
        return jnp.sqrt(1.0 - ab) * (x - jnp.sqrt(ab) * mu) @ shifted_inverse(cov, ab, 1.0 - ab)

    return eps


def ve_score_exact(ve, mu=MU, cov=SIGMA):
    mu = jnp.asarray(mu, jnp.float32)
    return lambda x, t: -(x - mu) @ shifted_inverse(cov, 1.0, ve.variance(t))


def sample_gaussian(key, n, mu, cov):
    chol = jnp.asarray(np.linalg.cholesky(cov), jnp.float32)
    return jnp.asarray(mu, jnp.float32) + jax.random.normal(key, (n, len(mu))) @ chol.T


# ------------------------------------------------------------------------------------------------ schedules


def test_cosine_schedule_endpoints_and_monotone():
    s = D.cosine_schedule(20)
    ab = np.asarray(s.alpha_bars)
    assert s.num_steps == 20 and ab.shape == s.betas.shape == s.alphas.shape == (20,)
    assert 0.99 < ab[0] < 1.0  # step 1 barely noises
    assert ab[-1] < 1e-4  # step T is (almost) pure noise
    assert np.all(np.diff(ab) < 0)
    assert np.all(np.asarray(s.betas) > 0) and np.isclose(np.max(s.betas), 0.999)  # last β hits the clip
    np.testing.assert_allclose(np.cumprod(np.asarray(s.alphas, np.float64)), ab, rtol=1e-5)


def test_linear_schedule_matches_hand_computation():
    s = D.linear_schedule(3, beta_min=0.1, beta_max=0.3, reference_steps=None)
    np.testing.assert_allclose(s.betas, [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(s.alpha_bars, [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.7], rtol=1e-6)
    scaled = D.linear_schedule(3, beta_min=0.1, beta_max=0.3, scale=0.5, reference_steps=None)
    np.testing.assert_allclose(scaled.alpha_bars, [0.95, 0.95 * 0.9, 0.95 * 0.9 * 0.85], rtol=1e-6)
    default = D.linear_schedule(1000)
    assert np.isclose(default.betas[0], 1e-4) and np.isclose(default.betas[-1], 0.02)
    assert np.all(np.diff(np.asarray(default.alpha_bars)) < 0)


def test_short_linear_schedule_reaches_noise_like_the_sdac_code():
    """T = 20 scaled by 0.8 (the SDAC code's chain) stretched to span the 1000-step range: ᾱ_T ≈ 4.9e-6."""
    s = D.linear_schedule(20, scale=0.8)
    np.testing.assert_allclose(np.asarray(s.betas)[[0, -1]], [0.8 * 0.005, 0.8 * 1.0], rtol=1e-5)
    np.testing.assert_allclose(s.alpha_bars[-1], np.prod(1 - 0.8 * np.linspace(0.005, 1.0, 20)), rtol=1e-4)
    assert s.alpha_bars[-1] < 1e-5


@pytest.mark.parametrize("num_steps", [5, 20, 100])
def test_vp_sde_schedule_hits_the_continuous_marginal(num_steps):
    """Σ_t (2t − 1) = T², so ᾱ_T = exp(−(b_min + b_max)/2) for every T, as in the continuous VP-SDE."""
    s = D.vp_sde_schedule(num_steps)
    np.testing.assert_allclose(s.alpha_bars[-1], np.exp(-(0.1 + 10.0) / 2), rtol=1e-5)
    assert np.all(np.diff(np.asarray(s.betas)) > 0)


@pytest.mark.parametrize("num_steps", [1, 5, 20])
def test_edm_vp_schedule_follows_its_noise_to_signal_grid(num_steps):
    """σ_t = √((1 − ᾱ_t)/ᾱ_t) runs from sigma_min to sigma_max on the power grid, and the betas rebuild ᾱ."""
    schedule = D.make_vp_schedule("edm", num_steps, sigma_min=0.05, sigma_max=8.0, rho=3.0)
    ab = np.asarray(schedule.alpha_bars, np.float64)
    sigma = np.sqrt((1 - ab) / ab)
    frac = np.arange(num_steps) / max(num_steps - 1, 1)
    expected = (0.05 ** (1 / 3) + frac * (8.0 ** (1 / 3) - 0.05 ** (1 / 3))) ** 3 if num_steps > 1 else np.array([8.0])
    np.testing.assert_allclose(sigma, expected, rtol=2e-3)
    np.testing.assert_allclose(np.cumprod(1 - np.asarray(schedule.betas, np.float64)), ab, rtol=1e-5)


def test_make_vp_schedule_dispatches_and_rejects_unknown_names():
    np.testing.assert_allclose(D.make_vp_schedule("linear", 4, scale=0.8).betas, D.linear_schedule(4, scale=0.8).betas)
    np.testing.assert_allclose(D.make_vp_schedule("cosine", 4).betas, D.cosine_schedule(4).betas)
    with pytest.raises(ValueError, match="unknown VP schedule"):
        D.make_vp_schedule("quadratic", 4)


def test_ve_schedule_endpoints_and_derivative():
    ve = D.VESchedule(sigma_min=1e-5, sigma_max=1.0)
    np.testing.assert_allclose([ve.sigma(0.0), ve.sigma(1.0)], [1e-5, 1.0], rtol=1e-5)
    np.testing.assert_allclose([ve.variance(0.0), ve.variance(1.0)], [0.0, 1.0 - 1e-10], rtol=1e-5, atol=1e-12)
    t = jnp.linspace(0.05, 0.95, 10)
    step = 1e-3
    finite_diff = (ve.variance(t + step) - ve.variance(t - step)) / (2 * step)
    # relative truncation error (2 ln r)²·step²/6 ≈ 1e-4, float32 rounding ≈ 1e-4
    np.testing.assert_allclose(finite_diff, ve.g2(t), rtol=2e-3)
    np.testing.assert_allclose(ve.variance(0.5), 1e-10 * (1e5 - 1), rtol=1e-4)  # accurate where h ≪ 1


# ------------------------------------------------------------------------------------------------ samplers


def chain_moments(steps, mean, cov):
    """Exact law of x ← A x + b + s·z, z ~ N(0, I), from N(mean, cov): the samplers on a Gaussian's exact score
    are such affine chains, so this gives the distribution they produce, time discretisation included."""
    for a, b, s2 in steps:
        mean = a @ mean + b
        cov = a @ cov @ a.T + s2 * np.eye(len(mean))
    return mean, cov


def ddpm_chain(schedule, mu=MU, cov=SIGMA):
    betas = np.asarray(schedule.betas, np.float64)
    ab = np.cumprod(1.0 - betas)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    eye = np.eye(len(mu))
    for t in reversed(range(len(betas))):
        c_inv = np.linalg.inv(ab[t] * cov + (1 - ab[t]) * eye)
        # x̂₀ = (x − √(1−ᾱ)ε*(x))/√ᾱ is affine in x; posterior mean = c₀ x̂₀ + c_t x
        x0_a = (eye - (1 - ab[t]) * c_inv) / np.sqrt(ab[t])
        x0_b = (1 - ab[t]) * c_inv @ mu
        c0 = betas[t] * np.sqrt(ab_prev[t]) / (1 - ab[t])
        ct = (1 - ab_prev[t]) * np.sqrt(1 - betas[t]) / (1 - ab[t])
        yield c0 * x0_a + ct * eye, c0 * x0_b, betas[t] * (1 - ab_prev[t]) / (1 - ab[t])


def ve_chain(ve, num_steps, drift_scale, noise_scale, mu=MU, cov=SIGMA):
    """drift_scale 1, noise 1: Euler–Maruyama; drift_scale ½, noise 0: probability-flow ODE."""
    eye = np.eye(len(mu))
    dt = 1.0 / num_steps
    for i in range(num_steps, 0, -1):
        t = i / num_steps
        g2 = float(ve.g2(t))
        c_inv = np.linalg.inv(cov + float(ve.variance(t)) * eye)
        yield eye - drift_scale * g2 * dt * c_inv, drift_scale * g2 * dt * c_inv @ mu, noise_scale**2 * g2 * dt


def assert_moments(samples, mean, cov):
    """Sample mean and covariance equal (mean, cov) within Z standard errors (Gaussian samples)."""
    x = np.asarray(samples, np.float64)
    n = len(x)
    se_mean = np.sqrt(np.diag(cov) / n)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), Z * se_mean)
    np.testing.assert_array_less(np.abs(np.cov(x.T) - cov), Z * se_cov)


def whitened_error(mean, cov):
    """Distance of N(mean, cov) from N(μ, Σ) in Σ's units: max(‖Σ^{-½}(m − μ)‖, ‖Σ^{-½} C Σ^{-½} − I‖₂)."""
    w = np.linalg.inv(np.linalg.cholesky(SIGMA))
    return max(np.linalg.norm(w @ (mean - MU)), np.linalg.norm(w @ cov @ w.T - np.eye(2), 2))


N_SAMPLES = 20_000


def test_ddpm_reproduces_a_gaussian_with_its_exact_eps():
    schedule = D.cosine_schedule(200)
    sample = jax.jit(lambda key: D.ddpm_sample(vp_eps_exact(schedule), key, (N_SAMPLES, 2), schedule, clip_x0=False))
    mean, cov = chain_moments(ddpm_chain(schedule), np.zeros(2), np.eye(2))
    assert_moments(sample(jax.random.PRNGKey(0)), mean, cov)
    # the chain's own error (0.12 in Σ's units at T = 200: β̃ under-disperses) shrinks like 1/T
    coarse = whitened_error(mean, cov)
    fine = whitened_error(*chain_moments(ddpm_chain(D.cosine_schedule(1000)), np.zeros(2), np.eye(2)))
    assert coarse < 0.2 and fine < 0.35 * coarse


def test_ddpm_clipping_and_init_scale():
    far_mu = np.array([1.5, -1.5])
    schedule = D.cosine_schedule(20)
    key = jax.random.PRNGKey(1)
    eps_fn = vp_eps_exact(schedule, far_mu, SIGMA)
    clipped = D.ddpm_sample(eps_fn, key, (2000, 2), schedule, clip_x0=True, clip_range=0.5)
    unclipped = D.ddpm_sample(eps_fn, key, (2000, 2), schedule, clip_x0=False)
    assert np.max(np.abs(clipped)) <= 0.5 and np.max(np.abs(unclipped)) > 1.0
    # one step with ᾱ = ½ and ε ≡ 0 returns x̂₀ = x_T/√ᾱ, so its std is init_scale·√2
    one_step = D.linear_schedule(1, beta_min=0.5, beta_max=0.5, reference_steps=None)
    x = D.ddpm_sample(lambda x, t: jnp.zeros_like(x), key, (N_SAMPLES, 1), one_step, clip_x0=False, init_scale=0.5)
    assert abs(float(jnp.std(x)) - 0.5 * np.sqrt(2)) < Z * 0.5 * np.sqrt(2) / np.sqrt(2 * N_SAMPLES)


def test_ve_euler_maruyama_reproduces_a_gaussian_with_its_exact_score():
    # σ_max = 10 ≫ data scale, so starting from N(0, h(1)I) instead of p_1 costs ~μ·λ(Σ)/h(1) < 1e-3
    ve, num_steps = D.VESchedule(sigma_min=1e-3, sigma_max=10.0), 500
    sample = jax.jit(lambda key: D.ve_euler_maruyama(ve_score_exact(ve), key, (N_SAMPLES, 2), ve, num_steps))
    mean, cov = chain_moments(ve_chain(ve, num_steps, 1.0, 1.0), np.zeros(2), float(ve.variance(1.0)) * np.eye(2))
    assert whitened_error(mean, cov) < 0.01  # measured 9e-4
    assert_moments(sample(jax.random.PRNGKey(2)), mean, cov)


def test_probability_flow_ode_reproduces_a_gaussian_from_its_exact_prior():
    ve, num_steps = D.VESchedule(sigma_min=1e-3, sigma_max=10.0), 1000
    prior_cov = SIGMA + float(ve.variance(1.0)) * np.eye(2)
    x1 = sample_gaussian(jax.random.PRNGKey(3), N_SAMPLES, MU, prior_cov)
    x0 = jax.jit(lambda x: D.probability_flow_ode(ve_score_exact(ve), x, ve, num_steps))(x1)
    mean, cov = chain_moments(ve_chain(ve, num_steps, 0.5, 0.0), MU, prior_cov)
    assert whitened_error(mean, cov) < 0.08  # measured 0.044: Euler on the ODE is first order
    assert_moments(x0, mean, cov)


@pytest.mark.parametrize("eta", [1.0, 0.0])
def test_ve_samplers_at_the_dqs_defaults_follow_their_discrete_chain(eta):
    """σ_max = 1, 20 steps: the N(0, I) start and the coarse grid shift the law away from N(μ, Σ), but the
    samplers must still produce exactly the law of their discrete chains (η = 0 included: a Gaussian too)."""
    ve, num_steps = D.VESchedule(), 20
    key = jax.random.PRNGKey(4)
    prior = (np.zeros(2), float(ve.variance(1.0)) * np.eye(2))
    x = D.ve_euler_maruyama(ve_score_exact(ve), key, (N_SAMPLES, 2), ve, num_steps, eta=eta)
    assert_moments(x, *chain_moments(ve_chain(ve, num_steps, 1.0, eta), *prior))
    ode = D.probability_flow_ode(ve_score_exact(ve), (N_SAMPLES, 2), ve, num_steps, key=key)
    assert_moments(ode, *chain_moments(ve_chain(ve, num_steps, 0.5, 0.0), *prior))


def test_best_of_n_picks_the_argmax():
    key_a, key_q = jax.random.split(jax.random.PRNGKey(5))
    actions = jax.random.normal(key_a, (3, 4, 8, 2))
    q = jax.random.normal(key_q, (3, 4, 8))
    best = jax.jit(D.best_of_n)(actions, q)
    assert best.shape == (3, 4, 2)
    idx = np.argmax(np.asarray(q), -1)
    expected = np.asarray(actions)[np.arange(3)[:, None], np.arange(4)[None, :], idx]
    np.testing.assert_array_equal(best, expected)


# ------------------------------------------------------------------------------------------------ RSSM / DSM


def test_reverse_draws_invert_the_forward_process():
    schedule = D.cosine_schedule(10)
    a_t = jax.random.normal(jax.random.PRNGKey(6), (5, 2))
    t = jnp.array([0, 2, 4, 6, 9])
    a0, eps = D.rssm_reverse_draws(a_t, t, schedule, jax.random.PRNGKey(7), 16)
    assert a0.shape == eps.shape == (5, 16, 2)
    renoised = D.vp_forward(a0, t[:, None], eps, schedule)
    np.testing.assert_allclose(renoised, jnp.broadcast_to(a_t[:, None], a0.shape), atol=2e-3)
    a0_clipped, eps_clipped = D.rssm_reverse_draws(a_t, t, schedule, jax.random.PRNGKey(7), 16, clip=1.0)
    np.testing.assert_array_equal(eps_clipped, eps)  # the regression targets are untouched
    np.testing.assert_array_equal(a0_clipped, jnp.clip(a0, -1.0, 1.0))
    assert np.max(np.abs(a0)) > 1.0


@pytest.mark.parametrize(
    "mu, cov",
    [(np.array([0.4]), np.array([[0.09]])), (MU, SIGMA)],
    ids=["1d", "2d-anisotropic"],
)
def test_rssm_minimiser_is_the_analytic_eps(mu, cov):
    """At a fixed a_t the RSSM loss is minimised by Σ_j w_j ε^j, a self-normalised importance-sampling
    estimate of E[ε | a_t] = ε*(a_t); its standard error is √(Σ_j w_j²(ε^j − ε̄)²)."""
    schedule, num_draws, d = D.cosine_schedule(20), 100_000, len(mu)
    energy = gaussian_energy(mu, cov)
    eps_exact = vp_eps_exact(schedule, mu, cov)
    for t in [1, 9, 15]:  # ᾱ = 0.97, 0.49, 0.09
        ab = float(schedule.alpha_bars[t])
        key_pts, key_draws = jax.random.split(jax.random.PRNGKey(10 + t))
        a_t = sample_gaussian(key_pts, 4, np.sqrt(ab) * mu, ab * cov + (1 - ab) * np.eye(d))  # typical points of p_t
        a0, eps = D.rssm_reverse_draws(a_t, t, schedule, key_draws, num_draws)
        w = D.rssm_weights(-energy(a0))
        minimiser = jnp.einsum("bm,bmd->bd", w, eps)
        se = jnp.sqrt(jnp.einsum("bm,bmd->bd", w**2, (eps - minimiser[:, None]) ** 2))
        assert np.all(1.0 / np.sum(np.asarray(w) ** 2, -1) > 100)  # effective sample size: the SE is trustworthy
        assert np.max(se) < 0.05
        np.testing.assert_array_less(np.abs(minimiser - eps_exact(a_t, t)), Z * se + 1e-3)
        grad_at_minimiser = jax.grad(D.rssm_loss)(minimiser, eps, w)
        np.testing.assert_allclose(grad_at_minimiser, 0.0, atol=1e-4)  # float32 sums over 1e5 draws


@pytest.mark.parametrize("lower, upper", [(-1e4, 1e4), (-1.0, 2.0), (-3.0, -2.0), (5.0, 7.0), (-50.0, -10.0),
                                          (10.0, 50.0), (-5.5, -5.1), (0.5, 30.0)])
def test_truncated_standard_normal_matches_its_analytic_moments(lower, upper):
    """Mean and std of N(0, 1) truncated to [lower, upper] (scipy's closed form), including intervals deep in a
    tail, where jax.random.truncated_normal returns the wrong end of the interval. 1e5 draws: the mean is
    checked to 4.5 standard errors plus the tail approximation's 2% of the std (used past 5σ only)."""
    from scipy import stats

    key = jax.random.PRNGKey(0)
    z = np.asarray(D.truncated_standard_normal(key, jnp.float32(lower), jnp.float32(upper), (100_000,)))
    mean, std = stats.truncnorm.mean(lower, upper), stats.truncnorm.std(lower, upper)
    assert z.min() >= lower and z.max() <= upper
    tail_bias = 0.0 if min(abs(lower), abs(upper)) < 5 or lower * upper < 0 else 0.02 * std
    assert abs(z.mean() - mean) < Z * std / np.sqrt(len(z)) + tail_bias + 1e-4
    assert abs(z.std() - std) < 0.08 * std


def test_truncated_reverse_draws_stay_in_the_box_and_invert_the_forward_step():
    schedule = D.cosine_schedule(5)
    a_t = jnp.array([[0.9, -0.3], [3.0, -2.5], [0.0, 0.0]])
    for t in range(5):
        a0, eps = D.rssm_reverse_draws(a_t, t, schedule, jax.random.PRNGKey(t), 64, clip=1.0, truncate=True)
        assert np.all(np.abs(np.asarray(a0)) <= 1.0) and np.all(np.isfinite(np.asarray(eps)))
        ab = float(schedule.alpha_bars[t])
        np.testing.assert_allclose(np.sqrt(ab) * a0 + np.sqrt(1 - ab) * eps, np.broadcast_to(a_t[:, None], a0.shape),
                                   atol=1e-4)
    # at the noisiest step q̃ is far wider than the box: truncated draws spread over it, clipped ones hit its faces
    clipped, _ = D.rssm_reverse_draws(a_t, 4, schedule, jax.random.PRNGKey(9), 256, clip=1.0)
    truncated, _ = D.rssm_reverse_draws(a_t, 4, schedule, jax.random.PRNGKey(9), 256, clip=1.0, truncate=True)
    assert np.mean(np.abs(np.asarray(clipped)) == 1.0) > 0.9
    assert np.mean(np.abs(np.asarray(truncated)) > 0.99) < 0.05
    with pytest.raises(ValueError, match="need a box"):
        D.rssm_reverse_draws(a_t, 0, schedule, jax.random.PRNGKey(0), 4, truncate=True)


def test_action_spread_weights_are_a_boltzmann_density_in_units_of_q_spread():
    """Weights = softmax(Q/(temperature·spread)), spread = pooled within-state std of Q at reference actions:
    one scale for the whole batch (not per state), invariant to the reward scale."""
    q = jax.random.normal(jax.random.PRNGKey(3), (4, 6))
    reference = jax.random.normal(jax.random.PRNGKey(4), (4, 8)) * 2.0 + jnp.arange(4.0)[:, None] * 10
    spread = np.sqrt(np.mean(np.var(np.asarray(reference), axis=-1)))  # the state offsets do not count
    w = D.rssm_weights(q, "action_spread", 0.5, reference)
    np.testing.assert_allclose(w, jax.nn.softmax(q / (0.5 * spread), axis=-1), rtol=1e-5)
    for scale in (0.01, 100.0):
        np.testing.assert_allclose(D.rssm_weights(scale * q, "action_spread", 0.5, scale * reference), w, rtol=1e-4)
    with pytest.raises(ValueError, match="needs the energies"):
        D.rssm_weights(q, "action_spread")


def test_rssm_weights_and_losses():
    q = jax.random.normal(jax.random.PRNGKey(8), (4, 6)) * 3.0
    w = D.rssm_weights(q / 0.5)
    np.testing.assert_allclose(w, jax.nn.softmax(q / 0.5, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(D.rssm_weights(q, temperature=0.5), w, rtol=1e-5)
    # normalisation: invariant to an affine change of Q's units, and equal to softmax(((Q − m)/s)/α)
    normed = D.rssm_weights(q, normalize="batch", temperature=0.5)
    np.testing.assert_allclose(D.rssm_weights(7.0 * q - 3.0, normalize="batch", temperature=0.5), normed, rtol=1e-4)
    np.testing.assert_allclose(normed, jax.nn.softmax((q - q.mean()) / q.std() / 0.5, axis=-1), rtol=1e-5)
    # per state: invariant to a different affine change of units in every state (row)
    per_state = D.rssm_weights(q, normalize="per_state", temperature=0.5)
    rescaled = jnp.array([[2.0], [0.1], [5.0], [1.0]]) * q + jnp.array([[1.0], [-4.0], [0.0], [9.0]])
    np.testing.assert_allclose(D.rssm_weights(rescaled, normalize="per_state", temperature=0.5), per_state, rtol=1e-4)
    z = (q - q.mean(-1, keepdims=True)) / q.std(-1, keepdims=True)
    np.testing.assert_allclose(per_state, jax.nn.softmax(z / 0.5, axis=-1), rtol=1e-5)
    assert jnp.all(jax.grad(lambda q: jnp.sum(D.rssm_weights(q) * jnp.arange(6.0)))(q) == 0)
    # the loss: Σ_j w_j ‖ε − ε^j‖², averaged over the batch; no gradient reaches the weights
    eps_pred = jnp.array([[1.0, 0.0]])
    eps_draws = jnp.array([[[0.0, 0.0], [1.0, 2.0]]])
    weights = jnp.array([[0.25, 0.75]])
    assert np.isclose(D.rssm_loss(eps_pred, eps_draws, weights), 0.25 * 1.0 + 0.75 * 4.0)
    assert jnp.all(jax.grad(D.rssm_loss, argnums=2)(eps_pred, eps_draws, weights) == 0)
    assert np.isclose(D.dsm_loss(jnp.array([[1.0, 2.0], [0.0, 0.0]]), jnp.zeros((2, 2))), 2.5)


def train_eps_net(batch_fn, steps, key, d=2, lr=3e-3):
    """Adam (cosine-decayed lr) on a small ε-network; batch_fn(key) -> (a_t, t, loss_fn(pred))."""
    net = EpsNet(hidden=(64, 64), act_dim=d)
    no_obs = jnp.zeros((0,))
    init_key, train_key = jax.random.split(key)
    params = net.init(init_key, no_obs, jnp.zeros((1, d)), jnp.zeros((1,), jnp.int32))
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, 0.1))

    def update(carry, key):
        params, opt_state = carry
        a_t, t, loss_of_pred = batch_fn(key)
        grads = jax.grad(lambda p: loss_of_pred(net.apply(p, no_obs, a_t, t)))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    train = jax.jit(lambda p, k: jax.lax.scan(update, (p, opt.init(p)), jax.random.split(k, steps)))
    (params, _), _ = train(params, train_key)
    return lambda a_t, t: net.apply(params, no_obs, a_t, t)


def eps_rmse_on_typical_grid(eps_net, schedule, t):
    """RMSE against ε* on a 7×7 grid spanning ±1.5 std of p_t (where a policy's noisy actions live)."""
    ab = float(schedule.alpha_bars[t])
    chol = np.linalg.cholesky(ab * SIGMA + (1 - ab) * np.eye(2))
    g = np.stack(np.meshgrid(np.linspace(-1.5, 1.5, 7), np.linspace(-1.5, 1.5, 7)), -1).reshape(-1, 2)
    points = jnp.asarray(np.sqrt(ab) * MU + g @ chol.T, jnp.float32)
    t_vec = jnp.full((len(points),), t, jnp.int32)
    return float(jnp.sqrt(jnp.mean((eps_net(points, t_vec) - vp_eps_exact(schedule)(points, t)) ** 2)))


SCHEDULE_10 = D.cosine_schedule(10)
BATCH = 256
# On the grids below the target ε has RMS ≈ 0.8–1, and ε = √(1−ᾱ)·x (the answer for N(0, I) data) is off by
# 0.65, 0.55, 0.32 at t = 1, 3, 5. Measured RMSE over 3–4 seeds: DSM ≤ 0.07, RSSM ≤ 0.07. With M = 512 the
# self-normalisation bias of the RSSM target is ≤ 0.03 RMS on these grids (with M = 64 it reaches 0.1–0.13
# at t ≥ 7 of this schedule), so the remaining error is the network fit.
CHECK_STEPS = [1, 3, 5]


def test_dsm_trained_network_matches_the_analytic_eps():
    def batch(key):
        k_t, k_x, k_eps = jax.random.split(key, 3)
        t = jax.random.randint(k_t, (BATCH,), 0, SCHEDULE_10.num_steps)
        eps = jax.random.normal(k_eps, (BATCH, 2))
        a_t = D.vp_forward(sample_gaussian(k_x, BATCH, MU, SIGMA), t, eps, SCHEDULE_10)
        return a_t, t, lambda pred: D.dsm_loss(pred, eps)

    eps_net = train_eps_net(batch, 300, jax.random.PRNGKey(20))
    for t in CHECK_STEPS:
        assert eps_rmse_on_typical_grid(eps_net, SCHEDULE_10, t) < 0.1, t


def test_rssm_trained_network_matches_the_analytic_eps():
    """No sample of p: a broad proposal a_t ~ N(0, I) (p's stds are 0.48 and 0.12), M = 512 reverse draws."""
    energy = gaussian_energy(MU, SIGMA)

    def batch(key):
        k_t, k_x, k_draws = jax.random.split(key, 3)
        t = jax.random.randint(k_t, (BATCH,), 0, SCHEDULE_10.num_steps)
        a_t = jax.random.normal(k_x, (BATCH, 2))
        a0, eps = D.rssm_reverse_draws(a_t, t, SCHEDULE_10, k_draws, 512)
        w = D.rssm_weights(-energy(a0))
        return a_t, t, lambda pred: D.rssm_loss(pred, eps, w)

    eps_net = train_eps_net(batch, 400, jax.random.PRNGKey(21))
    for t in CHECK_STEPS:
        assert eps_rmse_on_typical_grid(eps_net, SCHEDULE_10, t) < 0.12, t


# ------------------------------------------------------------------------------------------------ iDEM

IDEM_X = jnp.array([0.5, 0.1])


def noised_score(x, sigma):
    return -np.linalg.solve(SIGMA + sigma**2 * np.eye(2), np.asarray(x) - MU)


def idem_repeats(sigma, num_samples, repeats, key, **kw):
    """`repeats` independent estimates at IDEM_X, through the batched path (x with a leading axis)."""
    energy = gaussian_energy(MU, SIGMA)
    estimate = jax.jit(lambda x, key: D.idem_score(energy, x, sigma, key, num_samples, **kw))
    return np.asarray(estimate(jnp.broadcast_to(IDEM_X, (repeats, 2)), key), np.float64)


def test_idem_bias_shrinks_with_k_and_vanishes():
    """The self-normalised estimator's bias is O(1/K) (measured K·bias ≈ 2–3 here, σ = 0.3)."""
    repeats, sigma = 50_000, 0.3
    true = noised_score(IDEM_X, sigma)
    bias, se = {}, {}
    for k in [8, 32, 128]:
        s = idem_repeats(sigma, k, repeats, jax.random.PRNGKey(k))
        bias[k] = np.linalg.norm(s.mean(0) - true)
        se[k] = np.linalg.norm(s.std(0)) / np.sqrt(repeats)
    assert bias[8] > 10 * se[8]  # finite K is biased
    assert bias[8] > bias[32] > bias[128]
    assert bias[128] < 0.1 * bias[8]  # 1/K predicts 1/16


def test_idem_is_near_exact_at_small_sigma_and_noisy_at_large_sigma():
    key = jax.random.PRNGKey(30)
    small = idem_repeats(0.005, 4, 1, key)[0]
    true_small = noised_score(IDEM_X, 0.005)
    assert np.linalg.norm(small - true_small) < 0.05 * np.linalg.norm(true_small)
    sigmas = jnp.repeat(jnp.array([0.02, 0.3, 1.0]), 2000)  # per-sample σ: one batched call
    spread = np.linalg.norm(idem_repeats(sigmas, 16, len(sigmas), key).reshape(3, 2000, 2).std(1), axis=-1)
    assert spread[0] < spread[1] < spread[2]


def test_idem_richardson_and_clipping():
    energy = gaussian_energy(MU, SIGMA)
    x = jnp.stack([IDEM_X, -IDEM_X])
    noise = jax.random.normal(jax.random.PRNGKey(31), (2, 64, 2))
    full = D.idem_score_from_noise(energy, x, 0.3, noise)
    half = D.idem_score_from_noise(energy, x, 0.3, noise[:, :32])
    richardson = D.idem_score_from_noise(energy, x, 0.3, noise, richardson=True)
    np.testing.assert_allclose(richardson, 2 * full - half, rtol=1e-5)
    # clipping rescales only targets longer than clip_norm and keeps their direction
    norms = np.linalg.norm(full, axis=-1)
    clip = float(np.mean(norms))
    clipped = D.idem_score_from_noise(energy, x, 0.3, noise, clip_norm=clip)
    np.testing.assert_allclose(np.linalg.norm(clipped, axis=-1), np.minimum(norms, clip), rtol=1e-5)
    np.testing.assert_allclose(clipped * norms[:, None], full * np.linalg.norm(clipped, axis=-1)[:, None], rtol=1e-5)
    # Richardson removes the O(1/K) bias (K = 32: plain bias ≈ 0.08 = 15 SE; Richardson's ≈ 1 SE)
    repeats, sigma = 100_000, 0.3
    true = noised_score(IDEM_X, sigma)
    key = jax.random.PRNGKey(32)
    plain = idem_repeats(sigma, 32, repeats, key)
    rich = idem_repeats(sigma, 32, repeats, key, richardson=True)
    se_rich = np.linalg.norm(rich.std(0)) / np.sqrt(repeats)
    assert np.linalg.norm(rich.mean(0) - true) < Z * se_rich < np.linalg.norm(plain.mean(0) - true)


def test_idem_per_sample_sigma_and_context():
    """Per-sample σ (DQS draws t per sample) and a per-sample context (the state) for energy_fn(x, context)."""
    shifts = jnp.array([[0.0, 0.0], [1.0, -1.0], [-0.5, 0.5]])
    sigmas = jnp.array([0.005, 0.01, 0.02])
    base = gaussian_energy(np.zeros(2), SIGMA)
    x = shifts + 0.1
    scores = jax.jit(
        lambda x, s, c, k: D.idem_score(lambda p, c: base(p - c), x, s, k, 8, context=c)
    )(x, sigmas, shifts, jax.random.PRNGKey(33))
    for i in range(3):
        true = -np.linalg.solve(SIGMA + float(sigmas[i]) ** 2 * np.eye(2), np.asarray(x[i] - shifts[i]))
        assert np.linalg.norm(scores[i] - true) < 0.1 * np.linalg.norm(true)


def test_ve_score_loss_weights_by_variance():
    pred = jnp.array([[1.0, 1.0], [0.0, 2.0]])
    target = jnp.zeros((2, 2))
    variance = jnp.array([1.0, 0.0])
    expected = ((1.0 + 1e-3) * 1.0 + 1e-3 * 2.0) / 2
    assert np.isclose(D.ve_score_loss(pred, target, variance), expected)
    assert jnp.all(jax.grad(D.ve_score_loss, argnums=1)(pred, jnp.ones((2, 2)), variance) == 0)


# ------------------------------------------------------------------------------------------------ few-step VE chains
# DQS's schedule (σ ∈ [1e-5, 1]) with 5 or 8 steps. The reference for a sampler started from N(0, h(1)·I) is the
# law of the exact, continuous reverse SDE from that prior: the target itself when h(1) swamps its spread, and for
# a spread comparable with h(1) = 1 the closest any sampler started there can get.


DQS_VE = D.VESchedule()
H1 = float(DQS_VE.variance(1.0))


def scaled_sigma(width):
    """SIGMA rescaled so that its wider axis has std `width` (the other has width/3.9, and they are correlated)."""
    return SIGMA * width**2 / np.linalg.eigvalsh(SIGMA).max()


def reverse_sde_law(mu, cov, h1=H1):
    """Law of x_0 under the exact reverse SDE from x_1 ~ N(0, h1·I): ∫ N(x_1; 0, h1)·p(x_0 | x_1) dx_1."""
    gain = cov @ np.linalg.inv(cov + h1 * np.eye(len(mu)))
    return mu - gain @ mu, cov - gain @ cov + h1 * gain @ gain.T


def sqrt_line(r):
    """Best uniform straight-line fit c₀ + c₁·a to √a on [r, 1] (independent of the sampler's own code)."""
    a = np.linspace(r, 1.0, 20001)
    slope = 1.0 / (1.0 + np.sqrt(r))
    gap = np.sqrt(a) - slope * a
    return 0.5 * (gap.max() + gap.min()), slope


def ancestral_chain(times, mu, cov):
    """`ve_ancestral`'s steps on N(μ, Σ)'s exact score as affine maps x ← A x + b + L z: (A, b, L Lᵀ)."""
    h = np.asarray(DQS_VE.variance(times), np.float64)
    eye = np.eye(len(mu))
    for i in range(len(h) - 1):
        delta = h[i] - h[i + 1]
        a = eye - delta * np.linalg.inv(cov + h[i] * eye)  # x + Δ·s(x) is affine; A is also I + Δ·∂s/∂x
        if i < len(h) - 2:  # the straight-line square root of A
            c0, c1 = sqrt_line(h[i + 1] / h[i])
            root = np.sqrt(delta) * (c0 * eye + c1 * a)
            noise = root @ root.T
        else:  # the last step: the exact square root
            noise = delta * a
        yield a, (eye - a) @ mu, noise


def chain_law(steps, mean, cov):
    """`chain_moments` with a full noise covariance per step."""
    for a, b, noise in steps:
        mean, cov = a @ mean + b, a @ cov @ a.T + noise
    return mean, cov


def gap(mean, cov, ref_mean, ref_cov):
    """max(‖W(m − m_ref)‖, ‖W C Wᵀ − I‖₂) with W = chol(C_ref)⁻¹: distance in the reference's own units."""
    w = np.linalg.inv(np.linalg.cholesky(ref_cov))
    return max(np.linalg.norm(w @ (mean - ref_mean)), np.linalg.norm(w @ cov @ w.T - np.eye(len(mean)), 2))


def test_ve_time_grids():
    np.testing.assert_allclose(ve_time_grid(DQS_VE, 4), [1.0, 0.75, 0.5, 0.25, 0.0])
    for n in (1, 5, 8):
        t = np.asarray(ve_time_grid(DQS_VE, n, "edm", std_min=0.1))
        assert t.shape == (n + 1,) and t[0] == 1.0 and t[-1] == 0.0 and np.all(np.diff(t) < 0)
    t = ve_time_grid(DQS_VE, 5, "edm", std_min=0.1)
    np.testing.assert_allclose(DQS_VE.std(t[-2]), 0.1, rtol=1e-4)
    h = np.asarray(DQS_VE.variance(t))
    assert np.all(h[1:-1] / h[:-2] > 0.27)  # the range the straight-line square root is built for
    tt = jnp.linspace(0.05, 1.0, 7)
    np.testing.assert_allclose(DQS_VE.time_of_variance(DQS_VE.variance(tt)), tt, rtol=1e-4)
    with pytest.raises(ValueError, match="time grid"):
        ve_time_grid(DQS_VE, 5, "cosine")


@pytest.mark.parametrize("num_steps", [5, 8])
@pytest.mark.parametrize("width", [0.05, 0.3, 1.0])
def test_few_step_ancestral_chain_samples_gaussians(width, num_steps):
    """Correlated Gaussians with stds (width, width/3.9), on the edm grid down to std 0.1 (so the narrowest,
    0.013, is resolved only by the last step). On a Gaussian's exact score the chain is affine, so its law is
    computed exactly: its only approximation, the straight-line square root of A on all but the last step (≤ 3.5%
    in the noise's scale on this grid), keeps it within 0.03 of the reference in the reference's own units
    (measured ≤ 0.025), closer than today's Euler chain at N = 20 gets (0.06–0.14); Euler at N = 5 is off by
    more than 1 (by 185× in std at width 0.05). The samples must then follow the chain's law within 4.5 SE."""
    cov = scaled_sigma(width)
    prior = (np.zeros(2), H1 * np.eye(2))
    reference = reverse_sde_law(MU, cov)
    times = ve_time_grid(DQS_VE, num_steps, "edm", std_min=0.1)
    law = chain_law(ancestral_chain(times, MU, cov), *prior)
    euler_20 = gap(*chain_moments(ve_chain(DQS_VE, 20, 1.0, 1.0, MU, cov), *prior), *reference)
    euler_5 = gap(*chain_moments(ve_chain(DQS_VE, 5, 1.0, 1.0, MU, cov), *prior), *reference)
    assert gap(*law, *reference) < min(0.03, euler_20)
    assert not euler_5 < 1.0  # NaN/overflow counts as failing too
    score = ve_score_exact(DQS_VE, MU, cov)
    x = jax.jit(lambda key: ve_ancestral(score, key, (N_SAMPLES, 2), DQS_VE, times))(jax.random.PRNGKey(40))
    assert_moments(x, *law)


def test_ancestral_mean_chain_ends_at_the_posterior_mean():
    """η = 0 keeps only each step's Tweedie mean; on a Gaussian they compose exactly, whatever the grid, to the
    posterior mean of x_0 given the prior draw: μ + v/(v + h(1))·(x_T − μ)."""
    mu, v = 0.4, 0.3**2
    score = lambda x, t: -(x - mu) / (v + DQS_VE.variance(t))
    key = jax.random.PRNGKey(41)
    x_t = np.sqrt(H1) * np.asarray(jax.random.normal(jax.random.split(key)[0], (64, 1)))
    for times in (ve_time_grid(DQS_VE, 5, "edm"), ve_time_grid(DQS_VE, 3)):
        x = ve_ancestral(score, key, (64, 1), DQS_VE, times, eta=0.0)
        np.testing.assert_allclose(x, mu + v / (v + H1) * (x_t - mu), atol=1e-5)


def test_ancestral_chain_with_given_draws_is_the_chain_of_its_keys():
    """Given the very normals its key would draw (the start's, then one per step), the chain returns the same
    samples; and draws of the wrong shape are refused."""
    score = lambda x, t: -(x - 0.3) / (0.2**2 + DQS_VE.variance(t)) + 0.1 * jnp.sin(3.0 * x)
    times, key, shape = ve_time_grid(DQS_VE, 5, "edm"), jax.random.PRNGKey(44), (16, 2)
    start_key, step_key = jax.random.split(key)
    draws = jnp.concatenate([jax.random.normal(start_key, shape)[None],
                             jax.vmap(lambda k: jax.random.normal(k, shape))(jax.random.split(step_key, 5))])
    np.testing.assert_allclose(ve_ancestral(score, jax.random.PRNGKey(0), shape, DQS_VE, times, draws=draws),
                               ve_ancestral(score, key, shape, DQS_VE, times), atol=1e-6)
    with pytest.raises(ValueError, match="draws must have shape"):
        ve_ancestral(score, key, shape, DQS_VE, times, draws=draws[1:])


def mixture_score(means, stds, weights):
    """Exact score of Σ_k w_k·N(μ_k, (σ_k² + h(t))·I) for x (n, d)."""
    means, var, log_w = jnp.asarray(means), jnp.asarray(stds) ** 2, jnp.log(jnp.asarray(weights))

    def score(x, t):
        v = var + DQS_VE.variance(t)
        diff = x[:, None, :] - means
        logits = log_w - 0.5 * jnp.sum(diff**2, -1) / v - 0.5 * x.shape[-1] * jnp.log(v)
        return jnp.einsum("nk,nkd->nd", jax.nn.softmax(logits, -1), -diff / v[:, None])

    return score


def mixture_reverse_sde_samples(rng, n, means, stds, weights):
    """Exact samples of the reverse SDE's law from N(0, h(1)·I): x_1 from the prior, the component from its
    posterior responsibility at x_1, x_0 from that component's Gaussian posterior."""
    means, var = np.asarray(means), np.asarray(stds) ** 2
    x1 = np.sqrt(H1) * rng.normal(size=(n, means.shape[1]))
    total = var + H1
    logits = np.log(weights) - 0.5 * ((x1[:, None] - means) ** 2).sum(-1) / total - 0.5 * means.shape[1] * np.log(total)
    r = np.exp(logits - logits.max(1, keepdims=True))
    k = (rng.random(n)[:, None] > np.cumsum(r / r.sum(1, keepdims=True), 1)).sum(1)
    shrink = (var / total)[k, None]
    return means[k] + shrink * (x1 - means[k]) + np.sqrt(var[k] * H1 / total[k])[:, None] * rng.normal(size=x1.shape)


def mode_statistics(x, means, stds):
    """Share of the nearest mode 0, each mode's mean and RMS spread per dimension (over points within 4 of its
    stds, in its units), and the share of points farther than that from both."""
    x, means, stds = np.asarray(x, np.float64), np.asarray(means), np.asarray(stds)
    dist = np.sqrt(((x[:, None] - means) ** 2).mean(-1)) / stds
    k = dist.argmin(1)
    near = dist[np.arange(len(x)), k] < 4.0
    mean = [x[(k == j) & near].mean(0) for j in range(len(means))]
    spread = [np.sqrt((dist[(k == j) & near, j] ** 2).mean()) for j in range(len(means))]
    return np.mean(k == 0), np.array(mean), np.array(spread), 1.0 - near.mean()


MIXTURES = {  # two modes 1.2–1.3 apart with weights 0.7 / 0.3: along a diagonal in 2-D, and of unequal widths
    "diagonal-2d": ([[-0.45, -0.45], [0.45, 0.45]], [0.1, 0.1]),
    "unequal-1d": ([[-0.6], [0.6]], [0.05, 0.2]),
}


@pytest.mark.parametrize("num_steps, spread_tol, far_tol", [(5, 0.2, 0.015), (8, 0.1, 0.005)])
@pytest.mark.parametrize("mixture", sorted(MIXTURES))
def test_few_step_ancestral_chain_samples_a_two_mode_mixture(mixture, num_steps, spread_tol, far_tol):
    """Against exact samples of the reverse SDE's law: the mode weights within 4.5 SE + 0.01, each mode's mean
    within 0.2 of its std, its spread within spread_tol, at most far_tol of the samples more than 4 stds from both
    modes, and weights and spreads no further off than today's Euler chain at N = 20. Measured: weights within
    0.008 (Euler at N = 20: 0.013–0.074), spreads 3–17% wide at N = 5 and 1–8% at N = 8 (Euler at N = 20: 6–23%;
    the widest is the broad mode of the unequal pair, which collects the few samples left between the modes:
    0.3% at N = 5, 0.1% at N = 8). Euler at N = 5 puts 0.04–0.4 on mode 0 instead of 0.66–0.70, spreads 2–3× wide."""
    means, stds = MIXTURES[mixture]
    weights = [0.7, 0.3]
    score = mixture_score(means, stds, weights)
    shape = (N_SAMPLES, len(means[0]))
    ref = mode_statistics(mixture_reverse_sde_samples(np.random.default_rng(42), N_SAMPLES, means, stds, weights),
                          means, stds)
    times = ve_time_grid(DQS_VE, num_steps, "edm", std_min=0.1)
    got = mode_statistics(ve_ancestral(score, jax.random.PRNGKey(43), shape, DQS_VE, times), means, stds)
    euler = {n: mode_statistics(D.ve_euler_maruyama(score, jax.random.PRNGKey(43), shape, DQS_VE, n), means, stds)
             for n in (5, 20)}
    weight_err = {name: abs(stats[0] - ref[0]) for name, stats in [("got", got), ("euler_20", euler[20])]}
    spread_err = {name: np.abs(stats[2] / ref[2] - 1.0).max()
                  for name, stats in [("got", got), ("euler_20", euler[20])]}
    assert weight_err["got"] < Z * np.sqrt(2 * ref[0] * (1 - ref[0]) / N_SAMPLES) + 0.01, (got[0], ref[0])
    assert np.all(np.abs(got[1] - ref[1]) < 0.2 * np.asarray(stds)[:, None]), (got[1], ref[1])
    assert spread_err["got"] < spread_tol and got[3] < far_tol, (got, ref)
    assert weight_err["got"] < weight_err["euler_20"] + 0.01 and spread_err["got"] < spread_err["euler_20"] + 0.02
    assert abs(euler[5][0] - ref[0]) > 0.1 or np.any(euler[5][2] > 1.5 * ref[2])


def test_probability_flow_heun_converges_at_second_order():
    """From the exact p_1 = N(μ, Σ + h(1)·I) the probability flow maps each point to μ + Σ^{½}(Σ + h(1))^{-½}(x − μ)
    (here Σ = v·I, 1-D). Heun on the edm grid to std 0.1 and the exact-for-Gaussians last step: the error falls
    ≈ 5× per doubling of N (measured 5.3× and 4.6×); at N = 5 the largest over 256 points (up to 3 stds out) is
    0.035, 4% of the output's std per std of distance from μ."""
    mu, v = 0.4, 0.3**2
    score = lambda x, t: -(x - mu) / (v + DQS_VE.variance(t))
    x1 = mu + np.sqrt(v + H1) * np.asarray(jax.random.normal(jax.random.PRNGKey(44), (256, 1)))
    exact = mu + np.sqrt(v / (v + H1)) * (x1 - mu)
    err = {n: np.abs(np.asarray(probability_flow_heun(score, x1, DQS_VE, ve_time_grid(DQS_VE, n, "edm"))) - exact).max()
           for n in (5, 10, 20)}
    assert err[5] < 0.15 * np.sqrt(v) and err[10] < 0.3 * err[5] and err[20] < 0.3 * err[10], err
