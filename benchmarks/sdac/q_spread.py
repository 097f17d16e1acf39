"""How much does a trained critic's Q vary over the action box, and what does a fixed RSSM temperature mean there?

For each run folder with a checkpoint (any agent with twin critics: SAC, SDAC, ...), at 512 replay states: min-Q
of the critic at 64 uniform actions per state; the within-state spread (the pooled standard deviation that
`q_normalization="action_spread"` divides by); the fixed temperature `--temperature` expressed in units of that
spread; and the effective sample size of softmax(Q/temperature) over 16 uniform actions per state (what RSSM's
weights look like at the chain's noisiest step, where the draws cover the box).

    python benchmarks/sdac/q_spread.py benchmarks/sdac/walker_run_tascent benchmarks/sdac/halfcheetah_v4_ascent
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from boltzrl import nets
from boltzrl.training import config_from_dict
from boltzrl.training.evaluate_run import load_agent
from boltzrl.training.run_folder import RunFolder, read_json


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--states", type=int, default=512)
    args = parser.parse_args()
    print(f"| run (env step of the checkpoint) | mean min-Q | within-state spread of Q | temperature "
          f"{args.temperature} in spread units | ESS of softmax(Q/temperature) over 16 uniform actions |\n"
          "|---|---|---|---|---|")
    key_64, key_16 = jax.random.split(jax.random.PRNGKey(0))
    for run in args.runs:
        _, state, _ = load_agent(run)
        _, agent_cfg, _ = config_from_dict(read_json(RunFolder(run).config_path))
        critic_net = nets.Critics(2, agent_cfg.critic_hidden, agent_cfg.activation)
        with np.load(io.BytesIO((run / "checkpoint" / "replay.npz").read_bytes())) as archive:
            obs = archive["obs"][np.random.default_rng(0).integers(0, int(archive["size"]), args.states)]
            act_dim = archive["action"].shape[1]

        def min_q(key, k):
            actions = jax.random.uniform(key, (args.states, k, act_dim), minval=-1.0, maxval=1.0)
            return critic_net.apply(state.critic, jnp.broadcast_to(obs[:, None], (args.states, k, obs.shape[1])),
                                    actions).min(0)

        q64 = min_q(key_64, 64)
        spread = float(jnp.sqrt(jnp.mean(jnp.var(q64, axis=-1))))
        weights = jax.nn.softmax(min_q(key_16, 16) / args.temperature, axis=-1)
        ess = float(jnp.mean(1.0 / jnp.sum(weights**2, axis=-1)))
        env_steps = json.loads((run / "checkpoint" / "loop.json").read_text())["env_steps"]
        print(f"| {run.name} ({env_steps:,}) | {float(q64.mean()):.2f} | {spread:.4f} | "
              f"{args.temperature / spread:.3f} | {ess:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
