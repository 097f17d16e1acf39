"""2-D navigation on the log-density of a 40-component Gaussian mixture (DQS paper, GMM experiment).

The agent moves a point in [-50, 50]^2 by unit steps in the direction of its action and is rewarded with
log p_GMM40 of the state it lands on. With discount 0 (set in the agent, not here) Q is the one-step reward,
so a Boltzmann policy at temperature 1 makes the visited states follow the mixture itself; the evaluation
compares final states with `sample_gmm` samples by MMD.

The mixture is the GMM-40 target of the FAB / iDEM sampling benchmarks, which the DQS experiment builds on:
equal weights, isotropic std softplus(1) ~= 1.313, means uniform in [-40, 40]^2. Keeping the means 10 units
(about 7.6 std) inside the state box means the clipping border never cuts off mixture mass, so true samples
are reachable states. The means are the ones that benchmark draws (torch seed 0); `generate_gmm40_means`
reproduces them exactly from the same Mersenne Twister stream and `python -m boltzrl.envs.gmm_nav` rewrote
the shipped JSON.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

STATE_BOUND = 50.0
NUM_COMPONENTS = 40
_MEANS_FILE = "gmm40_nav_means.json"
EVAL_REFERENCE_SAMPLES = 1000  # exact mixture samples the evaluation's final states are compared with
EVAL_REFERENCE_SEED = 0  # fixed, so every evaluation of every run uses the same reference set
MODE_RADIUS = 2.0 * math.log1p(math.e)  # a final state within 2 std of a mean counts toward that mode
RENDER_SIZE = 256  # pixels per side of an rgb_array frame (a multiple of 16, as video encoders want)


def generate_gmm40_means(seed: int = 0, loc_scaling: float = 40.0) -> np.ndarray:
    """The GMM-40 means, bit-identical to `torch.manual_seed(seed); (torch.rand(40, 2) - 0.5) * 2 * 40`.

    torch's CPU generator is MT19937 seeded like numpy's legacy integer seeding, and a float32 uniform keeps the
    low 24 bits of each 32-bit draw; the arithmetic is done in float32 as torch does.
    """
    bit_generator = np.random.MT19937()
    bit_generator._legacy_seeding(seed)
    raw = bit_generator.random_raw(NUM_COMPONENTS * 2).astype(np.uint64)
    uniform = ((raw & np.uint64((1 << 24) - 1)).astype(np.float32) * np.float32(2.0**-24)).reshape(NUM_COMPONENTS, 2)
    return (uniform - np.float32(0.5)) * np.float32(2.0) * np.float32(loc_scaling)


def write_gmm40_json(path: str | Path) -> None:
    """Write the mixture parameters shipped with the package (run once; the result is committed)."""
    payload = {
        "description": "GMM-40 of the FAB/iDEM benchmarks: equal weights, isotropic std softplus(1), "
        "means (torch.rand(40, 2, seed 0) - 0.5) * 2 * 40.",
        "std": math.log1p(math.e),
        "means": generate_gmm40_means().astype(np.float64).tolist(),
    }
    rows = ",\n  ".join(json.dumps(mean) for mean in payload.pop("means"))
    head = json.dumps(payload, indent=1)[:-2]
    Path(path).write_text(f'{head},\n "means": [\n  {rows}\n ]\n}}\n')


@functools.cache
def _mixture() -> tuple[np.ndarray, float]:
    text = resources.files("boltzrl").joinpath("data", _MEANS_FILE).read_text()
    payload = json.loads(text)
    means = np.asarray(payload["means"], dtype=np.float64)
    means.setflags(write=False)
    return means, float(payload["std"])


def gmm_means() -> np.ndarray:
    """The (40, 2) mixture means (read-only)."""
    return _mixture()[0]


def gmm_std() -> float:
    return _mixture()[1]


def gmm_log_prob(points: np.ndarray) -> np.ndarray:
    """log p_GMM40(x) for points of shape (..., 2); returns shape (...), float64."""
    means, std = _mixture()
    x = np.asarray(points, dtype=np.float64)
    sq_dist = np.sum((x[..., None, :] - means) ** 2, axis=-1)  # (..., 40)
    log_components = -0.5 * sq_dist / std**2
    top = np.max(log_components, axis=-1, keepdims=True)
    log_mean = np.log(np.mean(np.exp(log_components - top), axis=-1)) + top[..., 0]
    return log_mean - 2.0 * math.log(std * math.sqrt(2.0 * math.pi))


def sample_gmm(n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """n exact samples of the mixture, shape (n, 2), float64."""
    rng = np.random.default_rng(rng)
    means, std = _mixture()
    components = rng.integers(0, len(means), size=n)
    return means[components] + std * rng.standard_normal((n, 2))


class GMM40Nav(gym.Env):
    """State s in [-50, 50]^2 (float32), action a in [-1, 1]^2.

    s' = clip(s + a / |a|, -50, 50) (a zero action stays put), reward log p_GMM40(s'), never terminates,
    truncates after `max_episode_steps`. Starts uniform in the box, or at `options={"state": (x, y)}`.
    The episode's final state is its last observation (in a SAME_STEP vector env: `infos["final_obs"]`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, max_episode_steps: int = 100, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.render_mode = render_mode
        self.max_episode_steps = int(max_episode_steps)
        self.observation_space = gym.spaces.Box(-STATE_BOUND, STATE_BOUND, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._state = np.zeros(2, np.float32)
        self._elapsed_steps = 0

    log_prob = staticmethod(gmm_log_prob)
    sample = staticmethod(sample_gmm)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and options.get("state") is not None:
            state = np.asarray(options["state"], dtype=np.float64)
        else:
            state = self.np_random.uniform(-STATE_BOUND, STATE_BOUND, size=2)
        self._state = np.clip(state, -STATE_BOUND, STATE_BOUND).astype(np.float32)
        self._elapsed_steps = 0
        return self._state.copy(), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(2)
        norm = float(np.linalg.norm(action))
        move = action / norm if norm > 0.0 else np.zeros(2)
        self._state = np.clip(self._state + move, -STATE_BOUND, STATE_BOUND).astype(np.float32)
        self._elapsed_steps += 1
        reward = float(gmm_log_prob(self._state))
        truncated = self._elapsed_steps >= self.max_episode_steps
        return self._state.copy(), reward, False, truncated, {}

    def render(self):
        """With render_mode "rgb_array": the density with the agent's position as a red dot, (256, 256, 3) uint8."""
        if self.render_mode != "rgb_array":
            return None
        return render_frame(self._state)

    def evaluation_metrics(self, trajectories, reset_infos, out_dir, tag) -> dict[str, float]:
        """Evaluation hook: how well the episodes' final states match the mixture.

        eval_mmd: RBF-kernel MMD (median-heuristic bandwidth) between the final states and
        EVAL_REFERENCE_SAMPLES fixed mixture samples (lower is better); eval_modes_covered: mixture components
        with a final state within MODE_RADIUS of their mean. With `out_dir`, also draws the final states over
        the density into out_dir/figures/{tag}.png."""
        from boltzrl.metrics import mmd_rbf, modes_covered

        final = np.stack([np.asarray(t)[-1, :2] for t in trajectories]).astype(np.float64)
        reference = sample_gmm(EVAL_REFERENCE_SAMPLES, EVAL_REFERENCE_SEED)
        metrics = {"eval_mmd": mmd_rbf(final, reference),
                   "eval_modes_covered": float(modes_covered(final, gmm_means(), MODE_RADIUS))}
        if out_dir is not None:
            plot_final_states(final, Path(out_dir) / "figures" / f"{tag}.png",
                              title=f"{tag}: MMD {metrics['eval_mmd']:.3f}, "
                                    f"{metrics['eval_modes_covered']:.0f}/{NUM_COMPONENTS} modes")
        return metrics


# A few viridis colours from low to high density: colouring by interpolation needs no plotting library.
_PALETTE = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)


@functools.cache
def _density_image(size: int) -> np.ndarray:
    """log p over the state box as (size, size, 3) uint8, row 0 at the top (y = +50); drawn once per size."""
    centres = (np.arange(size) + 0.5) / size * 2.0 * STATE_BOUND - STATE_BOUND
    xx, yy = np.meshgrid(centres, centres[::-1])
    log_p = gmm_log_prob(np.stack([xx, yy], -1))
    level = np.clip((log_p - (log_p.max() - 30.0)) / 30.0, 0.0, 1.0)  # the 30 nats below the peak, as in the plots
    stops = np.linspace(0.0, 1.0, len(_PALETTE))
    image = np.stack([np.interp(level, stops, _PALETTE[:, c]) for c in range(3)], -1).astype(np.uint8)
    image.setflags(write=False)
    return image


def render_frame(state, size: int = RENDER_SIZE) -> np.ndarray:
    """The mixture's density with a red dot at `state` (x, y), as a (size, size, 3) uint8 image."""
    frame = _density_image(size).copy()
    col, row = (np.array([state[0], -state[1]], np.float64) + STATE_BOUND) / (2.0 * STATE_BOUND) * size
    rr, cc = np.ogrid[:size, :size]
    radius = max(2.0, size / 80.0)
    frame[(rr + 0.5 - row) ** 2 + (cc + 0.5 - col) ** 2 <= radius**2] = (255, 0, 0)
    return frame


def plot_final_states(points: np.ndarray, path: str | Path, title: str = "") -> None:
    """Scatter of (n, 2) states over the contours of log p_GMM40, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-STATE_BOUND, STATE_BOUND, 201)
    xx, yy = np.meshgrid(grid, grid)
    log_p = gmm_log_prob(np.stack([xx, yy], -1))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(xx, yy, np.maximum(log_p, log_p.max() - 30.0), levels=30, cmap="viridis")
    ax.scatter(points[:, 0], points[:, 1], s=6, c="red", alpha=0.6, linewidths=0)
    ax.set(xlim=(-STATE_BOUND, STATE_BOUND), ylim=(-STATE_BOUND, STATE_BOUND), aspect="equal", title=title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "data" / _MEANS_FILE
    target.parent.mkdir(exist_ok=True)
    write_gmm40_json(target)
    print(f"wrote {target}")
