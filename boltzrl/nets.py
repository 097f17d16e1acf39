"""Neural networks shared by the agents: MLPs, twin critics, Gaussian actors and diffusion ε/score networks."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable] = {
    "relu": nn.relu,
    "mish": lambda x: x * jnp.tanh(nn.softplus(x)),
    "gelu": nn.gelu,
    "silu": nn.silu,
    "tanh": jnp.tanh,
}


def activation(name: str) -> Callable:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """Dense layers with an activation between them (after a LayerNorm if layer_norm); the last layer is linear."""

    hidden: Sequence[int]
    out_dim: int
    act: str = "relu"
    out_scale: float = 1.0  # scale of the last layer's initialisation
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x):
        f = activation(self.act)
        for width in self.hidden:
            x = nn.Dense(width)(x)
            x = f(nn.LayerNorm()(x) if self.layer_norm else x)
        init = nn.initializers.variance_scaling(self.out_scale, "fan_avg", "uniform")
        return nn.Dense(self.out_dim, kernel_init=init)(x)


class Critic(nn.Module):
    """Q(s, a) -> scalar. layer_norm normalises each hidden layer, which bounds how far Q can extrapolate to
    actions the replay never held (Ball et al., 2023)."""

    hidden: Sequence[int] = (256, 256)
    act: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, action):
        return MLP(self.hidden, 1, self.act, layer_norm=self.layer_norm)(jnp.concatenate([obs, action], -1))[..., 0]


class Critics(nn.Module):
    """`num` independent Q networks; returns shape (num, ...). Separate MLPs are faster on CPU than nn.vmap."""

    num: int = 2
    hidden: Sequence[int] = (256, 256)
    act: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, action):
        return jnp.stack([Critic(self.hidden, self.act, self.layer_norm, name=f"q{i + 1}")(obs, action)
                          for i in range(self.num)])


class GaussianActor(nn.Module):
    """Outputs mean and log-std of a Gaussian before tanh squashing."""

    hidden: Sequence[int]
    act_dim: int
    act: str = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden, 2 * self.act_dim, self.act)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        log_std = jnp.tanh(log_std)  # smooth squash into [min, max]
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1)
        return mean, log_std


class DeterministicActor(nn.Module):
    hidden: Sequence[int]
    act_dim: int
    act: str = "relu"

    @nn.compact
    def __call__(self, obs):
        return jnp.tanh(MLP(self.hidden, self.act_dim, self.act)(obs))


def sinusoidal_embedding(x, dim: int, max_period: float = 1000.0):
    """Transformer-style features of a scalar (or batch of scalars): [cos(x·f_i), sin(x·f_i)], f_i geometric."""
    x = jnp.asarray(x, jnp.float32)
    half = dim // 2
    freqs = jnp.exp(-jnp.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = x[..., None] * freqs
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class EpsNet(nn.Module):
    """ε_θ(s, a_t, t) of a VP diffusion policy (SDAC style): a small MLP embeds the step index,
    then an MLP maps [s, a_t, emb(t)] to ε."""

    hidden: Sequence[int]
    act_dim: int
    act: str = "mish"
    time_dim: int = 16

    @nn.compact
    def __call__(self, obs, noisy_action, t):
        f = activation(self.act)
        emb = sinusoidal_embedding(t, self.time_dim)
        emb = nn.Dense(2 * self.time_dim)(emb)
        emb = nn.Dense(self.time_dim)(f(emb))
        emb = jnp.broadcast_to(emb, noisy_action.shape[:-1] + emb.shape[-1:])
        obs = jnp.broadcast_to(obs, noisy_action.shape[:-1] + obs.shape[-1:])
        return MLP(self.hidden, self.act_dim, self.act)(jnp.concatenate([obs, noisy_action, emb], -1))


class ConditionedDense(nn.Module):
    """Dense(concat(inputs)) with one kernel, each input multiplied by its own rows at its own shape before the
    broadcast: the embeddings of a scalar t or α shared by a whole batch of chains cost one row, not one per chain.
    The parameters (kernel (Σ sizes, width), bias) are those of nn.Dense on the concatenation."""

    width: int
    kernel_init: Callable = nn.initializers.orthogonal()

    @nn.compact
    def __call__(self, *inputs):
        sizes = [x.shape[-1] for x in inputs]
        kernel = self.param("kernel", self.kernel_init, (sum(sizes), self.width))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.width,))
        out, start = bias, 0
        for x, size in zip(inputs, sizes):
            out = out + x @ kernel[start:start + size]
            start += size
        return out


class ScoreNet(nn.Module):
    """s_θ(s, x, t, α) of a VE diffusion policy (DQS style): sinusoidal embeddings of t and α,
    Dense → residual blocks (h + act(Dense h)) → output, orthogonal initialisation. The first layer takes s, t and
    α at their own shapes (`ConditionedDense`): a chain's steps share one t and α, and its state is fixed."""

    width: int
    num_blocks: int
    act_dim: int
    act: str = "gelu"
    embed_dim: int = 128

    @nn.compact
    def __call__(self, obs, x, t, alpha):
        f = activation(self.act)
        init = nn.initializers.orthogonal()
        t_emb, a_emb = sinusoidal_embedding(t, self.embed_dim), sinusoidal_embedding(alpha, self.embed_dim)
        h = ConditionedDense(self.width, init, name="Dense_0")(obs, x, t_emb, a_emb)
        h = jnp.broadcast_to(h, x.shape[:-1] + (self.width,))
        for i in range(self.num_blocks):
            h = h + f(nn.Dense(self.width, kernel_init=init, name=f"Dense_{i + 1}")(h))
        return nn.Dense(self.act_dim, kernel_init=init, name=f"Dense_{self.num_blocks + 1}")(f(h))


def soft_update(target, online, tau: float):
    """Polyak averaging: target ← (1 − τ)·target + τ·online."""
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)
