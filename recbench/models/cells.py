"""Cells: how an area turns the summed drive of its incoming transitions into its next state.

Every cell is called as ``cell(drive, prev, t, ctx) -> state`` where ``drive`` is the sum of the area's
incoming edges at step ``t`` and ``prev`` its previous state (``None`` before its first step). Norms are
:class:`StepNorm` with one row per trained step (time-specific BN), so weights can be shared over steps.

* ``plain``      ``relu(norm_t(drive))`` — Spoerer's BLT layers (the convs live on the edges); with ``norm=lrn``
  the norm follows the ReLU, ``lrn(relu(drive))``, as Spoerer et al. 2017 and its re-implementations order it.
* ``sum``        ``relu(drive)`` — the area adds transition functions that carry their own norms (Liao & Poggio).
* ``conv``       ``relu(norm_t(conv(drive)))`` — CORnet-R/RT (the edge sum is input + state).
* ``residual``   ``relu(drive + norm2_t(conv2(relu(norm1_t(conv1(drive))))))`` — a ResNet basic block applied
  to the drive; with an identity lateral edge this is the Liao & Poggio shared-ResNet step. ``blocks`` > 1
  applies that many basic blocks in a row at every step (DT-net's recurrent block: 2).
* ``bottleneck`` CORnet-S: 1×1 → 3×3 → 1×1 at ``expansion``× width; at the area's first step the 3×3 is
  strided and the skip is a strided 1×1 conv + norm, later steps skip by identity.
* ``gru`` / ``lstm`` ConvGRU / ConvLSTM: gates from conv(drive) + conv(h), one conv each.
* ``lstm_res`` / ``lstm_res_proj`` Zamir et al. 2017's ConvLSTM (``ConvLSTM_bn3res``, :class:`ResLSTMCell`): every
  gate's input and hidden paths are residual conv–BN–ReLU–conv–BN stacks followed by ReLU–conv–BN.
  ``lstm_res`` takes the module's input itself as its drive (an identity edge) and gives each gate its own first
  conv; ``lstm_res_proj`` is for a module that changes width or resolution, where the engine's edge has to: that
  edge is the input path's first conv (strided), shared by the four gates, and the cell's input paths start at
  their first BN.
* ``hgru``       a horizontal gated unit (Linsley et al. 2018): inhibition, then excitation, with learned
  gates, applied to a feedforward drive.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from recbench.models.norms import AFFINE_FREE, NormContext, StepNorm
from recbench.models.rewrites import Conv

#: Kernel initialisers by name (``model.init`` of the engine families): ``kaiming``, He normal (variance 2/fan-in),
#: recbench's default; ``torch``, PyTorch's default for ``nn.Conv2d`` and ``nn.Linear`` (uniform ±1/√fan-in, variance
#: 1/(3·fan-in), six times smaller), which a norm-free recurrent net trained in PyTorch was tuned under: at He scale
#: deep-thinking's DT-net grows its state about 2.5× an iteration at initialisation (docs/science.md §6). Biases
#: start at zero under either. Zamir's ConvLSTM and the hGRU keep their references' own initialisers.
KERNEL_INITS = {"kaiming": nnx.initializers.kaiming_normal(),
                "torch": nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")}


def _conv(c_in: int, c_out: int, k: int, rngs: nnx.Rngs, *, init: str, stride: int = 1, bias: bool = False) -> Conv:
    pad = k // 2
    return Conv(c_in, c_out, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                use_bias=bias, kernel_init=KERNEL_INITS[init], rngs=rngs)


class PlainCell(nnx.Module):
    """``relu(norm_t(drive))``, or ``norm(relu(drive))`` for a norm that follows its nonlinearity (``lrn``)."""

    def __init__(self, channels: int, *, norm: str, steps: int, rngs: nnx.Rngs, **_):
        self.norm = StepNorm(channels, kind=norm, steps=steps)

    def __call__(self, drive, prev, t, ctx: NormContext):
        if self.norm.post_act:
            return self.norm(jax.nn.relu(drive), t, ctx)
        return jax.nn.relu(self.norm(drive, t, ctx))


class ConvCell(nnx.Module):
    def __init__(self, channels: int, *, norm: str, steps: int, kernel: int, rngs: nnx.Rngs, init: str, **_):
        self.conv = _conv(channels, channels, kernel, rngs, bias=norm == "none", init=init)
        self.norm = StepNorm(channels, kind=norm, steps=steps)

    def __call__(self, drive, prev, t, ctx: NormContext):
        return jax.nn.relu(self.norm(self.conv(drive), t, ctx))


class SumCell(nnx.Module):
    def __init__(self, channels: int, **_):
        pass

    def __call__(self, drive, prev, t, ctx: NormContext):
        return jax.nn.relu(drive)


class BasicBlock(nnx.Module):
    def __init__(self, channels: int, *, norm: str, steps: int, kernel: int, rngs: nnx.Rngs, init: str):
        bias = norm == "none"
        self.conv1 = _conv(channels, channels, kernel, rngs, bias=bias, init=init)
        self.norm1 = StepNorm(channels, kind=norm, steps=steps)
        self.conv2 = _conv(channels, channels, kernel, rngs, bias=bias, init=init)
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

    def __init__(self, channels: int, *, norm: str, steps: int, kernel: int, rngs: nnx.Rngs, init: str,
                 blocks: int = 1, **_):
        make = lambda: BasicBlock(channels, norm=norm, steps=steps, kernel=kernel, rngs=rngs, init=init)  # noqa: E731
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
                 stride: int = 2, init: str, **_):
        wide = channels * expansion
        self.stride = stride
        self.conv1 = _conv(channels, wide, 1, rngs, init=init)
        self.conv2 = _conv(wide, wide, kernel, rngs, init=init)
        self.conv3 = _conv(wide, channels, 1, rngs, init=init)
        self.skip = _conv(channels, channels, 1, rngs, stride=stride, init=init)
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
    def __init__(self, channels: int, *, kernel: int, rngs: nnx.Rngs, init: str, **_):
        self.x_gates = _conv(channels, 3 * channels, kernel, rngs, bias=True, init=init)
        self.h_gates = _conv(channels, 2 * channels, kernel, rngs, init=init)
        self.h_cand = _conv(channels, channels, kernel, rngs, init=init)

    def __call__(self, drive, prev, t, ctx: NormContext):
        h = jnp.zeros_like(drive) if prev is None else prev
        xz, xr, xn = jnp.split(self.x_gates(drive), 3, axis=-1)
        hz, hr = jnp.split(self.h_gates(h), 2, axis=-1)
        z, r = jax.nn.sigmoid(xz + hz), jax.nn.sigmoid(xr + hr)
        n = jnp.tanh(xn + self.h_cand(r * h))
        return (1 - z) * n + z * h


class LSTMCell(nnx.Module):
    """ConvLSTM; the state is ``(h, c)`` and the area's output (what edges and the readout see) is ``h``."""

    def __init__(self, channels: int, *, kernel: int, rngs: nnx.Rngs, init: str, **_):
        self.x_gates = _conv(channels, 4 * channels, kernel, rngs, bias=True, init=init)
        self.h_gates = _conv(channels, 4 * channels, kernel, rngs, init=init)

    def __call__(self, drive, prev, t, ctx: NormContext):
        h, c = (jnp.zeros_like(drive),) * 2 if prev is None else prev
        i, f, g, o = jnp.split(self.x_gates(drive) + self.h_gates(h), 4, axis=-1)
        c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c


#: ConvLSTM_bn3res's gates, in channel order: input, forget, output (sigmoid) and the cell candidate (tanh).
LSTM_GATES = ("input", "forget", "output", "cell")


class GatePaths(nnx.Module):
    """One path of ConvLSTM_bn3res — the input's or the hidden state's — for all four gates at once.

    For every gate: ``norm3(conv3(relu(x + norm2(conv2(relu(norm1(conv1(x))))))))``, the reference's residual
    ``conv-BN-ReLU-conv-BN`` core with an identity shortcut, then ``ReLU-conv-BN``. ``conv1`` of the four gates is
    one conv to ``4·C`` channels (four convs of the same input, stacked); ``conv2`` and ``conv3`` hold one conv per
    gate (a grouped conv would be the same function, but XLA:CPU runs grouped convs and their gradients ~10–30×
    slower than the four convs); each norm has ``4·C`` channels (a BN per gate). Channel block g is gate
    ``LSTM_GATES[g]``. With ``first=False`` the path has no ``conv1``: its input has already been through it (the
    engine edge of ``lstm_res_proj``), and the shortcut is that input. Convs have no bias (the reference's ConvInit
    removes them; the BNs carry the shift) unless the norm has no affine (``lrn``, ``none``). Kernels are initialised
    as the reference's ConvInit: normal with std ``sqrt(2 / (k·k·C_out))`` per gate.
    """

    def __init__(self, channels: int, *, first: bool, norm: str, steps: int, kernel: int, rngs: nnx.Rngs):
        g, c, k = len(LSTM_GATES), channels, kernel
        bias = norm in AFFINE_FREE
        pad = ((k // 2, k // 2),) * 2

        def conv(c_out: int) -> Conv:  # fan_out of a kernel stacked over the gates is g times a gate's: scale by g
            init = nnx.initializers.variance_scaling(2.0 * c_out / c, "fan_out", "normal")
            return Conv(c, c_out, (k, k), padding=pad, use_bias=bias, kernel_init=init, rngs=rngs)

        self.conv1 = conv(g * c) if first else nnx.data(None)
        self.conv2 = nnx.List([conv(c) for _ in range(g)])
        self.conv3 = nnx.List([conv(c) for _ in range(g)])
        self.norm1, self.norm2, self.norm3 = (StepNorm(g * c, kind=norm, steps=steps) for _ in range(3))

    @staticmethod
    def _per_gate(convs, y):
        blocks = jnp.split(y, len(convs), axis=-1)
        return jnp.concatenate([conv(b) for conv, b in zip(convs, blocks, strict=True)], axis=-1)

    def __call__(self, x, t, ctx: NormContext):
        skip = jnp.tile(x, (1,) * (x.ndim - 1) + (len(LSTM_GATES),))
        y = jax.nn.relu(self.norm1(skip if self.conv1 is None else self.conv1(x), t, ctx))
        y = jax.nn.relu(skip + self.norm2(self._per_gate(self.conv2, y), t, ctx))
        return self.norm3(self._per_gate(self.conv3, y), t, ctx)


class ResLSTMCell(nnx.Module):
    """Zamir et al. 2017's ConvLSTM module (StanfordVL/feedback-networks, ``lib/ConvLSTM_bn3res.lua``).

    ``gate = σ(x_path(x) + h_path(h))`` for the input, forget and output gates, ``tanh(...)`` for the cell
    candidate, each gate with its own paths (:class:`GatePaths`); ``c = f·c + i·g``, ``h = o·tanh(c)``; the state is
    ``(h, c)``, what other areas see is ``h``. Before the first step ``h = c = 0`` and the hidden paths run on the
    zeros, as the reference does. No forget-gate bias: the reference's ``initBias`` is never called and its conv
    biases are removed, so every gate starts from BN's zero shift. ``own_input_conv=False`` is ``lstm_res_proj``
    (the input path's first conv lives on the incoming edge; see the module docstring).
    """

    def __init__(self, channels: int, *, kernel: int, norm: str, steps: int, rngs: nnx.Rngs,
                 own_input_conv: bool = True, **_):
        kw = dict(norm=norm, steps=steps, kernel=kernel, rngs=rngs)
        self.x_path = GatePaths(channels, first=own_input_conv, **kw)
        self.h_path = GatePaths(channels, first=True, **kw)

    def __call__(self, drive, prev, t, ctx: NormContext):
        h, c = (jnp.zeros_like(drive),) * 2 if prev is None else prev
        i, f, o, g = jnp.split(self.x_path(drive, t, ctx) + self.h_path(h, t, ctx), len(LSTM_GATES), axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c


def _res_lstm_proj(channels: int, **kwargs) -> ResLSTMCell:
    return ResLSTMCell(channels, own_input_conv=False, **kwargs)


@jax.custom_vjp
def symmetric_grad(w: jax.Array) -> jax.Array:
    """The identity on a ``[k, k, C, C]`` kernel whose gradient is symmetrised over its two channel axes,
    ``(g + gᵀ) / 2`` — hgru-pytorch's gradient hook on the horizontal kernels (the kernels start orthogonal, not
    symmetric; only their updates are)."""
    return w


symmetric_grad.defvjp(lambda w: (w, None), lambda _, g: ((g + jnp.swapaxes(g, -1, -2)) / 2,))


def chronos_init(steps: int):
    """Bias initialiser ``log U(1, steps - 1)`` (Tallec & Ollivier's chronos init, as hgru-pytorch sets the gain
    gate's bias for ``timesteps`` steps)."""
    high = max(steps - 1, 1)

    def init(key, shape, dtype=jnp.float32):
        return jnp.log(jax.random.uniform(key, shape, dtype, 1.0, float(high)))

    return init


class HGRUCell(nnx.Module):
    """Horizontal GRU (Linsley et al. 2018), as serre-lab/hgru-pytorch's ``hConvGRUCell`` with BatchNorm:

        g1 = σ(BN(U1 * h));  c1 = BN(W_inh * (g1 · h));  h1 = relu(x - relu(c1 · (α·h + μ)))
        g2 = σ(BN(U2 * h1)); c2 = BN(W_exc * h1);       h̃  = relu(κ·h1 + γ·c2 + ω·h1·c2)
        h  = (1 - g2)·h + g2·h̃

    with four time-specific BNs per step (two on the gates, two on the horizontal convs; scale 0.1, eps 1e-3, as
    the reference's 32 = 4 × 8 BNs), 1×1 gate convs ``U1``/``U2`` with bias, ``U1``'s bias ``log U(1, T-1)`` and
    ``U2``'s its negative (:func:`chronos_init`), orthogonal ``U`` and ``W`` kernels, ``W``'s gradients symmetric
    over channels (:func:`symmetric_grad`), and α = 0.1, μ = 1, γ = 1, κ = 0.5, ω = 0.5. Under training-mode BN the
    gate biases cancel in the batch mean (so did the reference's). One choice: the state starts at zeros, where the
    reference draws it from a Xavier normal (std ≈ 1e-3 at 150 px) at every forward pass, in evaluation too.
    """

    def __init__(self, channels: int, *, kernel: int, rngs: nnx.Rngs, norm: str, steps: int, **_):
        c = channels
        orth = nnx.initializers.orthogonal()
        self.gain = Conv(c, c, (1, 1), padding=((0, 0), (0, 0)), kernel_init=orth, bias_init=chronos_init(steps),
                         rngs=rngs)
        self.mix = Conv(c, c, (1, 1), padding=((0, 0), (0, 0)), kernel_init=orth, rngs=rngs)
        self.mix.bias.set_value(-self.gain.bias[...])
        self.w_inh = nnx.Param(orth(rngs.params(), (kernel, kernel, c, c)))
        self.w_exc = nnx.Param(orth(rngs.params(), (kernel, kernel, c, c)))
        self.alpha = nnx.Param(jnp.full((c,), 0.1))
        self.mu = nnx.Param(jnp.ones((c,)))
        self.gamma = nnx.Param(jnp.ones((c,)))
        self.kappa = nnx.Param(jnp.full((c,), 0.5))
        self.omega = nnx.Param(jnp.full((c,), 0.5))
        self.norm_gain, self.norm_inh, self.norm_mix, self.norm_exc = (
            StepNorm(c, kind=norm, steps=steps, scale_init=0.1, eps=1e-3) for _ in range(4))

    @staticmethod
    def _horizontal(x, w: nnx.Param):
        k = w.shape[0]
        return jax.lax.conv_general_dilated(x, symmetric_grad(w[...]).astype(x.dtype), (1, 1),
                                            ((k // 2, k // 2),) * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def __call__(self, drive, prev, t, ctx: NormContext):
        h = jnp.zeros_like(drive) if prev is None else prev
        g1 = jax.nn.sigmoid(self.norm_gain(self.gain(h), t, ctx))
        c1 = self.norm_inh(self._horizontal(g1 * h, self.w_inh), t, ctx)
        h1 = jax.nn.relu(drive - jax.nn.relu(c1 * (self.alpha[...] * h + self.mu[...])))
        g2 = jax.nn.sigmoid(self.norm_mix(self.mix(h1), t, ctx))
        c2 = self.norm_exc(self._horizontal(h1, self.w_exc), t, ctx)
        h2 = jax.nn.relu(self.kappa[...] * h1 + self.gamma[...] * c2 + self.omega[...] * h1 * c2)
        return (1 - g2) * h + g2 * h2


CELL_TYPES = {"plain": PlainCell, "sum": SumCell, "conv": ConvCell, "residual": ResidualCell,
              "bottleneck": BottleneckCell, "gru": GRUCell, "lstm": LSTMCell, "lstm_res": ResLSTMCell,
              "lstm_res_proj": _res_lstm_proj, "hgru": HGRUCell}
CELLS = tuple(CELL_TYPES)
#: cells whose new state ignores the previous one: with no recurrent edge, every step of such an area is the same
STATELESS_CELLS = ("plain", "sum", "conv", "residual")


def output_of(state):
    """What other areas and the readout see of a state (``h`` of an LSTM's ``(h, c)``)."""
    return state[0] if isinstance(state, tuple) else state
