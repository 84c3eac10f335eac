"""Cells: how an area turns the summed drive of its incoming transitions into its next state.

Every cell is called as ``cell(drive, prev, t, ctx) -> state`` where ``drive`` is the sum of the area's
incoming edges at step ``t`` and ``prev`` its previous state (``None`` before its first step). Norms are
:class:`StepNorm` with one row per trained step (time-specific BN), so weights can be shared over steps.

* ``plain``      ``relu(norm_t(drive))`` — Spoerer's BLT layers (the convs live on the edges).
* ``sum``        ``relu(drive)`` — the area adds transition functions that carry their own norms (Liao & Poggio).
* ``conv``       ``relu(norm_t(conv(drive)))`` — CORnet-R/RT (the edge sum is input + state).
* ``residual``   ``relu(drive + norm2_t(conv2(relu(norm1_t(conv1(drive))))))`` — a ResNet basic block applied
  to the drive; with an identity lateral edge this is the Liao & Poggio shared-ResNet step. ``blocks`` > 1
  applies that many basic blocks in a row at every step (DT-net's recurrent block: 2).
* ``bottleneck`` CORnet-S: 1×1 → 3×3 → 1×1 at ``expansion``× width; at the area's first step the 3×3 is
  strided and the skip is a strided 1×1 conv + norm, later steps skip by identity.
* ``gru`` / ``lstm`` ConvGRU / ConvLSTM (Zamir et al.'s feedback modules): gates from conv(drive) + conv(h).
* ``hgru``       a horizontal gated unit (Linsley et al. 2018): inhibition, then excitation, with learned
  gates, applied to a feedforward drive.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from recbench.models.norms import NormContext, StepNorm
from recbench.models.rewrites import Conv


def _conv(c_in: int, c_out: int, k: int, rngs: nnx.Rngs, *, stride: int = 1, bias: bool = False) -> Conv:
    pad = k // 2
    return Conv(c_in, c_out, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                    use_bias=bias, kernel_init=nnx.initializers.kaiming_normal(), rngs=rngs)


class PlainCell(nnx.Module):
    def __init__(self, channels: int, *, norm: str, steps: int, rngs: nnx.Rngs, **_):
        self.norm = StepNorm(channels, kind=norm, steps=steps)

    def __call__(self, drive, prev, t, ctx: NormContext):
        return jax.nn.relu(self.norm(drive, t, ctx))


class ConvCell(nnx.Module):
    def __init__(self, channels: int, *, norm: str, steps: int, kernel: int, rngs: nnx.Rngs, **_):
        self.conv = _conv(channels, channels, kernel, rngs, bias=norm == "none")
        self.norm = StepNorm(channels, kind=norm, steps=steps)

    def __call__(self, drive, prev, t, ctx: NormContext):
        return jax.nn.relu(self.norm(self.conv(drive), t, ctx))


class SumCell(nnx.Module):
    def __init__(self, channels: int, **_):
        pass

    def __call__(self, drive, prev, t, ctx: NormContext):
        return jax.nn.relu(drive)


class BasicBlock(nnx.Module):
    def __init__(self, channels: int, *, norm: str, steps: int, kernel: int, rngs: nnx.Rngs):
        bias = norm == "none"
        self.conv1 = _conv(channels, channels, kernel, rngs, bias=bias)
        self.norm1 = StepNorm(channels, kind=norm, steps=steps)
        self.conv2 = _conv(channels, channels, kernel, rngs, bias=bias)
        self.norm2 = StepNorm(channels, kind=norm, steps=steps)

    def __call__(self, x, t, ctx: NormContext):
        return _basic(self, x, t, ctx)


def _basic(m, x, t, ctx: NormContext):
    """A basic block's function of the module ``m`` holding ``conv1``, ``norm1``, ``conv2``, ``norm2``."""
    y = jax.nn.relu(m.norm1(m.conv1(x), t, ctx))
    return jax.nn.relu(x + m.norm2(m.conv2(y), t, ctx))


class ResidualCell(nnx.Module):
    """``blocks`` basic blocks in a row (one, the ResNet step, unless asked); their parameters are named
    ``conv1``/``norm1``/``conv2``/``norm2`` for one block (torch-weight import relies on it), else ``blocks.<i>.…``."""

    def __init__(self, channels: int, *, norm: str, steps: int, kernel: int, rngs: nnx.Rngs, blocks: int = 1, **_):
        make = lambda: BasicBlock(channels, norm=norm, steps=steps, kernel=kernel, rngs=rngs)  # noqa: E731
        if blocks == 1:
            block = make()
            self.conv1, self.norm1, self.conv2, self.norm2 = block.conv1, block.norm1, block.conv2, block.norm2
            self.blocks = nnx.data(None)
        else:
            self.blocks = nnx.List([make() for _ in range(blocks)])

    def __call__(self, drive, prev, t, ctx: NormContext):
        if self.blocks is None:
            return _basic(self, drive, t, ctx)
        for block in self.blocks:
            drive = block(drive, t, ctx)
        return drive


class BottleneckCell(nnx.Module):
    """CORnet-S's recurrent block; ``stride`` applies at the area's first step only."""

    def __init__(self, channels: int, *, norm: str, steps: int, kernel: int, rngs: nnx.Rngs, expansion: int = 4,
                 stride: int = 2, **_):
        wide = channels * expansion
        self.stride = stride
        self.conv1 = _conv(channels, wide, 1, rngs)
        self.conv2 = _conv(wide, wide, kernel, rngs)
        self.conv3 = _conv(wide, channels, 1, rngs)
        self.skip = _conv(channels, channels, 1, rngs, stride=stride)
        self.norm_skip = StepNorm(channels, kind="bn" if norm == "bn_step" else norm, steps=1)
        self.norm1, self.norm2, self.norm3 = (StepNorm(c, kind=norm, steps=steps) for c in (wide, wide, channels))

    def __call__(self, drive, prev, t, ctx: NormContext):
        first = prev is None
        skip = self.norm_skip(self.skip(drive), 0, ctx) if first else drive
        x = jax.nn.relu(self.norm1(self.conv1(drive), t, ctx))
        s = self.stride if first else 1
        x = jax.lax.conv_general_dilated(x, self.conv2.kernel[...], (s, s), self.conv2.padding,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(self.norm2(x, t, ctx))
        return jax.nn.relu(self.norm3(self.conv3(x), t, ctx) + skip)


class GRUCell(nnx.Module):
    def __init__(self, channels: int, *, kernel: int, rngs: nnx.Rngs, **_):
        self.x_gates = _conv(channels, 3 * channels, kernel, rngs, bias=True)
        self.h_gates = _conv(channels, 2 * channels, kernel, rngs)
        self.h_cand = _conv(channels, channels, kernel, rngs)

    def __call__(self, drive, prev, t, ctx: NormContext):
        h = jnp.zeros_like(drive) if prev is None else prev
        xz, xr, xn = jnp.split(self.x_gates(drive), 3, axis=-1)
        hz, hr = jnp.split(self.h_gates(h), 2, axis=-1)
        z, r = jax.nn.sigmoid(xz + hz), jax.nn.sigmoid(xr + hr)
        n = jnp.tanh(xn + self.h_cand(r * h))
        return (1 - z) * n + z * h


class LSTMCell(nnx.Module):
    """ConvLSTM; the state is ``(h, c)`` and the area's output (what edges and the readout see) is ``h``."""

    def __init__(self, channels: int, *, kernel: int, rngs: nnx.Rngs, **_):
        self.x_gates = _conv(channels, 4 * channels, kernel, rngs, bias=True)
        self.h_gates = _conv(channels, 4 * channels, kernel, rngs)

    def __call__(self, drive, prev, t, ctx: NormContext):
        h, c = (jnp.zeros_like(drive),) * 2 if prev is None else prev
        i, f, g, o = jnp.split(self.x_gates(drive) + self.h_gates(h), 4, axis=-1)
        c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c


class HGRUCell(nnx.Module):
    """Horizontal GRU: the drive is inhibited, then excited, by wide horizontal kernels on the state."""

    def __init__(self, channels: int, *, kernel: int, rngs: nnx.Rngs, norm: str, steps: int, **_):
        self.gain = _conv(channels, channels, 1, rngs, bias=True)
        self.mix = _conv(channels, channels, 1, rngs, bias=True)
        self.w_inh = _conv(channels, channels, kernel, rngs)
        self.w_exc = _conv(channels, channels, kernel, rngs)
        self.alpha = nnx.Param(jnp.full((channels,), 0.1))
        self.mu = nnx.Param(jnp.zeros((channels,)))
        self.kappa = nnx.Param(jnp.full((channels,), 0.5))
        self.omega = nnx.Param(jnp.full((channels,), 0.5))
        self.norm_inh = StepNorm(channels, kind=norm, steps=steps, scale_init=0.1)
        self.norm_exc = StepNorm(channels, kind=norm, steps=steps, scale_init=0.1)

    def __call__(self, drive, prev, t, ctx: NormContext):
        h = jnp.zeros_like(drive) if prev is None else prev
        g1 = jax.nn.sigmoid(self.gain(h))
        inh = self.norm_inh(self.w_inh(g1 * h), t, ctx)
        h1 = jax.nn.relu(drive - jax.nn.relu((self.alpha[...] * h + self.mu[...]) * inh))
        g2 = jax.nn.sigmoid(self.mix(h1))
        exc = self.norm_exc(self.w_exc(h1), t, ctx)
        h2 = jax.nn.relu(self.kappa[...] * h1 + self.omega[...] * h1 * exc + exc)
        return (1 - g2) * h + g2 * h2


CELL_TYPES = {"plain": PlainCell, "sum": SumCell, "conv": ConvCell, "residual": ResidualCell,
              "bottleneck": BottleneckCell, "gru": GRUCell, "lstm": LSTMCell, "hgru": HGRUCell}
CELLS = tuple(CELL_TYPES)
#: cells whose new state ignores the previous one: with no recurrent edge, every step of such an area is the same
STATELESS_CELLS = ("plain", "sum", "conv", "residual")


def output_of(state):
    """What other areas and the readout see of a state (``h`` of an LSTM's ``(h, c)``)."""
    return state[0] if isinstance(state, tuple) else state
