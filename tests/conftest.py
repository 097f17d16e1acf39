"""Helpers shared by the test files."""

import numpy as np
import pytest


def make_batches(n: int = 2, b: int = 16, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> dict:
    """n random minibatches of b transitions, stacked as an agent's update takes them (float32, never terminal)."""
    rng = np.random.default_rng(seed)
    return {"obs": rng.normal(size=(n, b, obs_dim)).astype(np.float32),
            "action": rng.uniform(-1, 1, (n, b, act_dim)).astype(np.float32),
            "reward": rng.normal(size=(n, b)).astype(np.float32),
            "next_obs": rng.normal(size=(n, b, obs_dim)).astype(np.float32),
            "terminated": np.zeros((n, b), np.float32)}


@pytest.fixture
def batches():
    """`make_batches` itself, for tests that take it as a fixture."""
    return make_batches
