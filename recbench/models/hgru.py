"""Linsley et al. 2018: one horizontal gated recurrent layer (hGRU) on a feedforward stem, for Pathfinder, as a
graph of the one engine (recbench.models.engine)."""

from __future__ import annotations

from dataclasses import dataclass

from recbench.models.contract import EngineConfig, Shape
from recbench.models.engine import IMAGE, AreaSpec, EdgeSpec, GraphSpec


@dataclass(frozen=True, kw_only=True)
class HGRUConfig(EngineConfig):
    """Linsley et al. 2018: a 7x7 feedforward stem, one horizontal gated recurrent layer unrolled 8 steps,
    global max-pool readout (their 15x15 horizontal kernels by default)."""

    natural_input: Shape = (150, 150, 1)  # Pathfinder at the paper's 150 px, grayscale
    natural_classes: int = 2  # same path or not
    steps: int = 8
    channels: int = 25
    stem_kernel: int = 7
    kernel: int = 15  # the horizontal kernels of the recurrent layer


def hgru(c: HGRUConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    areas = (AreaSpec("hgru", c.channels, cell="hgru", kernel=c.kernel),)
    edges = (EdgeSpec("bottom_up", IMAGE, 0, c.stem_kernel, bias=True),)
    return GraphSpec(areas, edges, steps=c.steps, schedule="sequential", norm=c.norm, unroll=c.unroll,
                     readout="gmp", in_channels=input_shape[-1], num_classes=num_classes, input_size=input_shape[0])
