"""How cold is a trained DQS policy relative to its critics? α against the spread of Q over actions.

    python benchmarks/dqs/q_spread.py RUN [RUN ...] >> benchmarks/dqs/q_spread.md

A scale-free temperature would set α to a fixed fraction of how much the critics' Q varies over the actions at a
state. This measures where the auto (entropy-target) α of each run's final checkpoint sits on that scale: at 256
states drawn from the last 10k steps of its replay, the pessimistic Q of 64 uniform actions in the box and of 64
samples of the exploring chain; the medians over states of their standard deviations and of the policy's gain over
uniform actions, and α divided by each. If the runs that stall were colder relative to their critics than those
that learn, a floor on α/std(Q) would be the lever; if the ratio is the same, their critics are flat, not cold.
"""

from __future__ import annotations

import sys
from datetime import date

import jax
import jax.numpy as jnp
import numpy as np

from boltzrl.agents import dqs
from boltzrl.agents.normalization import NormalizedState
from boltzrl.training.evaluate_run import load_agent, load_run_config, run_folder_of

STATES, ACTIONS, RECENT = 256, 64, 10_000


def spread_row(run: str) -> str:
    agent, state, _ = load_agent(run)
    if isinstance(state, NormalizedState):  # its networks take standardised observations
        sys.exit(f"{run} was trained with normalize_obs, which this script does not read yet.")
    _, cfg, _ = load_run_config(run)
    if not hasattr(state, "log_alpha"):
        sys.exit(f"{run} was trained with alpha_schedule={cfg.alpha_schedule}; this measures auto runs")
    folder, q_value = run_folder_of(run), dqs.critic_value(cfg)
    alpha = float(jnp.exp(state.log_alpha))
    replay = np.load(folder.checkpoint_dir / "replay.npz")
    size = int(replay["size"])
    rows = np.random.default_rng(0).choice(np.arange(max(size - RECENT, 0), size), STATES, replace=False)
    obs = jnp.asarray(replay["obs"][rows], jnp.float32)
    q_of = jax.jit(jax.vmap(lambda actions: q_value(state.critic, obs, actions)))
    uniform = jax.random.uniform(jax.random.PRNGKey(0), (ACTIONS, STATES, replay["action"].shape[-1]),
                                 minval=-1.0, maxval=1.0)
    act = jax.jit(lambda key: agent.act(state, obs, key)[0])
    policy = jnp.stack([act(key) for key in jax.random.split(jax.random.PRNGKey(1), ACTIONS)])
    q_uniform, q_policy = np.asarray(q_of(uniform)), np.asarray(q_of(policy))
    std_uniform, std_policy = np.median(q_uniform.std(0)), np.median(q_policy.std(0))
    gain = np.median(q_policy.mean(0) - q_uniform.mean(0))
    final = folder.eval_log.rows()[-1]
    return (f"| {folder.path.name} | {float(final['eval_return']):.1f} | {alpha:.4f} | "
            f"{np.median(q_policy.mean(0)):.1f} | {std_uniform:.3f} | {std_policy:.4f} | {gain:.2f} | "
            f"{alpha / std_uniform:.3f} | {alpha / std_policy:.2f} | {alpha / gain:.3f} |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(f"<!-- {date.today()}, jax {jax.__version__}: python benchmarks/dqs/q_spread.py {' '.join(sys.argv[1:])} -->")
    print("| run | final return (10 episodes) | α | Q of the policy | std Q, uniform actions | std Q, policy | "
          "policy's gain over uniform | α / std uniform | α / std policy | α / gain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in sys.argv[1:]:
        print(spread_row(run), flush=True)


if __name__ == "__main__":
    main()
