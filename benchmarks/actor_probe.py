"""Actor-improvement probe: how fast does each agent's policy climb a *fixed* critic?

Separates the actor from the critic. The critic (and replay buffer) of a finished or interrupted SAC run is
loaded into every agent, its learning rate set to 0, and the agent's ordinary `update` runs on minibatches of
that buffer; only the actor moves. Every `--every` updates, min-Q of the fixed critic is measured at 512 replay
states for the agent's evaluation action (`act(deterministic=True)`) and behaviour action
(`act(deterministic=False)`), beside two references at the same states: the replay actions and the best of
64 uniform actions. With `--eval-episodes N` the evaluation policy is also run in the critic's environment at every
checkpoint: whether an actor can turn a good critic into a good policy, in return rather than in Q.

Usage: python benchmarks/actor_probe.py --critic-run RUN ALGO[:PRESET][:field=value,...] ...
The agents' critics must have the SAC run's architecture (e.g. `critic_hidden=(256,256),activation='relu'`).
Writes a CSV (`--out`) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from update_cost import parse_spec  # noqa: E402

from boltzrl import nets  # noqa: E402
from boltzrl.agents import get_algo  # noqa: E402
from boltzrl.agents.base import Batch  # noqa: E402
from boltzrl.training.evaluate_run import load_agent  # noqa: E402
from boltzrl.training.evaluation import Evaluator  # noqa: E402


def load_critic_and_replay(run: Path):
    _, state, train_cfg = load_agent(run)
    with np.load(io.BytesIO((run / "checkpoint" / "replay.npz").read_bytes())) as archive:
        replay = {name: archive[name] for name in ("obs", "action", "reward", "next_obs", "terminated")}
    return state.critic, replay, train_cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--critic-run", type=Path, required=True, help="a SAC run folder with a checkpoint")
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=0, help="episodes of return evaluation per checkpoint")
    parser.add_argument("--out", type=Path, default=None, help="CSV of the curves")
    args = parser.parse_args()

    critic, replay, train_cfg = load_critic_and_replay(args.critic_run)
    sac_cfg = get_algo("sac").config(None)
    critic_net = nets.Critics(2, sac_cfg.critic_hidden, sac_cfg.activation)
    rng = np.random.default_rng(args.seed)
    size = len(replay["obs"])
    probe_obs = jnp.asarray(replay["obs"][rng.choice(size, 512, replace=False)])
    obs_dim, act_dim = replay["obs"].shape[1], replay["action"].shape[1]
    min_q = jax.jit(lambda obs, a: critic_net.apply(critic, obs, a).min(0).mean())

    uniform = jax.random.uniform(jax.random.PRNGKey(1), (512, 64, act_dim), minval=-1.0, maxval=1.0)
    q_uniform = critic_net.apply(critic, jnp.broadcast_to(probe_obs[:, None], (512, 64, obs_dim)), uniform).min(0)
    references = {"best of 64 uniform": float(q_uniform.max(1).mean()),
                  "replay action": float(min_q(jnp.asarray(replay["obs"][:512]), jnp.asarray(replay["action"][:512])))}

    evaluator = Evaluator(train_cfg.env, args.eval_episodes, args.seed) if args.eval_episodes else None
    rows = []
    for text in args.configs:
        algo, preset, overrides = parse_spec(text)
        spec = get_algo(algo)
        agent = spec.make(spec.config(preset, **{**overrides, "critic_lr": 0.0}), obs_dim, act_dim)
        state = agent.init(jax.random.PRNGKey(args.seed))
        state = state.replace(critic=critic, target_critic=critic)
        start = time.perf_counter()
        for done in range(0, args.updates + 1, args.every):
            if done:
                idx = rng.integers(0, size, (args.every, 256))
                batches = Batch(**{name: array[idx] for name, array in replay.items()})
                state, _ = agent.update(state, batches, jax.random.PRNGKey(done))
            q_eval = float(min_q(probe_obs, agent.act(state, probe_obs, jax.random.PRNGKey(7), deterministic=True)[0]))
            behaving = agent.act(state, probe_obs, jax.random.PRNGKey(7), deterministic=False)[0]
            q_behave = float(min_q(probe_obs, behaving))
            ret = float("nan")
            if evaluator:
                ret = evaluator.run(agent, state, jax.random.PRNGKey(done), eval_index=0)["eval_return"]
            rows.append({"config": text, "updates": done, "q_eval_action": q_eval, "q_behaviour_action": q_behave,
                         "eval_return": ret, "wall_s": time.perf_counter() - start})
            print(f"{text}: {done} updates, Q(eval) {q_eval:.3f}, Q(behaviour) {q_behave:.3f}, return {ret:.1f}",
                  flush=True)

    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(f"\n<!-- {date.today()}, {platform.machine()} {os.cpu_count()} CPUs, jax {jax.__version__}; critic of "
          f"{args.critic_run} ({train_cfg.env}); {args.updates} actor updates; min-Q at 512 replay states -->")
    print(" | ".join(f"{name}: {value:.3f}" for name, value in references.items()))
    checkpoints = sorted({r["updates"] for r in rows})
    print("\n| configuration | " + " | ".join(f"Q(eval) @{u}" for u in checkpoints) + " | Q(behaviour) at end |")
    print("|---|" + "---|" * (len(checkpoints) + 1))
    for text in args.configs:
        mine = [r for r in rows if r["config"] == text]
        print(f"| {text} | " + " | ".join(f"{r['q_eval_action']:.2f}" for r in mine)
              + f" | {mine[-1]['q_behaviour_action']:.2f} |")
    if evaluator:
        evaluator.close()
        print("\n| configuration | " + " | ".join(f"return @{u}" for u in checkpoints) + " |")
        print("|---|" + "---|" * len(checkpoints))
        for text in args.configs:
            print(f"| {text} | " + " | ".join(f"{r['eval_return']:.1f}" for r in rows if r["config"] == text) + " |")


if __name__ == "__main__":
    main()
