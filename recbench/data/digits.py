"""Procedural digit clutter / digit debris stimuli (Spoerer, McClure & Kriegeskorte 2017), numpy + PIL only.

Re-implements the sampling rules of the public ImageMagick-based generator ``cjspoerer/digitclutter``
without ImageMagick, TensorFlow or any system font (no code copied). Rules, and where they come from:

* Appearance (``clutter.py::render_occlusion``, ``generate.py::sample_clutter`` defaults): 512 px
  design canvas, grey 119 background, font size 384, black face, white outline of stroke-width 20
  centred on the glyph outline (10 px visible outside the face), then ``-scale`` (box average) to
  32x32 and a mean over channels. Every length is kept as a ratio of the image side (font 0.75,
  outline 10/512), so another ``image_size`` is the same picture at another resolution.
* Font: ``helvetica-bold`` becomes matplotlib's bundled DejaVu Sans Bold, squeezed by ``_STRETCH`` so
  its digit ink box (about 0.57 x 0.73 em) approximates Helvetica-Bold's figures (0.49 x 0.71 em, AFM).
* Placement: ImageMagick ``gravity Center`` centres the advance width and the font line box
  (Helvetica-Bold ascender/descender 729/-218 in URW's AFM), which puts a digit's ink about 0.1 em
  (0.075 of the image) above centre; the default y-offset mean 0.076 cancels that. We apply the same
  rule (anchor = advance centre, line-box centre), so ink is centred on average. Offsets are uniform:
  x in [-0.29, 0.29], y in 0.076 + [-0.19, 0.19] (fractions of the image side).
* Scale: digitclutter's default size covariance is zero (``size_cov``), so its scripts render every
  digit at scale 1.0 and draw nothing for it; ``scale_std=0.0`` (the default) does the same. A positive
  ``scale_std`` draws independent x and y truncated normals, mean 1.0, bounds [0.7, 1.0] (``size_mean``,
  ``size_min``, ``size_max``; digitclutter's joint 2-D rejection equals per-axis rejection for a
  diagonal covariance), a variation the published stimuli do not have.
* Clutter: digits drawn without replacement, each with its own scale and offset, painted in order
  (outline, then face), so later digits occlude earlier ones.
* Debris (``generate.py::make_debris``, ``add_debris``): each digit is rendered once at scale 1, box
  scaled to the output size and trimmed (template plus binary mask at >= 50 % coverage). Per fragment:
  a square side uniform in 6..9 px (at 32 px), a random template, a random crop inside it and a random
  position (start ``randint(size - side)``, so, as in the original, never touching the right/bottom
  edge). Masked fragment pixels overwrite the image, and ``add_debris`` applies the debris after the
  digit is rendered: **debris lies over (occludes) the target**; later fragments cover earlier ones.

Grey levels are the true channel mean. digitclutter's HEAD (Dec 2017, after the paper) computes
``images.mean(axis=3, dtype=np.uint8)``, which overflows (background 119 becomes 33); not reproduced.

Determinism: image ``i`` of seed ``s`` draws from its own PCG64 stream ``SeedSequence(s,
spawn_key=(i,))``: output is byte-identical per seed (for fixed numpy / Pillow / font versions),
independent of chunking (``start``), and ``render_*(n)`` is a prefix of ``render_*(m)`` for n <= m.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from recbench.config import check_int

__all__ = ["DEBRIS_LEVELS", "GENERATOR_VERSION", "N_CLASSES", "check_scale_std", "render_clutter", "render_debris"]

#: Bump when the rendered pixels change, so cached tfds datasets land in a new version folder.
#: 2.0.0: digits at scale 1.0 by default (``scale_std=0.0``, digitclutter's default); 1.0.0 drew scales with std 0.2.
GENERATOR_VERSION = "2.0.0"
#: Number of debris fragments per image, half-open ``[low, high)`` like ``numpy.random.randint``.
DEBRIS_LEVELS: dict[str, tuple[int, int]] = {"none": (0, 1), "light": (10, 11), "moderate": (30, 31), "heavy": (50, 51)}
N_CLASSES = 10

BACKGROUND, FACE, EDGE = 119.0, 0.0, 255.0
_EM = 384 / 512  # font size / image side
_EDGE_OUT = 10 / 512  # visible outline width / image side (stroke-width 20 centred on the outline)
_STRETCH = (0.85, 0.975)  # (x, y): DejaVu Sans Bold figures -> Helvetica-Bold figure proportions
_LINE_CENTRE_EM = (729 - 218) / 2 / 1000  # Helvetica-Bold line-box centre above the baseline, in em
_OFFSET_X, _OFFSET_Y, _OFFSET_Y_MEAN = 0.29, 0.19, 0.076
_SCALE_MIN, _SCALE_MAX, _SCALE_MEAN = 0.7, 1.0, 1.0
_FRAGMENT_32 = (6, 9)  # inclusive fragment side range at 32 px
_SS = 4  # compositing canvas = _SS x output size, box-averaged down (ImageMagick -scale)
_GLYPH_MARGIN = 3  # canvas px of zeros around each glyph (> resampling kernel half-width 1/0.7)
_REF = 16  # glyphs are rasterised at _REF x output size (512 px for 32 px images, as digitclutter)


def _font_path() -> str:
    """DejaVu Sans Bold from matplotlib's package data (found without importing matplotlib)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib is required for its bundled DejaVu Sans Bold font")
    path = Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    if not path.is_file():
        raise RuntimeError(f"DejaVu Sans Bold not found at {path}")
    return str(path)


def _box_reduce(a: np.ndarray, f: int) -> np.ndarray:
    """Box-average a 2-D array by an integer factor (zero-pads bottom/right to a multiple of f)."""
    h, w = a.shape
    a = np.pad(a, ((0, -h % f), (0, -w % f)))
    return a.reshape(a.shape[0] // f, f, a.shape[1] // f, f).mean(axis=(1, 3))


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@dataclass(frozen=True)
class _GlyphBank:
    """Everything per image size that is rendered once: canvas-resolution glyphs and debris templates."""

    size: int
    glyphs: tuple[np.ndarray, ...]  # (2, gh, gw) float32 on the canvas grid: [coverage, premultiplied grey]
    anchors: np.ndarray  # (10, 2) gravity-centre anchor (row, col) in glyph pixel-edge coordinates
    templates: tuple[np.ndarray, ...]  # uint8 (th, tw) debris templates at output resolution
    masks: tuple[np.ndarray, ...]  # bool (th, tw)
    tshape: np.ndarray  # (10, 2) template shapes
    fragment: tuple[int, int]  # inclusive fragment side range at this size


@functools.lru_cache(maxsize=16)
def _glyph_bank(size: int) -> _GlyphBank:
    """Rasterise the ten digits once (face and outlined masks) so per-image work is only resampling."""
    ref = _REF * size
    em = _EM * ref
    font = ImageFont.truetype(_font_path(), round(em))
    stroke = max(1, round(_EDGE_OUT * ref))
    ascent, descent = font.getmetrics()
    pad = stroke + 2 * _REF
    glyphs, anchors, templates, masks = [], [], [], []
    for digit in range(N_CLASSES):
        adv = font.getlength(str(digit))
        w, h = math.ceil(adv) + 2 * pad, ascent + descent + 2 * pad
        w2, h2 = round(w * _STRETCH[0]), round(h * _STRETCH[1])
        layers = []
        for width in (0, stroke):  # face, then face + outline
            im = Image.new("L", (w, h))
            ImageDraw.Draw(im).text(
                (pad, pad + ascent),
                str(digit),
                font=font,
                fill=255,
                anchor="ls",
                stroke_width=width,
                stroke_fill=255,
            )
            layers.append(np.asarray(im.resize((w2, h2), Image.Resampling.BOX), np.float32) / 255.0)
        face, cover = layers
        cover = np.maximum(cover, face)
        grey = EDGE * np.clip(cover - face, 0.0, 1.0) + FACE * face  # premultiplied by coverage
        anchor = np.array([(pad + ascent) * h2 / h - _LINE_CENTRE_EM * em, (pad + adv / 2) * w2 / w])
        # canvas-resolution glyph, cropped to its support
        f = _REF // _SS
        g = np.stack([_box_reduce(cover, f), _box_reduce(grey, f)]).astype(np.float32)
        r0, r1, c0, c1 = _bbox(g[0] > 0)
        m = _GLYPH_MARGIN  # zero border so resampling kernels near the edge see their full support
        glyphs.append(np.pad(g[:, r0:r1, c0:c1], ((0, 0), (m, m), (m, m))))
        anchors.append(anchor / f - (r0 - m, c0 - m))
        # debris template at output resolution: digit at scale 1 on the background, trimmed to its mask
        tcover = _box_reduce(cover, _REF)
        tval = _box_reduce(BACKGROUND * (1.0 - cover) + grey, _REF)
        tmask = tcover >= 0.5
        r0, r1, c0, c1 = _bbox(tmask)
        templates.append(np.clip(np.rint(tval[r0:r1, c0:c1]), 0, 255).astype(np.uint8))
        masks.append(tmask[r0:r1, c0:c1].copy())
    lo, hi = (max(1, round(v * size / 32)) for v in _FRAGMENT_32)
    return _GlyphBank(
        size,
        tuple(glyphs),
        np.array(anchors),
        tuple(templates),
        tuple(masks),
        np.array([t.shape for t in templates]),
        (lo, hi),
    )


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))


def _truncnorm_pair(rng: np.random.Generator, std: float) -> np.ndarray:
    """Two independent N(mean, std) draws truncated to [min, max] by rejection (as digitclutter); the mean itself,
    with no draw, when ``std`` is 0 (digitclutter's zero covariance)."""
    if std == 0:
        return np.array([_SCALE_MEAN, _SCALE_MEAN])
    out: list[float] = []
    while len(out) < 2:
        z = rng.normal(_SCALE_MEAN, std, 16)
        out.extend(z[(z >= _SCALE_MIN) & (z <= _SCALE_MAX)][: 2 - len(out)].tolist())
    return np.array(out)


_ARANGE = np.arange(4096, dtype=np.float32)


def _axis_weights(n_src: int, s: float, t: float, n_dst: int) -> tuple[int, np.ndarray | None]:
    """Resampling matrix for one axis: source pixel centre j+0.5 lands at t + s*(j+0.5) on the canvas.

    A triangle (bilinear) kernel widened by 1/s when shrinking, i.e. antialiased like PIL's BILINEAR resize.
    Returns the first destination index and a (n_out, n_src) matrix, or None when off-canvas.
    """
    lo, hi = max(math.floor(t) - 1, 0), min(math.ceil(t + s * n_src) + 1, n_dst)
    if hi <= lo:
        return lo, None
    k = np.float32(min(s, 1.0))
    u = (_ARANGE[lo:hi] + np.float32(0.5 - t)) * np.float32(k / s)  # destination centres in source units * k
    w = np.subtract.outer(u, _ARANGE[:n_src] * k + k * np.float32(0.5))
    np.abs(w, out=w)
    np.subtract(1.0, w, out=w)
    np.maximum(w, 0.0, out=w)
    # Unit-spaced samples of a widened triangle do not sum to 1 (ripple up to ~15 %): normalise each row,
    # as PIL does. Glyphs carry a zero margin, so rows at the glyph edge only see zeros beyond it.
    w /= np.maximum(w.sum(axis=1, keepdims=True), np.float32(1e-12))
    return lo, w


def _draw_digit(canvas: np.ndarray, bank: _GlyphBank, digit: int, rng: np.random.Generator, scale_std: float) -> None:
    """Sample scale and offset, then paint one outlined digit over the canvas (premultiplied 'over')."""
    sx, sy = _truncnorm_pair(rng, scale_std)
    ox = rng.uniform(-_OFFSET_X, _OFFSET_X)
    oy = _OFFSET_Y_MEAN + rng.uniform(-_OFFSET_Y, _OFFSET_Y)
    n = canvas.shape[0]
    glyph, (ay, ax) = bank.glyphs[digit], bank.anchors[digit]
    y0, wy = _axis_weights(glyph.shape[1], sy, n * (0.5 + oy) - sy * ay, n)
    x0, wx = _axis_weights(glyph.shape[2], sx, n * (0.5 + ox) - sx * ax, n)
    if wy is None or wx is None:
        return
    cover, grey = wy @ glyph @ wx.T
    region = canvas[y0 : y0 + wy.shape[0], x0 : x0 + wx.shape[0]]
    region *= 1.0 - cover
    region += grey


def _to_uint8(canvas: np.ndarray, size: int) -> np.ndarray:
    """Box-average the canvas down by _SS (ImageMagick ``-scale``) and round to uint8."""
    rows = canvas.reshape(size, _SS, -1)
    acc = rows[:, 0] + rows[:, 1]
    for i in range(2, _SS):
        acc += rows[:, i]
    cols = acc.reshape(size, size, _SS)
    out = cols[..., 0] + cols[..., 1]
    for i in range(2, _SS):
        out += cols[..., i]
    out *= 1.0 / (_SS * _SS)
    out += 0.5  # truncation after +0.5 rounds half up; clip guards against float error before the cast
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


def _add_debris(
    img: np.ndarray, bank: _GlyphBank, rng: np.random.Generator, n_debris: tuple[int, int]
) -> None:
    """Paste masked square fragments of digit templates over ``img`` in place (later over earlier)."""
    m = int(rng.integers(n_debris[0], n_debris[1]))
    if m == 0:
        return
    # One uniform draw per quantity and fragment, floored into its range: the same discrete uniforms as
    # randint, without Generator.integers' per-call overhead for array-valued bounds.
    u = rng.random((6, m))
    lo, hi = bank.fragment
    side = lo + (u[0] * (hi - lo + 1)).astype(np.int64)
    which = (u[1] * N_CLASSES).astype(np.int64)
    th, tw = bank.tshape[which, 0], bank.tshape[which, 1]
    side = np.minimum(side, np.minimum(th, tw))
    crop_r = (u[2] * np.maximum(th - side, 1)).astype(np.int64)
    crop_c = (u[3] * np.maximum(tw - side, 1)).astype(np.int64)
    put_r = (u[4] * np.maximum(bank.size - side, 1)).astype(np.int64)
    put_c = (u[5] * np.maximum(bank.size - side, 1)).astype(np.int64)
    templates, masks = bank.templates, bank.masks
    for d, k, cr, cc, pr, pc in zip(
        *(v.tolist() for v in (side, which, crop_r, crop_c, put_r, put_c)), strict=True
    ):
        np.copyto(
            img[pr : pr + d, pc : pc + d],
            templates[k][cr : cr + d, cc : cc + d],
            where=masks[k][cr : cr + d, cc : cc + d],
        )


def check_scale_std(scale_std: object) -> float:
    """A digit-scale standard deviation: a finite number >= 0 (0: every digit at scale 1, as digitclutter)."""
    ok = isinstance(scale_std, int | float | np.floating | np.integer) and not isinstance(scale_std, bool)
    if not ok or not math.isfinite(float(scale_std)) or float(scale_std) < 0:
        raise ValueError(f"scale_std must be a finite number >= 0, got {scale_std!r}")
    return float(scale_std)


def _check_common(n: int, seed: int, image_size: int, start: int) -> None:
    """Validate the shared arguments (image_size is capped so glyph rasters stay a few MB)."""
    for key, val, low, high in (
        ("n", n, 0, None),
        ("seed", seed, 0, None),
        ("image_size", image_size, 16, 256),
        ("start", start, 0, None),
    ):
        check_int(key, val, low, high)


def render_debris(
    n: int, *, seed: int, image_size: int = 32, n_debris: tuple[int, int] = (10, 11), start: int = 0,
    scale_std: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` digit-debris images: one target digit with debris fragments lying over it.

    Args:
      n: number of images.
      seed: non-negative integer; image ``i`` uses its own stream derived from ``(seed, start + i)``.
      image_size: output side in pixels; all geometry (digit, outline, fragment sides 6-9 px at 32 px) scales.
      n_debris: half-open ``[low, high)`` range of the fragment count per image (``numpy.random.randint``
        semantics, as digitclutter); see ``DEBRIS_LEVELS`` for the paper's light/moderate/heavy presets.
      start: index of the first image in the seed's stream, so a long stream can be rendered in chunks.
      scale_std: standard deviation of the digit's x and y scale (truncated to [0.7, 1.0], mean 1); 0 renders it at
        scale 1 and draws nothing, as digitclutter's default.

    Returns:
      ``images`` uint8 ``[n, image_size, image_size, 1]`` and ``labels`` int64 ``[n]`` (the target digit).
    """
    _check_common(n, seed, image_size, start)
    scale_std = check_scale_std(scale_std)
    lo, hi = _check_range("n_debris", n_debris)
    bank = _glyph_bank(int(image_size))
    images = np.empty((n, image_size, image_size, 1), np.uint8)
    labels = np.empty(n, np.int64)
    canvas = np.empty((_SS * image_size,) * 2, np.float32)
    for k in range(n):
        rng = _rng(int(seed), int(start) + k)
        digit = int(rng.integers(N_CLASSES))
        canvas.fill(BACKGROUND)
        _draw_digit(canvas, bank, digit, rng, scale_std)
        img = _to_uint8(canvas, image_size)
        _add_debris(img, bank, rng, (lo, hi))
        images[k, :, :, 0] = img
        labels[k] = digit
    return images, labels


def render_clutter(
    n: int, *, seed: int, n_digits: int = 3, image_size: int = 32, start: int = 0, scale_std: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` digit-clutter images: ``n_digits`` distinct digits, later ones occluding earlier ones.

    Args:
      n: number of images.
      seed: non-negative integer; image ``i`` uses its own stream derived from ``(seed, start + i)``.
      n_digits: digits per image, drawn without replacement (the paper uses 3, 4 and 5).
      image_size: output side in pixels.
      start: index of the first image in the seed's stream (for chunked generation).
      scale_std: standard deviation of each digit's x and y scale, as for :func:`render_debris`.

    Returns:
      ``images`` uint8 ``[n, image_size, image_size, 1]`` and ``labels`` uint8 multi-hot ``[n, 10]``.
    """
    _check_common(n, seed, image_size, start)
    scale_std = check_scale_std(scale_std)
    if isinstance(n_digits, bool) or not isinstance(n_digits, int | np.integer) or not 1 <= n_digits <= 10:
        raise ValueError(f"n_digits must be an integer in 1..10, got {n_digits!r}")
    bank = _glyph_bank(int(image_size))
    images = np.empty((n, image_size, image_size, 1), np.uint8)
    labels = np.zeros((n, N_CLASSES), np.uint8)
    canvas = np.empty((_SS * image_size,) * 2, np.float32)
    for k in range(n):
        rng = _rng(int(seed), int(start) + k)
        digits = rng.choice(N_CLASSES, size=int(n_digits), replace=False)
        canvas.fill(BACKGROUND)
        for digit in digits:
            _draw_digit(canvas, bank, int(digit), rng, scale_std)
        images[k, :, :, 0] = _to_uint8(canvas, image_size)
        labels[k, digits] = 1
    return images, labels


def _check_range(name: str, value: object) -> tuple[int, int]:
    """Validate a half-open integer range ``(low, high)`` with ``0 <= low < high``."""
    try:
        lo, hi = (int(v) for v in value)  # type: ignore[attr-defined]
        ok = all(not isinstance(v, bool) and int(v) == v for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= lo < hi:
        raise ValueError(
            f"{name} must be a half-open range (low, high) of integers with 0 <= low < high, "
            f"got {value!r}; presets: {DEBRIS_LEVELS}"
        )
    return lo, hi
