"""Tests for the procedural Pathfinder generator (offline, CPU, a few seconds); its builder: test_procedural.py.

The label check does not trust the generator's own bookkeeping alone. It checks the metadata geometry (markers
at snake ends, snakes kept apart, paddle chain rules) and then the pixels. A positive's path must connect the two
markers in the thresholded image: we flood-fill from one marker, restricted to that path's pixels and bridging
only the pivot gaps (at most 2 * margin).
"""

import numpy as np
import pytest
from scipy import ndimage

from recbench.config import ConfigError
from recbench.data import pathfinder as pf


def _disc(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy**2 + xx**2 <= radius**2


def _near(shape: tuple[int, int], a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """Pixels whose centre is within ``radius`` of any segment a[i] -> b[i]."""
    yx = np.stack(np.mgrid[: shape[0], : shape[1]], -1).astype(np.float64)[:, :, None]
    return (pf._seg_dist(yx, a.astype(np.float64), b.astype(np.float64)) <= radius).any(-1)


def _components(fg: np.ndarray, bridge: float) -> np.ndarray:
    if bridge > 0:
        fg = ndimage.binary_dilation(fg, structure=_disc(bridge))
    return ndimage.label(fg, structure=np.ones((3, 3)))[0]


def _same_component(lab: np.ndarray, markers: np.ndarray) -> bool:
    ids = [lab[int(round(y)), int(round(x))] for y, x in markers]
    return bool(ids[0] > 0 and ids[0] == ids[1])


def _min_seg_dist(a1, b1, a2, b2) -> np.ndarray:
    """Pairwise distance between short segments, which may not cross (each is shorter than the clearance * 2)."""
    a1, b1, a2, b2 = (v.astype(np.float64) for v in (a1[:, None], b1[:, None], a2[None], b2[None]))
    return np.min([pf._seg_dist(a1, a2, b2), pf._seg_dist(b1, a2, b2), pf._seg_dist(a2, a1, b1),
                   pf._seg_dist(b2, a1, b1)], axis=0)


def test_deterministic_and_streams():
    x1, y1 = pf.render_pathfinder(40, seed=11)
    x2, y2 = pf.render_pathfinder(40, seed=11)
    assert x1.tobytes() == x2.tobytes() and y1.tobytes() == y2.tobytes()
    chunk = pf.GEOMETRY[32].chunk  # whole chunks do not depend on n (the builder generates chunk by chunk)
    xa, _ = pf.render_pathfinder(chunk + 4, seed=11, contour_length=6)
    xb, _ = pf.render_pathfinder(chunk, seed=11, contour_length=6)
    assert np.array_equal(xa[:chunk], xb)
    assert not np.array_equal(pf.render_pathfinder(40, seed=12)[0], x1)
    assert not np.array_equal(pf.render_pathfinder(40, seed=11, stream=1)[0], x1)


def test_balanced_labels_and_dtypes():
    x, y = pf.render_pathfinder(200, seed=0, contour_length=9)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1} and int(y.sum()) == 100
    assert x.max() == 255  # markers are drawn at full intensity


@pytest.mark.parametrize("size", [32, 64, 128, 150])
@pytest.mark.parametrize("length", [6, 14])
def test_shapes_and_path_lengths(size, length):
    x, y, meta = pf.render_pathfinder_with_meta(6, seed=1, image_size=size, contour_length=length)
    assert x.shape == (6, size, size, 1) and y.shape == (6,) and len(meta) == 6
    n_distr = pf.GEOMETRY[size].distractor_budget // (length // 3)
    for m in meta:
        assert [len(p) for p in m["paths"][:2]] == [2 * length] * 2
        assert all(len(p) == 2 * (length // 3) for p in m["paths"][2:]) and len(m["paths"]) <= 2 + n_distr


@pytest.mark.parametrize("size,length,n", [(32, 14, 120), (64, 9, 60), (128, 6, 40), (150, 14, 40)])
def test_labels_verified_from_geometry_and_pixels(size, length, n):
    geo = pf.GEOMETRY[size]
    x, y, meta = pf.render_pathfinder_with_meta(n, seed=5, image_size=size, contour_length=length)
    touching_negatives = 0
    for img, label, m in zip(x[..., 0], y, meta, strict=True):
        paths, (pa, pb), mk = m["paths"], m["marker_path"], m["marker_yx"]
        # metadata: the origin marker is at the start of a target, the terminal marker at the end of a target
        assert pa in (0, 1) and pb in (0, 1) and (pa == pb) == bool(label)
        np.testing.assert_array_equal(mk[0], paths[pa][0])
        np.testing.assert_array_equal(mk[1], paths[pb][-1])
        # chain rules: paddle length L, pivot gaps at most 2m, turns within pi / (2 * continuity)
        clear, margin = 2 * m["margin"] + geo.thickness, m["margin"]
        segs = [p.reshape(-1, 2, 2).astype(np.float64) for p in paths]
        for s in segs:
            np.testing.assert_allclose(np.linalg.norm(s[:, 1] - s[:, 0], axis=1), geo.paddle_length, atol=1e-3)
            assert np.all(np.linalg.norm(s[1:, 0] - s[:-1, 1], axis=1) <= 2 * margin + 1e-3)
            d = s[:, 1] - s[:, 0]
            turn = np.abs((np.diff(np.arctan2(d[:, 0], d[:, 1])) + np.pi) % (2 * np.pi) - np.pi)
            assert np.all(turn <= np.pi / (2 * geo.continuity) + 1e-3)
        # no crossings: paddles of different snakes keep the clearance (less the occupancy grid's slack)
        owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(segs)])
        allp = np.concatenate(segs)
        dist = _min_seg_dist(allp[:, 0], allp[:, 1], allp[:, 0], allp[:, 1])
        assert dist[owner[:, None] != owner[None]].min() >= 0.9 * clear
        # pixels, positives: flood-fill along the path's own pixels, bridging only the pivot gaps
        if label == 1:
            s = segs[pa]
            zone = _near(img.shape, s[:, 0], s[:, 1], geo.thickness / 2 + 1.0)
            zone |= _near(img.shape, mk, mk, geo.marker_radius + 1.0)
            assert _same_component(_components((img > 0) & zone, margin + 0.5), mk), "positive path is broken"
        # pixels, negatives: count markers joined by plainly touching strokes (no bridging, mid threshold)
        elif _same_component(_components(img > 127, 0), mk):
            touching_negatives += 1
    assert touching_negatives <= 0.05 * (y == 0).sum()


def test_chunks_concatenate_to_the_whole_render():
    n = pf.GEOMETRY[32].chunk + 5  # one whole chunk and a partial one
    chunks = list(pf.render_pathfinder_chunks(n, seed=4, contour_length=6, stream=1))
    x, y = pf.render_pathfinder(n, seed=4, contour_length=6, stream=1)
    assert [len(c[0]) for c in chunks] == [n - 5, 5]
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), x)
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), y)


@pytest.mark.parametrize("params, match", [
    (dict(image_size=100), "image_size.*choose one of: 32, 64, 128, 150"),
    (dict(contour_length=7), "contour_length.*choose one of: 6, 9, 14"),
    (dict(contour_length=14.0), "contour_length must be an integer"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(stream=True), "stream must be an integer"),
    (dict(n=2.5), "n must be an integer"),
])
def test_bad_params_raise_one_line_config_error(params, match):
    kwargs = dict(n=4, seed=0) | params
    n = kwargs.pop("n")
    with pytest.raises(ConfigError, match=match) as err:
        pf.render_pathfinder(n, **kwargs)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=match):
        next(pf.render_pathfinder_chunks(n, **kwargs))
