"""DACER: the actor gradient crosses the whole reverse chain, the Gaussian-mixture entropy estimate is right on
densities with a known entropy, α follows it, the update compiles once, a run resumes exactly, the command line
trains it, and the cpu preset learns Pendulum."""

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzrl import diffusion as D, nets
from boltzrl.agents import get_algo
from boltzrl.agents import dacer
from boltzrl.agents.dacer import DACERConfig, actor_loss, mean_gmm_entropy
from boltzrl.training import TrainConfig, train
from conftest import eval_returns, make_batches

TINY = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), denoising_steps=3, entropy_states=4, entropy_samples=40)


# ------------------------------------------------------------------------ the gradient through the chain

T, D_ACT, B = 20, 2, 4
CENTRE, SPREAD, GOAL = jnp.array([0.1, 0.1]), 0.2, jnp.array([0.3, -0.2])


def _chain_loss_fn():
    """The DACER actor loss on the official T = 20 VP-SDE chain of a tiny network, as a function of the network's
    parameters and of a perturbation δ added to ε at the first denoising step only (t index T − 1).

    ε = ε*(x, t) + 0.01·net(x, t) + δ·[t = T − 1], where ε*(x, t) = √(1 − ᾱ_t)·(x − √ᾱ_t·c)/(ᾱ_t·s² + 1 − ᾱ_t)
    is the exact ε of a policy N(c, s²I): x̂₀ stays near c, inside the box, so no clip cuts the gradient. (For a
    point mass, s = 0, the last step's x̂₀ would be c whatever x₁ is, and no gradient could reach an earlier step.)"""
    schedule = D.make_vp_schedule("vp_sde", T)
    net = nets.EpsNet((8,), D_ACT, "mish")
    obs = jax.random.normal(jax.random.PRNGKey(3), (B, 3))
    params = net.init(jax.random.PRNGKey(0), obs, jnp.zeros((B, D_ACT)), jnp.zeros((), jnp.int32))
    ab = schedule.alpha_bars
    q_fn = lambda a: -jnp.sum((a - GOAL) ** 2, -1)

    def loss(params, delta):
        def eps_fn(x, t):
            exact = jnp.sqrt(1.0 - ab[t]) * (x - jnp.sqrt(ab[t]) * CENTRE) / (ab[t] * SPREAD**2 + 1.0 - ab[t])
            return exact + 0.01 * net.apply(params, obs, x, t) + delta * (t == T - 1)

        return actor_loss(eps_fn, q_fn, jax.random.PRNGKey(7), (B, D_ACT), schedule, noise_std=0.1)

    return loss, params


def test_actor_gradient_reaches_the_first_denoising_step_and_matches_finite_differences():
    loss, params = _chain_loss_fn()
    delta = jnp.zeros(D_ACT)
    grad_delta = jax.grad(loss, argnums=1)(params, delta)
    assert float(jnp.linalg.norm(grad_delta)) > 1e-4, grad_delta  # measured 1.7e-3; 3e-7 for a point-mass policy
    h = 1e-2
    fd = [(loss(params, delta.at[i].set(h)) - loss(params, delta.at[i].set(-h))) / (2 * h) for i in range(D_ACT)]
    np.testing.assert_allclose(grad_delta, fd, rtol=2e-2, atol=1e-4)

    # the parameters' gradient, along a random direction, against a central difference
    grad_params = jax.grad(loss)(params, delta)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    direction = tree.unflatten([jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
    leaves_of = jax.tree_util.tree_leaves
    along = sum(jnp.vdot(g, v) for g, v in zip(leaves_of(grad_params), leaves_of(direction)))
    shifted = lambda s: jax.tree_util.tree_map(lambda p, v: p + s * v, params, direction)
    h = 1e-2
    fd = (loss(shifted(h), delta) - loss(shifted(-h), delta)) / (2 * h)
    assert abs(float(along)) > 1e-4
    np.testing.assert_allclose(along, fd, rtol=2e-2)


# ------------------------------------------------------------------------------- the entropy estimate


def test_mixture_entropy_of_a_gaussian_matches_the_analytic_entropy():
    """16 states × 200 samples of N(0, diag(0.3², 0.1²)): ½Σ log(2πeσ²) = −0.669; the estimate −0.706 (the 3
    components overfit 200 points a little). The official bound double-counts the overlapping components
    (measured −0.04): it stays above the mixture's entropy."""
    std = np.array([0.3, 0.1])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 200, 2)) * std, jnp.float32)
    true = 0.5 * np.sum(np.log(2 * np.pi * np.e * std**2))
    estimate = float(mean_gmm_entropy(x, jax.random.PRNGKey(0)))
    assert abs(estimate - true) < 0.1, (estimate, true)
    assert float(mean_gmm_entropy(x, jax.random.PRNGKey(0), estimator="bound")) > estimate


def test_mixture_entropy_of_two_separated_modes():
    """Equal modes at ±0.5 with std 0.05: log 2 + ½ log(2πe·0.05²) = −0.884 (measured −0.908), where one Gaussian
    fitted to the same samples would claim +0.73."""
    rng = np.random.default_rng(1)
    x = rng.choice([-0.5, 0.5], size=(16, 200, 1)) + 0.05 * rng.normal(size=(16, 200, 1))
    true = math.log(2) + 0.5 * math.log(2 * math.pi * math.e * 0.05**2)
    estimate = float(mean_gmm_entropy(jnp.asarray(x, jnp.float32), jax.random.PRNGKey(0)))
    assert abs(estimate - true) < 0.1, (estimate, true)


def test_fitted_mixture_recovers_mode_weights():
    rng = np.random.default_rng(2)
    n = 400
    x = np.where(rng.random((n, 1)) < 0.25, -0.6, 0.4) + 0.05 * rng.normal(size=(n, 1))
    log_w, means, _ = dacer.fit_diagonal_gmm(jnp.asarray(x, jnp.float32), jax.random.PRNGKey(0), 3, 50)
    w, m = np.exp(np.asarray(log_w)), np.asarray(means)[:, 0]
    assert abs(w[m < -0.1].sum() - 0.25) < 0.05, (w, m)


# ---------------------------------------------------------------------------------------------- the agent


def test_update_compiles_once_moves_the_policy_and_tunes_alpha():
    """α₀ = 3 makes the exploration noise alone (std 0.3 per dimension) far more entropic than −0.9 per
    dimension, so every estimate lowers α."""
    spec = get_algo("dacer")
    agent = spec.make(spec.config("cpu", entropy_every=1, **TINY), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    before = jax.tree_util.tree_leaves(state.policy)[0]
    for i in range(3):
        state, info = agent.update(state, make_batches(n=2), jax.random.PRNGKey(i))
    assert agent.update.traces == 1
    assert not np.allclose(before, jax.tree_util.tree_leaves(state.policy)[0])
    for key in ("actor_loss", "critic_loss", "alpha", "entropy"):
        assert np.isfinite(float(info[key])), key
    assert float(info["entropy"]) > -0.9 * 2
    assert float(jnp.exp(state.log_alpha)) < 3.0
    assert int(state.steps) == 6
    action, _ = agent.act(state, np.zeros((5, 3), np.float32), jax.random.PRNGKey(0), deterministic=True)
    assert action.shape == (5, 2) and np.all(np.abs(action) <= 1.0)


def test_entropy_is_estimated_only_every_entropy_every_updates():
    spec = get_algo("dacer")
    agent = spec.make(spec.config("cpu", entropy_every=4, **TINY), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    state, _ = agent.update(state, make_batches(n=1), jax.random.PRNGKey(0))  # update 0 estimates
    first, alpha = float(state.entropy), float(jnp.exp(state.log_alpha))
    for i in range(1, 4):  # updates 1-3 do not (one minibatch per call, so the update compiles once)
        state, _ = agent.update(state, make_batches(n=1, seed=i), jax.random.PRNGKey(i))
        assert float(state.entropy) == first and float(jnp.exp(state.log_alpha)) == alpha
    state, _ = agent.update(state, make_batches(n=1, seed=4), jax.random.PRNGKey(4))  # update 4 does
    assert float(state.entropy) != first and float(jnp.exp(state.log_alpha)) < alpha
    assert agent.update.traces == 1


@pytest.mark.parametrize("bad, message", [(dict(entropy_estimator="knn"), "entropy_estimator"),
                                          (dict(entropy_samples=4), "entropy_samples"),
                                          (dict(entropy_every=0), "entropy_every")])
def test_bad_config_is_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        DACERConfig(**bad)


def test_interrupted_run_resumes_exactly(tmp_path, interruptible):
    """Cut between two entropy estimates (every 50 updates): α, the held estimate and the replay all resume."""
    config = get_algo("dacer").config("cpu", **{**TINY, "entropy_every": 50})
    cfg = TrainConfig(env="Pendulum-v1", steps=600, warmup_steps=200, batch_size=32, eval_every=200,
                      eval_episodes=1, log_every=100, checkpoint_every=0, seed=1)
    name = interruptible.register("dacer")
    train(name, config, cfg, tmp_path / "full", verbose=False)
    interruptible.cut(name, config, cfg, tmp_path / "cut", after=170)
    train(name, config, cfg, tmp_path / "cut", resume=True, verbose=False)
    assert eval_returns(tmp_path / "cut") == eval_returns(tmp_path / "full")
    assert len(eval_returns(tmp_path / "full")) == 3
    agent_bytes = [(tmp_path / run / "checkpoint" / "agent.msgpack").read_bytes() for run in ("full", "cut")]
    assert agent_bytes[0] == agent_bytes[1]


def test_cli_trains_the_cpu_preset_end_to_end_and_lists_both_agents(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "boltzrl.cli", "train", "--algo", "dacer", "--preset", "cpu", "--env", "Pendulum-v1",
         "--steps", "300", "--warmup-steps", "100", "--batch-size", "32", "--eval-every", "300",
         "--eval-episodes", "1", "--log-every", "100", "--actor-hidden", "32", "32", "--critic-hidden", "32", "32",
         "--denoising-steps", "3", "--entropy-every", "50", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["env_steps"] == 300
    header = (out / "train.csv").read_text().splitlines()[0]
    assert "alpha" in header and "entropy" in header
    listing = subprocess.run([sys.executable, "-m", "boltzrl.cli", "list"], capture_output=True, text=True, timeout=300)
    assert "dacer" in listing.stdout and "qvpo" in listing.stdout


# ------------------------------------------------------------------------------------------------ learning


@pytest.mark.slow
def test_dacer_cpu_preset_learns_pendulum(tmp_path):
    """The cpu preset at 5k steps against SAC's suite threshold, −250; a policy that does not learn scores about
    −1300 on Pendulum. Minibatches of 64 keep the test cheap: measured −168 and −173 (seeds 0, 1; at 6k steps −131
    and −154)."""
    spec = get_algo("dacer")
    preset = spec.preset("cpu")
    cfg = TrainConfig(**{**preset.train, "env": "Pendulum-v1", "steps": 5_000, "warmup_steps": 1_000,
                         "batch_size": 64, "eval_every": 5_000, "eval_episodes": 10, "checkpoint_every": 0})
    summary = train("dacer", spec.config("cpu"), cfg, tmp_path / "run", verbose=False)
    assert summary["final_eval_return"] >= -250, summary
