"""Cost of one DQS update with the score network's first layer applied to the concatenated inputs (every chain
row carries its own copy of the t and α embeddings) against `nets.ConditionedDense` (each input projected at its
own shape, then broadcast); SAC measured alongside. Both networks have the same parameters and outputs.

Usage: python benchmarks/dqs/score_net_first_layer.py [PRESET] [--repeats 11]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import date
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from boltzrl import nets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from update_cost import make_timer, measure_interleaved, print_cost_table  # noqa: E402


class ConcatScoreNet(nets.ScoreNet):
    """The former formulation: Dense on [s, x, emb(t), emb(α)] broadcast to every row."""

    @nn.compact
    def __call__(self, obs, x, t, alpha):
        f, init, batch = nets.activation(self.act), nn.initializers.orthogonal(), x.shape[:-1]
        t_emb = jnp.broadcast_to(nets.sinusoidal_embedding(t, self.embed_dim), batch + (self.embed_dim,))
        a_emb = jnp.broadcast_to(nets.sinusoidal_embedding(alpha, self.embed_dim), batch + (self.embed_dim,))
        obs = jnp.broadcast_to(obs, batch + obs.shape[-1:])
        h = nn.Dense(self.width, kernel_init=init)(jnp.concatenate([obs, x, t_emb, a_emb], -1))
        for _ in range(self.num_blocks):
            h = h + f(nn.Dense(self.width, kernel_init=init)(h))
        return nn.Dense(self.act_dim, kernel_init=init)(f(h))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", nargs="?", default="auto")
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    timers = {"sac": make_timer("sac", None, {}, 17, 6, 4)}
    split = nets.ScoreNet
    nets.ScoreNet = ConcatScoreNet  # read by the agent when it is made
    timers["concatenated first layer"] = make_timer("dqs", args.preset, {}, 17, 6, 4)
    nets.ScoreNet = split
    timers["ConditionedDense first layer"] = make_timer("dqs", args.preset, {}, 17, 6, 4)
    times = measure_interleaved(timers, args.repeats)
    print(f"<!-- {date.today()}, {platform.machine()} {os.cpu_count()} CPUs, jax {jax.__version__}, dqs:{args.preset}, "
          f"obs 17, act 6, batch 256, {args.repeats} rounds -->")
    print_cost_table(times, "score network", ratio_digits=2)
    paired = np.array(times["ConditionedDense first layer"][0]) / np.array(times["concatenated first layer"][0])
    print(f"\nPaired median of ConditionedDense / concatenated per update: {np.median(paired):.3f}")


if __name__ == "__main__":
    main()
