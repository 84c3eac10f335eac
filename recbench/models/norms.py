"""Normalisation that knows about time steps.

Recurrent nets trained with BatchNorm need *time-specific* statistics (Liao & Poggio's TSBN, the per-step
BatchNorms of CORnet-S): the conv weights are shared over steps but every step has its own BN statistics
and affine. ``StepNorm`` stores one row per trained step and, for steps beyond those trained (test-time
unroll), reuses the last row.

``lrn`` is the other normalisation of the period, local response normalisation across channels (Krizhevsky et al.
2012), which Spoerer et al. 2017 used instead of BatchNorm: parameter-free and stateless, the same at every step.

Batch statistics are *returned* through a :class:`NormContext` instead of being written inside the
forward pass. That keeps every time step a pure function, so the same step runs inside a rolled
``lax.scan`` or a Python loop; the running averages are written once after the unroll.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from flax import nnx

NORM_KINDS = ("bn_step", "bn", "group", "lrn", "none")
#: Norms without a learned shift: a layer normalised by one of these needs a bias of its own.
AFFINE_FREE = ("lrn", "none")
#: Local response normalisation as Spoerer et al. 2017 and its public re-implementations set it (a window of 5
#: channels, alpha 1e-4, beta 0.5, k 1), in TensorFlow's form: ``x / (k + alpha * sum_window x^2) ** beta``, alpha
#: *not* divided by the window (Caffe and PyTorch divide it by the window size).
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.5, 1.0


@dataclass
class NormContext:
    """Carries the train/eval mode through a forward pass and collects batch statistics.

    ``records`` holds ``(norm, t, mean, var)`` in call order. Under ``lax.scan`` the arrays are tracers
    of the scan body; the engine returns them as scan outputs and replaces them by the stacked values.
    """

    train: bool
    records: list = field(default_factory=list)

    def commit(self) -> None:
        """Write the collected batch statistics into the running averages (training only)."""
        if not self.train:
            return
        for norm, t, mean, var in self.records:
            norm.update_running(t, mean, var)
        self.records.clear()


class StepNorm(nnx.Module):
    """Per-step BatchNorm (``bn_step``), shared BatchNorm (``bn``), GroupNorm (``group``), local response
    normalisation (``lrn``: :func:`local_response_norm`, no parameters) or identity.

    ``steps`` is the number of trained time steps (rows of statistics and affine for ``bn_step``). ``post_act``
    says whether the norm belongs *after* the nonlinearity it accompanies (LRN, as Spoerer et al. apply it) rather
    than before it (BatchNorm, GroupNorm); cells that place their norm next to a ReLU ask it.
    """

    def __init__(
        self,
        channels: int,
        *,
        kind: str = "bn_step",
        steps: int = 1,
        momentum: float = 0.9,
        eps: float = 1e-5,
        groups: int = 32,
        scale_init: float = 1.0,
    ):
        if kind not in NORM_KINDS:
            raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORM_KINDS)}")
        self.kind = kind
        self.momentum = momentum
        self.eps = eps
        self.rows = steps if kind == "bn_step" else 1
        self.post_act = kind == "lrn"
        if kind in ("none", "lrn"):
            return
        shape = (self.rows, channels) if kind != "group" else (channels,)
        self.scale = nnx.Param(jnp.full(shape, scale_init, jnp.float32))
        self.bias = nnx.Param(jnp.zeros(shape, jnp.float32))
        if kind == "group":
            self.groups = _largest_divisor(channels, groups)
        else:
            self.mean = nnx.BatchStat(jnp.zeros(shape, jnp.float32))
            self.var = nnx.BatchStat(jnp.ones(shape, jnp.float32))

    def _row(self, t):
        if self.rows == 1:
            return 0
        if isinstance(t, int):
            return min(t, self.rows - 1)
        return jnp.minimum(t, self.rows - 1)

    def __call__(self, x: jax.Array, t, ctx: NormContext) -> jax.Array:
        if self.kind == "none":
            return x
        if self.kind == "lrn":
            return local_response_norm(x)
        if self.kind == "group":
            return self._group(x)
        row = self._row(t)
        if ctx.train:
            mean, var = batch_moments(x)
            ctx.records.append((self, t, mean, var))
        else:
            mean, var = self.mean[...][row], self.var[...][row]
        # one multiply-add over the activation: the statistics and the affine folded into a per-channel a, b
        a = self.scale[...][row] * jax.lax.rsqrt(var + self.eps)
        b = self.bias[...][row] - mean * a
        return x * a.astype(x.dtype) + b.astype(x.dtype)

    def _group(self, x: jax.Array) -> jax.Array:
        *lead, c = x.shape
        g = self.groups
        xg = x.reshape(*lead, g, c // g)
        axes = tuple(range(1, xg.ndim - 2)) + (xg.ndim - 1,)
        mean = jnp.mean(xg, axes, keepdims=True)
        var = jnp.mean(jnp.square(xg - mean), axes, keepdims=True)
        y = ((xg - mean) * jax.lax.rsqrt(var + self.eps)).reshape(x.shape)
        return y * self.scale[...] + self.bias[...]

    def update_running(self, t, mean: jax.Array, var: jax.Array) -> None:
        """Fold batch statistics of step(s) ``t`` into the running averages.

        ``t`` is an int, or an int array with leading axis matching ``mean``/``var`` (stacked scan steps).
        Steps at or beyond the trained rows fold into the last row (a shared ``bn`` has only one row).
        """
        m = self.momentum
        ts = jnp.atleast_1d(jnp.asarray(t))
        means = mean.reshape(ts.shape[0], -1)
        vars_ = var.reshape(ts.shape[0], -1)
        new_mean, new_var = self.mean[...], self.var[...]
        for i in range(ts.shape[0]):  # static: a handful of steps
            row = jnp.minimum(ts[i], self.rows - 1)
            new_mean = new_mean.at[row].set(m * new_mean[row] + (1 - m) * means[i])
            new_var = new_var.at[row].set(m * new_var[row] + (1 - m) * vars_[i])
        self.mean.set_value(new_mean)
        self.var.set_value(new_var)


def local_response_norm(x: jax.Array, *, size: int = LRN_SIZE, alpha: float = LRN_ALPHA, beta: float = LRN_BETA,
                        k: float = LRN_K) -> jax.Array:
    """Local response normalisation across the channel (last) axis: ``x_c / (k + alpha * S_c) ** beta`` with ``S_c``
    the sum of ``x²`` over the ``size`` channels centred on ``c`` (fewer at the ends: zero-padded), TensorFlow's
    ``tf.nn.local_response_normalization`` with ``depth_radius = size // 2``."""
    half = size // 2
    sq = jnp.square(x.astype(jnp.float32))
    padded = jnp.pad(sq, [(0, 0)] * (x.ndim - 1) + [(half, half)])
    c = x.shape[-1]
    window = sum(padded[..., i : i + c] for i in range(size))
    scale = (k + alpha * window) ** -beta if beta != 0.5 else jax.lax.rsqrt(k + alpha * window)
    return (x.astype(jnp.float32) * scale).astype(x.dtype)


def batch_moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and (biased) variance over every axis but the last, in fp32 whatever ``x``'s dtype, from
    one pass over ``x``: the mean and the mean of squares are reduced together, and var = E[x²] - E[x]² (clipped at
    0). The two-pass form reads the activation twice; on XLA:CPU the BatchNorm reductions were a third of a
    ResNet step (docs/performance.md §4b, §8). In fp32 the one-pass variance agrees with the two-pass one to about
    1e-6 relative for activations of BatchNorm's scale."""
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(jnp.float32)
    mean = jnp.mean(xf, axes)
    var = jnp.maximum(jnp.mean(jnp.square(xf), axes) - jnp.square(mean), 0.0)
    return mean, var


def _largest_divisor(channels: int, groups: int) -> int:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g
