"""The areas-graph engine: every model is a set of areas joined by transitions, unrolled in time.

An *area* is a state at one resolution and width (V1, V2, V4, IT, a ResNet stage). A *transition* (edge)
carries a source state into a destination area: ``bottom_up`` (area i-1 → i, max-pooled or strided down
to the destination resolution), ``lateral`` (i → i), ``topdown`` (i+1 → i, upsampled by a transposed conv)
``recall`` (the image, re-injected at every step as in deep-thinking) or ``skip`` (skip-in-time: a state
from ``delay`` steps back, as in Zamir et al.'s feedback networks). An edge is a conv, or the
identity (``kernel=0``: CORnet's "input + state", a ResNet's residual stream). At each time step an area
combines its incoming edges into a drive — summed, or ``bottom_up * (1 + lateral + topdown)`` when
``interaction="multiplicative"`` — and its cell (``recbench.models.cells``) turns drive and previous state
into the new state. A linear readout on the last area gives logits at every step: ``[T, B, C]``.

Schedules say which step an edge reads:

* ``sequential`` — one global step updates the areas in order; bottom-up edges read their source from
  *this* step, lateral and top-down edges the previous one (Spoerer et al. 2017 BLT, CORnet-R).
* ``synchronous`` — every edge reads step t-1, so a signal needs a step per area to reach the top
  (CORnet-RT, Liao & Poggio's multi-state net, "biological" time).
* ``stagewise`` — each area runs its own ``steps`` before feeding the next (ResNet stages, CORnet-S); the
  readout follows every step of the last area.

Edges whose source has no state yet are absent, not fed zeros. Weight-shared steps are *rolled* into
``lax.scan`` (compile time flat in T) or *unrolled* as a Python loop; on XLA:CPU the weight gradient of a
conv inside a loop body is ~50× slower (jax#12868, docs/performance.md §4d), so ``unroll="auto"``
unrolls on CPU and rolls on accelerators. Steps whose state structure still changes (an area not yet
reached) always run unrolled, so the scanned carry has a fixed shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from flax import nnx

from recbench.models.cells import CELL_TYPES, CELLS, KERNEL_INITS, STATELESS_CELLS, output_of
from recbench.models.heads import HEADS, READOUTS
from recbench.models.norms import NORM_KINDS, NormContext, StepNorm
from recbench.models.rewrites import Conv, ConvTranspose, max_pool_blocks

EDGE_KINDS = ("bottom_up", "lateral", "topdown", "recall", "skip")
ABLATABLE = ("lateral", "topdown", "recall", "skip")
SCHEDULES = ("sequential", "synchronous", "stagewise")
UNROLL_STRATEGIES = ("auto", "loop", "scan")
TOPDOWN_RESAMPLE = ("transpose", "nearest")
EDGE_ACTS = ("none", "relu", "square")
EDGE_INITS = (*KERNEL_INITS, "gabor")
INTERACTIONS = ("additive", "multiplicative")
IMAGE = -1  # source index of the input image


@dataclass(frozen=True)
class AreaSpec:
    """One area. ``pool`` is its total downsampling relative to the area below (or the image): pooling or
    strides on its bottom-up edges, the first-step stride of a bottleneck cell, and ``post_pool``."""

    name: str
    channels: int
    pool: int = 1
    cell: str = "plain"
    kernel: int = 3  # the cell's own convs
    steps: int | None = None  # stagewise: this area's steps (default: the graph's)
    share: bool = True  # one set of cell weights for all steps (False: a new block per step, as a ResNet)
    expansion: int = 4  # bottleneck width factor
    post_pool: bool = False  # 3x3/2 max-pool after the cell (CORnet-Z)
    once: bool = False  # computed at the first step only, then held (a stem: Zamir's replicated input, DT's projection)
    blocks: int = 1  # residual cell: basic blocks applied one after another at every step (DT-net: 2)


@dataclass(frozen=True)
class EdgeSpec:
    """A transition ``src → dst`` (``src == -1`` is the image). ``kernel=0`` is the identity."""

    kind: str
    src: int
    dst: int
    kernel: int = 3
    stride: int = 1  # conv stride; the rest of the resolution drop is max-pooled before the conv
    norm_act: bool = False  # the edge has its own norm + ReLU (CORnet-R/RT input convs)
    bias: bool = False
    delay: int = 2  # skip-in-time edges: read the source's state from ``delay`` steps back
    block: bool = False  # the edge is a transition *function*: conv-norm-ReLU-conv-norm (Liao & Poggio's f_ij)
    act: str = "none"  # after the conv (and norm): none | relu | square (hGRU's Gabor stem: energy)
    init: str | None = None  # None: the graph's | kaiming | torch | gabor (oriented Gabor filters, :func:`gabor_init`)
    initial: bool = False  # stagewise: the source's state is the destination's state before its first step
    #                        (DT-net's projection), instead of a drive at its first step


@dataclass(frozen=True)
class GraphSpec:
    areas: tuple[AreaSpec, ...]
    edges: tuple[EdgeSpec, ...]
    steps: int = 4
    schedule: str = "sequential"
    norm: str = "bn_step"
    in_channels: int = 1
    num_classes: int = 10
    unroll: str = "auto"
    topdown_resample: str = "transpose"  # transpose (stride-f transposed conv) | nearest (upsample, then conv)
    readout: str = "gap"  # gap | gmp (global average / max pool, then linear) | flatten (linear on the map)
    input_size: int | None = None  # image height = width; needed by readout="flatten"
    interaction: str = "additive"
    remat: bool = False  # recompute each step in the backward pass (saves memory in the rolled form)
    zero_absent: bool = False  # an area with no input yet runs its cell on a zero drive (CORnet) instead of waiting
    init: str = "kaiming"  # every conv and readout kernel (recbench.models.cells.KERNEL_INITS): kaiming | torch
    names: tuple[str, ...] = field(init=False)
    _edge_names: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(a.name for a in self.areas))
        for value, valid, key in ((self.schedule, SCHEDULES, "schedule"), (self.unroll, UNROLL_STRATEGIES, "unroll"),
                                  (self.topdown_resample, TOPDOWN_RESAMPLE, "topdown_resample"),
                                  (self.readout, READOUTS, "readout"), (self.interaction, INTERACTIONS, "interaction"),
                                  (self.norm, NORM_KINDS, "norm"), (self.init, tuple(KERNEL_INITS), "init")):
            _check(value in valid, f"{key} must be one of {', '.join(valid)}, got {value!r}")
        _check(isinstance(self.steps, int) and self.steps >= 1, f"steps must be an integer >= 1, got {self.steps!r}")
        _check(self.readout != "flatten" or bool(self.input_size), "readout='flatten' needs input_size")
        for a in self.areas:
            _check(a.cell in CELLS, f"area {a.name}: cell must be one of {', '.join(CELLS)}, got {a.cell!r}")
            _check(a.channels >= 1 and a.pool >= 1, f"area {a.name}: channels and pool must be >= 1")
            _check(a.kernel >= 1, f"area {a.name}: kernel must be >= 1, got {a.kernel}")
            _check(a.steps is None or (isinstance(a.steps, int) and a.steps >= 1),
                   f"area {a.name}: steps must be an integer >= 1, got {a.steps!r}")
        n = len(self.areas)
        for e in self.edges:
            _check(e.kind in EDGE_KINDS, f"edge kind must be one of {', '.join(EDGE_KINDS)}, got {e.kind!r}")
            _check(-1 <= e.src < n and 0 <= e.dst < n, f"edge {e} names an area that does not exist")
            _check(e.kernel >= 0, f"{e.kind} edge into area {self.areas[e.dst].name}: kernel must be >= 0 (0: the "
                   f"identity), got {e.kernel}")
            _check(e.kind != "skip" or (e.delay >= 2 and e.src == e.dst), f"skip edge {e} needs src == dst, delay >= 2")
            _check(e.act in EDGE_ACTS, f"edge act must be one of {', '.join(EDGE_ACTS)}, got {e.act!r}")
            _check(e.init is None or e.init in EDGE_INITS,
                   f"edge init must be one of {', '.join(EDGE_INITS)} (or None: the graph's), got {e.init!r}")
            _check(not e.initial or (self.schedule == "stagewise" and e.kind == "bottom_up" and e.kernel == 0),
                   f"edge {e}: initial=True needs a stagewise graph and an identity bottom-up edge")
        for a in self.areas:
            _check(a.blocks >= 1 and (a.blocks == 1 or a.cell == "residual"),
                   f"area {a.name}: blocks > 1 needs the residual cell")
        _check(any(e.src == IMAGE for e in self.edges), "no edge reads the image (src=-1)")
        object.__setattr__(self, "_edge_names", {e: self._name(e) for e in self.edges})

    def scale(self, i: int) -> int:
        """Downsampling factor of area ``i`` relative to the image (1 for the image itself)."""
        return 1 if i == IMAGE else math.prod(a.pool for a in self.areas[: i + 1])

    def drive_scale(self, e: EdgeSpec) -> int:
        """The resolution an edge must deliver: the area's own, before a first-step stride or post-pool."""
        a = self.areas[e.dst]
        s = self.scale(e.dst)
        if a.post_pool:
            s //= 2
        if a.cell == "bottleneck" and e.kind in ("bottom_up", "recall"):
            s //= 2
        return max(s, 1)

    def area_steps(self, i: int) -> int:
        """Steps area ``i`` runs at the trained depth (the rows of its time-specific norms)."""
        if self.feedforward:
            return 1
        return self.areas[i].steps or self.steps

    @property
    def feedforward(self) -> bool:
        """No state carries from one step to the next (only bottom-up and recall edges, stateless cells): every
        step would compute the same thing, so the graph runs once and reads out once (T = 1), and is charged
        one step of compute (Spoerer's B, B-K, B-F controls)."""
        return (self.schedule == "sequential"
                and all(e.kind in ("bottom_up", "recall") for e in self.edges)
                and all(a.cell in STATELESS_CELLS for a in self.areas))

    def readouts(self) -> int:
        """Readouts a forward pass gives at the trained depth (stagewise: one per step of the last area)."""
        if self.feedforward:
            return 1
        return self.area_steps(len(self.areas) - 1) if self.schedule == "stagewise" else self.steps

    def edge_name(self, e: EdgeSpec) -> str:
        return self._edge_names[e]

    def _name(self, e: EdgeSpec) -> str:
        """The edge's module name (its weights' path): ``V1_to_V2``, ``input_to_V1_recall``, ``V4_to_V4_skip2``;
        an identity edge that shares its ends with a weighted one is ``..._identity``."""
        src = "input" if e.src == IMAGE else self.names[e.src]
        suffix = {"recall": "_recall", "skip": f"_skip{e.delay}"}.get(e.kind, "")
        if e.kernel == 0 and any(o is not e and o.kernel and (o.src, o.dst, o.kind) == (e.src, e.dst, e.kind)
                                 for o in self.edges):
            suffix += "_identity"
        return f"{src}_to_{self.names[e.dst]}{suffix}"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def chain_graph(
    channels: tuple[int, ...],
    *,
    pools: tuple[int, ...] | None = None,
    kernels: tuple[int, ...] | int = 3,
    lateral: bool = False,
    topdown: bool = False,
    lateral_kernel: int | None = None,
    topdown_kernel: int | None = None,
    names: tuple[str, ...] | None = None,
    **graph_kwargs,
) -> GraphSpec:
    """A stack of areas with bottom-up edges, and lateral / top-down edges if asked (the BLT topology)."""
    n = len(channels)
    pools = pools or (1,) + (2,) * (n - 1)
    kernels = (kernels,) * n if isinstance(kernels, int) else tuple(kernels)
    names = names or tuple(f"area{i + 1}" for i in range(n))
    _check(len(pools) == n and len(kernels) == n and len(names) == n,
           "channels, pools, kernels and names must have one entry per area")
    areas = tuple(AreaSpec(nm, c, p) for nm, c, p in zip(names, channels, pools, strict=True))
    edges = [EdgeSpec("bottom_up", i - 1 if i else IMAGE, i, kernels[i]) for i in range(n)]
    if lateral:
        edges += [EdgeSpec("lateral", i, i, lateral_kernel or kernels[i]) for i in range(n)]
    if topdown:
        edges += [EdgeSpec("topdown", i + 1, i, topdown_kernel or kernels[i]) for i in range(n - 1)]
    return GraphSpec(areas=areas, edges=tuple(edges), **graph_kwargs)


class Edge(nnx.Module):
    """A transition's weights and its resampling to the destination resolution.

    Top-down from a coarser area is a transposed conv of stride ``up``; where the stride exceeds the kernel
    (Liao & Poggio's full connectivity: 3×3 kernels, strides 4 and 8) a transposed conv would reach only
    (k/up)² of the destination pixels, so such an edge upsamples (nearest) and then convolves instead, with the
    same weights count: every destination pixel receives feedback.
    """

    def __init__(self, spec: EdgeSpec, c_in: int, c_out: int, *, down: int, up: int, norm: str, steps: int,
                 resample: str, init: str, rngs: nnx.Rngs):
        self.pool = max(down // spec.stride, 1)
        transpose = resample == "transpose" and up <= max(spec.kernel, 1)
        self.up = 1 if transpose else up
        self.act = spec.act
        self.norm = StepNorm(c_out, kind=norm, steps=steps) if (spec.norm_act or spec.block) else nnx.data(None)
        self.relu = spec.norm_act or spec.block
        self.conv2 = self.norm2 = nnx.data(None)
        if spec.kernel == 0:
            _check(c_in == c_out and down == 1 and up == 1,
                   f"an identity {spec.kind} edge (kernel 0) needs equal shapes at both ends, got {c_in} -> {c_out} "
                   f"channels, resolution /{down} x{up}")
            self.conv = nnx.data(None)
            return
        own = gabor_init if spec.init == "gabor" else KERNEL_INITS[spec.init or init]  # the edge's, else the graph's
        k, bias = spec.kernel, spec.bias
        if up > 1 and transpose:  # top-down from a coarser area: a transposed conv upsamples
            self.conv = ConvTranspose(c_in, c_out, (k, k), strides=(up, up), padding="SAME", use_bias=bias,
                                      kernel_init=own, rngs=rngs)
        else:
            self.conv = Conv(c_in, c_out, (k, k), strides=(spec.stride,) * 2, padding=((k // 2, k // 2),) * 2,
                             use_bias=bias, kernel_init=own, rngs=rngs)
        if spec.block:  # a transition function: conv-norm-ReLU-conv-norm; the area adds its edges, then its cell
            self.conv2 = Conv(c_out, c_out, (k, k), padding=((k // 2, k // 2),) * 2, use_bias=False,
                              kernel_init=KERNEL_INITS[init], rngs=rngs)
            self.norm2 = StepNorm(c_out, kind=norm, steps=steps)

    def __call__(self, x: jax.Array, t, ctx: NormContext) -> jax.Array:
        if self.pool > 1:
            x = max_pool_blocks(x, self.pool)
        if self.up > 1:
            x = jnp.repeat(jnp.repeat(x, self.up, axis=1), self.up, axis=2)
        if self.conv is not None:
            x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x, t, ctx)
        if self.relu:
            x = jax.nn.relu(x)
        if self.conv2 is not None:
            x = self.norm2(self.conv2(x), t, ctx)
        if self.act == "relu":
            x = jax.nn.relu(x)
        elif self.act == "square":
            x = jnp.square(x)
        return x


def gabor_init(key, shape, dtype=jnp.float32):
    """A conv kernel ``[k, k, c_in, c_out]`` of oriented Gabor filters (hGRU's stem, Linsley et al. 2018): output
    channel j has orientation ``pi * j / c_out`` cycling over two phases and two wavelengths; the same filter on
    every input channel, scaled to unit L2 norm. Deterministic (``key`` is unused): the filters are an init, and
    they are trained."""
    del key
    k, _, c_in, c_out = shape
    r = (jnp.arange(k) - (k - 1) / 2) / max((k - 1) / 2, 1)
    yy, xx = jnp.meshgrid(r, r, indexing="ij")
    j = jnp.arange(c_out)
    theta = jnp.pi * j / c_out
    phase = jnp.where(j % 2 == 0, 0.0, jnp.pi / 2)
    lam = jnp.where((j // 2) % 2 == 0, 1.0, 0.5)
    xr = xx[..., None] * jnp.cos(theta) + yy[..., None] * jnp.sin(theta)
    yr = -xx[..., None] * jnp.sin(theta) + yy[..., None] * jnp.cos(theta)
    g = jnp.exp(-(xr**2 + (0.5 * yr) ** 2) / (2 * 0.5**2)) * jnp.cos(2 * jnp.pi * xr / lam + phase)  # [k, k, c_out]
    g = g - g.mean(axis=(0, 1))
    g = g / jnp.sqrt(jnp.sum(g**2, axis=(0, 1)) + 1e-8)
    return jnp.broadcast_to(g[:, :, None, :], shape).astype(dtype) / jnp.sqrt(c_in)


class Area(nnx.Module):
    """An area's cell (one, shared over steps; or one per step)."""

    def __init__(self, a: AreaSpec, *, norm: str, steps: int, init: str, rngs: nnx.Rngs):
        self.post_pool = a.post_pool
        kwargs = dict(norm=norm, steps=steps if a.share else 1, kernel=a.kernel, expansion=a.expansion,
                      stride=2 if a.cell == "bottleneck" else 1, blocks=a.blocks, init=init, rngs=rngs)
        make = CELL_TYPES[a.cell]
        self.cells = nnx.List([make(a.channels, **kwargs) for _ in range(1 if a.share else steps)])

    def __call__(self, drive, prev, t, ctx: NormContext):
        if len(self.cells) == 1:
            state = self.cells[0](drive, prev, t, ctx)
        else:  # unshared: step t has its own block (and its own norms, one row each)
            state = self.cells[min(t, len(self.cells) - 1)](drive, prev, 0, ctx)
        if self.post_pool:
            state = nnx.max_pool(state, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        return state


class AreaGraph(nnx.Module):
    """A model built from a :class:`GraphSpec`; returns logits at every time step."""

    def __init__(self, spec: GraphSpec, *, rngs: nnx.Rngs):
        self.spec = spec
        self.trained_steps = spec.readouts()  # the model contract's (recbench.models.contract.Model)
        edges = {}
        for e in spec.edges:
            c_in = spec.in_channels if e.src == IMAGE else spec.areas[e.src].channels
            target, source = spec.drive_scale(e), spec.scale(e.src)
            edges[spec.edge_name(e)] = Edge(e, c_in, spec.areas[e.dst].channels, down=max(target // source, 1),
                                            up=max(source // target, 1), norm=spec.norm, steps=spec.area_steps(e.dst),
                                            resample=spec.topdown_resample, init=spec.init, rngs=rngs)
        self.edges = nnx.Dict(edges)
        self.areas = nnx.Dict({a.name: Area(a, norm=spec.norm, steps=spec.area_steps(i), init=spec.init, rngs=rngs)
                               for i, a in enumerate(spec.areas)})
        features, side = spec.areas[-1].channels, -(-(spec.input_size or 1) // spec.scale(len(spec.areas) - 1))
        self.readout = HEADS[spec.readout](features, spec.num_classes, side=side, norm=spec.norm,
                                           steps=spec.readouts(), init=spec.init, rngs=rngs)
        self.incoming = tuple(tuple(e for e in spec.edges if e.dst == i) for i in range(len(spec.areas)))

    # -- one area update ---------------------------------------------------------------------------------
    def _update(self, i: int, sources: dict, prev, x, t, ctx: NormContext, ablate: tuple[str, ...]):
        """New state of area ``i`` from ``sources`` (edge → source state or None), or ``prev`` if no drive."""
        parts = {kind: [] for kind in EDGE_KINDS}
        for e in self.incoming[i]:
            src = x if e.src == IMAGE else sources.get(e)  # an ``initial`` edge is not a drive: absent here
            if e.kind in ablate or src is None:
                continue
            y = self.edges[self.spec.edge_name(e)](output_of(src), t, ctx)
            side = -(-x.shape[1] // self.spec.drive_scale(e))  # upsampling an odd size overshoots: crop
            parts[e.kind].append(y[:, :side, :side] if y.shape[1] > side else y)
        if not any(parts.values()):
            if not (self.spec.zero_absent and prev is None):
                return prev
            e = self.incoming[i][0]
            side = -(-x.shape[1] // self.spec.drive_scale(e))
            parts["bottom_up"].append(jnp.zeros((x.shape[0], side, side, self.spec.areas[i].channels), x.dtype))
        bottom = parts["bottom_up"] + parts["recall"]
        other = parts["lateral"] + parts["topdown"] + parts["skip"]
        if self.spec.interaction == "multiplicative" and bottom and other:
            drive = sum(bottom) * (1.0 + sum(other))
        else:
            drive = sum(bottom + other)
        return self.areas[self.spec.names[i]](drive, prev, t, ctx)

    def _global_step(self, states: tuple, t, x, ctx: NormContext, ablate, history: list = ()) -> tuple:
        # CORnet-R's first step: only V1 sees input; higher areas run on zeros rather than reading V1's output
        first_zero = self.spec.zero_absent and isinstance(t, int) and t == 0
        sequential = self.spec.schedule == "sequential" and not first_zero
        new = list(states)
        for i in range(len(self.spec.areas)):
            if self.spec.areas[i].once and states[i] is not None:
                continue  # computed at its first step, then held (not recomputed, its statistics not refolded)
            sources = {e: (new[e.src] if sequential and e.kind == "bottom_up" else states[e.src])
                       for e in self.incoming[i] if e.src != IMAGE}
            for e in sources:
                if e.kind == "skip":  # history[-1] is the previous step; a delay of d reads history[-d]
                    sources[e] = history[-e.delay][e.src] if len(history) >= e.delay else None
            new[i] = self._update(i, sources, states[i], x, t, ctx, ablate)
        return tuple(new)

    def _readout(self, top, batch: int, t, ctx: NormContext) -> jax.Array:
        if top is None:  # the signal has not reached the top area yet: the readout sees nothing
            return self.readout.empty(batch)
        return self.readout(output_of(top), t, ctx)

    # -- the unroll ----------------------------------------------------------------------------------------
    def unroll(self, x: jax.Array, *, steps: int | None = None, ablate: tuple[str, ...] = (),
               train: bool = False, strategy: str | None = None, detach=None) -> list[jax.Array]:
        """Per-step logits, a list of ``[B, C]``. ``steps`` overrides the depth (stagewise: the last area's).

        ``detach`` (an int, possibly traced) cuts the gradient of the state entering that step (of the last area,
        stagewise): deep-thinking's progressive loss runs a prefix of steps without gradient. A feedforward graph
        (:attr:`GraphSpec.feedforward`) runs once whatever ``steps`` asks: each further step would be the same.
        """
        _check(steps is None or (isinstance(steps, int) and steps >= 1),
               f"steps must be an integer >= 1, got {steps!r}")
        bad = set(ablate) - set(ABLATABLE)
        _check(not bad, f"ablate takes {', '.join(ABLATABLE)}, got {sorted(bad)}")
        strategy = resolve_unroll(strategy or self.spec.unroll)
        if any(e.kind == "skip" for e in self.spec.edges):
            strategy = "loop"  # a skip-in-time edge needs the state history, which the scanned carry does not keep
        if self.spec.feedforward:
            steps = 1
        ctx = NormContext(train)
        if self.spec.schedule == "stagewise":
            logits = self._stagewise(x, steps, ctx, tuple(ablate), strategy, detach)
        else:
            logits = self._global(x, steps or self.spec.steps, ctx, tuple(ablate), strategy, detach)
        ctx.commit()
        return logits

    def _global(self, x, steps, ctx, ablate, strategy, detach) -> list[jax.Array]:
        batch = x.shape[0]
        states: tuple = (None,) * len(self.spec.areas)
        logits, history = [], []
        t = 0
        while t < steps and (strategy == "loop" or any(s is None for s in states)):
            states = _detach(states, t, detach)
            history.append(states)
            states = self._global_step(states, t, x, ctx, ablate, history)
            logits.append(self._readout(states[-1], batch, t, ctx))
            t += 1
        if t < steps:
            def body(carry, t, sub):
                new = self._global_step(_detach(carry, t, detach), t, x, sub, ablate)
                return new, self._readout(new[-1], batch, t, sub)

            logits += self._scan(body, states, t, steps, ctx)
        return logits

    def _stagewise(self, x, steps, ctx, ablate, strategy, detach) -> list[jax.Array]:
        batch, last = x.shape[0], len(self.spec.areas) - 1
        finals: list = [None] * len(self.spec.areas)
        logits = []
        for i in range(len(self.spec.areas)):
            n = steps if (steps and i == last) else self.spec.area_steps(i)
            # an ``initial`` edge hands its source's state over as this area's state before its first step
            initial = [e for e in self.incoming[i] if e.initial and e.kind not in ablate]
            state, s, history = (finals[initial[0].src] if initial else None), 0, []
            shared = len(self.areas[self.spec.names[i]].cells) == 1
            while s < n and (strategy == "loop" or s == 0 or state is None or not shared):
                if i == last:
                    state = _detach(state, s, detach)
                # the area below feeds this one at its first step only; laterals and recall at every step
                history.append(state)
                sources = {e: (finals[e.src] if e.src != i else state) for e in self.incoming[i]
                           if e.src != IMAGE and not e.initial}
                if s > 0:
                    sources = {e: (v if e.src == i else None) for e, v in sources.items()}
                for e in sources:
                    if e.kind == "skip":
                        sources[e] = history[-e.delay] if len(history) >= e.delay else None
                state = self._update(i, sources, state, x, s, ctx, ablate)
                if i == last:
                    logits.append(self._readout(state, batch, s, ctx))
                s += 1
            if s < n:
                def body(carry, t, sub, i=i):
                    if i == last:
                        carry = _detach(carry, t, detach)
                    srcs = {e: (carry if e.src == i else None) for e in self.incoming[i]
                            if e.src != IMAGE and not e.initial}
                    new = self._update(i, srcs, carry, x, t, sub, ablate)
                    return new, (self._readout(new, batch, t, sub) if i == last else jnp.zeros(()))

                outs = self._scan(body, state, s, n, ctx, keep_state=True)
                state, outs = outs
                if i == last:
                    logits += outs
            finals[i] = state
        return logits

    def _scan(self, body, carry, start, stop, ctx, keep_state=False):
        """Roll steps ``start..stop-1`` of ``body(carry, t, sub_ctx) -> (carry, y)`` into ``lax.scan``."""
        norms_seen = []

        def scan_body(carry, t):
            sub = NormContext(ctx.train)
            new, y = body(carry, t, sub)
            norms_seen[:] = [r[0] for r in sub.records]
            return new, (y, [(r[2], r[3]) for r in sub.records])

        if self.spec.remat:
            scan_body = jax.checkpoint(scan_body)
        ts = jnp.arange(start, stop)
        final, (ys, stats) = jax.lax.scan(scan_body, carry, ts)
        for norm, (mean, var) in zip(norms_seen, stats, strict=True):
            ctx.records.append((norm, ts, mean, var))
        ys = list(ys)
        return (final, ys) if keep_state else ys

    def __call__(self, x: jax.Array, *, steps: int | None = None, ablate: tuple[str, ...] = (),
                 train: bool = False, detach=None) -> jax.Array:
        return jnp.stack(self.unroll(x, steps=steps, ablate=tuple(ablate), train=train, detach=detach))


def _detach(state, t, detach):
    """``state`` with its gradient cut when ``t == detach`` (both may be traced); unchanged when ``detach`` is None."""
    if detach is None or state is None or (isinstance(t, int) and t == 0):
        return state
    cut = jnp.asarray(detach) == t
    return jax.tree.map(lambda a: jnp.where(cut, jax.lax.stop_gradient(a), a), state)


def resolve_unroll(strategy: str) -> str:
    """``auto`` → ``loop`` on CPU (rolled conv gradients are pathologically slow there), ``scan`` elsewhere."""
    if strategy == "auto":
        return "loop" if jax.default_backend() == "cpu" else "scan"
    return strategy
