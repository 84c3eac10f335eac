"""Deep thinking networks (Schwarzschild et al. 2021; with recall and the progressive loss, Bansal et al. 2022) as
a graph of the one engine (recbench.models.engine), written from aks2203/deep-thinking's ``dt_net_2d``.

The net: a *projection* (3×3 conv + ReLU, computed once) whose output is the recurrent state before the first
step; a *recurrent block* applied at every step, two residual basic blocks (conv-ReLU-conv + identity, ReLU; no
normalisation); and a per-pixel *head* (3×3 convs to 32, 8, then the classes) read out after every step. With
``recall`` the block first convolves the concatenation ``[state, image]`` (a 3×3 conv, no ReLU); here that conv is
two edges whose sum it is, a 3×3 lateral conv from the state and a 3×3 recall conv from the image. Without recall
the reference's block is the two basic blocks alone (no conv on the state), and so is this one: the state enters
by an identity edge.

Stagewise schedule: ``steps`` beyond the trained ones unroll further at test time (the point of the paper:
"thinking longer" on harder instances). For a per-image task such as Pathfinder the per-pixel head is max-pooled
over pixels (``readout: pixel_max``); ``gmp`` / ``gap`` put a global pool and a linear layer on the state instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from recbench.config import check_int, choice
from recbench.models.contract import EngineConfig, Shape, widen
from recbench.models.engine import IMAGE, AreaSpec, EdgeSpec, GraphSpec

DT_READOUTS = ("pixel_max", "gmp", "gap")


@dataclass(frozen=True, kw_only=True)
class DTNetConfig(EngineConfig):
    """DT-net (``recall: false``, Schwarzschild et al. 2021) and DT-net with recall (Bansal et al. 2022): a projection,
    one recurrent block of ``blocks`` residual basic blocks at ``channels`` maps, unrolled ``steps`` times, a readout
    after every step; trained with the progressive loss."""

    natural_input: Shape = (32, 32, 1)  # Pathfinder at 32 px (the per-image task of this benchmark), grayscale
    natural_classes: int = 2  # same path or not
    objective: str = "progressive"  # Bansal et al. 2022's progressive loss (Schwarzschild et al. 2021: the last step)
    steps: int = 10  # iterations of the recurrent block at training (deep-thinking's mazes: 30)
    norm: str = "none"  # as deep-thinking's DT-nets (their _gn variants: group)
    channels: int = 32  # DT's ``width`` (the paper's 2-D nets: 128); also scaled by ``width``, the multiplier
    blocks: int = 2  # residual basic blocks in the recurrent block
    recall: bool = True  # re-inject the image at every step (DT-net "recall")
    readout: str = "pixel_max"  # pixel_max (DT's per-pixel head, max over pixels) | gmp | gap (pool, then linear)
    stride: int = 1  # ours: the projection and recall convs stride by it, the recurrence runs at 1/stride resolution
    init: str = "torch"  # PyTorch's default init, as deep-thinking's nets start (at He scale: loss ~10^2 at step 1)


def dt_net(c: DTNetConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    check_int("model.channels", c.channels)
    check_int("model.blocks", c.blocks)
    check_int("model.stride", c.stride)
    choice(c.readout, "model.readout", DT_READOUTS)
    width = widen(c.channels, c.width)
    areas = (AreaSpec("projection", width, pool=c.stride, steps=1, once=True),
             AreaSpec("recur", width, cell="residual", blocks=c.blocks))
    edges = [EdgeSpec("bottom_up", IMAGE, 0, 3, stride=c.stride),  # the projection conv (its ReLU: the plain cell's)
             EdgeSpec("bottom_up", 0, 1, 0, initial=True)]  # the projection's output is the state before step 1
    if c.recall:  # conv([state, image]) = lateral conv(state) + recall conv(image)
        edges += [EdgeSpec("lateral", 1, 1, 3), EdgeSpec("recall", IMAGE, 1, 3, stride=c.stride)]
    else:  # the blocks act on the state itself
        edges.append(EdgeSpec("lateral", 1, 1, 0))
    return GraphSpec(areas, tuple(edges), steps=c.steps, schedule="stagewise", norm=c.norm, unroll=c.unroll,
                     readout=c.readout, in_channels=input_shape[-1], num_classes=num_classes,
                     input_size=input_shape[0])

