"""The pieces the agents share, each against a hand-computed answer: the clipped double-Q target and its scale of
pessimism, the critic
stage's wiring, Polyak averaging, the critics' LayerNorm, the score network's first layer, the delayed-update
switch, the tanh-Gaussian log-probability, the temperature loss and the pre-tanh Boltzmann energy."""

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from boltzrl import nets
from boltzrl.agents.base import Batch, OneStep, adam, apply_grads
from boltzrl.agents.critic import clipped_double_q_target, critic_update, delayed, pessimistic_q, polyak_target
from boltzrl.agents.entropy import alpha_loss, sample_tanh_gaussian
from boltzrl.diffusion import boltzmann_energy, log_tanh_jacobian


class CriticState(flax.struct.PyTreeNode):
    critic: dict
    target_critic: dict
    critic_opt: tuple


def test_clipped_double_q_target_takes_the_ensemble_minimum_and_stops_at_termination():
    next_qs = jnp.array([[4.0, 2.0, -1.0], [3.0, 5.0, -3.0]])  # (ensemble, batch)
    reward, terminated = jnp.array([1.0, 0.5, 2.0]), jnp.array([0.0, 0.0, 1.0])
    y = clipped_double_q_target(next_qs, reward, terminated, 0.9)
    np.testing.assert_allclose(y, [1.0 + 0.9 * 3.0, 0.5 + 0.9 * 2.0, 2.0], rtol=1e-6)
    y = clipped_double_q_target(next_qs, reward, terminated, 0.9, next_penalty=jnp.array([1.0, -1.0, 7.0]))
    np.testing.assert_allclose(y, [1.0 + 0.9 * 2.0, 0.5 + 0.9 * 3.0, 2.0], rtol=1e-6)


def test_pessimism_moves_the_twin_critics_value_from_their_minimum_to_their_mean():
    qs = jnp.array([[4.0, 2.0, -1.0], [3.0, 5.0, -1.0]])
    np.testing.assert_allclose(pessimistic_q(qs, 1.0), [3.0, 2.0, -1.0])
    np.testing.assert_allclose(pessimistic_q(qs, 0.999), [3.0005, 2.0015, -1.0], rtol=1e-6)  # the general formula
    np.testing.assert_allclose(pessimistic_q(qs, 0.0), [3.5, 3.5, -1.0])
    np.testing.assert_allclose(pessimistic_q(qs, 0.5), [3.25, 2.75, -1.0])
    y = clipped_double_q_target(qs, jnp.zeros(3), jnp.zeros(3), 0.5, pessimism=0.0)
    np.testing.assert_allclose(y, [1.75, 1.75, -0.5])
    # where the critics agree the gradient is that of their mean (a std would give NaN there)
    grad = jax.grad(lambda q: pessimistic_q(jnp.stack([q, q]), 0.5))(1.0)
    np.testing.assert_allclose(grad, 1.0)


def test_polyak_update_arithmetic():
    target, online = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([3.0, 2.0])}
    np.testing.assert_allclose(nets.soft_update(target, online, 0.25)["w"], [1.5, -1.0])
    state = CriticState(critic=online, target_critic=target, critic_opt=())
    moved = polyak_target(state, 0.25)
    np.testing.assert_allclose(moved.target_critic["w"], [1.5, -1.0])
    assert moved.critic is online


def test_critic_update_regresses_on_the_target_critics_and_moves_them_with_tau():
    critic_net, opt = nets.Critics(2, (8,)), adam(1e-3)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batch = {"obs": rng.normal(size=(5, 3)), "action": rng.uniform(-1, 1, (5, 2)), "reward": rng.normal(size=5),
             "next_obs": rng.normal(size=(5, 3)), "terminated": np.array([0.0, 1.0, 0.0, 0.0, 1.0])}
    batch = Batch(**{k: jnp.asarray(v, jnp.float32) for k, v in batch.items()})
    critic = critic_net.init(k1, batch.obs, batch.action)
    target_critic = critic_net.init(k2, batch.obs, batch.action)  # distinct, so a mix-up shows
    state = CriticState(critic=critic, target_critic=target_critic, critic_opt=opt.init(critic))
    next_action, penalty = jnp.tanh(batch.action[::-1]), jnp.linspace(-1.0, 1.0, 5)

    new, info = critic_update(critic_net, opt, state, batch, next_action, 0.9, tau=0.1, next_penalty=penalty,
                              reward_scale=0.5)
    next_q = critic_net.apply(target_critic, batch.next_obs, next_action).min(0) - penalty
    y = 0.5 * batch.reward + 0.9 * (1.0 - batch.terminated) * next_q
    q = critic_net.apply(critic, batch.obs, batch.action)
    np.testing.assert_allclose(info["critic_loss"], ((q - y) ** 2).mean(-1).sum(), rtol=1e-5)
    np.testing.assert_allclose(info["q_mean"], q.mean(), rtol=1e-5)
    grads = jax.grad(lambda p: ((critic_net.apply(p, batch.obs, batch.action) - y) ** 2).mean(-1).sum())(critic)
    expected_critic = apply_grads(opt, critic, state.critic_opt, grads)[0]
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new.critic,
                           expected_critic)
    jax.tree_util.tree_map(lambda t, c, n: np.testing.assert_allclose(n, 0.9 * t + 0.1 * c, rtol=1e-5, atol=1e-7),
                           target_critic, new.critic, new.target_critic)
    untouched, _ = critic_update(critic_net, opt, state, batch, next_action, 0.9)  # tau=None: targets stay
    assert untouched.target_critic is target_critic


def test_n_step_lower_bound_regresses_each_row_on_the_larger_of_its_two_targets():
    """Rows whose one-step reward is large take the one-step target, the others the n-step one; the loss is that
    of the elementwise maximum, and n_step_share counts the rows where the n-step target won."""
    critic_net, opt = nets.Critics(2, (8,)), adam(1e-3)
    rng = np.random.default_rng(1)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    one_step = OneStep(reward=f32([5.0, -5.0, 5.0, -5.0]), next_obs=f32(rng.normal(size=(4, 3))),
                       terminated=f32([0.0, 0.0, 1.0, 0.0]))
    batch = Batch(obs=f32(rng.normal(size=(4, 3))), action=f32(rng.uniform(-1, 1, (4, 2))), reward=f32(np.zeros(4)),
                  next_obs=f32(rng.normal(size=(4, 3))), terminated=f32([0.0, 0.0, 0.0, 1.0]), one_step=one_step)
    critic = critic_net.init(jax.random.PRNGKey(0), batch.obs, batch.action)
    state = CriticState(critic=critic, target_critic=critic, critic_opt=opt.init(critic))
    next_action, one_step_action = f32(rng.uniform(-1, 1, (4, 2))), f32(rng.uniform(-1, 1, (4, 2)))

    _, info = critic_update(critic_net, opt, state, batch, next_action, 0.9, one_step_action=one_step_action)
    y_n = 0.9 * (1.0 - batch.terminated) * critic_net.apply(critic, batch.next_obs, next_action).min(0)
    y_1 = one_step.reward + 0.9 * (1.0 - one_step.terminated) * critic_net.apply(
        critic, one_step.next_obs, one_step_action).min(0)
    assert np.all(y_1[::2] > y_n[::2]) and np.all(y_1[1::2] < y_n[1::2])  # the rows were built to split so
    q = critic_net.apply(critic, batch.obs, batch.action)
    np.testing.assert_allclose(info["critic_loss"], ((q - jnp.maximum(y_n, y_1)) ** 2).mean(-1).sum(), rtol=1e-5)
    np.testing.assert_allclose(info["n_step_share"], 0.5)
    _, plain = critic_update(critic_net, opt, state, batch, next_action, 0.9)  # no action given: the n-step target
    np.testing.assert_allclose(plain["critic_loss"], ((q - y_n) ** 2).mean(-1).sum(), rtol=1e-5)
    assert "n_step_share" not in plain


def test_layer_norm_critics_stay_bounded_where_plain_ones_grow_linearly():
    """Far from the data a ReLU critic is positively homogeneous (Q(c·x) ≈ c·Q(x) once the biases are negligible),
    while with a LayerNorm before each activation the hidden features are scale-free: Q converges to a constant."""
    obs, act = jnp.ones((4, 3)), jnp.array([[1.0, -2.0], [0.5, 0.3], [-1.0, 1.0], [2.0, 0.0]])
    plain, normed = nets.Critics(2, (16, 16)), nets.Critics(2, (16, 16), layer_norm=True)
    key = jax.random.PRNGKey(0)
    p_plain, p_normed = plain.init(key, obs, act), normed.init(key, obs, act)
    assert "LayerNorm_0" in p_normed["params"]["q1"]["MLP_0"] and "LayerNorm_0" not in p_plain["params"]["q1"]["MLP_0"]
    q = lambda net, params, c: np.asarray(net.apply(params, c * obs, c * act))
    np.testing.assert_allclose(q(plain, p_plain, 1e6), 10 * q(plain, p_plain, 1e5), rtol=1e-3)
    np.testing.assert_allclose(q(normed, p_normed, 1e6), q(normed, p_normed, 1e5), rtol=1e-3, atol=1e-5)


def test_conditioned_dense_is_dense_on_the_concatenation_with_shared_inputs_projected_once():
    """Same parameters (names, shapes, initial values) as nn.Dense on the concatenated inputs, and the same
    outputs when a time embedding shared by the whole batch comes in as one row, or each state once for M chains."""
    key = jax.random.PRNGKey(0)
    obs, x = jax.random.normal(key, (3, 1, 5)), jax.random.normal(jax.random.PRNGKey(1), (3, 4, 2))
    t_emb = nets.sinusoidal_embedding(jnp.float32(0.3), 8)
    full = jnp.concatenate([jnp.broadcast_to(obs, (3, 4, 5)), x, jnp.broadcast_to(t_emb, (3, 4, 8))], -1)
    dense, conditioned = nn.Dense(7, kernel_init=nn.initializers.orthogonal()), nets.ConditionedDense(7)
    params = dense.init(key, full)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: a.shape == b.shape and bool(jnp.all(a == b)), params, conditioned.init(key, obs, x, t_emb)))
    out = conditioned.apply(params, obs, x, t_emb)
    assert out.shape == (3, 4, 7)
    np.testing.assert_allclose(out, dense.apply(params, full), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("explicit_infos", [False, True])
@pytest.mark.parametrize("delay", [1, 3])
def test_delayed_runs_on_multiples_of_the_delay_and_reports_nan_otherwise(explicit_infos, delay):
    def update(count):
        return count + 1, {"loss": jnp.float32(2.0), "vec": jnp.ones(3)}

    like = {"loss": jnp.float32(0.0), "vec": jnp.zeros(3)} if explicit_infos else None

    @jax.jit
    def run(count):
        def body(count, step):
            return delayed(step, delay, update, count, like)

        return jax.lax.scan(body, count, jnp.arange(7))

    count, infos = run(jnp.int32(0))
    ran = np.arange(0, 7, delay)
    assert int(count) == len(ran)
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(infos["loss"])), ran)
    np.testing.assert_array_equal(infos["loss"][ran], 2.0)
    assert np.isnan(np.delete(np.asarray(infos["vec"]), ran, axis=0)).all() and infos["vec"].shape == (7, 3)


def test_tanh_gaussian_log_prob_is_the_change_of_variables():
    mean = jnp.array([[0.3, -0.5, 1.2], [0.0, 2.0, -1.5]])
    log_std = jnp.array([[-0.2, 0.1, -1.0], [0.5, -0.7, 0.3]])
    action, log_prob = sample_tanh_gaussian(mean, log_std, jax.random.PRNGKey(0))
    u = np.arctanh(np.asarray(action, np.float64))
    std = np.exp(np.asarray(log_std, np.float64))
    expected = (norm.logpdf(u, np.asarray(mean, np.float64), std) - np.log1p(-np.tanh(u) ** 2)).sum(-1)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-4, atol=1e-3)
    assert np.all(np.abs(action) < 1.0)


def test_alpha_loss_lowers_alpha_while_entropy_is_above_target():
    log_alpha, opt = jnp.float32(0.0), adam(0.1)
    for entropy, direction in [(1.0, -1.0), (-3.0, 1.0)]:
        grad = jax.grad(alpha_loss)(log_alpha, jnp.float32(entropy), -2.0)
        assert float(grad) == pytest.approx(entropy + 2.0)
        new, _ = apply_grads(opt, log_alpha, opt.init(log_alpha), grad)
        assert np.sign(float(new - log_alpha)) == direction
    # the entropy only scales the step: no gradient flows into the policy through it
    assert float(jax.grad(alpha_loss, argnums=1)(log_alpha, jnp.float32(1.0), -2.0)) == 0.0


def test_boltzmann_energy_is_minus_q_over_alpha_minus_the_tanh_log_jacobian():
    q_fn = lambda s, a: jnp.dot(s, a) - jnp.sum(a**2)
    s, u, alpha = jnp.array([2.0, -1.0]), jnp.array([0.5, -1.0]), 0.4
    a = np.tanh(np.array([0.5, -1.0]))
    expected = -(2.0 * a[0] - a[1] - (a**2).sum()) / alpha - np.log(1.0 - a**2).sum()
    np.testing.assert_allclose(boltzmann_energy(q_fn, alpha)(u, s), expected, rtol=1e-6)
    np.testing.assert_allclose(log_tanh_jacobian(u), np.log(1.0 - a**2).sum(), rtol=1e-6)
