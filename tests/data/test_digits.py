"""Tests for the numpy/PIL digit clutter / debris generator (recbench.data.digits)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from recbench.data import digits
from recbench.data.digits import DEBRIS_LEVELS, render_clutter, render_debris

_NORM = 16  # side of the bbox-normalised comparison grid


def _reference_faces() -> np.ndarray:
    """Digit faces drawn directly with PIL (independent of the generator's code path), bbox-normalised."""
    spec = importlib.util.find_spec("matplotlib")
    font_path = Path(spec.submodule_search_locations[0]) / "mpl-data/fonts/ttf/DejaVuSans-Bold.ttf"
    font = ImageFont.truetype(str(font_path), 128)
    refs = []
    for d in range(10):
        im = Image.new("L", (200, 200))
        ImageDraw.Draw(im).text((30, 170), str(d), font=font, fill=255, anchor="ls")
        refs.append(_normalise(np.asarray(im) > 127))
    return np.stack(refs)


def _normalise(mask: np.ndarray) -> np.ndarray:
    """Crop a binary mask to its bounding box, resize to _NORM x _NORM, zero-mean unit-norm."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8) * 255
    v = np.asarray(
        Image.fromarray(crop).resize((_NORM, _NORM), Image.Resampling.BILINEAR), np.float64
    ).ravel()
    v -= v.mean()
    return v / (np.linalg.norm(v) + 1e-9)


def _classify(images: np.ndarray) -> np.ndarray:
    """Nearest reference glyph (correlation of bbox-normalised dark-face masks) for single-digit images."""
    refs = _reference_faces()
    faces = images[..., 0].astype(int) < digits.BACKGROUND - 50
    return np.array([int(np.argmax(refs @ _normalise(f))) for f in faces])


@pytest.mark.parametrize("render", [render_debris, render_clutter])
def test_same_seed_identical_and_different_seed_differs(render):
    a_img, a_lab = render(24, seed=5)
    b_img, b_lab = render(24, seed=5)
    assert a_img.tobytes() == b_img.tobytes() and a_lab.tobytes() == b_lab.tobytes()
    c_img, _ = render(24, seed=6)
    assert not np.array_equal(a_img, c_img)


@pytest.mark.parametrize("render", [render_debris, render_clutter])
def test_stream_is_chunkable(render):
    """Image i depends only on (seed, i): chunks with ``start`` reassemble the one-call stream."""
    full_img, full_lab = render(12, seed=2)
    parts = [render(4, seed=2, start=s) for s in (0, 4, 8)]
    assert np.array_equal(full_img, np.concatenate([p[0] for p in parts]))
    assert np.array_equal(full_lab, np.concatenate([p[1] for p in parts]))


@pytest.mark.parametrize("size", [32, 48])
def test_shapes_and_dtypes(size):
    img, lab = render_debris(6, seed=0, image_size=size)
    assert img.shape == (6, size, size, 1) and img.dtype == np.uint8
    assert lab.shape == (6,) and lab.dtype == np.int64 and ((lab >= 0) & (lab <= 9)).all()
    img, lab = render_clutter(6, seed=0, image_size=size, n_digits=4)
    assert img.shape == (6, size, size, 1) and img.dtype == np.uint8
    assert lab.shape == (6, 10) and lab.dtype == np.uint8
    empty, _ = render_debris(0, seed=0)
    assert empty.shape == (0, 32, 32, 1)


def test_appearance_black_face_white_outline_grey_background():
    img, _ = render_debris(50, seed=1, n_debris=(0, 1))
    px = img[..., 0]
    values, counts = np.unique(px, return_counts=True)
    assert values[np.argmax(counts)] == 119  # background is the most common grey level
    assert (px.min(axis=(1, 2)) <= 10).all()  # every image has a (near) black face
    assert (px.max(axis=(1, 2)) >= 160).all()  # and a white outline (thin: antialiased at 32 px)
    # the digit fills the height: 0.71 em x 0.75 of 32 px at scale 1 (+ outline), the same size in every image
    heights = _heights(img)
    assert 18 <= heights.min() and heights.max() <= 21 and np.ptp(heights) <= 1


def _heights(img: np.ndarray) -> np.ndarray:
    return np.array([np.ptp(np.flatnonzero((p != 119).any(1))) + 1 for p in img[..., 0]])


def test_digits_are_at_scale_one_by_default_as_the_public_generator():
    """digitclutter's size covariance defaults to zero, so its digits are all drawn at scale 1.0 (GENERATOR_VERSION
    1.0.0 drew scales with std 0.2 by default, which varied the digit height from 11 to 22 px)."""
    default, lab = render_debris(100, seed=5, n_debris=(0, 1))
    explicit, lab0 = render_debris(100, seed=5, n_debris=(0, 1), scale_std=0.0)
    assert np.array_equal(default, explicit) and np.array_equal(lab, lab0)
    assert np.ptp(_heights(default)) <= 1
    assert digits.GENERATOR_VERSION == "2.0.0"


@pytest.mark.parametrize("render", [render_debris, render_clutter])
def test_scale_std_draws_smaller_digits_of_varying_size(render):
    kwargs = dict(n_debris=(0, 1)) if render is render_debris else dict(n_digits=1)
    fixed, lab0 = render(100, seed=6, **kwargs)
    varied, lab1 = render(100, seed=6, scale_std=0.2, **kwargs)
    assert np.array_equal(lab0, lab1)  # the label is drawn before the scale
    h0, h1 = _heights(fixed), _heights(varied)
    assert np.ptp(h1) >= 4 and h1.mean() < h0.mean() - 1  # truncated to [0.7, 1]: never larger than scale 1
    assert h1.max() <= h0.max() and h1.min() >= 0.7 * h0.min() - 2


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "0.2", True])
def test_bad_scale_std_raises(value):
    with pytest.raises(ValueError, match="scale_std"):
        render_debris(2, seed=0, scale_std=value)


@pytest.mark.parametrize("size", [32, 64])
def test_no_bright_specks_inside_dark_faces(size):
    """Resampling artefacts show up as bright pixels surrounded by black face; the outline never is."""
    img, _ = render_clutter(30, seed=7, n_digits=3, image_size=size)
    px = np.pad(img[..., 0].astype(int), ((0, 0), (1, 1), (1, 1)), constant_values=119)
    neighbours = [
        px[:, 1 + dy : px.shape[1] - 1 + dy, 1 + dx : px.shape[2] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dy, dx) != (0, 0)
    ]
    all_dark = np.all([n < 60 for n in neighbours], axis=0)
    assert not (all_dark & (img[..., 0] > 150)).any()


@pytest.mark.parametrize("scale", [0.7, 0.77, 0.91, 1.0])
def test_resampling_weights_preserve_flat_fields(scale):
    _, w = digits._axis_weights(60, scale, 7.3, 200)
    interior = w.sum(axis=1)[4:-4]
    assert np.allclose(interior, 1.0, atol=1e-5)


def test_debris_labels_match_rendered_digit():
    img, lab = render_debris(200, seed=11, n_debris=(0, 1))
    assert set(lab.tolist()) == set(range(10))
    assert (_classify(img) == lab).mean() >= 0.95


def test_single_digit_clutter_labels_match_rendered_digit():
    img, lab = render_clutter(100, seed=12, n_digits=1)
    assert (lab.sum(1) == 1).all()
    assert (_classify(img) == lab.argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("n_digits", [3, 5, 10])
def test_clutter_multi_hot_has_n_digits_ones(n_digits):
    img, lab = render_clutter(40, seed=3, n_digits=n_digits)
    assert (lab.sum(axis=1) == n_digits).all() and set(np.unique(lab)) <= {0, 1}
    # more digits cover more of the image
    assert ((img[..., 0] != 119).mean(axis=(1, 2)) > 0.1).all()


def test_debris_lies_over_the_target():
    """Same seed: the target is identical, fragments then overwrite some of its (black) face pixels."""
    clean, lab0 = render_debris(40, seed=4, n_debris=(0, 1))
    light, lab1 = render_debris(40, seed=4, n_debris=DEBRIS_LEVELS["light"])
    heavy, _ = render_debris(40, seed=4, n_debris=DEBRIS_LEVELS["heavy"])
    assert np.array_equal(lab0, lab1)
    changed_light = (clean != light).mean()
    changed_heavy = (clean != heavy).mean()
    assert 0.03 < changed_light < changed_heavy
    face = clean == 0
    assert (light[face] != 0).sum() > 0  # debris under the target could never change a face pixel


def test_debris_count_range_is_half_open():
    """n_debris=(k, k+1) always pastes exactly k fragments: more k -> monotonically more changed pixels."""
    clean, _ = render_debris(30, seed=9, n_debris=(0, 1))
    one, _ = render_debris(30, seed=9, n_debris=(1, 2))
    changed = (clean != one).reshape(30, -1).sum(1)
    assert (changed > 0).mean() > 0.9 and changed.max() <= 81  # one fragment of at most 9x9 px


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_debris=(5, 5)),
        dict(n_debris=(-1, 2)),
        dict(n_debris=(1, 2, 3)),
        dict(n_debris="ab"),
        dict(image_size=8),
        dict(image_size=1000),
        dict(seed=-1),
        dict(seed=1.5),
        dict(start=-2),
    ],
)
def test_debris_bad_params_raise(kwargs):
    params = dict(seed=0) | kwargs
    with pytest.raises(ValueError):
        render_debris(2, **params)


@pytest.mark.parametrize(
    "kwargs", [dict(n_digits=0), dict(n_digits=11), dict(n_digits=True), dict(image_size=4)]
)
def test_clutter_bad_params_raise(kwargs):
    with pytest.raises(ValueError):
        render_clutter(2, seed=0, **kwargs)


def test_negative_n_raises():
    with pytest.raises(ValueError):
        render_clutter(-1, seed=0)


def test_font_is_matplotlibs_bundled_dejavu():
    path = Path(digits._font_path())
    assert path.name == "DejaVuSans-Bold.ttf" and "mpl-data" in path.parts


def test_scale_std_is_part_of_the_cache_key(tmp_path):
    """A dataset config's ``scale_std`` reaches the tfds builder and names its cache folder, and the version folder
    is the generator's, so neither a 1.0.0 cache (std 0.2 pixels) nor another std's is read for the default."""
    from omegaconf import OmegaConf

    from recbench.data import procedural, sources

    default = procedural.builder("digit_debris", data_dir=tmp_path, level="heavy", num_train=8, num_test=4)
    varied = procedural.builder("digit_debris", data_dir=tmp_path, level="heavy", num_train=8, num_test=4,
                                scale_std=0.2)
    clutter = procedural.builder("digit_clutter", data_dir=tmp_path, num_train=8, num_test=4, scale_std=0.15)
    assert default.builder_config.name == "heavy-32px-n8-4-s0"  # the public generator's default keeps its name
    assert varied.builder_config.name == "heavy-32px-scale0.2-n8-4-s0"
    assert clutter.builder_config.name == "3digits-32px-scale0.15-n8-4-s0"
    assert str(default.data_dir).endswith(f"/heavy-32px-n8-4-s0/{digits.GENERATOR_VERSION}")
    cfg = OmegaConf.create({"name": "digit_debris", "level": "heavy", "scale_std": 0.2, "num_train": 8,
                            "num_test": 4})
    info = sources.describe_dataset(cfg, data_dir=str(tmp_path))
    assert info["tfds_name"] == "digit_debris/heavy-32px-scale0.2-n8-4-s0"
    splits = procedural.prepare("digit_debris", data_dir=tmp_path, progress=False, level="none", num_train=6,
                                num_test=2, scale_std=0.2)
    seed = procedural.split_seed(0, "train")
    assert np.array_equal(splits["train"][0], render_debris(6, seed=seed, n_debris=(0, 1), scale_std=0.2)[0])


@pytest.mark.parametrize("value", [-1, "big"])
def test_bad_scale_std_in_a_dataset_config_is_a_config_error(tmp_path, value):
    from omegaconf import OmegaConf

    from recbench.config import ConfigError
    from recbench.data import sources

    with pytest.raises(ConfigError, match="scale_std"):
        sources.describe_dataset(OmegaConf.create({"name": "digit_clutter", "scale_std": value}),
                                 data_dir=str(tmp_path))
