"""Zamir et al. 2017 feedback networks (Feedback48: a stem and a stack of ConvLSTM modules, a readout at every
iteration) as a graph of the one engine (recbench.models.engine)."""

from __future__ import annotations

from dataclasses import dataclass

from recbench.models.contract import EngineConfig, Shape
from recbench.models.engine import AreaSpec, EdgeSpec, GraphSpec


@dataclass(frozen=True, kw_only=True)
class FeedbackNetConfig(EngineConfig):
    """Zamir et al. 2017 Feedback48: a stem, then a stack of ConvLSTM modules, the stem output fed again at
    every iteration and a readout (and loss) at every iteration; virtual depth = physical × iterations."""

    natural_input: Shape = (32, 32, 3)  # CIFAR-100 (fine labels), the paper's CIFAR experiments
    natural_classes: int = 100
    stem_channels: int = 16
    channels: tuple[int, ...] = (16, 32, 64, 64)  # per module
    pools: tuple[int, ...] = (1, 2, 2, 1)  # the stride into each module
    cell: str = "lstm"  # lstm (Zamir's ConvLSTM) | gru | any cell of recbench.models.cells


def feedback_net(c: FeedbackNetConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    areas = (AreaSpec("stem", c.stem_channels),) + tuple(
        AreaSpec(f"module{i + 1}", w, pool=p, cell=c.cell) for i, (w, p) in enumerate(zip(c.channels, c.pools,
                                                                                              strict=True)))
    edges = tuple(EdgeSpec("bottom_up", i - 1, i, 3, stride=areas[i].pool) for i in range(len(areas)))
    return GraphSpec(areas, edges, steps=c.steps, schedule="sequential", norm=c.norm, unroll=c.unroll,
                     in_channels=input_shape[-1], num_classes=num_classes, input_size=input_shape[0])
