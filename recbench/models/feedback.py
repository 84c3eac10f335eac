"""Zamir et al. 2017 feedback networks (Feedback48: a stem and a stack of ConvLSTM modules, a readout at every
iteration) as a graph of the one engine (recbench.models.engine).

The reference is StanfordVL/feedback-networks, ``models/feedback_48.lua`` with ``lib/ConvLSTM_bn3res.lua``
(CIFAR-100):

* a stem ``conv3×3 → 16, BN, ReLU``, computed once and replicated to every iteration (``nn.Replicate``): here an
  area with ``once=True`` (one set of BN statistics, folded once per forward pass);
* four ConvLSTM modules ``16→16``, ``16→32 /2``, ``32→64 /2``, ``64→64`` (``nn.Sequencer(ConvLSTM_bn3res(...))``,
  3×3 kernels on both paths), each gate's input and hidden paths a residual conv–BN–ReLU–conv–BN plus a
  ReLU–conv–BN (:class:`recbench.models.cells.ResLSTMCell`), BN per iteration;
* a ReLU after the last module, an 8×8 average pool and a linear layer to the 100 classes at every iteration, the
  loss at every iteration (``objective: mean``).

Physical depth 12 (three convs on each module's input path, four modules) × 4 iterations = virtual depth 48.

**Where the engine forces a choice.** The reference feeds each module's input straight into its four gates, whose
input paths start with their own (strided) conv; an engine edge must deliver the destination's width and resolution,
and an identity edge needs equal shapes. So a module whose input already has its shape (modules 1 and 4) takes it by
an identity edge and its cell (``lstm_res``) is the reference's exactly; a module that changes width and resolution
(modules 2 and 3) takes it by a strided 3×3 conv edge that *is* the first conv of its input path, shared by the four
gates (``lstm_res_proj``), and the residual shortcut around the rest of that path is the edge's output, where the
reference subsamples and zero-pads the module's input (option A). That costs 3 of the 4 first convs of those two
modules (3·9·(16·32 + 32·64) = 69,120 parameters) and changes the two shortcuts; no 3×3 conv is added in front of any
module. Also: the reference's BN clones share their affine over iterations (per-iteration statistics only), where
``bn_step`` gives each iteration its own affine too (+3 rows of scale and shift per BN).

``cell=lstm`` or ``gru`` keeps the plain one-conv-per-gate modules, with a strided 3×3 conv edge in front of each.
"""

from __future__ import annotations

from dataclasses import dataclass

from recbench.models.contract import EngineConfig, Shape, widen
from recbench.models.engine import IMAGE, AreaSpec, EdgeSpec, GraphSpec

#: Cells whose module takes its input raw (the input path does the channel and stride change).
RESIDUAL_LSTM = "lstm_res"


@dataclass(frozen=True, kw_only=True)
class FeedbackNetConfig(EngineConfig):
    """Zamir et al. 2017 Feedback48: a stem computed once, then a stack of ConvLSTM modules, a readout (and a loss)
    at every iteration; virtual depth = physical × iterations."""

    natural_input: Shape = (32, 32, 3)  # CIFAR-100 (fine labels), the paper's CIFAR experiments
    natural_classes: int = 100
    objective: str = "mean"  # the reference's criterion sums the loss over every iteration's readout
    stem_channels: int = 16
    channels: tuple[int, ...] = (16, 32, 64, 64)  # per module
    pools: tuple[int, ...] = (1, 2, 2, 1)  # the stride into each module
    cell: str = RESIDUAL_LSTM  # lstm_res (Zamir's ConvLSTM_bn3res) | lstm | gru | any cell of recbench.models.cells
    kernel: int = 3  # the modules' kernels (kc = km = 3 in the reference)


def feedback_net(c: FeedbackNetConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    if len(c.channels) != len(c.pools):
        raise ValueError(f"channels and pools need one entry per module, got {list(c.channels)} and {list(c.pools)}")
    stem = widen(c.stem_channels, c.width)
    widths = tuple(widen(w, c.width) for w in c.channels)
    areas = [AreaSpec("stem", stem, steps=1, once=True)]
    edges = [EdgeSpec("bottom_up", IMAGE, 0, 3)]
    c_in = stem
    for i, (w, p) in enumerate(zip(widths, c.pools, strict=True)):
        if c.cell != RESIDUAL_LSTM:
            cell, edge = c.cell, EdgeSpec("bottom_up", i, i + 1, 3, stride=p)
        elif w == c_in and p == 1:  # the module's input goes to every gate's own first conv
            cell, edge = RESIDUAL_LSTM, EdgeSpec("bottom_up", i, i + 1, 0)
        else:  # the edge is the input path's first conv, strided, shared by the gates
            cell, edge = "lstm_res_proj", EdgeSpec("bottom_up", i, i + 1, c.kernel, stride=p)
        areas.append(AreaSpec(f"module{i + 1}", w, pool=p, cell=cell, kernel=c.kernel))
        edges.append(edge)
        c_in = w
    if c.cell == RESIDUAL_LSTM:  # the reference's ReLU after the last module, before the pool and the linear layer
        areas.append(AreaSpec("relu", c_in, cell="sum"))
        edges.append(EdgeSpec("bottom_up", len(areas) - 2, len(areas) - 1, 0))
    return GraphSpec(tuple(areas), tuple(edges), steps=c.steps, schedule="sequential", norm=c.norm, unroll=c.unroll,
                     in_channels=input_shape[-1], num_classes=num_classes, input_size=input_shape[0])
