"""What the rest of recbench may assume of a model and of a family's config, whichever family made them.

Training, evaluation and accounting treat every model alike — the areas graph and the standalone ResNets — so
the assumptions are written down here once instead of being probed (``inspect``) or special-cased where used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import jax

#: An image shape, height × width × channels (NHWC without the batch).
Shape = tuple[int, int, int]


@runtime_checkable
class Model(Protocol):
    """A model reads out at every time step; a feedforward net is the case of one step."""

    #: Readouts a forward pass gives at the depth it was trained at (``steps=None``): the ``T`` of ``[T, B, C]``.
    trained_steps: int

    def __call__(self, x: jax.Array, *, steps: int | None = None, ablate: Sequence[str] = (),
                 train: bool = False) -> jax.Array:
        """Logits ``[T, B, C]`` from NHWC images; ``steps`` changes the unroll depth at test time, ``ablate``
        silences connection kinds (``lateral``, ``topdown``, ...), ``train`` uses and collects batch statistics."""
        ...

    def unroll(self, x: jax.Array, *, steps: int | None = None, ablate: Sequence[str] = (), train: bool = False,
               strategy: str | None = None) -> list[jax.Array]:
        """The same logits as a list of ``[B, C]``, one per readout. ``strategy`` (``loop`` | ``scan`` | ``auto``)
        overrides how weight-shared steps run; accounting asks for ``loop`` so that every step is its own part of
        the traced graph. A model with nothing to roll ignores it."""
        ...


@dataclass(frozen=True, kw_only=True)
class FamilyConfig:
    """Keys every model preset has, whatever its family; a family's dataclass adds its own and the defaults.

    The natural input is metadata, not architecture: training builds the model for its dataset's images
    (``model_from_config(cfg, num_classes=, input_shape=)``), while ``build_model(name)`` and the README preset
    table use the natural input so that a preset is, by default, the network its paper trained (and that
    published weights load into).
    """

    name: str  # the preset's file name unless the YAML sets one
    family: str  # the registry entry that checks and builds it (recbench.models.registry)
    natural_input: Shape  # height, width, channels of the images the paper trained on
    natural_classes: int  # classes of that dataset
    # How the paper trains it: the loss over the readouts when trainer.loss_over_steps=auto (recbench.train.objectives):
    # last (the last step's readout), mean (every step's, equally), progressive (deep-thinking's)
    objective: str = "mean"


@dataclass(frozen=True, kw_only=True)
class EngineConfig(FamilyConfig):
    """Keys of every family built on the areas-graph engine (``recbench.models.engine``)."""

    steps: int = 4  # the unroll depth: time steps, one readout each (stagewise nets: the last area's steps)
    norm: str = "bn_step"  # bn_step (BatchNorm per time step) | bn (one BatchNorm for all steps) | group | none
    unroll: str = "auto"  # auto (a Python loop on CPU, a rolled lax.scan on GPU/TPU) | loop | scan
    width: float = 1.0  # channel multiplier on every area (CPU-scale versions shrink a preset without a new one)
    init: str = "kaiming"  # kernel initialiser (recbench.models.cells.KERNEL_INITS): kaiming (He normal) | torch


def widen(channels: int, width: float) -> int:
    """``channels`` scaled by a width multiplier, rounded, at least 1."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(1, round(channels * width))
