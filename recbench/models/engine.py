"""The areas-graph engine: every recurrent model is a set of areas joined by transitions, unrolled in time.

An *area* is a state at one resolution and width (V1, V2, V4, IT, a ResNet stage). A *transition* (edge)
carries a source state into a destination area: ``bottom_up`` (area i-1 → i, max-pooled down to the
destination resolution), ``lateral`` (i → i) or ``topdown`` (i+1 → i, a transposed conv back up). At each
time step an area sums the drive of its incoming edges and passes it through its cell:
``state_i(t) = cell(Σ_e W_e(source_e), state_i(t-1))``. A linear readout on the last area gives logits at
every step, so a model returns ``[T, B, C]``.

Schedules say which time step an edge reads:

* ``sequential`` — one global step updates the areas in order; a bottom-up edge reads its source's state
  from *this* step, lateral and top-down edges read the previous step (Spoerer et al. 2017 BLT, CORnet-R).
* ``synchronous`` — every edge reads step t-1, so a signal needs one step per area to reach the top
  (CORnet-RT, Liao & Poggio's multi-state net, "biological" time).

Edges whose source has no state yet (higher areas at t=0) are absent rather than fed zeros.

Weight-shared steps can be *rolled* into ``lax.scan`` (compile time flat in T) or *unrolled* as a Python
loop. On XLA:CPU the weight gradient of a conv inside a loop body is ~50× slower (jax#12868,
research/measurements.md §4d), so ``unroll="auto"`` unrolls on CPU and rolls on accelerators. The first
steps, while some areas have no state yet, always run unrolled so the scanned carry has a fixed shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from flax import nnx

from recbench.models.norms import NormContext, StepNorm

EDGE_KINDS = ("bottom_up", "lateral", "topdown")
SCHEDULES = ("sequential", "synchronous")
UNROLL_STRATEGIES = ("auto", "loop", "scan")
CELLS = ("plain",)
TOPDOWN_RESAMPLE = ("transpose", "nearest")
READOUTS = ("gap", "gmp", "flatten")
IMAGE = -1  # source index of the input image


@dataclass(frozen=True)
class AreaSpec:
    """One area: its width, and how far its resolution drops relative to the area below (or the image)."""

    name: str
    channels: int
    pool: int = 1
    cell: str = "plain"


@dataclass(frozen=True)
class EdgeSpec:
    """A transition ``src → dst`` of one kind with its kernel size (``src == -1`` is the image)."""

    kind: str
    src: int
    dst: int
    kernel: int = 3


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
    topdown_resample: str = "transpose"  # transpose (a stride-f transposed conv) | nearest (upsample, then conv)
    readout: str = "gap"  # gap | gmp (global average / max pool, then linear) | flatten (linear on the map)
    input_size: int | None = None  # image height = width; needed by readout="flatten"
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(a.name for a in self.areas))
        _check(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _check(self.unroll in UNROLL_STRATEGIES,
               f"unroll must be one of {', '.join(UNROLL_STRATEGIES)}, got {self.unroll!r}")
        _check(isinstance(self.steps, int) and self.steps >= 1, f"steps must be an integer >= 1, got {self.steps!r}")
        _check(self.topdown_resample in TOPDOWN_RESAMPLE, f"topdown_resample must be one of "
               f"{', '.join(TOPDOWN_RESAMPLE)}, got {self.topdown_resample!r}")
        _check(self.readout in READOUTS, f"readout must be one of {', '.join(READOUTS)}, got {self.readout!r}")
        _check(self.readout != "flatten" or self.input_size, "readout='flatten' needs input_size")
        for a in self.areas:
            _check(a.cell in CELLS, f"area {a.name}: cell must be one of {', '.join(CELLS)}, got {a.cell!r}")
            _check(a.channels >= 1 and a.pool >= 1, f"area {a.name}: channels and pool must be >= 1")
        n = len(self.areas)
        for e in self.edges:
            _check(e.kind in EDGE_KINDS, f"edge kind must be one of {', '.join(EDGE_KINDS)}, got {e.kind!r}")
            _check(-1 <= e.src < n and 0 <= e.dst < n, f"edge {e} names an area that does not exist")
        _check(any(e.src == IMAGE for e in self.edges), "no edge reads the image (src=-1)")

    def scale(self, i: int) -> int:
        """Downsampling factor of area ``i`` relative to the image (1 for the image itself)."""
        return 1 if i == IMAGE else math.prod(a.pool for a in self.areas[: i + 1])

    def edge_name(self, e: EdgeSpec) -> str:
        src = "input" if e.src == IMAGE else self.names[e.src]
        return f"{src}_to_{self.names[e.dst]}"


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


class _Edge(nnx.Module):
    """A transition's weights and its resampling to the destination resolution."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, down: int, up: int, bias: bool, resample: str,
                 rngs: nnx.Rngs):
        self.down = down
        self.up = up if resample == "nearest" else 1
        init = nnx.initializers.kaiming_normal()
        if up > 1 and resample == "transpose":  # top-down from a coarser area: a transposed conv upsamples
            self.conv = nnx.ConvTranspose(c_in, c_out, (kernel, kernel), strides=(up, up), padding="SAME",
                                          use_bias=bias, kernel_init=init, rngs=rngs)
        else:
            self.conv = nnx.Conv(c_in, c_out, (kernel, kernel), padding="SAME", use_bias=bias,
                                 kernel_init=init, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.down > 1:
            d = self.down
            x = nnx.max_pool(x, (d, d), strides=(d, d), padding="SAME")
        if self.up > 1:
            x = jnp.repeat(jnp.repeat(x, self.up, axis=1), self.up, axis=2)
        return self.conv(x)


class AreaGraph(nnx.Module):
    """A model built from a :class:`GraphSpec`; returns logits at every time step."""

    def __init__(self, spec: GraphSpec, *, rngs: nnx.Rngs):
        self.spec = spec
        self.trained_steps = spec.steps
        bias = spec.norm == "none"
        edges = {}
        for e in spec.edges:
            c_in = spec.in_channels if e.src == IMAGE else spec.areas[e.src].channels
            ratio_down = spec.scale(e.dst) // spec.scale(e.src) if spec.scale(e.dst) >= spec.scale(e.src) else 1
            ratio_up = spec.scale(e.src) // spec.scale(e.dst) if spec.scale(e.src) > spec.scale(e.dst) else 1
            edges[spec.edge_name(e)] = _Edge(c_in, spec.areas[e.dst].channels, e.kernel, down=ratio_down,
                                             up=ratio_up, bias=bias, resample=spec.topdown_resample, rngs=rngs)
        self.edges = nnx.Dict(edges)
        self.norms = nnx.Dict({a.name: StepNorm(a.channels, kind=spec.norm, steps=spec.steps) for a in spec.areas})
        features = spec.areas[-1].channels
        if spec.readout == "flatten":
            side = -(-spec.input_size // spec.scale(len(spec.areas) - 1))
            features *= side * side
        self.readout = nnx.Linear(features, spec.num_classes, rngs=rngs)
        self.incoming = tuple(tuple(e for e in spec.edges if e.dst == i) for i in range(len(spec.areas)))

    # -- one time step -------------------------------------------------------------------------------------
    def _step(self, states: tuple, t, x: jax.Array, ctx: NormContext, ablate: tuple[str, ...]) -> tuple:
        spec = self.spec
        sequential = spec.schedule == "sequential"
        new = list(states)
        for i, area in enumerate(spec.areas):
            drive = None
            for e in self.incoming[i]:
                if e.kind in ablate:
                    continue
                if e.src == IMAGE:
                    src = x
                else:
                    src = new[e.src] if (sequential and e.kind == "bottom_up") else states[e.src]
                if src is None:
                    continue
                y = self.edges[spec.edge_name(e)](src)
                drive = y if drive is None else drive + y
            if drive is not None:
                new[i] = jax.nn.relu(self.norms[area.name](drive, t, ctx))
        return tuple(new)

    def _readout(self, top: jax.Array | None, batch: int) -> jax.Array:
        if top is None:  # the signal has not reached the top area yet: the readout sees nothing
            return jnp.broadcast_to(self.readout.bias[...], (batch, self.spec.num_classes))
        if self.spec.readout == "gap":
            return self.readout(jnp.mean(top, axis=(1, 2)))
        if self.spec.readout == "gmp":
            return self.readout(jnp.max(top, axis=(1, 2)))
        return self.readout(top.reshape(batch, -1))

    # -- the unroll ----------------------------------------------------------------------------------------
    def unroll(self, x: jax.Array, *, steps: int | None = None, ablate: tuple[str, ...] = (),
               train: bool = False, strategy: str | None = None) -> list[jax.Array]:
        """Per-step logits, a list of ``steps`` arrays ``[B, C]``."""
        steps = self.trained_steps if steps is None else steps
        _check(isinstance(steps, int) and steps >= 1, f"steps must be an integer >= 1, got {steps!r}")
        bad = set(ablate) - {"lateral", "topdown"}
        _check(not bad, f"ablate takes 'lateral' and/or 'topdown', got {sorted(bad)}")
        strategy = resolve_unroll(strategy or self.spec.unroll)
        ctx = NormContext(train)
        batch = x.shape[0]
        states: tuple = (None,) * len(self.spec.areas)
        logits = []
        t = 0
        while t < steps and (strategy == "loop" or any(s is None for s in states)):
            states = self._step(states, t, x, ctx, ablate)
            logits.append(self._readout(states[-1], batch))
            t += 1
        if t < steps:
            logits += self._scan(states, t, steps, x, ctx, ablate, batch)
        ctx.commit()
        return logits

    def _scan(self, states, start, steps, x, ctx, ablate, batch) -> list[jax.Array]:
        norms_seen = []

        def body(carry, t):
            sub = NormContext(ctx.train)
            new = self._step(carry, t, x, sub, ablate)
            norms_seen[:] = [r[0] for r in sub.records]
            return new, (self._readout(new[-1], batch), [(r[2], r[3]) for r in sub.records])

        ts = jnp.arange(start, steps)
        _, (ys, stats) = jax.lax.scan(body, states, ts)
        for norm, (mean, var) in zip(norms_seen, stats, strict=True):
            ctx.records.append((norm, ts, mean, var))
        return list(ys)

    def __call__(self, x: jax.Array, *, steps: int | None = None, ablate: tuple[str, ...] = (),
                 train: bool = False) -> jax.Array:
        return jnp.stack(self.unroll(x, steps=steps, ablate=tuple(ablate), train=train))


def resolve_unroll(strategy: str) -> str:
    """``auto`` → ``loop`` on CPU (rolled conv gradients are pathologically slow there), ``scan`` elsewhere."""
    if strategy == "auto":
        return "loop" if jax.default_backend() == "cpu" else "scan"
    return strategy
