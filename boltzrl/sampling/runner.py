"""Runs one sampler: trains it where it learns (Adam, every step in one compiled lax.scan), draws samples and
times both."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import numpy as np
import optax

from boltzrl.sampling.energies import Energy
from boltzrl.sampling.langevin import mala, unadjusted_langevin
from boltzrl.sampling.methods import (LANGEVIN_METHODS, METHOD_DESCRIPTIONS, TRAINED_METHODS, SamplerConfig,
                                      list_methods, method_applies)


@dataclasses.dataclass
class MethodResult:
    samples: np.ndarray  # (n, dim), data space
    train_time: float  # wall-clock seconds spent training, compilation excluded (0 for Langevin)
    train_cpu_time: float  # CPU seconds of this process while training (all threads): steadier on a shared machine
    compile_time: float  # seconds to compile the training step (0 when reused from an earlier seed)
    sample_time: float  # seconds to draw the samples, compilation included
    info: dict


def _fit(loss_fn: Callable, init_params: Callable, config: SamplerConfig) -> Callable:
    """train(key) -> (params, losses): Adam on loss_fn(params, key), all steps in one lax.scan."""
    optimizer = optax.adam(config.learning_rate)

    def train(key):
        init_key, loop_key = jax.random.split(key)
        params = init_params(init_key)

        def step(carry, step_key):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, step_key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        keys = jax.random.split(loop_key, config.train_steps)
        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), keys)
        return params, losses

    return train


_COMPILED: dict = {}  # (method, energy, config) -> (compiled train, sample fn); reused across seeds


def _compiled_method(name: str, energy: Energy, config: SamplerConfig):
    cache_key = (name, id(energy), config)
    if cache_key not in _COMPILED:
        loss_fn, init_params, sample = TRAINED_METHODS[name](energy, config)
        train = _fit(loss_fn, init_params, config)
        start = time.perf_counter()
        compiled = jax.jit(train).lower(jax.random.key(0)).compile()
        _COMPILED[cache_key] = (compiled, jax.jit(sample, static_argnums=2), time.perf_counter() - start, energy)
        return _COMPILED[cache_key][:3]
    compiled, sample, _, _ = _COMPILED[cache_key]
    return compiled, sample, 0.0


def run_method(
    name: str, energy: Energy, seed: int, num_samples: int = 2000, config: SamplerConfig = SamplerConfig()
) -> MethodResult:
    """Train (where the method learns) and draw `num_samples` samples in data space."""
    if name not in METHOD_DESCRIPTIONS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(list_methods())}")
    if not method_applies(name, energy):
        raise ValueError(f"method {name!r} needs exact samples and energy {energy.name!r} has none")
    train_key, sample_key = jax.random.split(jax.random.key(seed))

    if name in LANGEVIN_METHODS:
        start = time.perf_counter()
        if name == "langevin":
            fn = jax.jit(unadjusted_langevin, static_argnums=(0, 2, 3))
            samples, info = fn(energy, sample_key, num_samples, config.langevin_steps), {}
        else:
            fn = jax.jit(mala, static_argnums=(0, 2, 3))
            samples, acceptance = fn(energy, sample_key, num_samples, config.langevin_long_steps)
            info = {"acceptance": float(acceptance)}
        samples = np.asarray(jax.block_until_ready(samples))
        return MethodResult(samples, 0.0, 0.0, 0.0, time.perf_counter() - start, info)

    compiled, sample, compile_time = _compiled_method(name, energy, config)
    start, cpu_start = time.perf_counter(), time.process_time()
    params, losses = jax.block_until_ready(compiled(train_key))
    train_time, train_cpu_time = time.perf_counter() - start, time.process_time() - cpu_start
    start = time.perf_counter()
    samples = np.asarray(jax.block_until_ready(sample(params, sample_key, num_samples)))
    sample_time = time.perf_counter() - start
    tail = np.asarray(losses)[-max(1, len(losses) // 10) :]
    info = {"final_loss": float(tail.mean()), "finite": bool(np.isfinite(samples).all())}
    return MethodResult(samples, train_time, train_cpu_time, compile_time, sample_time, info)
