"""DIPO: the action ascent on a hand-made critic (raises min Q, stays in the box, clips the gradient norm), its
sampler against the shared one, the rewritten replay rows, compilation, exact resume (with QSM's), and learning."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzrl import diffusion
from boltzrl.agents import get_algo
from boltzrl.agents.base import REPLAY_ACTIONS
from boltzrl.agents.dipo import DIPOConfig, action_ascent
from boltzrl.training import TrainConfig, train
from conftest import make_batches

TINY = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), time_dim=8, denoising_steps=4, ascent_steps=3)

CENTRES = jnp.array([[0.3, 1.6], [0.5, 1.4]])  # each critic's optimum; the second coordinate's lies outside the box
SCALES = jnp.array([4.0, 1.0])


def twin_quadratic(obs, a):
    """Q_j(s, a) = −c_j·‖a − m_j‖² − ‖s‖²: (2, B)."""
    return jnp.stack([-SCALES[j] * jnp.sum((a - CENTRES[j]) ** 2, -1) for j in range(2)]) - jnp.sum(obs**2, -1)


def reference_ascent(actions, steps, lr, max_norm, eps, clip=True):
    """The official loop in NumPy: g = ∇(−Σ min Q), clip_grad_norm_ over the whole (B, d) tensor, Adam, clamp."""
    a = np.array(actions, np.float64)
    m, v = np.zeros_like(a), np.zeros_like(a)
    for k in range(1, steps + 1):
        q = np.stack([-float(SCALES[j]) * ((a - np.asarray(CENTRES[j])) ** 2).sum(-1) for j in range(2)])
        j = q.argmin(0)
        g = 2 * np.asarray(SCALES)[j][:, None] * (a - np.asarray(CENTRES)[j])  # ∇(−min Q)
        if clip:
            g *= min(1.0, max_norm / np.linalg.norm(g))
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
        a = np.clip(a - lr * (m / (1 - 0.9**k)) / (np.sqrt(v / (1 - 0.999**k)) + eps), -1, 1)
    return a


def test_action_ascent_raises_min_q_stays_in_the_box_and_clips_the_gradient_norm():
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    start = jnp.asarray(rng.uniform(-1, 1, (8, 2)), jnp.float32)
    min_q = lambda a: np.asarray(twin_quadratic(obs, a).min(0))

    improved, info = action_ascent(twin_quadratic, obs, start, steps=60, lr=0.03, max_norm=0.2)
    assert np.all(min_q(improved) > min_q(start))
    assert np.all(np.abs(improved) <= 1.0)
    np.testing.assert_allclose(improved[:, 1], 1.0)  # both optima lie beyond a = 1: clamped onto the face
    assert np.all(np.abs(improved[:, 0] - 0.3) < 0.1)  # min Q's optimum in the box is the steep critic's, 0.3
    norms, clipped = np.asarray(info["grad_norm"]), np.asarray(info["clipped_norm"])
    assert norms[0] > 0.2 and np.all(clipped <= 0.2 * (1 + 1e-5))
    np.testing.assert_allclose(clipped, np.minimum(norms, 0.2), rtol=1e-5)

    # the clipped gradient is what Adam sees: with gradients comparable to Adam's ε it changes the steps
    tiny, eps = 1e-4, 1e-5
    ours, _ = action_ascent(twin_quadratic, obs, start, steps=5, lr=0.03, max_norm=tiny, eps=eps)
    np.testing.assert_allclose(ours, reference_ascent(start, 5, 0.03, tiny, eps), atol=1e-5)
    unclipped = reference_ascent(start, 5, 0.03, tiny, eps, clip=False)
    assert np.abs(np.asarray(ours) - unclipped).max() > 1e-2


def test_sampler_noise_scale_quiets_the_intermediate_steps_only():
    schedule = diffusion.make_vp_schedule("cosine", 10)
    eps_fn = lambda x, t: 0.3 * x + 0.01 * t
    key = jax.random.PRNGKey(3)
    noisy = diffusion.ddpm_sample(eps_fn, key, (64, 2), schedule)
    quiet = diffusion.ddpm_sample(eps_fn, key, (64, 2), schedule, noise_scale=0.0)
    assert np.asarray(quiet).std() < np.asarray(noisy).std()  # no noise injected: the chain contracts
    other_key = diffusion.ddpm_sample(eps_fn, jax.random.PRNGKey(4), (64, 2), schedule, noise_scale=0.0)
    assert not np.allclose(quiet, other_key)  # the start is still random
    deterministic = [diffusion.ddpm_sample(eps_fn, jax.random.PRNGKey(k), (64, 2), schedule, init_scale=0.0,
                                           noise_scale=0.0) for k in (3, 4)]
    np.testing.assert_allclose(*deterministic)


def test_update_rewrites_its_rows_compiles_once_and_reports_the_gain():
    spec = get_algo("dipo")
    agent = spec.make(spec.config(None, **TINY), 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    for seed in range(3):
        batches = make_batches(n=2, b=16, seed=seed)
        state, info = agent.update(state, batches, jax.random.PRNGKey(seed))
    assert agent.update.traces == 1
    rewritten = np.asarray(info[REPLAY_ACTIONS])
    assert rewritten.shape == batches.action.shape and np.all(np.abs(rewritten) <= 1.0)
    assert not np.allclose(rewritten, batches.action)
    assert float(info["ascent_gain"]) > 0 and float(info["ascent_shift"]) > 0
    for deterministic in (False, True):
        action, _ = agent.act(state, np.zeros((5, 3), np.float32), jax.random.PRNGKey(7), deterministic=deterministic)
        assert action.shape == (5, 2) and np.all(np.abs(action) <= 1.0)

    fresh = spec.make(spec.config(None, write_back=False, **TINY), 3, 2)
    _, info = fresh.update(fresh.init(jax.random.PRNGKey(0)), make_batches(), jax.random.PRNGKey(1))
    assert REPLAY_ACTIONS not in info and float(info["ascent_gain"]) > 0


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="ascent_steps must be positive"):
        DIPOConfig(ascent_steps=0)
    with pytest.raises(ValueError, match="schedule must be"):
        DIPOConfig(schedule="sigmoid")


# ------------------------------------------------------------------ exact resume (QSM and DIPO)

def _logs(run):
    """eval.csv and train.csv without their timing columns."""
    rows = []
    for name in ("eval.csv", "train.csv"):
        with open(run / name) as f:
            rows.append([{k: v for k, v in r.items() if k not in ("wall_time_s", "steps_per_s")}
                         for r in csv.DictReader(f)])
    return rows


@pytest.mark.parametrize("algo", ["qsm", "dipo"])
def test_interrupted_run_resumes_exactly(tmp_path, interruptible, algo):
    """Stopped mid-run and resumed, a run ends exactly as an uninterrupted one: agent, evaluations, logs and (for
    DIPO, whose memory is the replay buffer) the rewritten replay actions."""
    name = interruptible.register(algo)
    tiny = TINY if algo == "dipo" else {k: v for k, v in TINY.items() if k != "ascent_steps"}
    config = get_algo(algo).config(None, **tiny)
    cfg = TrainConfig(env="Pendulum-v1", steps=360, warmup_steps=120, batch_size=32,
                      eval_every=120, eval_episodes=1, log_every=60, checkpoint_every=0, seed=2)
    train(name, config, cfg, tmp_path / "full", verbose=False)
    interruptible.cut(name, config, cfg, tmp_path / "cut", after=25)
    train(name, config, cfg, tmp_path / "cut", resume=True, verbose=False)
    assert _logs(tmp_path / "cut") == _logs(tmp_path / "full")
    for part in ("agent.msgpack", "replay.npz"):
        assert (tmp_path / "cut/checkpoint" / part).read_bytes() == (tmp_path / "full/checkpoint" / part).read_bytes()
    assert interruptible.compilations() == [1]


@pytest.mark.slow
def test_dipo_cpu_preset_learns_pendulum(tmp_path):
    """The cpu preset (no write-back) learns Pendulum, slowly and unevenly across seeds. Measured (10 evaluation
    episodes at 1k…6k steps) on minibatches of 256: seed 0 −1580, −1491, −1096, −907, −612, −278; seed 1 −1303,
    −1591, −1061, −827, −599, −777. Minibatches of 64 keep the test cheap (2.7× fewer seconds per update): seed 0
    −1604, −1586, −994, −992, −733, −703; seed 1 −1359, −1451, −1053, −994, −731, −939. Evaluated only at the end,
    as here, 5k steps were too few to test on: −845, −995, −649 (seeds 0, 1, 2), where seed 0 had passed −800 on
    a CPU of another make (runs diverge with the CPU's rounding), while 8k gives −407, −416, −385. A policy that
    does not learn scores about −1300; the threshold sits about 200 below the three seeds and 700 above a policy
    that does not learn. (Writing the improved actions back, as published, learned less here: −1666, −1050, −1355
    at 5k.)"""
    spec = get_algo("dipo")
    preset = spec.preset("cpu")
    cfg = TrainConfig(**{**preset.train, "env": "Pendulum-v1", "steps": 8_000, "warmup_steps": 1_000,
                         "batch_size": 64, "eval_every": 8_000, "eval_episodes": 10, "checkpoint_every": 0})
    summary = train("dipo", spec.config("cpu"), cfg, tmp_path / "run", verbose=False)
    assert summary["final_eval_return"] >= -600, summary
