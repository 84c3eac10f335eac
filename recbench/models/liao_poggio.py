"""Liao & Poggio 2016: multi-state recurrent nets (areas with feedforward, lateral and feedback transitions)
and the shared ResNet, as graphs of the one engine (recbench.models.engine)."""

from __future__ import annotations

from dataclasses import dataclass

from recbench.config import choice
from recbench.models.contract import EngineConfig, Shape
from recbench.models.cornet import CORNET_AREAS
from recbench.models.engine import IMAGE, AreaSpec, EdgeSpec, GraphSpec


@dataclass(frozen=True, kw_only=True)
class LiaoPoggioConfig(EngineConfig):
    """Liao & Poggio 2016's multi-state recurrent net: states (areas) with feedforward, lateral (residual)
    and feedback transitions, time-specific BN. ``states=1`` is the shared ResNet (stagewise: a stem, then
    one area that repeats its residual block ``steps`` times); more states run all transitions together."""

    natural_input: Shape = (32, 32, 3)  # CIFAR-10, the paper's experiments
    natural_classes: int = 10
    steps: int = 8
    states: int = 4  # areas after the stem (1: the shared ResNet)
    channels: tuple[int, ...] = (16, 32, 64, 128)  # per state; at least ``states`` entries
    feedforward: bool = True  # state i -> i+1, strided
    lateral: bool = True  # state i -> i, the identity (the residual stream)
    feedback: bool = True  # state i+1 -> i, a transposed conv
    connectivity: str = "chain"  # chain (neighbouring states) | full (every pair: their "fully recurrent" net)
    schedule: str = "synchronous"  # how more than one state updates (recbench.models.engine)
    topdown_resample: str = "transpose"  # transpose | nearest (upsample, then conv)


def liao_poggio(c: LiaoPoggioConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    if not 1 <= c.states <= len(c.channels):
        raise ValueError(f"states={c.states} needs that many channels entries, got {list(c.channels)}")
    choice(c.connectivity, "model.connectivity", ("chain", "full"))
    common = dict(in_channels=input_shape[-1], num_classes=num_classes, unroll=c.unroll, norm=c.norm,
                  topdown_resample=c.topdown_resample, input_size=input_shape[0])
    names = CORNET_AREAS if c.states == 4 else tuple(f"S{i + 1}" for i in range(c.states))
    stem = AreaSpec("stem", c.channels[0], steps=1)
    if c.states == 1:
        areas = (stem, AreaSpec(names[0], c.channels[0], cell="residual", steps=c.steps))
        edges = (EdgeSpec("bottom_up", IMAGE, 0, 3), EdgeSpec("bottom_up", 0, 1, 0), EdgeSpec("lateral", 1, 1, 0))
        return GraphSpec(areas, edges, steps=c.steps, schedule="stagewise", **common)
    areas = (stem,) + tuple(AreaSpec(n, w, pool=1 if i == 0 else 2, cell="residual")
                            for i, (n, w) in enumerate(zip(names, c.channels, strict=False)))
    edges = [EdgeSpec("bottom_up", IMAGE, 0, 3), EdgeSpec("bottom_up", 0, 1, 0)]
    n = len(areas)
    for i in range(1, n):
        for j in range(1, n):
            adjacent = abs(i - j) == 1
            if i == j and c.lateral:
                edges.append(EdgeSpec("lateral", i, i, 0))
            elif j > i and c.feedforward and (adjacent or c.connectivity == "full"):
                edges.append(EdgeSpec("bottom_up", i, j, 3, stride=2))
            elif j < i and c.feedback and (adjacent or c.connectivity == "full"):
                edges.append(EdgeSpec("topdown", i, j, 3))
    return GraphSpec(areas, tuple(edges), steps=c.steps, schedule=c.schedule, **common)
