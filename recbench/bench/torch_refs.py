"""PyTorch references of the benchmarked networks, written from recbench's model code (eager, NCHW tensors).

They are the *same* networks as recbench's, not look-alikes: the same layers, padding and strides, the same time
unroll and schedule, time-specific BatchNorm (one set of statistics and affine per trained step), and a readout
at every time step, so ``recbench-bench`` times the same arithmetic in both frameworks and
``tests/bench/test_torch_refs.py`` checks that, with recbench's weights copied in (:mod:`recbench.bench.weights`),
they give the same logits at every step. Module names follow recbench's layout (``edges.V1_to_V2.conv``,
``areas.V1.cells.0.norm``, ``readout``; torchvision's for the ResNet), which is what lets the copy find each
weight by name.

* :class:`GraphNet` — an areas graph as :mod:`recbench.models.engine` unrolls it: the ``sequential`` and
  ``synchronous`` schedules, bottom-up / lateral / top-down edges (max-pool then conv; a transposed conv for
  top-down from a coarser area, or nearest upsampling then a conv where the factor exceeds the kernel; the identity
  for ``kernel=0``), transition-function edges (conv-norm-ReLU-conv-norm, Liao & Poggio's), an identity edge of
  kind ``recall`` from an area itself, ``plain`` / ``sum`` / ``conv`` / ``residual`` cells, areas computed once (a
  stem), CORnet's zero drive for an area with no input yet, and a global-pool readout (the bias alone while the top
  area has no state). BLT, CORnet-R/RT and Liao & Poggio's multi-state nets are built on it by
  :func:`blt_reference`, :func:`cornet_reference` and :func:`liao_poggio_reference`, which mirror the preset
  builders of :mod:`recbench.models.presets` and :mod:`recbench.models.cornet`.
* :class:`CifarResNet` — He et al.'s CIFAR ResNet as :mod:`recbench.models.resnet` builds it (option-A or
  option-B shortcuts).

Options the benchmarked presets do not use (stagewise schedules, image-recall and skip edges, gated cells,
multiplicative interaction, nearest-neighbour top-down where a transposed conv covers the stride, a flatten readout,
weight-shared ResNets) raise a ``ValueError`` instead of being approximated.

One semantic difference is inherent: PyTorch's BatchNorm folds the *unbiased* batch variance into its running
average, recbench's ``StepNorm`` the biased one (a factor n/(n-1), n = batch × height × width, 1 + 1.5e-5 for
BLT's first area). The forward pass, in train and in eval mode, is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from recbench.models.contract import widen

IMAGE = -1  # source index of the input image, as in recbench.models.engine
_EDGE_KINDS = ("bottom_up", "recall", "lateral", "topdown")  # the order the engine sums a drive in


# ---- norms: called as norm(x, t) -----------------------------------------------------------------------------


class StepBatchNorm(nn.ModuleList):
    """Time-specific BatchNorm (recbench's ``StepNorm(kind="bn_step")``): one ``BatchNorm2d`` per trained step,
    state-dict keys ``<name>.<t>.weight``; a step beyond those trained (test-time unroll) reuses the last.

    PyTorch's ``momentum=0.1`` is recbench's ``momentum=0.9`` (the weight of the old running average)."""

    def __init__(self, channels: int, rows: int, eps: float = 1e-5):
        super().__init__([nn.BatchNorm2d(channels, eps=eps, momentum=0.1) for _ in range(rows)])

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self[min(t, len(self) - 1)](x)


class StepGroupNorm(nn.GroupNorm):
    """GroupNorm with the step argument the other norms take (it has no per-step rows)."""

    def forward(self, x: torch.Tensor, t: int = 0) -> torch.Tensor:
        return super().forward(x)


class NoNorm(nn.Module):
    def forward(self, x: torch.Tensor, t: int = 0) -> torch.Tensor:
        return x


def largest_divisor(channels: int, groups: int = 32) -> int:
    """recbench's GroupNorm group count: the largest divisor of ``channels`` not above ``groups``."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


def step_norm(kind: str, channels: int, rows: int) -> nn.Module:
    """The counterpart of ``StepNorm(channels, kind=kind, steps=rows)``."""
    if kind == "bn_step":
        return StepBatchNorm(channels, rows)
    if kind == "bn":
        return StepBatchNorm(channels, 1)
    if kind == "group":
        return StepGroupNorm(largest_divisor(channels), channels, eps=1e-5)
    if kind == "none":
        return NoNorm()
    raise ValueError(f"norm must be one of bn_step, bn, group, none, got {kind!r}")


# ---- edges and cells ---------------------------------------------------------------------------------------------


def transpose_conv(c_in: int, c_out: int, kernel: int, stride: int, bias: bool) -> tuple[nn.ConvTranspose2d, int]:
    """A ``ConvTranspose2d`` that computes what flax's ``ConvTranspose(padding="SAME")`` does, and the number of
    trailing rows/columns to crop from its output.

    ``jax.lax.conv_transpose`` pads the stride-dilated input by ``(a, b)`` (its ``SAME`` rule below) and
    correlates with the kernel; PyTorch pads by ``kernel - 1 - padding`` on both sides plus ``output_padding`` at
    the end, so ``padding = kernel - 1 - a`` and the end is made up by ``output_padding`` or a crop. The kernel
    itself is stored flipped (:mod:`recbench.bench.weights`)."""
    pad_len = kernel + stride - 2
    a = kernel - 1 if stride > kernel - 1 else math.ceil(pad_len / 2)
    extra = (pad_len - a) - a
    conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding=kernel - 1 - a, output_padding=max(extra, 0),
                              bias=bias)
    return conv, max(-extra, 0)


class Edge(nn.Module):
    """recbench's ``Edge``: max-pool to the destination's resolution, conv (or, from a coarser area, a transposed
    conv where the kernel covers the stride, else nearest upsampling then a conv), for CORnet's input convs a norm +
    ReLU of its own, and for a transition function (``block``) norm, ReLU, a second conv and norm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, stride: int, pool: int, up: int, bias: bool,
                 norm: nn.Module | None, norm2: nn.Module | None = None):
        super().__init__()
        self.pool, self.crop, self.up = pool, 0, 1
        if 1 < up <= kernel:
            self.conv, self.crop = transpose_conv(c_in, c_out, kernel, up, bias)
        else:
            self.up = up
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=bias)
        self.norm = norm
        if norm2 is not None:
            self.conv2 = nn.Conv2d(c_out, c_out, kernel, 1, kernel // 2, bias=False)
            self.norm2 = norm2

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        if self.pool > 1:  # ceil_mode: flax's SAME max-pool pads the end, the window sees what is there
            x = F.max_pool2d(x, self.pool, self.pool, ceil_mode=True)
        if self.up > 1:
            x = F.interpolate(x, scale_factor=self.up, mode="nearest")
        x = self.conv(x)
        if self.crop:
            x = x[..., : x.shape[-2] - self.crop, : x.shape[-1] - self.crop]
        if self.norm is not None:
            x = F.relu(self.norm(x, t))
        if hasattr(self, "norm2"):
            x = self.norm2(self.conv2(x), t)
        return x


def _conv(c_in: int, c_out: int, kernel: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2, bias=bias)


class PlainCell(nn.Module):
    """``relu(norm_t(drive))`` (Spoerer's BLT layers: the convs are on the edges)."""

    def __init__(self, channels: int, *, norm: str, rows: int, kernel: int):
        super().__init__()
        self.norm = step_norm(norm, channels, rows)

    def forward(self, drive: torch.Tensor, t: int) -> torch.Tensor:
        return F.relu(self.norm(drive, t))


class SumCell(nn.Module):
    """``relu(drive)``: the area adds transition functions that carry their own norms (Liao & Poggio)."""

    def __init__(self, channels: int, *, norm: str, rows: int, kernel: int):
        super().__init__()

    def forward(self, drive: torch.Tensor, t: int) -> torch.Tensor:
        return F.relu(drive)


class ConvCell(nn.Module):
    """``relu(norm_t(conv(drive)))`` (CORnet-R/RT; the drive is input + state)."""

    def __init__(self, channels: int, *, norm: str, rows: int, kernel: int):
        super().__init__()
        self.conv = _conv(channels, channels, kernel, bias=norm == "none")
        self.norm = step_norm(norm, channels, rows)

    def forward(self, drive: torch.Tensor, t: int) -> torch.Tensor:
        return F.relu(self.norm(self.conv(drive), t))


class ResidualCell(nn.Module):
    """``relu(drive + norm2_t(conv2(relu(norm1_t(conv1(drive))))))`` (Liao & Poggio's residual states)."""

    def __init__(self, channels: int, *, norm: str, rows: int, kernel: int):
        super().__init__()
        bias = norm == "none"
        self.conv1 = _conv(channels, channels, kernel, bias)
        self.norm1 = step_norm(norm, channels, rows)
        self.conv2 = _conv(channels, channels, kernel, bias)
        self.norm2 = step_norm(norm, channels, rows)

    def forward(self, drive: torch.Tensor, t: int) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(drive), t))
        return F.relu(drive + self.norm2(self.conv2(y), t))


CELLS = {"plain": PlainCell, "sum": SumCell, "conv": ConvCell, "residual": ResidualCell}


class Area(nn.Module):
    """Holds its cell as ``cells.0``, recbench's layout for a weight-shared area."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.cells = nn.ModuleList([cell])

    def forward(self, drive: torch.Tensor, t: int) -> torch.Tensor:
        return self.cells[0](drive, t)


# ---- the graph -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaDef:
    name: str
    channels: int
    pool: int = 1  # downsampling relative to the area below (or the image)
    cell: str = "plain"
    kernel: int = 3
    rows: int | None = None  # rows of its time-specific norms (None: the graph's steps)
    once: bool = False  # computed at its first step, then held (a stem)


@dataclass(frozen=True)
class EdgeDef:
    kind: str  # bottom_up | recall (an identity from the area itself) | lateral | topdown
    src: int  # IMAGE (-1) or an area index
    dst: int
    kernel: int = 3  # 0: the identity
    stride: int = 1
    norm_act: bool = False
    bias: bool = False
    block: bool = False  # a transition function: conv-norm-ReLU-conv-norm


class GraphNet(nn.Module):
    """An areas graph unrolled as recbench's engine unrolls it; ``forward(x)`` gives logits ``[T, B, C]``.

    ``sequential``: within a step area i reads area i-1's state of *this* step over bottom-up edges, lateral and
    top-down edges the previous step's. ``synchronous``: every edge reads the previous step. An edge whose source
    has no state yet is absent; an area with no drive keeps its state, or with ``zero_absent`` (CORnet) runs its
    cell on a zero drive at its first step; with ``zero_absent`` the first step is synchronous whatever the
    schedule (CORnet-R: only V1 sees input at t=0). An area marked ``once`` is computed at its first step and then
    held. Drives sum bottom-up, then recall, then lateral, then top-down terms, in edge order, as the engine sums
    them.
    """

    def __init__(self, areas: list[AreaDef], edges: list[EdgeDef], *, steps: int, schedule: str, norm: str,
                 in_channels: int, num_classes: int, zero_absent: bool = False, readout: str = "gap"):
        super().__init__()
        if schedule not in ("sequential", "synchronous"):
            raise ValueError(f"the PyTorch reference runs the sequential and synchronous schedules, not {schedule!r}")
        if readout not in ("gap", "gmp"):
            raise ValueError(f"the PyTorch reference reads out by global average or max pool, not {readout!r}")
        self.trained_steps = steps
        self.sequential = schedule == "sequential"
        self.zero_absent, self.readout_kind = zero_absent, readout
        self.channels = [a.channels for a in areas]
        self.scales = [math.prod(a.pool for a in areas[: i + 1]) for i in range(len(areas))]
        names = [a.name for a in areas]
        modules = {}
        self.incoming: list[list[tuple[EdgeDef, str]]] = [[] for _ in areas]
        for e in edges:
            if e.kind not in _EDGE_KINDS:
                raise ValueError(f"the PyTorch reference has {', '.join(_EDGE_KINDS)} edges, not {e.kind!r}")
            if e.kind == "recall" and (e.src != e.dst or e.kernel):
                raise ValueError("the PyTorch reference's recall edges are an area's identity onto itself")
            name = f"{'input' if e.src == IMAGE else names[e.src]}_to_{names[e.dst]}"
            c_in = in_channels if e.src == IMAGE else areas[e.src].channels
            c_out = areas[e.dst].channels
            target, source = self.scales[e.dst], 1 if e.src == IMAGE else self.scales[e.src]
            down, up = max(target // source, 1), max(source // target, 1)
            if e.kernel == 0:
                if (c_in, down, up) != (c_out, 1, 1):
                    raise ValueError(f"identity edge {name} needs equal shapes")
            else:
                rows = areas[e.dst].rows or steps
                modules[name] = Edge(c_in, c_out, e.kernel, stride=e.stride, pool=max(down // e.stride, 1), up=up,
                                     bias=e.bias,
                                     norm=step_norm(norm, c_out, rows) if (e.norm_act or e.block) else None,
                                     norm2=step_norm(norm, c_out, rows) if e.block else None)
            self.incoming[e.dst].append((e, name))
        self.edges = nn.ModuleDict(modules)
        for a in areas:
            if a.cell not in CELLS:
                raise ValueError(f"the PyTorch reference has {', '.join(CELLS)} cells, not {a.cell!r}")
        self.areas = nn.ModuleDict({a.name: Area(CELLS[a.cell](a.channels, norm=norm, rows=a.rows or steps,
                                                               kernel=a.kernel)) for a in areas})
        self.names = names
        self.once = [a.once for a in areas]
        self.readout = nn.Linear(areas[-1].channels, num_classes)

    def _read(self, top: torch.Tensor | None, batch: int) -> torch.Tensor:
        if top is None:  # the signal has not reached the top area yet
            return self.readout.bias.expand(batch, -1)
        pooled = top.mean(dim=(2, 3)) if self.readout_kind == "gap" else top.amax(dim=(2, 3))
        return self.readout(pooled)

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        batch, size = x.shape[0], x.shape[-1]
        states: list[torch.Tensor | None] = [None] * len(self.names)
        logits = []
        for t in range(steps or self.trained_steps):
            sequential = self.sequential and not (self.zero_absent and t == 0)
            new = list(states)
            for i, name in enumerate(self.names):
                if self.once[i] and states[i] is not None:
                    continue  # computed at its first step, then held
                side = -(-size // self.scales[i])
                parts: dict[str, list[torch.Tensor]] = {k: [] for k in _EDGE_KINDS}
                for e, edge_name in self.incoming[i]:
                    if e.src == IMAGE:
                        src = x
                    else:
                        src = new[e.src] if sequential and e.kind == "bottom_up" else states[e.src]
                    if src is None:
                        continue
                    y = self.edges[edge_name](src, t) if e.kernel else src
                    parts[e.kind].append(y[..., :side, :side] if y.shape[-1] > side else y)
                if not any(parts.values()):
                    if not (self.zero_absent and states[i] is None):
                        continue
                    parts["bottom_up"].append(x.new_zeros(batch, self.channels[i], side, side))
                drive = sum(parts["bottom_up"] + parts["recall"] + parts["lateral"] + parts["topdown"])
                new[i] = self.areas[name](drive, t)
            states = new
            logits.append(self._read(states[-1], batch))
        return torch.stack(logits)


# ---- the families --------------------------------------------------------------------------------------------------


def blt_reference(c: dict, num_classes: int, input_shape) -> GraphNet:
    """``recbench.models.presets.blt``: a chain of areas (``width`` × ``channels``), bottom-up edges (max-pool,
    conv), lateral convs and top-down transposed convs, each of the area's bottom-up kernel size. A net without
    recurrent edges (B) is feedforward and runs one step, as the engine runs it."""
    if c.get("interaction", "additive") != "additive" or c.get("topdown_resample", "transpose") != "transpose":
        raise ValueError("the PyTorch BLT reference has additive interaction and transposed-conv top-down edges")
    if c.get("norm") == "lrn":
        raise ValueError("the PyTorch BLT reference has no local response normalisation")
    width = c.get("width", 1.0)
    channels = [widen(w, width) for w in c["channels"]]
    pools, kernels = list(c["pools"]), list(c["kernels"])
    n = len(channels)
    names = c.get("area_names") or [f"area{i + 1}" for i in range(n)]
    areas = [AreaDef(names[i], channels[i], pools[i]) for i in range(n)]
    # recbench.models.presets.blt: without a norm's shift the bottom-up convs carry a bias
    edges = [EdgeDef("bottom_up", i - 1 if i else IMAGE, i, kernels[i], bias=c["norm"] == "none") for i in range(n)]
    if c.get("lateral"):
        edges += [EdgeDef("lateral", i, i, kernels[i]) for i in range(n)]
    if c.get("topdown"):
        edges += [EdgeDef("topdown", i + 1, i, kernels[i]) for i in range(n - 1)]
    recurrent = c.get("lateral") or c.get("topdown") or c.get("schedule", "sequential") != "sequential"
    return GraphNet(areas, edges, steps=c["steps"] if recurrent else 1, schedule=c.get("schedule", "sequential"),
                    norm=c["norm"], in_channels=input_shape[-1], num_classes=num_classes,
                    readout=c.get("readout", "gap"))


CORNET_AREAS = ("V1", "V2", "V4", "IT")
CORNET_WIDTHS = (64, 128, 256, 512)


def cornet_reference(c: dict, num_classes: int, input_shape) -> GraphNet:
    """``recbench.models.cornet.cornet`` for CORnet-R / RT (and Kar's top-down variant): per area an input conv
    (7x7/4 into V1, 3x3/2 above) with bias + GroupNorm + ReLU, added to the area's state, then conv + GroupNorm +
    ReLU; a zero drive for the areas the image has not reached at t=0."""
    if c["variant"] not in ("r", "rt"):
        raise ValueError(f"the PyTorch CORnet reference is CORnet-R/RT, not variant {c['variant']!r}")
    if c.get("topdown") and c.get("topdown_resample", "transpose") != "transpose":
        raise ValueError("the PyTorch CORnet reference has transposed-conv top-down edges")
    widths = [widen(w, c.get("width", 1.0)) for w in CORNET_WIDTHS]
    areas = [AreaDef(n, w, 4 if i == 0 else 2, "conv") for i, (n, w) in enumerate(zip(CORNET_AREAS, widths,
                                                                                      strict=True))]
    edges = [EdgeDef("bottom_up", i - 1, i, 7 if i == 0 else 3, 4 if i == 0 else 2, norm_act=True, bias=True)
             for i in range(4)]
    edges += [EdgeDef("lateral", i, i, 0) for i in range(4)]
    if c.get("topdown"):
        edges += [EdgeDef("topdown", i + 1, i, 3) for i in range(3)]
    return GraphNet(areas, edges, steps=c["steps"], schedule="synchronous" if c["variant"] == "rt" else "sequential",
                    norm=c.get("norm") or "group", in_channels=input_shape[-1], num_classes=num_classes,
                    zero_absent=True)


def liao_poggio_reference(c: dict, num_classes: int, input_shape) -> GraphNet:
    """``recbench.models.liao_poggio.liao_poggio`` with two or more states: a 3x3 conv stem (conv-BN-ReLU, computed
    once), then states of the ``sum`` cell, each transition its own function conv-BN-ReLU-conv-BN: strided
    feedforward (max-pooled first when it skips a level), feedback (a transposed conv at stride 2, nearest upsampling
    then a conv at 4 and 8) and lateral, which keeps the identity too (an identity lateral edge), between
    neighbours (``chain``) or every pair (``full``)."""
    states = c["states"]
    if states < 2:
        raise ValueError("the PyTorch Liao & Poggio reference has two or more states (states=1 is the stagewise "
                         "shared ResNet)")
    if c.get("topdown_resample", "transpose") != "transpose":
        raise ValueError("the PyTorch Liao & Poggio reference has transposed-conv feedback where the kernel covers "
                         "the stride")
    width = c.get("width", 1.0)
    channels = [widen(w, width) for w in list(c["channels"])[:states]]
    names = CORNET_AREAS if states == 4 else tuple(f"S{i + 1}" for i in range(states))
    areas = [AreaDef("stem", channels[0], rows=1, once=True)] + [
        AreaDef(n, w, 1 if i == 0 else 2, "sum") for i, (n, w) in enumerate(zip(names, channels, strict=True))]
    edges = [EdgeDef("bottom_up", IMAGE, 0, 3), EdgeDef("bottom_up", 0, 1, 0)]
    n = len(areas)
    for i in range(1, n):
        for j in range(1, n):
            linked = abs(i - j) == 1 or c["connectivity"] == "full"
            if i == j and c["lateral"]:
                edges += [EdgeDef("lateral", i, i, 0), EdgeDef("lateral", i, i, 3, block=True)]
            elif j > i and c["feedforward"] and linked:
                edges.append(EdgeDef("bottom_up", i, j, 3, stride=2, block=True))
            elif j < i and c["feedback"] and linked:
                edges.append(EdgeDef("topdown", i, j, 3, block=True))
    return GraphNet(areas, edges, steps=c["steps"], schedule=c["schedule"], norm=c["norm"],
                    in_channels=input_shape[-1], num_classes=num_classes)


# ---- the CIFAR ResNet -------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """torchvision's BasicBlock with recbench's shortcuts: option A subsamples and zero-pads the channels evenly
    on both sides (``recbench.models.resnet_blocks.pad_shortcut``), option B projects by a 1x1 conv + BN."""

    def __init__(self, c_in: int, channels: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample, self.pad = None, None
        if stride != 1 or c_in != channels:
            if shortcut == "A":
                lo = (channels - c_in) // 2
                self.pad = (stride, lo, channels - c_in - lo)
            else:
                self.downsample = nn.Sequential(nn.Conv2d(c_in, channels, 1, stride, bias=False),
                                                nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.downsample is not None:
            skip = self.downsample(x)
        elif self.pad is not None:
            stride, lo, hi = self.pad
            skip = F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, lo, hi))
        else:
            skip = x
        return F.relu(y + skip)


class CifarResNet(nn.Module):
    """``recbench.models.resnet.cifar_resnet``: a 3x3 stem, three stages of (depth-2)/6 BasicBlocks at width,
    2·width, 4·width (stride 2 into the last two), global average pool, linear; logits ``[1, B, C]``."""

    def __init__(self, depth: int, *, num_classes: int, in_channels: int, width: int = 16, shortcut: str = "A"):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.trained_steps = 1
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        c_in = width
        for s, (w, stride) in enumerate(((width, 1), (2 * width, 2), (4 * width, 2)), start=1):
            blocks = [BasicBlock(c_in if i == 0 else w, w, stride if i == 0 else 1, shortcut) for i in range(n)]
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
            c_in = w
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return self.fc(h.mean(dim=(2, 3)))[None]


def cifar_resnet_reference(c: dict, num_classes: int, input_shape) -> CifarResNet:
    if c.get("share_weights") or c.get("norm", "bn") != "bn":
        raise ValueError("the PyTorch ResNet reference is the plain BatchNorm ResNet (no shared weights)")
    if c.get("exits", "last") != "last":
        raise ValueError("the PyTorch ResNet reference reads out once (exits=last)")
    width = widen(16, c.get("width", 1.0))  # a multiplier of the base width 16, as resnet.py
    return CifarResNet(c["depth"], num_classes=num_classes, in_channels=input_shape[-1], width=width,
                       shortcut=c.get("shortcut", "A"))


FAMILIES = {"blt": blt_reference, "cornet": cornet_reference, "liao_poggio": liao_poggio_reference,
            "cifar_resnet": cifar_resnet_reference}


def build_reference(cfg: dict, num_classes: int, input_shape) -> nn.Module:
    """The PyTorch reference of a resolved model config (``recbench.bench.cases.model_config``), PyTorch's own
    random init; copy recbench's weights in with :func:`recbench.bench.weights.copy_into_torch`."""
    family = cfg.get("family")
    if family not in FAMILIES:
        raise ValueError(f"no PyTorch reference for model family {family!r}; there are: {', '.join(FAMILIES)}")
    return FAMILIES[family](cfg, num_classes, tuple(input_shape))
