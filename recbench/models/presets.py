"""Thin builders: each model family of the comparison as a :class:`GraphSpec` of the one engine.

A family config (a frozen dataclass filled from YAML) goes in, a graph comes out; nothing here defines a
layer. Where a paper leaves a detail open the choice is named in the docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from recbench.models.engine import IMAGE, AreaSpec, EdgeSpec, GraphSpec, chain_graph


@dataclass(frozen=True)
class BLTConfig:
    """A stack of areas with optional lateral and top-down transitions (Spoerer 2017; Kietzmann's BL-net)."""

    name: str
    family: str
    channels: tuple[int, ...]
    pools: tuple[int, ...]
    kernels: tuple[int, ...]
    lateral: bool = False
    topdown: bool = False
    schedule: str = "sequential"
    norm: str = "bn_step"
    steps: int = 4
    unroll: str = "auto"
    topdown_resample: str = "transpose"
    readout: str = "gap"
    interaction: str = "additive"
    remat: bool = False
    area_names: tuple[str, ...] | None = None


def blt(c: BLTConfig, num_classes: int, input_shape: tuple[int, int, int]) -> GraphSpec:
    return chain_graph(
        tuple(c.channels), pools=tuple(c.pools), kernels=tuple(c.kernels), lateral=c.lateral, topdown=c.topdown,
        names=c.area_names, steps=c.steps, schedule=c.schedule, norm=c.norm, in_channels=input_shape[-1],
        num_classes=num_classes, unroll=c.unroll, topdown_resample=c.topdown_resample, readout=c.readout,
        input_size=input_shape[0], interaction=c.interaction, remat=c.remat)


@dataclass(frozen=True)
class CornetConfig:
    """CORnet-Z/R/RT/S (Kubilius et al. 2018) and Kar et al.'s shallow recurrent net with top-down feedback.

    ``steps``: ``times`` of R/RT (default 5); for S the steps of IT (V2/V4 keep ``area_steps``).
    ``topdown`` adds feedback IT→V4→V2→V1 to R/RT (``kar_feedback``); the feedback is a transposed conv.
    """

    name: str
    family: str
    variant: str  # z | r | rt | s
    steps: int = 5
    topdown: bool = False
    area_steps: tuple[int, ...] = (2, 4, 2)  # S: V2, V4, IT
    norm: str = ""  # default per variant: none (Z), group (R/RT), bn_step (S)
    unroll: str = "auto"
    topdown_resample: str = "transpose"


CORNET_VARIANTS = ("z", "r", "rt", "s")
_CORNET_WIDTHS = (64, 128, 256, 512)
_NAMES = ("V1", "V2", "V4", "IT")


def cornet(c: CornetConfig, num_classes: int, input_shape: tuple[int, int, int]) -> GraphSpec:
    common = dict(in_channels=input_shape[-1], num_classes=num_classes, unroll=c.unroll,
                  topdown_resample=c.topdown_resample, input_size=input_shape[0])
    if c.variant == "z":  # conv → ReLU → 3x3/2 max-pool per area; feedforward
        areas = tuple(AreaSpec(n, w, pool=4 if i == 0 else 2, post_pool=True)
                      for i, (n, w) in enumerate(zip(_NAMES, _CORNET_WIDTHS, strict=True)))
        edges = tuple(EdgeSpec("bottom_up", i - 1, i, 7 if i == 0 else 3, stride=2 if i == 0 else 1, bias=True)
                      for i in range(4))
        return GraphSpec(areas, edges, steps=1, schedule="stagewise", norm=c.norm or "none", **common)
    if c.variant in ("r", "rt"):  # input conv + GN + ReLU, added to the state, then conv + GN + ReLU
        areas = tuple(AreaSpec(n, w, pool=4 if i == 0 else 2, cell="conv")
                      for i, (n, w) in enumerate(zip(_NAMES, _CORNET_WIDTHS, strict=True)))
        edges = [EdgeSpec("bottom_up", i - 1, i, 7 if i == 0 else 3, stride=4 if i == 0 else 2, norm_act=True,
                          bias=True) for i in range(4)]
        edges += [EdgeSpec("lateral", i, i, 0) for i in range(4)]
        if c.topdown:
            edges += [EdgeSpec("topdown", i + 1, i, 3) for i in range(3)]
        return GraphSpec(areas, tuple(edges), steps=c.steps, norm=c.norm or "group", zero_absent=True,
                         schedule="synchronous" if c.variant == "rt" else "sequential", **common)
    if c.variant == "s":  # V1 = two conv-BN-ReLU (max-pool between); V2/V4/IT bottleneck blocks, per-step BN
        v2, v4, it = c.area_steps[0], c.area_steps[1], c.steps
        areas = (AreaSpec("V1_0", 64, pool=4, steps=1, post_pool=True), AreaSpec("V1", 64, steps=1),
                 AreaSpec("V2", 128, pool=2, cell="bottleneck", steps=v2),
                 AreaSpec("V4", 256, pool=2, cell="bottleneck", steps=v4),
                 AreaSpec("IT", 512, pool=2, cell="bottleneck", steps=it))
        edges = [EdgeSpec("bottom_up", IMAGE, 0, 7, stride=2), EdgeSpec("bottom_up", 0, 1, 3)]
        edges += [EdgeSpec("bottom_up", i - 1, i, 1) for i in (2, 3, 4)]
        edges += [EdgeSpec("lateral", i, i, 0) for i in (2, 3, 4)]
        return GraphSpec(areas, tuple(edges), steps=it, schedule="stagewise", norm=c.norm or "bn_step", **common)
    raise ValueError(f"variant must be one of {', '.join(CORNET_VARIANTS)}, got {c.variant!r}")


@dataclass(frozen=True)
class LiaoPoggioConfig:
    """Liao & Poggio 2016's multi-state recurrent net: states (areas) with feedforward, lateral (residual)
    and feedback transitions, time-specific BN. ``states=1`` is the shared ResNet (stagewise: a stem, then
    one area that repeats its residual block ``steps`` times); more states run all transitions together.
    ``connectivity=full`` joins every pair of states (their "fully recurrent" net), ``chain`` neighbours."""

    name: str
    family: str
    states: int = 4
    channels: tuple[int, ...] = (16, 32, 64, 128)
    steps: int = 8
    feedforward: bool = True
    lateral: bool = True
    feedback: bool = True
    connectivity: str = "chain"
    schedule: str = "synchronous"
    norm: str = "bn_step"
    unroll: str = "auto"
    topdown_resample: str = "transpose"


def liao_poggio(c: LiaoPoggioConfig, num_classes: int, input_shape: tuple[int, int, int]) -> GraphSpec:
    if not 1 <= c.states <= len(c.channels):
        raise ValueError(f"states={c.states} needs that many channels entries, got {list(c.channels)}")
    common = dict(in_channels=input_shape[-1], num_classes=num_classes, unroll=c.unroll, norm=c.norm,
                  topdown_resample=c.topdown_resample, input_size=input_shape[0])
    names = _NAMES if c.states == 4 else tuple(f"S{i + 1}" for i in range(c.states))
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


@dataclass(frozen=True)
class FeedbackNetConfig:
    """Zamir et al. 2017 Feedback48: a stem, then a stack of ConvLSTM modules, the stem output fed again at
    every iteration and a readout (and loss) at every iteration; virtual depth = physical × iterations."""

    name: str
    family: str
    stem_channels: int = 16
    channels: tuple[int, ...] = (16, 32, 64, 64)
    pools: tuple[int, ...] = (1, 2, 2, 1)
    steps: int = 4
    cell: str = "lstm"
    norm: str = "bn_step"
    unroll: str = "auto"


def feedback_net(c: FeedbackNetConfig, num_classes: int, input_shape: tuple[int, int, int]) -> GraphSpec:
    areas = (AreaSpec("stem", c.stem_channels),) + tuple(
        AreaSpec(f"module{i + 1}", w, pool=p, cell=c.cell) for i, (w, p) in enumerate(zip(c.channels, c.pools,
                                                                                              strict=True)))
    edges = tuple(EdgeSpec("bottom_up", i - 1, i, 3, stride=areas[i].pool) for i in range(len(areas)))
    return GraphSpec(areas, edges, steps=c.steps, schedule="sequential", norm=c.norm, unroll=c.unroll,
                     in_channels=input_shape[-1], num_classes=num_classes, input_size=input_shape[0])


@dataclass(frozen=True)
class HGRUConfig:
    """Linsley et al. 2018: a 7x7 feedforward stem, one horizontal gated recurrent layer unrolled 8 steps,
    global max-pool readout (their 15x15 horizontal kernels by default)."""

    name: str
    family: str
    channels: int = 25
    stem_kernel: int = 7
    kernel: int = 15
    steps: int = 8
    norm: str = "bn_step"
    unroll: str = "auto"


def hgru(c: HGRUConfig, num_classes: int, input_shape: tuple[int, int, int]) -> GraphSpec:
    areas = (AreaSpec("hgru", c.channels, cell="hgru", kernel=c.kernel),)
    edges = (EdgeSpec("bottom_up", IMAGE, 0, c.stem_kernel, bias=True),)
    return GraphSpec(areas, edges, steps=c.steps, schedule="sequential", norm=c.norm, unroll=c.unroll,
                     readout="gmp", in_channels=input_shape[-1], num_classes=num_classes, input_size=input_shape[0])


