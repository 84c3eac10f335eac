"""Residual blocks shared by the CIFAR and ImageNet ResNets, laid out like torchvision's.

Every block is called as ``block(x, t, ctx)``: ``t`` is the time step that picks the row of a time-specific
BatchNorm (``StepNorm(kind="bn_step")``) when the block's conv weights are shared over the blocks of a
stage (Liao & Poggio's shared ResNet); an ordinary block has one row and is called with ``t=0``.

Attribute names follow torchvision (``conv1``, ``bn1``, ..., ``downsample[0]`` conv, ``downsample[1]``
norm) so that a PyTorch state dict maps onto the module tree by name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from recbench.models.norms import NormContext, StepNorm
from recbench.models.rewrites import Conv

#: torchvision's ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``: std = sqrt(2 / (k*k*C_out)),
#: an untruncated normal. He et al.'s fan_in variant differs only in which width enters the variance.
KAIMING_FAN_OUT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")

#: "A": parameter-free (subsample + zero-pad channels, He et al. 2016 §4.2, akamaster's CIFAR models);
#: "B": 1x1 conv + norm projection only where the shape changes (torchvision, He et al. option B).
SHORTCUTS = ("A", "B")


def conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, *, rngs: nnx.Rngs) -> Conv:
    """A bias-free square conv with PyTorch's symmetric padding ``kernel // 2``.

    Flax's ``"SAME"`` pads a stride-2 3x3 conv on an even input as (0, 1), PyTorch as (1, 1): the
    sampled pixels would differ and imported torchvision weights would see shifted inputs.
    """
    p = kernel // 2
    return Conv(
        in_channels,
        out_channels,
        (kernel, kernel),
        strides=stride,
        padding=((p, p), (p, p)),
        use_bias=False,
        kernel_init=KAIMING_FAN_OUT,
        rngs=rngs,
    )


def pad_shortcut(x: jax.Array, out_channels: int, stride: int) -> jax.Array:
    """Option-A shortcut: take every ``stride``-th pixel and zero-pad the channels, with no parameters.

    The padding is split evenly before and after the existing channels (``planes // 4`` on each side
    when the width doubles), exactly as akamaster/pytorch_resnet_cifar10's ``LambdaLayer`` does, so its
    pretrained weights see the same channel layout.
    """
    if stride > 1:
        x = x[:, ::stride, ::stride, :]
    extra = out_channels - x.shape[-1]
    if extra < 0:
        raise ValueError(f"option-A shortcut cannot shrink {x.shape[-1]} channels to {out_channels}")
    lo = extra // 2
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (lo, extra - lo)))


class _Residual(nnx.Module):
    """The shortcut half of a block: identity, option A (padding) or option B (``downsample`` projection)."""

    def _init_shortcut(
        self, in_channels: int, out_channels: int, stride: int, shortcut: str, norm: str, steps: int, rngs
    ) -> None:
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}")
        self.stride = stride
        self.out_channels = out_channels
        self.option_a = False
        self.downsample = nnx.data(None)
        if stride == 1 and in_channels == out_channels:
            return
        if shortcut == "A":
            self.option_a = True
        else:
            self.downsample = nnx.List(
                [
                    conv(in_channels, out_channels, 1, stride, rngs=rngs),
                    StepNorm(out_channels, kind=norm, steps=steps),
                ]
            )

    def _shortcut(self, x: jax.Array, t, ctx: NormContext) -> jax.Array:
        if self.downsample is not None:
            return self.downsample[1](self.downsample[0](x), t, ctx)
        if self.option_a:
            return pad_shortcut(x, self.out_channels, self.stride)
        return x


class BasicBlock(_Residual):
    """Two 3x3 convs (ResNet-18/34 and the CIFAR ResNets); the stride sits on ``conv1``."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm: str = "bn",
        steps: int = 1,
        zero_init_residual: bool = False,
        rngs: nnx.Rngs,
    ):
        self.conv1 = conv(in_channels, channels, 3, stride, rngs=rngs)
        self.bn1 = StepNorm(channels, kind=norm, steps=steps)
        self.conv2 = conv(channels, channels, 3, rngs=rngs)
        # Zero gamma on the last norm makes the block start as the identity (Goyal et al. 2017).
        self.bn2 = StepNorm(channels, kind=norm, steps=steps, scale_init=0.0 if zero_init_residual else 1.0)
        self._init_shortcut(in_channels, channels, stride, shortcut, norm, steps, rngs)

    def __call__(self, x: jax.Array, t, ctx: NormContext) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv1(x), t, ctx))
        y = self.bn2(self.conv2(y), t, ctx)
        return jax.nn.relu(y + self._shortcut(x, t, ctx))


class Bottleneck(_Residual):
    """1x1 reduce, 3x3, 1x1 expand (x4), with the stride on the 3x3 conv as torchvision's "ResNet v1.5".

    The original paper strides the first 1x1 conv, which discards three quarters of the input unseen;
    torchvision moved it to the 3x3 (about +0.5 % top-1), and its weights assume that placement.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm: str = "bn",
        steps: int = 1,
        zero_init_residual: bool = False,
        rngs: nnx.Rngs,
    ):
        out = channels * self.expansion
        self.conv1 = conv(in_channels, channels, 1, rngs=rngs)
        self.bn1 = StepNorm(channels, kind=norm, steps=steps)
        self.conv2 = conv(channels, channels, 3, stride, rngs=rngs)
        self.bn2 = StepNorm(channels, kind=norm, steps=steps)
        self.conv3 = conv(channels, out, 1, rngs=rngs)
        self.bn3 = StepNorm(out, kind=norm, steps=steps, scale_init=0.0 if zero_init_residual else 1.0)
        self._init_shortcut(in_channels, out, stride, shortcut, norm, steps, rngs)

    def __call__(self, x: jax.Array, t, ctx: NormContext) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv1(x), t, ctx))
        y = jax.nn.relu(self.bn2(self.conv2(y), t, ctx))
        y = self.bn3(self.conv3(y), t, ctx)
        return jax.nn.relu(y + self._shortcut(x, t, ctx))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}
