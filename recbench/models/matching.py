"""Parameter-matched feedforward controls (Spoerer et al. 2017's BK/BF, Kietzmann et al. 2019's B-K/B-F/B-D).

A recurrent net has more parameters than its feedforward core, so "recurrence helps" is only shown against
a feedforward net given the same budget. Starting from B, each control spends the extra parameters one way:

* ``kernel`` (B-K): every kernel grows by 2 while the count stays under the target; widths then close the
  rest of the gap (kernel sizes alone move in steps too coarse to land within a few percent);
* ``width``  (B-F): all feature maps scale by one factor;
* ``depth``  (B-D): extra layers (3x3, the last area's width) are added while under the target; widths of
  the added layers then close the gap.

Counts are exact: :func:`chain_params` adds up the same weights the engine creates (tested against it). The
controls are feedforward, so they run once and their BatchNorms have one row, while the recurrent target has a row
per step: each side is counted as it is built (:meth:`GraphSpec.area_steps`).
"""

from __future__ import annotations

import dataclasses

from recbench.models.engine import GraphSpec

MATCH_KINDS = ("kernel", "width", "depth")


def chain_params(spec: GraphSpec) -> int:
    """Exact parameter count of an engine graph made only of conv (or identity) edges without their own norm and
    plain cells, as every blt-family graph is; counting by hand keeps matching free of building anything."""
    total = 0
    for e in spec.edges:
        c_in = spec.in_channels if e.src < 0 else spec.areas[e.src].channels
        c_out = spec.areas[e.dst].channels
        total += e.kernel * e.kernel * c_in * c_out + (c_out if e.bias else 0)

    def rows(i: int) -> int:  # affine rows of area i's norm
        return {"bn_step": spec.area_steps(i), "bn": 1, "group": 1, "lrn": 0, "none": 0}[spec.norm]

    total += sum(2 * a.channels * rows(i) for i, a in enumerate(spec.areas))
    features = spec.areas[-1].channels
    if spec.readout == "flatten":
        side = -(-spec.input_size // spec.scale(len(spec.areas) - 1))
        features *= side * side
    return total + features * spec.num_classes + spec.num_classes


def _scaled(channels: tuple[int, ...], factor: float, start: int = 0) -> tuple[int, ...]:
    return tuple(c if i < start else max(1, round(c * factor)) for i, c in enumerate(channels))


def _fit_width(make, channels: tuple[int, ...], target: int, start: int = 0) -> tuple[int, ...]:
    """Scale ``channels[start:]`` by the factor whose count lands closest to ``target`` (bisection)."""
    lo, hi = 0.05, 64.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if chain_params(make(_scaled(channels, mid, start))) < target:
            lo = mid
        else:
            hi = mid
    candidates = [_scaled(channels, f, start) for f in (lo, hi)]
    return min(candidates, key=lambda ch: abs(chain_params(make(ch)) - target))


def match_control(base: GraphSpec, kind: str, target: int) -> GraphSpec:
    """A feedforward variant of ``base`` (a B net: bottom-up edges only) with about ``target`` parameters."""
    if kind not in MATCH_KINDS:
        raise ValueError(f"match must be one of {', '.join(MATCH_KINDS)}, got {kind!r}")
    if any(e.kind != "bottom_up" for e in base.edges):
        raise ValueError("a matched control starts from a feedforward (B) net")

    def with_channels(spec: GraphSpec, channels: tuple[int, ...]) -> GraphSpec:
        areas = tuple(dataclasses.replace(a, channels=c) for a, c in zip(spec.areas, channels, strict=True))
        return dataclasses.replace(spec, areas=areas)

    spec = base
    start = 0
    if kind == "kernel":
        grown = base
        while True:
            edges = tuple(dataclasses.replace(e, kernel=e.kernel + 2) for e in grown.edges)
            bigger = dataclasses.replace(grown, edges=edges)
            if chain_params(bigger) > target:
                break
            grown = bigger
        spec = grown
    elif kind == "depth":
        last = base.areas[-1]
        while True:
            n = len(spec.areas)
            area = dataclasses.replace(last, name=f"extra{n - len(base.areas) + 1}", pool=1)
            edge = dataclasses.replace(base.edges[-1], src=n - 1, dst=n, kernel=3)
            deeper = dataclasses.replace(spec, areas=spec.areas + (area,), edges=spec.edges + (edge,))
            if chain_params(deeper) > target:
                break
            spec = deeper
        start = len(base.areas) if len(spec.areas) > len(base.areas) else 0
    channels = tuple(a.channels for a in spec.areas)
    fitted = _fit_width(lambda ch: with_channels(spec, ch), channels, target, start)
    return with_channels(spec, fitted)
