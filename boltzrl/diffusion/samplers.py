"""Reverse-time samplers (DDPM ancestral; VE Euler–Maruyama, VE ancestral and the probability-flow ODE, Euler or
Heun) and best-of-N selection.

Each sampler is one `lax.scan` over the steps, so a whole chain compiles to a single loop under `jax.jit`
(shapes and step counts are static). The network is passed in as a function of (x, time)."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from boltzrl.diffusion.schedules import VESchedule, VPSchedule


def ddpm_sample(
    eps_fn: Callable,
    key: jax.Array,
    shape: Sequence[int],
    schedule: VPSchedule,
    clip_x0: bool = True,
    init_scale: float = 1.0,
    clip_range: float = 1.0,
    noise_scale: float = 1.0,
) -> jnp.ndarray:
    """Ancestral DDPM sampling from init_scale·N(0, I).

    eps_fn(x, t_index) predicts ε at step index t_index (a scalar int32 array, 0..T−1, broadcastable to
    x[..., 0]). Each step forms x̂₀ = (x_t − √(1 − ᾱ_t)·ε)/√ᾱ_t, clips it to [−clip_range, clip_range] when
    clip_x0, and draws x_{t−1} from the Gaussian posterior q(x_{t−1} | x_t, x̂₀) with variance
    β̃_t = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t) (zero at the last step). With clip_x0 the returned sample is clipped too.
    noise_scale multiplies the noise of the intermediate steps (DIPO's noise ratio): with init_scale scaled alike,
    below 1 the chain samples a sharper distribution than the one it learnt, and 0 with init_scale 0 makes it a
    deterministic map of the state (a mode-seeking action).
    """
    shape = tuple(shape)
    init_key, noise_key = jax.random.split(key)
    ab = schedule.alpha_bars
    ab_prev = jnp.concatenate([jnp.ones((1,), ab.dtype), ab[:-1]])
    coef_x0 = schedule.betas * jnp.sqrt(ab_prev) / (1.0 - ab)
    coef_xt = (1.0 - ab_prev) * jnp.sqrt(schedule.alphas) / (1.0 - ab)
    post_std = jnp.sqrt(schedule.betas * (1.0 - ab_prev) / (1.0 - ab))

    def step(x, inputs):
        t, step_key = inputs
        eps = eps_fn(x, t)
        x0 = (x - jnp.sqrt(1.0 - ab[t]) * eps) / jnp.sqrt(ab[t])
        if clip_x0:
            x0 = jnp.clip(x0, -clip_range, clip_range)
        mean = coef_x0[t] * x0 + coef_xt[t] * x
        return mean + noise_scale * post_std[t] * jax.random.normal(step_key, shape), None

    x = init_scale * jax.random.normal(init_key, shape)
    steps = jnp.arange(schedule.num_steps - 1, -1, -1, dtype=jnp.int32)
    x, _ = jax.lax.scan(step, x, (steps, jax.random.split(noise_key, schedule.num_steps)))
    return jnp.clip(x, -clip_range, clip_range) if clip_x0 else x


def _ve_time_grid(num_steps: int) -> jnp.ndarray:
    """t = 1, 1 − 1/N, ..., 1/N: each step moves from t to t − 1/N, ending at t = 0."""
    return jnp.arange(num_steps, 0, -1, dtype=jnp.float32) / num_steps


def ve_euler_maruyama(
    score_fn: Callable,
    key: jax.Array,
    shape: Sequence[int],
    schedule: VESchedule,
    num_steps: int,
    eta: float = 1.0,
) -> jnp.ndarray:
    """Reverse VE SDE from x ~ N(0, h(1)·I) at t = 1 to t = 0 in num_steps Euler–Maruyama steps:
    x ← x + g²(t)·s(x, t)·dt + η·g(t)·√dt·z. score_fn(x, t) gets t as a scalar float32 array.
    η = 1 samples the reverse SDE; η = 0 is a deterministic (but not probability-flow) sampler."""
    shape = tuple(shape)
    init_key, noise_key = jax.random.split(key)
    dt = 1.0 / num_steps

    def step(x, inputs):
        t, step_key = inputs
        g2 = schedule.g2(t)
        noise = jax.random.normal(step_key, shape)
        return x + g2 * score_fn(x, t) * dt + eta * jnp.sqrt(g2 * dt) * noise, None

    x = jnp.sqrt(schedule.variance(1.0)) * jax.random.normal(init_key, shape)
    x, _ = jax.lax.scan(step, x, (_ve_time_grid(num_steps), jax.random.split(noise_key, num_steps)))
    return x


def probability_flow_ode(
    score_fn: Callable,
    shape_or_x_init,
    schedule: VESchedule,
    num_steps: int,
    key: jax.Array | None = None,
) -> jnp.ndarray:
    """Euler integration of the VE probability-flow ODE dx = −½g²(t)·s(x, t)·dt from t = 1 to t = 0 on the
    same grid as `ve_euler_maruyama`. Starts from N(0, h(1)·I) (needs key) when given a shape (tuple/list),
    or from the given array."""
    if isinstance(shape_or_x_init, (tuple, list)):
        if key is None:
            raise ValueError("probability_flow_ode needs a PRNG key to draw its initial point from a shape.")
        x = jnp.sqrt(schedule.variance(1.0)) * jax.random.normal(key, tuple(shape_or_x_init))
    else:
        x = jnp.asarray(shape_or_x_init, jnp.float32)
    dt = 1.0 / num_steps

    def step(x, t):
        return x + 0.5 * schedule.g2(t) * score_fn(x, t) * dt, None

    x, _ = jax.lax.scan(step, x, _ve_time_grid(num_steps))
    return x


VE_STEPS = ("euler", "ancestral")
ANCESTRAL_NOISE = ("jacobian", "point_mass")


def _grid_pairs(schedule: VESchedule, times):
    """(t_i, h_i, h_{i+1}) for each step of a grid from `diffusion.ve_time_grid` (times (N + 1,), decreasing)."""
    times = jnp.asarray(times, jnp.float32)
    h = schedule.variance(times)
    return times[:-1], h[:-1], h[1:]


def _sqrt_line(r):
    """(c₀, c₁) of the best uniform straight-line fit c₀ + c₁·a to √a on [r, 1]: the chord's slope 1/(1 + √r), raised
    by half its largest gap to √a (at √a = (1 + √r)/2). Its relative error is 3% at r = 0.3 and 1% at r = 0.5."""
    root = jnp.sqrt(r)
    slope = 1.0 / (1.0 + root)
    chord = root - slope * r
    tangent = 0.5 * (1.0 + root)
    return chord + 0.5 * (tangent - chord - slope * tangent**2), slope


def jacobian_rows(fn, x):
    """∂fn/∂x of a row-wise fn at every row of x (..., d): (..., d, d), one JVP per input dimension."""
    return value_and_jacobian_rows(fn, x)[1]


def value_and_jacobian_rows(fn, x):
    """(fn(x), ∂fn/∂x) of a row-wise fn at every row of x (..., d): one forward pass, then a JVP per input dimension
    through the linearised fn."""
    dim = x.shape[-1]
    eye = jnp.eye(dim, dtype=x.dtype).reshape((dim,) + (1,) * (x.ndim - 1) + (dim,))
    basis = jnp.broadcast_to(eye, (dim,) + x.shape)
    value, linear = jax.linearize(fn, x)
    columns = jax.vmap(linear)(basis)  # (d_in, ..., d_out)
    return value, jnp.moveaxis(columns, 0, -1)


def ve_ancestral(
    score_fn: Callable,
    key: jax.Array,
    shape: Sequence[int],
    schedule: VESchedule,
    times,
    eta: float = 1.0,
    noise: str = "jacobian",
    draws: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Reverse VE chain from x ~ N(0, h(t_0)·I) along `times`, one Gaussian transition per step.

    The forward process adds N(0, Δ·I), Δ = h_i − h_{i+1}, between consecutive levels, so the true reverse
    transition p(x_{i+1} | x_i) has mean x_i + Δ·∇log p_i(x_i) exactly (Tweedie) and covariance Δ·A with
    A = I + Δ·∇²log p_i(x_i). Each step draws from the Gaussian with these two moments:

        x ← x + Δ·s(x, t_i) + η·√Δ·A^{1/2}·z,   A = I + Δ·∂s/∂x

    For a Gaussian target with its exact score this is the exact transition whatever the step, so the chain is
    exact on any grid; for other targets the error is that of a Gaussian fit to each transition, which a grid
    dense near the data's scale keeps small. For a true score A's eigenvalues lie in [h_{i+1}/h_i, 1] (above: every
    ∇²log p_i ⪰ −I/h_i; below: where p_i is log-concave), so on every step but the last A^{1/2}·z is the best
    straight line in A through that interval, c₀·z + c₁·A·z: one JVP with tangent z, taken in the same forward
    pass as s, with correlations between dimensions kept (a relative error in the noise's scale of 3% at
    h_{i+1}/h_i = 0.3, the ratio of `ve_time_grid`'s default edm grid at N = 5, and 1% at 0.5). The last step, to
    h = 0, has A's spectrum in [0, 1], where no line fits √a, so it forms the full Jacobian (d JVPs) and takes the
    square root of its symmetric part with eigenvalues clipped to [0, 1].
    noise="point_mass" is the classical ancestral step (A = h_{i+1}/h_i·I, no Jacobian: exact for a point mass),
    which under-disperses a spread-out target at coarse steps. η = 0 keeps only the mean: a deterministic chain of
    posterior means that ends near a mode (for a Gaussian at μ + (x_T − μ)·v/(v + h(t_0))). score_fn(x, t) gets t
    as a scalar float32 array and must act on each row of x separately (a batch of independent chains).
    draws (len(times), *shape), if given, are the chain's standard normal inputs in place of key's: the start's, then
    one per step, so that a caller can correlate them across calls."""
    if noise not in ANCESTRAL_NOISE:
        raise ValueError(f"noise must be one of {', '.join(ANCESTRAL_NOISE)}, got {noise!r}.")
    shape = tuple(shape)
    t_now, h_now, h_next = _grid_pairs(schedule, times)
    if draws is None:
        init_key, noise_key = jax.random.split(key)
        start, per_step = jax.random.normal(init_key, shape), jax.random.split(noise_key, t_now.shape[0])
        normal = lambda step_key: jax.random.normal(step_key, shape)
    else:
        if draws.shape != (t_now.shape[0] + 1,) + shape:
            raise ValueError(f"draws must have shape {(t_now.shape[0] + 1,) + shape}, got {draws.shape}.")
        start, per_step, normal = draws[0], draws[1:], lambda z: z

    def step(x, inputs):
        t, h, h_n, step_input = inputs
        delta = h - h_n
        if eta == 0.0:
            return x + delta * score_fn(x, t), None
        z = normal(step_input)
        if noise == "point_mass":
            return x + delta * score_fn(x, t) + eta * jnp.sqrt(delta * h_n / h) * z, None
        s, jac_z = jax.jvp(lambda y: score_fn(y, t), (x,), (z,))
        c0, c1 = _sqrt_line(h_n / h)
        return x + delta * s + eta * jnp.sqrt(delta) * ((c0 + c1) * z + c1 * delta * jac_z), None

    def last_step(x, t, h, h_n, step_input):
        delta = h - h_n
        if eta == 0.0:
            return x + delta * score_fn(x, t)
        z = normal(step_input)
        if noise == "point_mass":
            return x + delta * score_fn(x, t) + eta * jnp.sqrt(delta * h_n / h) * z
        s, jac = value_and_jacobian_rows(lambda y: score_fn(y, t), x)
        eye = jnp.eye(shape[-1], dtype=x.dtype)
        lam, vec = jnp.linalg.eigh(eye + 0.5 * delta * (jac + jnp.swapaxes(jac, -1, -2)))
        root = jnp.einsum("...ij,...j,...kj,...k->...i", vec, jnp.sqrt(jnp.clip(lam, 0.0, 1.0)), vec, z)
        return x + delta * s + eta * jnp.sqrt(delta) * root

    x = jnp.sqrt(h_now[0]) * start
    x, _ = jax.lax.scan(step, x, (t_now[:-1], h_now[:-1], h_next[:-1], per_step[:-1]))
    return last_step(x, t_now[-1], h_now[-1], h_next[-1], per_step[-1])


def ve_euler_maruyama_on_grid(
    score_fn: Callable,
    key: jax.Array,
    shape: Sequence[int],
    schedule: VESchedule,
    times,
    eta: float = 1.0,
) -> jnp.ndarray:
    """`ve_euler_maruyama` on any decreasing grid of times: x ← x + g²(t_i)·s·δ_i + η·g(t_i)·√δ_i·z,
    δ_i = t_i − t_{i+1}."""
    shape = tuple(shape)
    times = jnp.asarray(times, jnp.float32)
    init_key, noise_key = jax.random.split(key)

    def step(x, inputs):
        t, dt, step_key = inputs
        g2 = schedule.g2(t)
        return x + g2 * score_fn(x, t) * dt + eta * jnp.sqrt(g2 * dt) * jax.random.normal(step_key, shape), None

    x = jnp.sqrt(schedule.variance(times[0])) * jax.random.normal(init_key, shape)
    keys = jax.random.split(noise_key, times.shape[0] - 1)
    x, _ = jax.lax.scan(step, x, (times[:-1], times[:-1] - times[1:], keys))
    return x


def probability_flow_heun(
    score_fn: Callable,
    shape_or_x_init,
    schedule: VESchedule,
    times,
    key: jax.Array | None = None,
) -> jnp.ndarray:
    """Heun's method (Karras et al. 2022) on the VE probability-flow ODE written in the marginal std σ = √h,
    dx/dσ = −σ·s(x, σ): second order, two score evaluations per step, down to the grid's last nonzero level h.
    The last step, to σ = 0, is the ODE's exact solution for a Gaussian with the score's Jacobian J there,
    x ← x + V·diag(h/(1 + √(1 + h·λ)))·Vᵀ·s (λ, V: eigenpairs of J's symmetric part, h·λ clipped to [−1, 0]):
    it needs d JVPs, but unlike an Euler step it stays accurate when that level is not small against the data's
    spread (between ½·h·s for a flat density and the denoiser h·s for a point mass).
    Starts from N(0, h(t_0)·I) (needs key) when given a shape, or from the given array. score_fn must act on
    each row of x separately."""
    times = jnp.asarray(times, jnp.float32)
    if isinstance(shape_or_x_init, (tuple, list)):
        if key is None:
            raise ValueError("probability_flow_heun needs a PRNG key to draw its initial point from a shape.")
        x = jnp.sqrt(schedule.variance(times[0])) * jax.random.normal(key, tuple(shape_or_x_init))
    else:
        x = jnp.asarray(shape_or_x_init, jnp.float32)
    std = schedule.std(times)

    def slope(x, t, sigma):
        return -sigma * score_fn(x, t)

    def step(x, inputs):
        t, t_n, sig, sig_n = inputs
        d = slope(x, t, sig)
        euler = x + (sig_n - sig) * d
        return x + (sig_n - sig) * 0.5 * (d + slope(euler, t_n, sig_n)), None

    last = times.shape[0] - 2
    x, _ = jax.lax.scan(step, x, (times[:last], times[1:last + 1], std[:last], std[1:last + 1]))
    t, h = times[last], std[last] ** 2 - std[last + 1] ** 2
    s, jac = value_and_jacobian_rows(lambda y: score_fn(y, t), x)
    lam, vec = jnp.linalg.eigh(0.5 * (jac + jnp.swapaxes(jac, -1, -2)))
    gain = h / (1.0 + jnp.sqrt(1.0 + jnp.clip(h * lam, -1.0, 0.0)))
    return x + jnp.einsum("...ij,...j,...kj,...k->...i", vec, gain, vec, s)


def best_of_n(actions: jnp.ndarray, q_values: jnp.ndarray) -> jnp.ndarray:
    """actions (..., N, d), q_values (..., N) → the action with the largest value, shape (..., d)."""
    best = jnp.argmax(q_values, axis=-1)
    return jnp.take_along_axis(actions, best[..., None, None], axis=-2)[..., 0, :]
