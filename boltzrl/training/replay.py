"""A FIFO replay buffer in host memory (numpy), sampled in chunks of n minibatches for one compiled update call."""

from __future__ import annotations

import io

import numpy as np

from boltzrl.agents.base import Batch

FIELDS = Batch._fields


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

    def sample(self, rng: np.random.Generator, num_batches: int, batch_size: int) -> Batch:
        """Uniform minibatches with replacement, shaped (num_batches, batch_size, ...)."""
        return self.gather(self.sample_indices(rng, num_batches, batch_size))

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
