"""Readouts: what turns the top area's state into logits, at every time step.

* ``gap`` / ``gmp`` — global average / max pool, then a linear layer (most nets; Spoerer's public
  re-implementations also use ``gmp``).
* ``flatten`` — a linear layer on the whole map (the other Spoerer re-implementation's readout).
* ``hgru`` — Linsley et al. 2018's readout: norm → 1×1 conv to the classes → global max → norm → linear.
* ``pixel_max`` — deep-thinking's per-pixel head (3×3 convs to 32, 8, then the classes, ReLU between) read out
  per image by a global max over pixels (DT-net's maze head, used for a per-image task such as Pathfinder).

The pooled linear heads *are* ``nnx.Linear`` (a subclass), so their weights sit at ``readout.kernel`` and
``readout.bias`` as published weights expect. Norms inside a head have one row per readout (time-specific).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from recbench.models.cells import KERNEL_INITS
from recbench.models.norms import NormContext, StepNorm
from recbench.models.rewrites import Conv


class PooledLinear(nnx.Linear):
    """Global pool (``mean``, ``max`` or ``flatten``), then the linear layer."""

    def __init__(self, features: int, num_classes: int, *, pool: str, side: int, rngs: nnx.Rngs, init: str, **_):
        self.pool = pool
        kw = {} if init == "kaiming" else {"kernel_init": KERNEL_INITS[init]}  # kaiming: Flax's Linear default
        super().__init__(features * (side * side if pool == "flatten" else 1), num_classes, rngs=rngs, **kw)

    def __call__(self, top, t=0, ctx: NormContext | None = None):
        if self.pool == "mean":
            x = jnp.mean(top, axis=(1, 2))
        elif self.pool == "max":
            x = jnp.max(top, axis=(1, 2))
        else:
            x = top.reshape(top.shape[0], -1)
        return super().__call__(x)

    def empty(self, batch: int) -> jax.Array:
        """Logits before any signal reaches the top area: the bias alone."""
        return jnp.broadcast_to(self.bias[...], (batch, self.out_features))


def _conv(c_in: int, c_out: int, k: int, rngs: nnx.Rngs, bias: bool, init: str) -> Conv:
    return Conv(c_in, c_out, (k, k), padding=((k // 2, k // 2),) * 2, use_bias=bias, kernel_init=KERNEL_INITS[init],
                rngs=rngs)


class HGRUHead(nnx.Module):
    """norm → 1×1 conv (features → classes) → global max → norm → linear (classes → classes)."""

    def __init__(self, features: int, num_classes: int, *, norm: str, steps: int, rngs: nnx.Rngs, init: str, **_):
        self.norm_in = StepNorm(features, kind=norm, steps=steps)
        self.conv = _conv(features, num_classes, 1, rngs, bias=True, init=init)
        self.norm_out = StepNorm(num_classes, kind=norm, steps=steps)
        self.linear = nnx.Linear(num_classes, num_classes, rngs=rngs)
        self.num_classes = num_classes

    def __call__(self, top, t, ctx: NormContext):
        x = jnp.max(self.conv(self.norm_in(top, t, ctx)), axis=(1, 2), keepdims=True)
        return self.linear(self.norm_out(x, t, ctx)[:, 0, 0])

    def empty(self, batch: int) -> jax.Array:
        return jnp.broadcast_to(self.linear.bias[...], (batch, self.num_classes))


class PixelMaxHead(nnx.Module):
    """3×3 conv → 32 → ReLU → 3×3 conv → 8 → ReLU → 3×3 conv → classes, then the maximum over pixels."""

    def __init__(self, features: int, num_classes: int, *, rngs: nnx.Rngs, init: str, **_):
        self.convs = nnx.List([_conv(a, b, 3, rngs, bias=False, init=init)
                               for a, b in ((features, 32), (32, 8), (8, num_classes))])
        self.num_classes = num_classes

    def __call__(self, top, t, ctx: NormContext):
        x = top
        for i, conv in enumerate(self.convs):
            x = conv(x) if i == len(self.convs) - 1 else jax.nn.relu(conv(x))
        return jnp.max(x, axis=(1, 2))

    def empty(self, batch: int) -> jax.Array:
        return jnp.zeros((batch, self.num_classes))


def _pooled(pool: str):
    return lambda features, num_classes, **kw: PooledLinear(features, num_classes, pool=pool, **kw)


HEADS = {"gap": _pooled("mean"), "gmp": _pooled("max"), "flatten": _pooled("flatten"), "hgru": HGRUHead,
         "pixel_max": PixelMaxHead}
READOUTS = tuple(HEADS)
