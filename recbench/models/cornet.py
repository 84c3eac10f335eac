"""CORnet-Z/R/RT/S (Kubilius et al. 2018) and Kar et al.'s recurrent net with feedback, and their PyTorch names.

The preset builder and the mapping from dicarlolab/CORnet's state-dict names live together because both
encode the same layout: which recbench area, edge or cell holds each of CORnet's layers. Importing this module
registers :func:`cornet_renamer` for :class:`AreaGraph` with :mod:`recbench.models.torch_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

from recbench.models.contract import EngineConfig, Shape, widen
from recbench.models.engine import IMAGE, AreaGraph, AreaSpec, EdgeSpec, GraphSpec
from recbench.models.torch_weights import Renamed, Renamer, register_torch_renamer

#: Area names of recbench's CORnet graphs: Z/R/RT (and kar_feedback), and S, whose V1 is two areas.
CORNET_AREAS = ("V1", "V2", "V4", "IT")
CORNET_S_AREAS = ("V1_0", "V1", "V2", "V4", "IT")
CORNET_VARIANTS = ("z", "r", "rt", "s")
_WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True, kw_only=True)
class CornetConfig(EngineConfig):
    """CORnet-Z/R/RT/S and ``kar_feedback`` (CORnet-RT plus top-down feedback IT→V4→V2→V1, transposed convs)."""

    natural_input: Shape = (224, 224, 3)  # ImageNet, as CORnet was trained
    natural_classes: int = 1000
    # dicarlolab/CORnet's decoder reads IT after the last step, and ImageNet training scores that output only
    objective: str = "last"
    variant: str  # z | r | rt | s
    steps: int = 5  # R/RT: ``times``; S: IT's steps (V2 and V4 keep area_steps); Z is feedforward (1)
    topdown: bool = False  # R/RT: add feedback IT -> V4 -> V2 -> V1 (Kar et al. 2019)
    area_steps: tuple[int, int] = (2, 4)  # S: steps of V2 and V4 (IT's are ``steps``)
    norm: str = ""  # "" = the variant's own: none (Z), group (R/RT), bn_step (S); or any of EngineConfig.norm
    topdown_resample: str = "transpose"  # transpose | nearest (upsample, then conv)


def cornet(c: CornetConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    """The variant's graph; ``width`` scales every area's channels (V1 64, V2 128, V4 256, IT 512 at 1.0; CORnet-S's
    V1 64 too), so published weights load only at width 1."""
    common = dict(in_channels=input_shape[-1], num_classes=num_classes, unroll=c.unroll,
                  topdown_resample=c.topdown_resample, input_size=input_shape[0])
    widths = tuple(widen(w, c.width) for w in _WIDTHS)
    if c.variant == "z":  # conv → ReLU → 3x3/2 max-pool per area; feedforward
        areas = tuple(AreaSpec(n, w, pool=4 if i == 0 else 2, post_pool=True)
                      for i, (n, w) in enumerate(zip(CORNET_AREAS, widths, strict=True)))
        edges = tuple(EdgeSpec("bottom_up", i - 1, i, 7 if i == 0 else 3, stride=2 if i == 0 else 1, bias=True)
                      for i in range(4))
        return GraphSpec(areas, edges, steps=1, schedule="stagewise", norm=c.norm or "none", **common)
    if c.variant in ("r", "rt"):  # input conv + GN + ReLU, added to the state, then conv + GN + ReLU
        areas = tuple(AreaSpec(n, w, pool=4 if i == 0 else 2, cell="conv")
                      for i, (n, w) in enumerate(zip(CORNET_AREAS, widths, strict=True)))
        edges = [EdgeSpec("bottom_up", i - 1, i, 7 if i == 0 else 3, stride=4 if i == 0 else 2, norm_act=True,
                          bias=True) for i in range(4)]
        edges += [EdgeSpec("lateral", i, i, 0) for i in range(4)]
        if c.topdown:
            edges += [EdgeSpec("topdown", i + 1, i, 3) for i in range(3)]
        return GraphSpec(areas, tuple(edges), steps=c.steps, norm=c.norm or "group", zero_absent=True,
                         schedule="synchronous" if c.variant == "rt" else "sequential", **common)
    if c.variant == "s":  # V1 = two conv-BN-ReLU (max-pool between); V2/V4/IT bottleneck blocks, per-step BN
        if len(c.area_steps) != 2:
            raise ValueError(f"area_steps takes the steps of V2 and V4 (IT's are steps), got {list(c.area_steps)}")
        v1_0, v1, *higher = CORNET_S_AREAS
        steps = (*c.area_steps, c.steps)
        areas = (AreaSpec(v1_0, widths[0], pool=4, steps=1, post_pool=True), AreaSpec(v1, widths[0], steps=1)) + tuple(
            AreaSpec(n, w, pool=2, cell="bottleneck", steps=s) for n, w, s in zip(higher, widths[1:], steps,
                                                                                  strict=True))
        edges = [EdgeSpec("bottom_up", IMAGE, 0, 7, stride=2), EdgeSpec("bottom_up", 0, 1, 3)]
        edges += [EdgeSpec("bottom_up", i - 1, i, 1) for i in (2, 3, 4)]
        edges += [EdgeSpec("lateral", i, i, 0) for i in (2, 3, 4)]
        return GraphSpec(areas, tuple(edges), steps=c.steps, schedule="stagewise", norm=c.norm or "bn_step",
                         **common)
    raise ValueError(f"variant must be one of {', '.join(CORNET_VARIANTS)}, got {c.variant!r}")


# ---- dicarlolab/CORnet's state-dict names ------------------------------------------------------------------

#: Names of recbench's own layout, passed to the mechanical rule unchanged for any AreaGraph.
_GRAPH_ROOTS = frozenset({"edges", "areas", "readout"})


def cornet_renamer(model: AreaGraph) -> Renamer:
    """The key renamer for a CORnet :class:`AreaGraph` (``per_model``: CORnet-S names V1 differently).

    dicarlolab/CORnet's names (a leading ``module.`` is dropped) map onto recbench's graph:

    * Z: ``{A}.conv`` → the bottom-up edge into ``A`` (``edges.input_to_V1.conv``, ``edges.V1_to_V2.conv``, ...);
    * R/RT: ``{A}.conv_input`` / ``norm_input`` → that edge's ``conv`` / ``norm``; ``{A}.conv1`` / ``norm1`` →
      ``areas.{A}.cells.0.conv`` / ``norm``;
    * S: ``V1.conv1`` → ``edges.input_to_V1_0.conv``, ``V1.norm1`` → ``areas.V1_0.cells.0.norm``, ``V1.conv2`` →
      ``edges.V1_0_to_V1.conv``, ``V1.norm2`` → ``areas.V1.cells.0.norm``; for V2/V4/IT ``conv_input`` → the edge,
      ``skip``, ``norm_skip``, ``conv1..3`` → ``areas.{A}.cells.0.*`` and ``norm{k}_{t}`` → row ``t`` of
      ``areas.{A}.cells.0.norm{k}`` (per-step BN);
    * ``decoder.linear`` → ``readout``.

    Keys already in recbench's layout (``edges.``, ``areas.``, ``readout.``) pass unchanged; a key this does not
    know is returned as is, so the loader reports it as having no target. An AreaGraph whose areas are not
    CORnet's gets a ``ValueError`` for the first foreign key.
    """
    spec = model.spec
    names = tuple(spec.names)
    s_layout = names == CORNET_S_AREAS
    if not s_layout and names != CORNET_AREAS:
        def foreign(key: str) -> Renamed:
            if key.split(".", 1)[0] in _GRAPH_ROOTS:
                return key
            raise ValueError(
                f"load_torch_weights into AreaGraph: {key!r} is not in recbench's layout (edges./areas./readout.) "
                f"and PyTorch names are only known for CORnet graphs (areas {', '.join(CORNET_AREAS)} or "
                f"{', '.join(CORNET_S_AREAS)}); this graph's areas are {', '.join(names)}")

        return foreign

    into = {spec.names[e.dst]: spec.edge_name(e) for e in spec.edges if e.kind == "bottom_up"}

    def rename(key: str) -> Renamed:
        if key.startswith("module."):
            key = key[len("module.") :]
        parts = key.split(".")
        if parts[0] in _GRAPH_ROOTS:
            return key
        if len(parts) < 3:
            return key
        area, name, rest = parts[0], parts[1], ".".join(parts[2:])
        if area == "decoder":
            return f"readout.{rest}" if name == "linear" else key
        if area not in CORNET_AREAS:
            return key
        if s_layout and area == "V1":  # V1 = conv1-norm1-ReLU-pool (area V1_0), conv2-norm2-ReLU (area V1)
            sub = {"conv1": f"edges.{into['V1_0']}.conv", "norm1": "areas.V1_0.cells.0.norm",
                   "conv2": f"edges.{into['V1']}.conv", "norm2": "areas.V1.cells.0.norm"}
            return f"{sub[name]}.{rest}" if name in sub else key
        if name in ("conv", "conv_input"):
            return f"edges.{into[area]}.conv.{rest}"
        if name == "norm_input":
            return f"edges.{into[area]}.norm.{rest}"
        cell = f"areas.{area}.cells.0"
        if s_layout:
            base, _, step = name.rpartition("_")
            if base in ("norm1", "norm2", "norm3") and step.isdigit():
                return f"{cell}.{base}.{rest}", int(step)
            if name in ("skip", "norm_skip", "conv1", "conv2", "conv3"):
                return f"{cell}.{name}.{rest}"
            return key
        if name in ("conv1", "norm1"):  # R/RT: the cell's conv + GroupNorm
            return f"{cell}.{'conv' if name == 'conv1' else 'norm'}.{rest}"
        return key

    return rename


register_torch_renamer(AreaGraph, cornet_renamer, per_model=True)
