"""Thin builders: the recurrent families of the comparison as :class:`GraphSpec` s of the one engine.

A family config (a frozen dataclass filled from YAML) goes in, a graph comes out; nothing here defines a
layer. Where a paper leaves a detail open the choice is named in the docstring. CORnet, whose PyTorch names
come with it, is :mod:`recbench.models.cornet`; the ResNets are their own module (:mod:`recbench.models.resnet`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from recbench.config import ConfigError, choice, family_config, load_option
from recbench.models.contract import EngineConfig, Shape
from recbench.models.cornet import CORNET_AREAS
from recbench.models.engine import IMAGE, AreaSpec, EdgeSpec, GraphSpec, chain_graph
from recbench.models.matching import MATCH_KINDS, chain_params, match_control


@dataclass(frozen=True, kw_only=True)
class BLTConfig(EngineConfig):
    """A stack of areas with optional lateral and top-down transitions (Spoerer 2017; Kietzmann's BL-net)."""

    natural_input: Shape = (32, 32, 1)  # Spoerer et al.'s digit clutter / debris
    natural_classes: int = 10
    channels: tuple[int, ...]  # feature maps per area, bottom to top
    pools: tuple[int, ...]  # downsampling into each area (max-pooled before its bottom-up conv)
    kernels: tuple[int, ...]  # bottom-up kernel per area; lateral and top-down edges use the same size
    lateral: bool = False  # L: a conv from each area's previous state into itself
    topdown: bool = False  # T: a transposed conv from area i+1's previous state into area i
    schedule: str = "sequential"  # sequential | synchronous | stagewise (recbench.models.engine)
    topdown_resample: str = "transpose"  # transpose (stride-f transposed conv) | nearest (upsample, then conv)
    readout: str = "gap"  # gap | gmp (global average / max pool, then linear) | flatten (linear on the map)
    interaction: str = "additive"  # additive | multiplicative: bottom_up * (1 + lateral + topdown)
    remat: bool = False  # recompute each step in the backward pass (saves memory in the rolled form)
    area_names: tuple[str, ...] | None = None  # default area1, area2, ...


def blt(c: BLTConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    return chain_graph(
        tuple(c.channels), pools=tuple(c.pools), kernels=tuple(c.kernels), lateral=c.lateral, topdown=c.topdown,
        names=c.area_names, steps=c.steps, schedule=c.schedule, norm=c.norm, in_channels=input_shape[-1],
        num_classes=num_classes, unroll=c.unroll, topdown_resample=c.topdown_resample, readout=c.readout,
        input_size=input_shape[0], interaction=c.interaction, remat=c.remat)


@dataclass(frozen=True, kw_only=True)
class MatchedControlConfig(BLTConfig):
    """A B net grown to the parameter count of a recurrent net, so "recurrence helps" is shown at equal size."""

    match: str = "width"  # kernel (B-K) | width (B-F) | depth (B-D): how the extra parameters are spent
    target: str = "blt"  # the blt-family preset whose parameter count (at the same input) is matched
    target_params: int = 0  # match this count instead of target's (0: use target)


def matched_control(c: MatchedControlConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    choice(c.match, "model.match", MATCH_KINDS)
    base = blt(dataclasses.replace(c, lateral=False, topdown=False), num_classes, input_shape)
    target = c.target_params
    if target <= 0:
        target_cfg = load_option("model", c.target)
        if target_cfg.get("family") != "blt":
            raise ConfigError(f"model.target={c.target!r} must name a blt-family preset (or set model.target_params)")
        target_spec = blt(family_config(BLTConfig, target_cfg, f"model {c.target}"), num_classes, input_shape)
        target = chain_params(target_spec)
    return match_control(base, c.match, target)


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
