"""A FIFO replay buffer in host memory (numpy), sampled in chunks of n minibatches for one compiled update call.

It stores one-step transitions only; `gather_n_step` builds n-step ones from them when they are drawn, so the
stored data and the checkpoints do not depend on n."""

from __future__ import annotations

import io

import numpy as np

from boltzrl.agents.base import Batch, OneStep

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        if capacity <= 0:
            raise ValueError(f"replay capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.data = {
            "obs": np.zeros((capacity, obs_dim), np.float32),
            "action": np.zeros((capacity, act_dim), np.float32),
            "reward": np.zeros((capacity,), np.float32),
            "next_obs": np.zeros((capacity, obs_dim), np.float32),
            "terminated": np.zeros((capacity,), np.float32),
        }
        self.size = 0
        self.pos = 0  # next write index

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Add a batch of transitions (leading axis = number of envs)."""
        values = dict(obs=obs, action=action, reward=reward, next_obs=next_obs, terminated=terminated)
        n = len(reward)
        idx = (self.pos + np.arange(n)) % self.capacity
        for name, value in values.items():
            self.data[name][idx] = value
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample_indices(self, rng: np.random.Generator, num_batches: int, batch_size: int) -> np.ndarray:
        """Uniform row indices with replacement, shaped (num_batches, batch_size)."""
        return rng.integers(0, self.size, size=(num_batches, batch_size))

    def gather(self, idx: np.ndarray) -> Batch:
        return Batch(**{name: array[idx] for name, array in self.data.items()})

    def gather_n_step(self, idx: np.ndarray, n: int, gamma: float | None, stride: int) -> Batch:
        """Rows idx as n-step transitions: reward r_t + γ·r_{t+1} + … + γ^(m−1)·r_{t+m−1}, next_obs s_{t+m},
        with m ≤ n cut short where the episode ends (terminated or truncated) or the data does. `stride` is the number
        of rows between an env's successive transitions (the number of parallel envs); gamma may be None for n = 1.

        `terminated` becomes 1 − γ^(m−1)·(1 − terminal), so that the one-step target every agent computes,
        r + γ·(1 − terminated)·Q′, bootstraps with γ^m and not at all after a true termination.

        A row continues the previous one when it was written later and its obs is that row's next_obs: a reset
        starts from another observation than the final one stored as next_obs, so chains stop at episode ends
        whether or not the episode ended in a termination.

        For n > 1 the batch also carries each row's own one-step transition (`Batch.one_step`)."""
        data = self.data
        reward = data["reward"][idx].copy()
        next_obs = data["next_obs"][idx].copy()
        terminal = data["terminated"][idx].copy()
        discount = np.ones_like(reward)  # γ^(m−1) of the rows used so far
        written_after = (self.pos - 1 - idx) % self.capacity
        going = terminal == 0
        row = idx
        for k in range(1, n):
            previous, row = row, (idx + k * stride) % self.capacity
            going = (going & (k * stride <= written_after)
                     & np.all(data["obs"][row] == data["next_obs"][previous], axis=-1))
            discount = np.where(going, gamma * discount, discount)
            reward = reward + np.where(going, discount * data["reward"][row], 0.0)
            next_obs = np.where(going[..., None], data["next_obs"][row], next_obs)
            terminal = np.where(going, data["terminated"][row], terminal)
            going = going & (terminal == 0)
        one_step = None if n == 1 else OneStep(*(data[name][idx] for name in OneStep._fields))
        return Batch(obs=data["obs"][idx], action=data["action"][idx], reward=reward.astype(np.float32),
                     next_obs=next_obs, terminated=(1.0 - discount * (1.0 - terminal)).astype(np.float32),
                     one_step=one_step)

    def write_actions(self, idx: np.ndarray, actions) -> None:
        """Replace the actions of rows idx (an agent that keeps its own improved actions, e.g. DIPO); where a row
        was drawn twice the later write wins."""
        self.data["action"][idx.reshape(-1)] = np.asarray(actions, np.float32).reshape(idx.size, -1)

    def to_bytes(self) -> bytes:
        """The filled part of the buffer plus its cursor, as an .npz archive."""
        buf = io.BytesIO()
        n = self.size
        np.savez(buf, size=self.size, pos=self.pos, capacity=self.capacity,
                 **{name: array[:n] for name, array in self.data.items()})
        return buf.getvalue()

    def load_bytes(self, blob: bytes) -> None:
        with np.load(io.BytesIO(blob)) as archive:
            if int(archive["capacity"]) != self.capacity:
                raise ValueError("checkpoint replay capacity differs from the configured buffer_size")
            self.size, self.pos = int(archive["size"]), int(archive["pos"])
            for name in FIELDS:
                self.data[name][: self.size] = archive[name]
