"""Procedural Pathfinder (Linsley et al. 2018; LRA variant): the numpy generator (its tfds builder: procedural.py).

Why procedural: LRA's files cannot be fetched offline, and recbench needs image size and contour length as
knobs. Rules: ``drewlinsley/pathfinder`` (snakes.py, snakes2.py, snakes2_wrapper.py); per-size settings: the
docstrings of ``google-research/long-range-arena`` lra_benchmarks/data/pathfinder.py. The code is new and grows
all images of a chunk in lock-step, so 20k 32-px images take seconds instead of hours.

A snake is a chain of straight paddles (length L) whose ends sit m (margin) before/after pivots, so gaps are
<= 2m. Each heading turns by d with weight cos(c d)^2, |d| < pi / (2c) (c = continuity), among candidates that
keep 2m + t clearance from all earlier paddles and the border (the original's "margin-dilated paddles may not
overlap"), so snakes never cross. Two target snakes start seed_distance apart near the centre. Label 1: the
markers sit on the origin and terminal end of one target; label 0: on the origin of one and the terminal end of
the other. Both targets are drawn in every image, so only path identity separates the classes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from recbench.config import check_int, choice

__all__ = ["CONTOUR_LENGTHS", "GEOMETRY", "Geometry", "render_pathfinder", "render_pathfinder_chunks",
           "render_pathfinder_with_meta"]

CONTOUR_LENGTHS = (6, 9, 14)
_K, _M = 16, 16  # candidate headings per growth step; candidate seed paddles per seeding try
_DISTRACTOR_TRIES = 5  # snakes2: max_distractor_contour_retrial = 4, then the distractor is skipped
_TARGET_TRIES, _REWIND, _MAX_ROUNDS = 25, 3, 200
_PAD = 12  # drawing border, so anti-aliasing windows never leave the canvas


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Drawing settings for one image size, in pixels."""

    paddle_length: float
    thickness: float
    margins: tuple[float, ...]  # one is drawn per image
    marker_radius: float
    seed_distance: float
    padding: float
    continuity: float
    distractor_budget: int  # number of distractors = budget // (contour_length // 3)
    contrast: float  # snake_contrast * paddle_contrast; a thin line's coverage peaks at its thickness
    grid_scale: int  # occupancy cells per pixel (collision checks only)
    chunk: int  # images per lock-step chunk; part of the seed derivation, so fixed per size


GEOMETRY: dict[int, Geometry] = {
    # From the LRA Pathfinder32/64/128 docstrings. Values they leave unset (paddle_length 5) are the snakes2
    # Args defaults.
    32: Geometry(2.0, 0.5, (1.0,), 1.5, 7.0, 1.0, 1.0, 20, 1.5, 2, 1000),
    64: Geometry(5.0, 1.0, (1.0,), 2.5, 12.0, 1.0, 1.8, 22, 0.8, 2, 1000),
    128: Geometry(5.0, 1.5, (2.0, 3.0), 3.0, 20.0, 1.0, 1.8, 35, 0.9, 1, 500),
    # The hGRU paper's snakes2_wrapper run, halved (window 300, paddle 5, thickness 2, margin 3, marker 5,
    # padding 22, seed_distance 27, 30 // distractor_length); its models saw the images at 150 px.
    150: Geometry(2.5, 1.0, (1.5,), 2.5, 13.5, 11.0, 1.8, 30, 1.0, 1, 500),
}


def _unit(phi: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(phi), np.cos(phi)], axis=-1)


def _seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from points ``p[..., 2]`` to segments ``a -> b`` (all broadcast)."""
    aby, abx, apy, apx = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1], p[..., 0] - a[..., 0], p[..., 1] - a[..., 1]
    h = np.clip((apy * aby + apx * abx) / np.maximum(aby * aby + abx * abx, 1e-12), 0.0, 1.0)
    return np.sqrt((apy - h * aby) ** 2 + (apx - h * abx) ** 2)


class _Canvas:
    """Per-image occupancy counts; a paddle centreline may only cross cells with count 0.

    Stamps are precomputed capsule templates (128 headings x 4 sub-cell phases): one integer scatter, no distance
    maths. Counts (not booleans) let a stamp be undone exactly; a blocked border keeps indices in the grid.
    """

    _A = 128

    def __init__(self, geo: Geometry, size: int, margins: np.ndarray):
        self.geo, self.size, self.s, self.m = geo, size, geo.grid_scale, margins
        self.clear = 2 * margins + geo.thickness  # centreline clearance between non-adjacent paddles
        self.cm = geo.marker_radius + margins + geo.thickness / 2  # centreline clearance around a marker
        rmax = max(float(self.clear.max()), float(self.cm.max()))
        self.b = int(math.ceil((geo.paddle_length + rmax + 2) * self.s)) + 2
        self.g = size * self.s + 2 * self.b
        centres = (np.arange(self.g) - self.b + 0.5) / self.s - 0.5
        mvals, self.mi = np.unique(margins, return_inverse=True)
        edge = geo.padding + mvals[:, None] + geo.thickness / 2
        inside = (centres >= edge - 0.5) & (centres <= size - 0.5 - edge)
        self.bands = (~(inside[:, :, None] & inside[:, None, :])).astype(np.uint8).reshape(len(mvals), -1)
        self.occ = self.bands[self.mi]  # [n, g * g]
        self.flat = self.occ.reshape(-1)
        self.frac = np.linspace(0.0, 1.0, int(math.ceil(geo.paddle_length * self.s)) + 1)
        self._tmpl: dict[tuple[float, float], np.ndarray] = {}

    def _template(self, length: float, radius: float) -> np.ndarray:
        """Flat offsets [angle, phase, T] of the cells within ``radius`` (+ half a cell) of a capsule."""
        if (length, radius) not in self._tmpl:
            s, n_ang = self.s, (self._A if length else 1)
            r = (radius + 0.5 / s) * s
            w = int(math.ceil(length * s + r)) + 2
            d = np.arange(-w, w + 1) + 0.5
            cen = np.stack(np.meshgrid(d, d, indexing="ij"), -1)
            tips = length * s * _unit(np.arange(n_ang) * (2 * np.pi / self._A))[:, None, None]
            offs = []
            for a in np.array([(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]):
                for hit in _seg_dist(cen[None], a, a + tips) <= r:
                    dy, dx = np.divmod(np.nonzero(hit.ravel())[0], 2 * w + 1)
                    offs.append((dy - w) * self.g + (dx - w))
            t = max(len(o) for o in offs)  # pad with repeats: a repeated index is written once
            out = np.stack([np.concatenate([o, np.full(t - len(o), o[0])]) for o in offs])
            self._tmpl[length, radius] = out.reshape(4, n_ang, t).transpose(1, 0, 2).copy()
        return self._tmpl[length, radius]

    def stamp(self, idx: np.ndarray, a: np.ndarray, b: np.ndarray, radius: np.ndarray, sign: int = 1) -> None:
        """Add ``sign`` to every cell whose centre lies within ``radius`` of segment (or point) ``a -> b``."""
        length = self.geo.paddle_length if np.any(a != b) else 0.0
        c = (a + 0.5) * self.s + self.b
        i = c.astype(np.intp)
        phase = ((c - i) >= 0.5).astype(np.intp) @ np.array([2, 1])
        base = idx * self.g**2 + i[:, 0] * self.g + i[:, 1]
        ang = np.arctan2(b[:, 0] - a[:, 0], b[:, 1] - a[:, 1])
        j = np.round(ang * (self._A / (2 * np.pi))).astype(np.intp) % self._A if length else 0 * base
        for r in np.unique(radius):
            sel = radius == r
            cells = base[sel, None] + self._template(length, float(r))[j[sel], phase[sel]]
            self.flat[cells] += np.uint8(1 if sign > 0 else 255)  # uint8 wrap-around: 255 == -1

    def free(self, idx: np.ndarray, pivot: np.ndarray, u: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Whether the paddles ``pivot + (start .. start + L) * u`` ([n, K] headings) avoid blocked cells."""
        dist = start[:, None, None] + self.geo.paddle_length * self.frac
        o = 0.5 * self.s + self.b
        y = ((pivot[:, 0, None, None] + dist * u[..., 0, None]) * self.s + o).astype(np.intp)
        x = ((pivot[:, 1, None, None] + dist * u[..., 1, None]) * self.s + o).astype(np.intp)
        return ~self.flat[idx[:, None, None] * self.g**2 + y * self.g + x].any(-1)

    def seed(self, rng: np.random.Generator, idx: np.ndarray, lo: float, hi: float) -> tuple:
        """Pick the first free paddle among ``_M`` candidates with tail in [lo, hi]^2 and a uniform heading."""
        n = len(idx)
        tail, phi = lo + rng.random((n, _M, 2)) * (hi - lo), rng.uniform(-np.pi, np.pi, (n, _M))
        u = _unit(phi)
        good = self.free(np.repeat(idx, _M), tail.reshape(-1, 2), u.reshape(-1, 1, 2), np.zeros(n * _M))
        good = good.reshape(n, _M)
        j, rows = good.argmax(1), np.arange(n)
        return good.any(1), tail[rows, j], tail[rows, j] + self.geo.paddle_length * u[rows, j], phi[rows, j]

    def extend(self, rng: np.random.Generator, idx: np.ndarray, head: np.ndarray, phi: np.ndarray) -> tuple:
        """Sample the paddle after the one ending at ``head`` (heading ``phi``), as snakes.get_coords_cmf does.

        Turns come from ``_K`` jittered strata with the original's weights, limited to free candidates, so a
        step fails only at a dead end."""
        n, c, m = len(idx), self.geo.continuity, self.m[idx]
        delta = ((np.arange(_K) + rng.random((n, _K))) * (2 / _K) - 1) * (np.pi / (2 * c))
        new = phi[:, None] + delta
        u, pivot = _unit(new), head + m[:, None] * _unit(phi)
        cw = np.cumsum(np.cos(c * delta) ** 2 * self.free(idx, pivot, u, m), 1)
        k = np.minimum((cw <= rng.random(n)[:, None] * cw[:, -1:]).sum(1), _K - 1)
        rows = np.arange(n)
        a = pivot + m[:, None] * u[rows, k]
        return cw[:, -1] > 0, a, a + self.geo.paddle_length * u[rows, k], new[rows, k]


def _grow(cv: _Canvas, rng: np.random.Generator, idx: np.ndarray, first: tuple, n_pad: int,
          tries: int = 1, rewind: int = 0, tip: tuple | None = None) -> tuple:
    """Grow one snake (>= 2 paddles) per image from its first paddle ``first`` = (tail, head, heading).

    Paddles are stamped one step late, so the next may sit across the pivot gap. A dead end removes the last
    ``rewind`` paddles; after ``tries`` dead ends the snake is dropped (as snakes.make_snake). An end point
    closer than ``tip = (a, b, radius)`` to those segments also counts as a dead end (room for its marker).
    """
    n = len(idx)
    pads, phi = np.zeros((n, n_pad, 2, 2)), np.zeros((n, n_pad))
    pads[:, 0], phi[:, 0] = np.stack(first[:2], 1), first[2]
    k, left, clear = np.ones(n, np.intp), np.full(n, tries), cv.clear[idx]
    backup, active, done = cv.occ[idx].copy(), np.ones(n, bool), np.zeros(n, bool)
    while active.any():
        live = np.nonzero(active)[0]
        ok, a, b, ph = cv.extend(rng, idx[live], pads[live, k[live] - 1, 1], phi[live, k[live] - 1])
        good, kg = live[ok], k[live[ok]]
        pads[good, kg], phi[good, kg] = np.stack([a[ok], b[ok]], 1), ph[ok]
        cv.stamp(idx[good], pads[good, kg - 1, 0], pads[good, kg - 1, 1], clear[good])
        k[good] += 1
        fin, bad = good[k[good] >= n_pad], live[~ok]
        if tip is not None:
            far = (_seg_dist(pads[fin, -1, 1, None], tip[0][fin], tip[1][fin]) >= tip[2][fin]).all(1)
            fin, bad = fin[far], np.concatenate([bad, fin[~far]])
        cv.stamp(idx[fin], pads[fin, -1, 0], pads[fin, -1, 1], clear[fin])
        done[fin], active[fin] = True, False
        left[bad] -= 1
        dead, bad = bad[left[bad] == 0], bad[left[bad] > 0]
        cv.occ[idx[dead]], active[dead] = backup[dead], False
        back = np.maximum(k[bad] - rewind, 1)
        for q in range(rewind):  # un-stamp paddles k-2, k-3, ... down to the new newest one (index back - 1)
            sel = bad[k[bad] - 2 - q >= back - 1]
            cv.stamp(idx[sel], pads[sel, k[sel] - 2 - q, 0], pads[sel, k[sel] - 2 - q, 1], clear[sel], -1)
        k[bad] = back
    return done, pads


def _grow_targets(cv: _Canvas, rng: np.random.Generator, idx: np.ndarray, n_pad: int) -> tuple:
    """Seed both targets seed_distance apart in the central box, then grow A, then B.

    snakes2.two_snakes alternates and restarts the pair on any dead end, which keeps ~0.3 % of 14-paddle pairs
    at 64 px; here dead ends rewind a few paddles. B's seed and origin marker are stamped while A grows.
    """
    n, L, sd = len(idx), cv.geo.paddle_length, cv.geo.seed_distance
    t1 = 2 * sd + rng.random((n, _M, 2)) * (cv.size - 1 - 4 * sd)
    ang = rng.uniform(-np.pi, np.pi, (n, _M, 3))
    t2, u1, u2 = t1 + sd * _unit(ang[..., 1]), _unit(ang[..., 0]), _unit(ang[..., 2])
    h1, h2 = t1 + L * u1, t2 + L * u2
    cl, cm = cv.clear[idx, None], cv.cm[idx, None]
    good = (_seg_dist(t2, t1, h1) >= cm) & (_seg_dist(t1, t2, h2) >= cm)
    for p, q, r in ((t2, t1, h1), (h2, t1, h1), (t1, t2, h2), (h1, t2, h2)):  # short segments: no crossing
        good &= _seg_dist(p, q, r) >= cl
    for t, u in ((t1, u1), (t2, u2)):
        good &= cv.free(np.repeat(idx, _M), t.reshape(-1, 2), u.reshape(-1, 1, 2), np.zeros(n * _M)).reshape(n, -1)
    j, rows = good.argmax(1), np.arange(n)
    t1, h1, t2, h2, ph = t1[rows, j], h1[rows, j], t2[rows, j], h2[rows, j], ang[rows, j]
    pads, sub = np.zeros((n, 2, n_pad, 2, 2)), np.nonzero(good.any(1))[0]
    cl, cm, gap = cl[:, 0], cm[:, 0], 2 * cv.geo.marker_radius + cv.m[idx]  # gap: between marker centres
    cv.stamp(idx[sub], t2[sub], h2[sub], cl[sub])
    cv.stamp(idx[sub], t2[sub], t2[sub], cm[sub])
    tip = (np.stack([t2, t1, t2], 1), np.stack([h2, t1, t2], 1), np.stack([cm, gap, gap], 1))
    ok, pads[sub, 0] = _grow(cv, rng, idx[sub], (t1[sub], h1[sub], ph[sub, 0]), n_pad, _TARGET_TRIES, _REWIND,
                             tuple(v[sub] for v in tip))
    sub = sub[ok]
    cv.stamp(idx[sub], t2[sub], h2[sub], cl[sub], -1)
    cv.stamp(idx[sub], t2[sub], t2[sub], cm[sub], -1)
    for pt in (t1[sub], pads[sub, 0, -1, 1]):
        cv.stamp(idx[sub], pt, pt, cm[sub])
    ends = np.stack([t1, t2, pads[:, 0, -1, 1]], 1)  # B's end: clear of A's paddles, apart from all markers
    tip = (np.concatenate([pads[:, 0, :, 0], ends], 1), np.concatenate([pads[:, 0, :, 1], ends], 1),
           np.concatenate([np.repeat(cm[:, None], n_pad, 1), np.stack([gap] * 3, 1)], 1))
    ok, pads[sub, 1] = _grow(cv, rng, idx[sub], (t2[sub], h2[sub], ph[sub, 2]), n_pad, _TARGET_TRIES, _REWIND,
                             tuple(v[sub] for v in tip))
    sub = sub[ok]
    for pt in (t2[sub], pads[sub, 1, -1, 1]):
        cv.stamp(idx[sub], pt, pt, cm[sub])
    alive = np.zeros(n, bool)
    alive[sub] = True
    return alive, pads


def _draw(img: np.ndarray, rows: np.ndarray, a: np.ndarray, b: np.ndarray, half: float, cap: float,
          gain: float) -> None:
    """Max-blend anti-aliased capsules ``a -> b`` ([n, 2]) into ``img[rows]``, which has a ``_PAD`` border.

    Coverage min(cap, clip(half + 0.5 - dist, 0, 1)) approximates a box-filtered line. A 0.5-px line then
    peaks at 0.5, like the original's paddles, which are drawn at 2x and shrunk with Lanczos.
    """
    w = int(math.ceil(np.abs(b - a).max(initial=0.0) + 2 * half + 2)) + 1
    lo = np.floor(np.minimum(a, b) - half - 0.5).astype(np.intp) + _PAD
    ys = lo[:, 0, None, None] + np.arange(w)[:, None]
    xs = lo[:, 1, None, None] + np.arange(w)
    cen = np.stack(np.broadcast_arrays(ys - _PAD, xs - _PAD), -1).astype(np.float64)
    cov = gain * np.minimum(cap, np.clip(half + 0.5 - _seg_dist(cen, a[:, None, None], b[:, None, None]), 0, 1))
    img[rows[:, None, None], ys, xs] = np.maximum(img[rows[:, None, None], ys, xs], cov)


def _render_chunk(n: int, seed: int, stream: int, chunk: int, size: int, contour_length: int) -> tuple:
    """Render one chunk. Its images depend only on (seed, stream, chunk index), never on the caller's n."""
    geo = GEOMETRY[size]
    rng = np.random.default_rng([seed, stream, chunk])
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    origin_snake = rng.integers(0, 2, n)
    margins = np.asarray(geo.margins)[rng.integers(0, len(geo.margins), n)]
    cv = _Canvas(geo, size, margins)
    dl = contour_length // 3  # integer division, as in python-2 snakes2_wrapper (LRA32 writes `//`)
    n_distr = geo.distractor_budget // dl
    targets, pending = np.zeros((n, 2, contour_length, 2, 2)), np.arange(n)
    for _ in range(_MAX_ROUNDS):
        cv.occ[pending] = cv.bands[cv.mi[pending]]
        ok, pads = _grow_targets(cv, rng, pending, contour_length)
        targets[pending[ok]], pending = pads[ok], pending[~ok]
        if not len(pending):
            break
    else:
        raise RuntimeError(f"pathfinder: {len(pending)} images found no room for the target snakes")
    distr, placed = np.zeros((n, n_distr, dl, 2, 2)), np.zeros((n, n_distr), bool)
    for d in range(n_distr):  # snakes.make_many_snakes: each distractor gets a few fresh seeds, else skipped
        todo = np.arange(n)
        for _ in range(_DISTRACTOR_TRIES):
            seeded, *first = cv.seed(rng, todo, 0.0, size - 1.0)
            sub = np.nonzero(seeded)[0]
            ok, pads = _grow(cv, rng, todo[sub], tuple(f[sub] for f in first), dl)
            distr[todo[sub[ok]], d], placed[todo[sub[ok]], d] = pads[ok], True
            todo = np.delete(todo, sub[ok])
    img, rows, t = np.zeros((n, size + 2 * _PAD, size + 2 * _PAD)), np.arange(n), geo.thickness
    for s in (0, 1):
        for k in range(contour_length):
            _draw(img, rows, targets[:, s, k, 0], targets[:, s, k, 1], t / 2, t, geo.contrast)
    for d in range(n_distr):
        sel = np.nonzero(placed[:, d])[0]
        for k in range(dl):
            _draw(img, sel, distr[sel, d, k, 0], distr[sel, d, k, 1], t / 2, t, geo.contrast)
    term_snake = np.where(labels == 1, origin_snake, 1 - origin_snake)
    markers = np.stack([targets[rows, origin_snake, 0, 0], targets[rows, term_snake, -1, 1]], 1)
    for q in (0, 1):
        _draw(img, rows, markers[:, q], markers[:, q], geo.marker_radius, 1.0, 1.0)
    images = np.round(np.clip(img[:, _PAD:-_PAD, _PAD:-_PAD], 0, 1) * 255).astype(np.uint8)[..., None]
    meta = [{"paths": [targets[i, s].reshape(-1, 2).astype(np.float32) for s in (0, 1)]
             + [distr[i, d].reshape(-1, 2).astype(np.float32) for d in range(n_distr) if placed[i, d]],
             "marker_yx": markers[i].astype(np.float32), "margin": float(margins[i]),
             "marker_path": (int(origin_snake[i]), int(term_snake[i]))} for i in range(n)]
    return images, labels, meta


_CHOICES = {"image_size": tuple(GEOMETRY), "contour_length": CONTOUR_LENGTHS}


def _check(**values: Any) -> None:
    """One-line ConfigError; ints only (14.0 would break the integer maths), sizes and lengths from their tables."""
    for key, value in values.items():
        check_int(key, value, low=0)
        if key in _CHOICES:
            choice(str(value), key, tuple(str(v) for v in _CHOICES[key]))


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    step = GEOMETRY[size].chunk
    return [(c, min(step, n - c * step)) for c in range((n + step - 1) // step)]


def render_pathfinder_chunks(n: int, *, seed: int, image_size: int = 32, contour_length: int = 14,
                             stream: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``render_pathfinder`` as (images, labels) chunks, so a builder never holds a whole split in memory."""
    _check(image_size=image_size, contour_length=contour_length, n=n, seed=seed, stream=stream)
    for c, k in _chunks(n, image_size):
        images, labels, _ = _render_chunk(k, seed, stream, c, image_size, contour_length)
        yield images, labels


def render_pathfinder_with_meta(n: int, *, seed: int, image_size: int = 32, contour_length: int = 14,
                                stream: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """``render_pathfinder`` plus per-image metadata, so labels can be verified independently.

    ``paths``: float32 [2 * paddles, 2] (y, x) polylines (paddle start, end, next start, ...); 0 and 1 are the
    targets, the rest distractors. ``marker_yx``: float32 [2, 2] (origin, terminal marker). ``marker_path``:
    each marker's index into ``paths`` (origin = ``paths[i][0]``, terminal = ``paths[j][-1]``). ``margin``.
    """
    _check(image_size=image_size, contour_length=contour_length, n=n, seed=seed, stream=stream)
    parts = [_render_chunk(k, seed, stream, c, image_size, contour_length) for c, k in _chunks(n, image_size)]
    if not parts:
        return np.zeros((0, image_size, image_size, 1), np.uint8), np.zeros(0, np.int64), []
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            [m for p in parts for m in p[2]])


def render_pathfinder(n: int, *, seed: int, image_size: int = 32, contour_length: int = 14,
                      stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` images: uint8 [n, H, W, 1] and int64 labels [n], where 1 means both markers are on one path.

    Same (n, seed, stream) gives byte-identical output (same numpy build). Images are grown in chunks of
    ``GEOMETRY[size].chunk`` that share one random stream, so whole chunks do not depend on n but a partial last
    chunk does. Labels are balanced within each chunk. ``stream`` gives independent sequences for one seed; the
    builder (``procedural.Pathfinder``) uses 0 for train and 1 for test.
    """
    images, labels, _ = render_pathfinder_with_meta(n, seed=seed, image_size=image_size,
                                                    contour_length=contour_length, stream=stream)
    return images, labels
