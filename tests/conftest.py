"""Helpers shared by the test files."""

import csv
import dataclasses
import os
import shutil
import signal
import struct
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest

from boltzrl.agents import ALGOS, get_algo, register_algo
from boltzrl.agents.base import Batch, Rollout, random_batches
from boltzrl.training import Interrupted, train


_FULL_XLA = "BOLTZRL_TEST_FULL_XLA"
_CACHE_ENV = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def pytest_configure(config):
    """One persistent compilation cache for the whole session, shared by the test workers and the training
    processes that tests start: many tests build the same agent at the same shapes (a run and its resume, two
    runs that must agree, the command line), and the cache compiles each program once. The first process to
    configure (the controller when tests run in workers) makes the folder and removes it at the end."""
    if os.environ.get(_FULL_XLA) != "1":  # see _full_xla_for_learning_tests
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"  # for workers and the processes tests start
        jax.config.update("jax_disable_most_optimizations", True)  # this process read the variable at import
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return  # the user's own cache (or the controller's, in a worker): JAX read it at import
    config._jax_cache = tempfile.mkdtemp(prefix="boltzrl-test-jax-cache-")
    os.environ.update(JAX_COMPILATION_CACHE_DIR=config._jax_cache, **_CACHE_ENV)  # for workers and subprocesses
    # this process imported JAX before the variables were set
    jax.config.update("jax_compilation_cache_dir", config._jax_cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_collection_modifyitems(config, items):
    """Files with learning tests first, those with the most of them leading, then the rest, largest first: the
    workers take one file at a time, so a long file started last would leave one of them idle while it finishes
    (the addopts turn off xdist's own reordering, which sorts by the number of tests alone)."""
    slow, size = {}, {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
        size[item.path] = size.get(item.path, 0) + 1
    items.sort(key=lambda item: (-slow[item.path], -size[item.path], str(item.path)))  # stable within a file


@pytest.fixture(autouse=True)
def _full_xla_for_learning_tests(request):
    """Most tests compile far more than they run, so the session turns XLA's expensive optimisations off (compiles
    about a quarter shorter, programs up to 2.5× slower); the learning tests (marked slow) run long enough to want
    them back. The flag is read at compile time, and the persistent cache keys programs by it; the processes tests
    start (command lines, sweeps) inherit it through the environment. BOLTZRL_TEST_FULL_XLA=1 optimises everything."""
    if request.node.get_closest_marker("slow") is None:
        yield
        return
    # JAX's in-memory caches (eagerly run operations, shared functions) do not key programs by the flag: cleared on
    # the way in and out, a learning test runs the same programs, and so the same numbers, as it does on its own
    saved = jax.config.read("jax_disable_most_optimizations")
    jax.clear_caches()
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", saved)
    jax.clear_caches()


def pytest_unconfigure(config):
    if getattr(config, "_jax_cache", None):
        shutil.rmtree(config._jax_cache, ignore_errors=True)


def make_batches(n: int = 2, b: int = 16, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> Batch:
    """n random minibatches of b transitions, stacked as an agent's update takes them (float32, never terminal)."""
    return random_batches(n, b, obs_dim, act_dim, seed)


@pytest.fixture
def batches():
    """`make_batches` itself, for tests that take it as a fixture."""
    return make_batches


def make_rollout(agent, state, steps: int = 8, num_envs: int = 4, obs_dim: int = 3, seed: int = 0,
                 obs_mean: float = 0.0, obs_std: float = 1.0) -> Rollout:
    """A rollout of random float32 observations (mean obs_mean, std obs_std) on which `agent` acted, with random
    rewards and a few terminations and truncations, shaped as the on-policy collector gives it."""
    rng = np.random.default_rng(seed)
    obs = (obs_mean + obs_std * rng.normal(size=(steps + 1, num_envs, obs_dim))).astype(np.float32)
    actions, extras = [], []
    for t in range(steps):
        action, extra = jax.device_get(agent.act(state, obs[t], jax.random.PRNGKey(1000 * seed + t)))
        actions.append(action)
        extras.append(extra)
    ends = rng.random((steps, num_envs))
    return Rollout(obs=obs[:-1], action=np.stack(actions),
                   reward=rng.normal(size=(steps, num_envs)).astype(np.float32), next_obs=obs[1:],
                   terminated=(ends < 0.1).astype(np.float32), truncated=(ends > 0.9).astype(np.float32),
                   extras=jax.tree_util.tree_map(lambda *xs: np.stack(xs), *extras))


def eval_returns(run) -> list[tuple[int, float]]:
    """(env step, return) of each evaluation in a run folder: eval.csv without its wall time."""
    with open(run / "eval.csv") as f:
        return [(int(r["env_step"]), float(r["eval_return"])) for r in csv.DictReader(f)]


class Interruptible:
    """Copies of registered algorithms whose update sends SIGINT to this process on a chosen call, so a run stops
    after that iteration and checkpoints, as a user's Ctrl-C does. The copies of one configuration share one agent
    (its functions are pure), so `agents` tells how often each compiled across a full, a cut and a resumed run."""

    def __init__(self):
        self.agents, self.names, self.after = {}, [], None

    def register(self, algo: str) -> str:
        spec = get_algo(algo)

        def make(config, obs_dim, act_dim):
            agent = self.agents.setdefault((algo, config, obs_dim, act_dim), spec.make(config, obs_dim, act_dim))
            calls = {"n": 0}

            def update(state, data, key):
                calls["n"] += 1
                if calls["n"] == self.after:
                    os.kill(os.getpid(), signal.SIGINT)  # caught by the run's stop flag: stop after this iteration
                return agent.update(state, data, key)

            return agent._replace(update=update)

        self.names.append(f"{algo}-interruptible")
        register_algo(dataclasses.replace(spec, name=self.names[-1], make=make))
        return self.names[-1]

    def cut(self, name: str, config, cfg, run, after: int):
        """Trains `name` into `run` until the update call number `after` stops it."""
        self.after = after
        try:
            with pytest.raises(Interrupted):
                train(name, config, cfg, run, verbose=False)
        finally:
            self.after = None

    def compilations(self) -> list[int]:
        return [agent.update.traces for agent in self.agents.values()]


@pytest.fixture
def interruptible():
    helper = Interruptible()
    yield helper
    for name in helper.names:
        ALGOS.pop(name)


def tensorboard_points(tb: Path) -> dict[str, set[int]]:
    """tag → steps of the scalars in the event files (TFRecord framing: length, crc, event, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    points: dict[str, set[int]] = {}
    for path in tb.iterdir():
        data, i = path.read_bytes(), 0
        while i + 12 <= len(data):
            (n,) = struct.unpack("Q", data[i:i + 8])
            if i + 16 + n > len(data):
                break  # a record cut by the kill
            event = Event.FromString(data[i + 12:i + 12 + n])
            for value in event.summary.value:
                points.setdefault(value.tag, set()).add(event.step)
            i += 16 + n
    return points
