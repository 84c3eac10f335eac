"""Thin builders: the recurrent families of the comparison as :class:`GraphSpec` s of the one engine.

A family config (a frozen dataclass filled from YAML) goes in, a graph comes out; nothing here defines a
layer. Where a paper leaves a detail open the choice is named in the docstring. CORnet, whose PyTorch names
come with it, is :mod:`recbench.models.cornet`; the ResNets are their own module (:mod:`recbench.models.resnet`).

**BLT (Spoerer et al. 2017).** Each layer is ``relu(norm(bottom-up + lateral + top-down))``, a loss at every step
(``objective: mean``). The presets keep recbench's per-step BatchNorm and global-average-pool readout, the layers of
the same group's later rcnn-sat code (Spoerer et al. 2020), so that B, BL, BT and BLT compare with the other
families under one normalisation. The 2017 paper's own recipe is ``model.norm=lrn model.readout=gmp``: local
response normalisation after the ReLU (window 5, alpha 1e-4, beta 0.5, k 1; recbench.models.norms) and a global
max pool before the linear readout, as its public re-implementations have it. A norm without a learned shift
(``lrn``, ``none``) gives every bottom-up conv a bias (one per area: the lateral and top-down terms are summed with
it, so their biases would be redundant). B and its matched controls have no recurrent edge: they run once (T = 1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from recbench.config import ConfigError, choice, family_config, load_option
from recbench.models.contract import EngineConfig, Shape, widen
from recbench.models.engine import GraphSpec, chain_graph
from recbench.models.matching import MATCH_KINDS, chain_params, match_control
from recbench.models.norms import AFFINE_FREE


@dataclass(frozen=True, kw_only=True)
class BLTConfig(EngineConfig):
    """A stack of areas with optional lateral and top-down transitions (Spoerer 2017; Kietzmann's BL-net)."""

    natural_input: Shape = (32, 32, 1)  # Spoerer et al.'s digit clutter / debris
    natural_classes: int = 10
    objective: str = "mean"  # Spoerer et al. train on the readout of every step
    channels: tuple[int, ...]  # feature maps per area, bottom to top (times model.width)
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
    spec = chain_graph(
        tuple(widen(w, c.width) for w in c.channels), pools=tuple(c.pools), kernels=tuple(c.kernels),
        lateral=c.lateral, topdown=c.topdown, names=c.area_names, steps=c.steps, schedule=c.schedule, norm=c.norm,
        in_channels=input_shape[-1], num_classes=num_classes, unroll=c.unroll, topdown_resample=c.topdown_resample,
        readout=c.readout, input_size=input_shape[0], interaction=c.interaction, remat=c.remat)
    if c.norm in AFFINE_FREE:  # no norm shift to stand in for a bias: the bottom-up convs carry one
        edges = tuple(dataclasses.replace(e, bias=True) if e.kind == "bottom_up" else e for e in spec.edges)
        spec = dataclasses.replace(spec, edges=edges)
    return spec


@dataclass(frozen=True, kw_only=True)
class MatchedControlConfig(BLTConfig):
    """A B net grown to the parameter count of a recurrent net, so "recurrence helps" is shown at equal size."""

    match: str = "width"  # kernel (B-K) | width (B-F) | depth (B-D): how the extra parameters are spent
    target: str = "blt"  # the blt-family preset whose parameter count (at the same input) is matched
    target_params: int = 0  # match this count instead of target's (0: use target)


#: Keys a matched control hands to its target, so that it matches the recurrent net it is compared with under the
#: same overrides (``model=b_k model.norm=lrn`` is sized against ``model=blt model.norm=lrn``).
SHARED_WITH_TARGET = ("width", "norm", "readout")


def matched_control(c: MatchedControlConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    """B (feedforward: one step, one row of BN) grown to the target's count, where the target is counted as it is
    built: a recurrent net with its per-step BN rows."""
    choice(c.match, "model.match", MATCH_KINDS)
    base = blt(dataclasses.replace(c, lateral=False, topdown=False), num_classes, input_shape)
    target = c.target_params
    if target <= 0:
        target_cfg = load_option("model", c.target)
        if target_cfg.get("family") != "blt":
            raise ConfigError(f"model.target={c.target!r} must name a blt-family preset (or set model.target_params)")
        target_c = family_config(BLTConfig, target_cfg, f"model {c.target}")
        target_c = dataclasses.replace(target_c, **{k: getattr(c, k) for k in SHARED_WITH_TARGET})
        target = chain_params(blt(target_c, num_classes, input_shape))
    return match_control(base, c.match, target)
