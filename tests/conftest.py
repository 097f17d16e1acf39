"""Helpers shared by the test files."""

import pytest

from boltzrl.agents.base import Batch, random_batches


def make_batches(n: int = 2, b: int = 16, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> Batch:
    """n random minibatches of b transitions, stacked as an agent's update takes them (float32, never terminal)."""
    return random_batches(n, b, obs_dim, act_dim, seed)


@pytest.fixture
def batches():
    """`make_batches` itself, for tests that take it as a fixture."""
    return make_batches
