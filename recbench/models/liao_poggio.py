"""Liao & Poggio 2016 ("Bridging the gaps between residual learning, recurrent neural networks and visual cortex"):
multi-state recurrent nets and the shared ResNet, as graphs of the one engine (recbench.models.engine).

**Multi-state nets** (``states`` >= 2, synchronous): a 3×3 conv stem (conv-BN-ReLU, computed once, at the first
step, then held: ``AreaSpec.once``), then ``states`` areas at halving resolutions. Every transition is its own
function ``f_ji`` = conv-BN-ReLU-conv-BN with time-specific BN (``EdgeSpec.block``): feedforward ``j → i`` (j < i;
strided, max-pooled first where it skips a level), feedback ``j → i`` (j > i; a stride-2 transposed conv, or, where
the upsampling factor exceeds the kernel, nearest upsampling then a conv, so every destination pixel receives
feedback) and the lateral ``i → i``. The lateral transition keeps the identity too (the paper's residual
self-transition): every state updates as

    s_i(t) = ReLU( s_i(t-1) + f_ii(s_i(t-1)) + Σ_{j≠i} f_ji(s_j(t-1)) )        (the "sum" cell)

and the first state adds the held stem. ``connectivity=chain`` joins neighbouring states, ``full`` every pair
(their "fully recurrent" net). The paper is explicit [from memory] that each transition is its own function, and
that the net is read out after the last step (``objective: last``).

**The shared ResNet** (``states=1``, stagewise): the stem, then ``stages`` stages of width ``channels[:stages]``,
each one weight-shared residual area stepped ``steps`` times (time-specific BN; ``relu(h + F(h))`` per step) with a
linear stride-2 3×3 conv into the next stage: with 3 stages a weight-shared CIFAR ResNet whose effective depth is
that of a ResNet-(6·steps+2) (19 at 3 steps, as ResNet-20).

Where the paper leaves details open [from memory], the choices are: the stem feeds the first state (identity) at
every step; a stage transition of the shared ResNet is one linear strided conv (no BN, no ReLU), so that n steps per
stage count the 6n+1 nonlinear layers of a ResNet-(6n+2); the readout is global average pooling and a linear layer.

The lateral transition is two lateral edges from the state to itself, the identity (``S1_to_S1_identity``) and
``f_ii`` (``S1_to_S1``), so ``ablate=("lateral",)`` silences both: the state no longer carries over.
"""

from __future__ import annotations

from dataclasses import dataclass

from recbench.config import check_int, choice
from recbench.models.contract import EngineConfig, Shape, widen
from recbench.models.cornet import CORNET_AREAS
from recbench.models.engine import IMAGE, AreaSpec, EdgeSpec, GraphSpec

#: The kind of the identity half of a state's lateral transition (see the module docstring).
IDENTITY_KIND = "lateral"


@dataclass(frozen=True, kw_only=True)
class LiaoPoggioConfig(EngineConfig):
    """Liao & Poggio 2016's multi-state recurrent net (``states`` >= 2: every transition a conv-BN-ReLU-conv-BN
    function, synchronous updates, time-specific BN) and shared ResNet (``states=1``: ``stages`` weight-shared
    residual stages, stagewise). ``norm=bn`` shares one BN over all steps (the ablation of their TSBN)."""

    natural_input: Shape = (32, 32, 3)  # CIFAR-10, the paper's experiments
    natural_classes: int = 10
    objective: str = "last"  # the paper reads the net out after its last step [from memory]
    steps: int = 10  # multi-state: time steps; shared ResNet: steps of every stage
    states: int = 4  # areas after the stem (1: the shared ResNet)
    stages: int = 1  # states=1: stages of the shared ResNet (3: the CIFAR ResNet layout), widths channels[:stages]
    channels: tuple[int, ...] = (16, 32, 64, 128)  # per state (or stage); at least ``states`` (``stages``) entries
    feedforward: bool = True  # state j -> i > j: a transition function, strided
    lateral: bool = True  # state i -> i: the identity plus a transition function
    feedback: bool = True  # state j -> i < j: a transition function, upsampling
    connectivity: str = "chain"  # chain (neighbouring states) | full (every pair: their "fully recurrent" net)
    schedule: str = "synchronous"  # how more than one state updates (recbench.models.engine)
    topdown_resample: str = "transpose"  # transpose (a transposed conv where the kernel covers the stride) | nearest


def liao_poggio(c: LiaoPoggioConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    check_int("model.states", c.states)
    check_int("model.stages", c.stages)
    choice(c.connectivity, "model.connectivity", ("chain", "full"))
    if c.states > 1 and c.stages != 1:
        raise ValueError(f"stages={c.stages} is the shared ResNet's (states=1); a multi-state net has states")
    n = c.states if c.states > 1 else c.stages
    if n > len(c.channels):
        raise ValueError(f"states={c.states}, stages={c.stages} needs {n} channels entries, got {list(c.channels)}")
    widths = tuple(widen(w, c.width) for w in c.channels[:n])
    common = dict(in_channels=input_shape[-1], num_classes=num_classes, unroll=c.unroll, norm=c.norm,
                  topdown_resample=c.topdown_resample, input_size=input_shape[0])
    stem = AreaSpec("stem", widths[0], steps=1, once=True)
    if c.states == 1:
        return shared_resnet(stem, widths, c.steps, **common)
    names = CORNET_AREAS if n == 4 else tuple(f"S{i + 1}" for i in range(n))
    areas = (stem,) + tuple(AreaSpec(nm, w, pool=1 if i == 0 else 2, cell="sum")
                            for i, (nm, w) in enumerate(zip(names, widths, strict=True)))
    edges = [EdgeSpec("bottom_up", IMAGE, 0, 3), EdgeSpec("bottom_up", 0, 1, 0)]
    for i in range(1, n + 1):  # area index of the source state
        for j in range(1, n + 1):  # of the destination
            linked = abs(i - j) == 1 or c.connectivity == "full"
            if i == j and c.lateral:
                edges += [EdgeSpec(IDENTITY_KIND, i, i, 0), EdgeSpec("lateral", i, i, 3, block=True)]
            elif j > i and c.feedforward and linked:
                edges.append(EdgeSpec("bottom_up", i, j, 3, stride=2, block=True))
            elif j < i and c.feedback and linked:
                edges.append(EdgeSpec("topdown", i, j, 3, block=True))
    return GraphSpec(areas, tuple(edges), steps=c.steps, schedule=c.schedule, **common)


def shared_resnet(stem: AreaSpec, widths: tuple[int, ...], steps: int, **common) -> GraphSpec:
    """The stem, then one weight-shared residual area per stage, stepped ``steps`` times, stride 2 between."""
    areas = (stem,) + tuple(AreaSpec(f"S{s + 1}", w, pool=1 if s == 0 else 2, cell="residual")
                            for s, w in enumerate(widths))
    edges = [EdgeSpec("bottom_up", IMAGE, 0, 3), EdgeSpec("bottom_up", 0, 1, 0)]
    for s in range(1, len(widths) + 1):
        if s > 1:  # the stage transition: a linear 3x3/2 conv into the next stage's first step
            edges.append(EdgeSpec("bottom_up", s - 1, s, 3, stride=2))
        edges.append(EdgeSpec("lateral", s, s, 0))  # the residual stream, stepped
    return GraphSpec(areas, tuple(edges), steps=steps, schedule="stagewise", **common)
