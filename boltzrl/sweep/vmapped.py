"""Seeds as a batch dimension: the runs of several seeds of one off-policy agent in one process.

The agent's state is a pytree, so S seeds are one state with a leading seed axis: `jax.vmap(agent.init)`,
`jax.vmap(agent.act)` and `jax.vmap(agent.update)` each make one compiled call for all seeds. Each seed keeps its
own environment, replay buffer, NumPy RNG and PRNG key; evaluation runs each seed's policy on its own
evaluation envs, as `boltzrl train` does. Every seed gets a normal run folder (config.json, eval.csv, train.csv,
TensorBoard events, summary.json) that `boltzrl report` reads, locked against other processes while it trains.

Each seed draws its random numbers exactly as `boltzrl train --seed S --num-envs 1` does, so a seed's run matches
its separate-process run up to the rounding differences of batched kernels. Limits, by design of a small loop:
one training env per seed and no checkpoints (a killed run starts over).

    python -m boltzrl.sweep.vmapped --algo sac --env Pendulum-v1 --seeds 0 1 2 --steps 20000 --out runs/vm
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from boltzrl.agents import get_algo
from boltzrl.envs import make_env
from boltzrl.training.config import TrainConfig, run_config_dict
from boltzrl.training.core import RunRecord
from boltzrl.training.loop_state import ACT_STREAM, INIT_STREAM, UPDATE_STREAM, LoopState, step_key
from boltzrl.training.evaluation import Evaluator
from boltzrl.training.offpolicy import real_next_obs
from boltzrl.training.replay import ReplayBuffer
from boltzrl.training.run_folder import RunFolder, TensorBoardLog, write_json


def _seed_envs(env_id: str, seeds: list[int]):
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    fns = [functools.partial(make_env, env_id, s) for s in seeds]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def _slice(tree, i: int):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def _keys(seeds: list[int], stream: int, counter: int) -> np.ndarray:
    """Each seed's key for (stream, counter), exactly as the training loop derives it."""
    return np.stack([step_key(s, stream, counter) for s in seeds])


def train_vmapped(algo: str, agent_cfg, cfg: TrainConfig, seeds: list[int], outs: list[str | Path],
                  preset: str | None = None) -> list[dict]:
    """Train one run per seed into `outs[i]` (cfg.seed is ignored; cfg.num_envs must be 1); returns summaries."""
    cfg.validate()
    if cfg.num_envs != 1:
        raise ValueError("the vmapped loop runs one training env per seed; use --num-envs 1.")
    spec = get_algo(algo)
    if spec.on_policy:
        raise ValueError(f"{algo} is on-policy; the vmapped loop trains off-policy agents.")
    gamma = getattr(agent_cfg, "gamma", None)
    cfg.check_can_learn(on_policy=False, discount=gamma)
    if cfg.exploration_noise_beta:
        raise ValueError("the vmapped loop draws every exploring action's noise independently; "
                         "--exploration-noise-beta needs `boltzrl train` (or a sweep without --vmap).")
    if cfg.deterministic_episode_share:
        raise ValueError("the vmapped loop collects every training episode with the exploring policy; "
                         "--deterministic-episode-share needs `boltzrl train` (or a sweep without --vmap).")
    with contextlib.ExitStack() as held:
        folders = [RunFolder(o) for o in outs]
        for folder in folders:
            held.enter_context(folder.lock())  # refuses a folder another process trains
            if folder.has_run():
                raise FileExistsError(f"{folder.path} already holds a run; choose another --out.")
        envs = _seed_envs(cfg.env, seeds)
        obs_dim, act_dim = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]
        agent = spec.make(agent_cfg, obs_dim, act_dim)

        init = jax.jit(jax.vmap(agent.init))
        act = jax.jit(jax.vmap(lambda state, obs, key: agent.act(state, obs[None], key, deterministic=False)[0][0]))
        update = jax.jit(jax.vmap(agent.update))

        states = init(_keys(seeds, INIT_STREAM, 0))
        rngs = [np.random.default_rng(s) for s in seeds]
        buffers = [ReplayBuffer(cfg.buffer_size, obs_dim, act_dim) for _ in seeds]
        evaluators = [Evaluator(cfg.env, cfg.eval_episodes, s) for s in seeds]
        records = []
        for folder, seed in zip(folders, seeds):
            seed_cfg = dataclasses.replace(cfg, seed=seed)
            folder.create()
            write_json(folder.config_path, run_config_dict(algo, preset, agent_cfg, seed_cfg))
            writer = TensorBoardLog(folder.path / "tb")  # after config.json, which may name a W&B project
            held.callback(writer.close)
            records.append(RunRecord(folder, spec.name, seed_cfg, LoopState.fresh(seed_cfg), writer,
                                     extra_summary={"seeds_in_process": len(seeds)}))
        loop = records[0].loop  # the counters every seed shares

        obs, _ = envs.reset(seed=list(seeds))
        start = time.perf_counter()

        def advance(record: RunRecord, reward, done):
            record.loop.record_rewards(reward, done)
            if record.loop is not loop:
                record.loop.env_steps, record.loop.iterations = loop.env_steps, loop.iterations
                record.loop.update_steps, record.loop.wall_time_s = loop.update_steps, loop.wall_time_s

        while loop.env_steps < cfg.steps:
            if loop.env_steps < cfg.warmup_steps:
                actions = np.stack([r.uniform(-1.0, 1.0, act_dim) for r in rngs]).astype(np.float32)
            else:
                actions = np.asarray(act(states, jnp.asarray(obs), _keys(seeds, ACT_STREAM, loop.env_steps)))
            next_obs, reward, terminated, truncated, infos = envs.step(actions)
            done = np.logical_or(terminated, truncated)
            real_next = real_next_obs(next_obs, done, infos)
            for i, buffer in enumerate(buffers):
                buffer.add(obs[i:i + 1], actions[i:i + 1], reward[i:i + 1], real_next[i:i + 1], terminated[i:i + 1])
            obs = next_obs
            loop.env_steps += 1
            loop.iterations += 1
            loop.wall_time_s = time.perf_counter() - start

            info, n = None, 0
            if loop.env_steps >= cfg.warmup_steps and buffers[0].size >= cfg.batch_size:
                loop.update_credit += cfg.utd
                if loop.env_steps % cfg.update_every == 0 and loop.update_credit >= 1.0:
                    n = int(loop.update_credit)
                    loop.update_credit -= n
                    samples = [b.gather_n_step(b.sample_indices(r, n, cfg.batch_size),
                                             cfg.n_step_at(loop.env_steps), gamma, 1)
                               for b, r in zip(buffers, rngs)]
                    batches = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *samples)
                    states, info = update(states, batches, _keys(seeds, UPDATE_STREAM, loop.env_steps))
                    info = jax.device_get(info)
                    loop.update_steps += n
            for i, record in enumerate(records):
                advance(record, reward[i:i + 1], done[i:i + 1])
                if info is not None:
                    record.accumulate(_slice(info, i), n)
            if loop.env_steps % cfg.log_every == 0:
                for record in records:
                    record.log(loop.env_steps / loop.wall_time_s)
            if loop.env_steps % cfg.eval_every == 0 or loop.env_steps == cfg.steps:
                for i, (record, evaluator) in enumerate(zip(records, evaluators)):
                    record.evaluate(evaluator, agent, _slice(states, i))

        summaries = [record.summary(complete=True) for record in records]
        envs.close()
        for evaluator in evaluators:
            evaluator.close()
        return summaries


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m boltzrl.sweep.vmapped", description=__doc__.splitlines()[0])
    p.add_argument("--algo", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--seeds", nargs="+", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True, help="runs go to OUT/seedS")
    p.add_argument("--preset", default=None)
    p.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config options, as in `boltzrl sweep --set` (one value each)")
    args = p.parse_args(argv)
    from boltzrl.sweep.grid import build_grid

    runs = build_grid([args.algo], [args.env], args.seeds, args.steps, args.out, args.preset, args.sets)
    if len({r.variant for r in runs}) > 1:
        raise ValueError("give one value per --set key: the vmapped loop trains one configuration.")
    spec = get_algo(args.algo)
    agent_cfg = spec.config_cls(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in runs[0].expected["agent"].items()})
    cfg = TrainConfig(**runs[0].expected["train"], steps=args.steps)
    summaries = train_vmapped(args.algo, agent_cfg, cfg, args.seeds, [Path(args.out) / f"seed{s}" for s in args.seeds],
                              args.preset)
    for s in summaries:
        print(f"seed {s['seed']}: final eval {s['final_eval_return']:.2f} after {s['env_steps']} steps, "
              f"{s['wall_time_s']:.1f} s ({len(summaries)} seeds in one process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
