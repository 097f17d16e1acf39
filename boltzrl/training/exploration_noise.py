"""Exploration noise correlated along each episode: Gaussian draws with a 1/f^β power spectrum over time.

An agent whose exploring action is a function of standard normal draws (Agent.noise_dim of them) can take them
from here instead of from its key. Each draw is still N(0, 1) at every step, so each action is a sample of the same
policy; only successive actions are correlated: β = 1 (pink) keeps a direction for tens of steps, β = 0 is the
independent noise every agent uses by default, β = 2 is close to a random walk (Eberhard et al., "Pink noise is
all you need", ICLR 2023).

The correlated share of the noise may fall over training (`draw(correlated_share)` mixes in independent draws):
correlated steps find a sparse reward sooner, independent ones let a fine-tuned gait be refined.

The draws of env i come in sequences of `horizon` steps, each from its own generator seeded by (run seed, env,
sequence number); a new sequence starts when the env's episode ends or the sequence runs out. So the state to
checkpoint is two small integer lists, and a resumed run regenerates exactly the draws it would have used.
"""

from __future__ import annotations

import numpy as np

NOISE_STREAM = 7  # keeps these generators apart from any other seeded by the run seed
HORIZON = 1000  # steps per sequence: a DMC or Gymnasium MuJoCo episode


def power_law_noise(rng: np.random.Generator, beta: float, steps: int, dim: int) -> np.ndarray:
    """(steps, dim) stationary Gaussian noise whose power falls as 1/f^β over the frequencies k/steps, k = 1 …
    steps/2: x_t = Σ_k a_k·(ξ_k·cos 2πf_k t + η_k·sin 2πf_k t) with ξ, η ~ N(0, 1) and Σ_k a_k² = 1, so that every
    x_t is exactly N(0, 1) (a normalisation by the sequence's own spread, as common generators do, leaves the
    marginal variance above 1 for β > 0: 1.07 at β = 1, 1.3 at β = 2)."""
    freqs = np.arange(1, steps // 2 + 1) / steps
    amplitude = freqs ** (-beta / 2.0)
    amplitude /= np.sqrt(np.sum(amplitude**2))
    xi, eta = rng.standard_normal((2, dim, freqs.size))
    coefficients = np.zeros((dim, steps // 2 + 1), np.complex128)
    coefficients[:, 1:] = 0.5 * steps * amplitude * (xi - 1j * eta)
    coefficients[:, -1] *= 2.0 if steps % 2 == 0 else 1.0  # the Nyquist term appears once in irfft, not twice
    return np.ascontiguousarray(np.fft.irfft(coefficients, n=steps).T, dtype=np.float32)


class ColoredNoise:
    """The draws of `num_envs` envs, `dim` per step, each env along its own episodes."""

    def __init__(self, beta: float, num_envs: int, dim: int, seed: int, horizon: int = HORIZON):
        self.beta, self.dim, self.seed, self.horizon = beta, dim, seed, horizon
        self.sequence_index = [0] * num_envs
        self.position = [0] * num_envs
        self.sequences = [self._sequence(env) for env in range(num_envs)]

    def _sequence(self, env: int) -> np.ndarray:
        """(2, horizon, dim): the correlated draws and independent ones to mix them with."""
        rng = np.random.default_rng([self.seed, NOISE_STREAM, env, self.sequence_index[env]])
        correlated = power_law_noise(rng, self.beta, self.horizon, self.dim)
        return np.stack([correlated, rng.standard_normal(correlated.shape, np.float32)])

    def _start_next(self, env: int) -> None:
        self.sequence_index[env] += 1
        self.position[env] = 0
        self.sequences[env] = self._sequence(env)

    def draw(self, correlated_share: float = 1.0) -> np.ndarray:
        """This step's draws, (num_envs, dim): √w·correlated + √(1 − w)·independent for w = correlated_share, still
        exactly N(0, 1) each (the two parts are independent)."""
        for env, position in enumerate(self.position):
            if position == self.horizon:
                self._start_next(env)
        rows = np.stack([seq[:, pos] for seq, pos in zip(self.sequences, self.position)])  # (envs, 2, dim)
        self.position = [pos + 1 for pos in self.position]
        if correlated_share >= 1.0:
            return rows[:, 0]
        return np.sqrt(correlated_share) * rows[:, 0] + np.sqrt(1.0 - correlated_share) * rows[:, 1]

    def episodes_ended(self, done) -> None:
        """Start fresh sequences for the envs whose episode just ended."""
        for env in np.flatnonzero(done):
            self._start_next(int(env))

    def fields(self) -> dict:
        return {"sequence_index": list(self.sequence_index), "position": list(self.position)}

    def restore(self, fields: dict) -> None:
        self.sequence_index = [int(i) for i in fields["sequence_index"]]
        self.position = [int(p) for p in fields["position"]]
        self.sequences = [self._sequence(env) for env in range(len(self.sequence_index))]
