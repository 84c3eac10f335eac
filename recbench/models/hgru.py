"""Linsley et al. 2018: one horizontal gated recurrent layer (hGRU) on a feedforward stem, for Pathfinder, as a
graph of the one engine (recbench.models.engine).

The reference is serre-lab/hgru-pytorch (``hgru.py``: ``hConvGRU(timesteps=8, filt_size=15)`` as ``main.py`` builds
it):

* stem: a 7×7 conv 1 → 25 with bias, initialised from a bank of Gabor filters (``gabor_serre.npy``), then squared
  (``torch.pow(x, 2)``: an energy). Here ``EdgeSpec(init="gabor", act="square")`` with recbench's own oriented Gabor
  bank (:func:`recbench.models.engine.gabor_init`: orientations, two phases, two wavelengths; the reference's file is
  not reproduced). The filters are trainable, as in the reference (it never freezes ``conv0``);
* the hGRU (:class:`recbench.models.cells.HGRUCell`): 15×15 horizontal kernels, gates with BN, chronos-initialised
  gate biases, time-specific BN, 8 steps;
* readout ``hgru`` (recbench.models.heads): BN → 1×1 conv to the classes → global max over the map → BN → linear.
  The reference also applies a leaky ReLU after the 1×1 conv; the head has none (it is monotone, so it commutes with
  the max; it would act between the max and the second BN);
* the loss on the last step's readout only (``objective: last``); recbench reads out at every step all the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from recbench.models.contract import EngineConfig, Shape, widen
from recbench.models.engine import IMAGE, AreaSpec, EdgeSpec, GraphSpec


@dataclass(frozen=True, kw_only=True)
class HGRUConfig(EngineConfig):
    """Linsley et al. 2018: a Gabor-initialised 7x7 stem squared, one horizontal gated recurrent layer unrolled 8
    steps, the hGRU readout (BN, 1x1 conv, global max, BN, linear), trained on the last step."""

    natural_input: Shape = (150, 150, 1)  # Pathfinder at the paper's 150 px, grayscale
    natural_classes: int = 2  # same path or not
    objective: str = "last"  # the reference's loss is on the output after the last step
    steps: int = 8
    channels: int = 25
    stem_kernel: int = 7
    kernel: int = 15  # the horizontal kernels of the recurrent layer (main.py's filt_size)


def hgru(c: HGRUConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    areas = (AreaSpec("hgru", widen(c.channels, c.width), cell="hgru", kernel=c.kernel),)
    edges = (EdgeSpec("bottom_up", IMAGE, 0, c.stem_kernel, bias=True, init="gabor", act="square"),)
    return GraphSpec(areas, edges, steps=c.steps, schedule="sequential", norm=c.norm, unroll=c.unroll,
                     readout="hgru", in_channels=input_shape[-1], num_classes=num_classes, input_size=input_shape[0])
