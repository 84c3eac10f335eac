"""Tests for the TF-free tfds builders of the procedural stimuli (recbench.data.procedural, recbench.data.tfds_base)."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pytest
from absl import logging as absl_logging
from tensorflow_datasets.core.utils import tqdm_utils

from recbench.config import ConfigError
from recbench.data import pathfinder as pf
from recbench.data import procedural, tfds_base
from recbench.data.digits import DEBRIS_LEVELS, render_clutter, render_debris
from recbench.data.procedural import DigitDebris, builder, prepare, split_seed

SMALL = dict(num_train=40, num_test=16)


def _files(root) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_debris_build_matches_direct_render_and_is_not_rebuilt(tmp_path, monkeypatch, capfd):
    splits = prepare("digit_debris", data_dir=str(tmp_path), progress=False, level="moderate", seed=3, **SMALL)
    assert capfd.readouterr() == ("", "")  # progress=False: not even recbench's own line
    x_tr, y_tr = splits["train"]
    x_te, y_te = splits["test"]
    assert x_tr.shape == (40, 32, 32, 1) and x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    assert x_te.shape == (16, 32, 32, 1) and y_te.shape == (16,)
    for split, (x, y) in splits.items():
        rx, ry = render_debris(len(x), seed=split_seed(3, split), n_debris=DEBRIS_LEVELS["moderate"])
        assert np.array_equal(x, rx) and np.array_equal(y, ry)
    assert not np.array_equal(x_tr[:16], x_te)  # train and test use different derived seeds
    assert (tmp_path / "digit_debris" / "moderate-32px-n40-16-s3").is_dir()

    before = _files(tmp_path)

    def boom(self, split):
        raise AssertionError("dataset was regenerated")

    monkeypatch.setattr(DigitDebris, "_batches", boom)
    again = prepare("digit_debris", data_dir=str(tmp_path), progress=True, level="moderate", seed=3, **SMALL)
    assert _files(tmp_path) == before
    assert capfd.readouterr() == ("", "")  # nothing is generated, so nothing is announced
    for split in ("train", "test"):
        assert all(np.array_equal(a, b) for a, b in zip(again[split], splits[split], strict=True))


def test_clutter_build_matches_direct_render(tmp_path):
    splits = prepare("digit_clutter", data_dir=str(tmp_path), progress=False, n_digits=4, image_size=24,
                     num_train=20, num_test=8, seed=1)
    x, y = splits["train"]
    assert x.shape == (20, 24, 24, 1) and y.shape == (20, 10) and y.dtype == np.uint8
    assert (y.sum(1) == 4).all()
    rx, ry = render_clutter(20, seed=split_seed(1, "train"), n_digits=4, image_size=24)
    assert np.array_equal(x, rx) and np.array_equal(y, ry)


def test_pathfinder_build_matches_direct_render_and_is_not_rebuilt(tmp_path, monkeypatch):
    params = dict(image_size=32, contour_length=6, num_train=48, num_test=24, seed=3)
    out = prepare("pathfinder", data_dir=str(tmp_path), progress=False, **params)
    for split, stream, n in (("train", 0, 48), ("test", 1, 24)):
        x, y = pf.render_pathfinder(n, seed=3, image_size=32, contour_length=6, stream=stream)
        assert out[split][0].dtype == np.uint8 and out[split][0].shape == (n, 32, 32, 1)
        assert out[split][1].dtype == np.int64
        np.testing.assert_array_equal(out[split][0], x)
        np.testing.assert_array_equal(out[split][1], y)
    assert (tmp_path / "pathfinder" / "32px-len6-n48-24-s3").is_dir()

    def boom(*args, **kwargs):
        raise AssertionError("prepare rebuilt an existing dataset")

    monkeypatch.setattr(pf, "_render_chunk", boom)
    again = prepare("pathfinder", data_dir=str(tmp_path), progress=False, **params)
    np.testing.assert_array_equal(again["train"][0], out["train"][0])
    np.testing.assert_array_equal(again["test"][1], out["test"][1])


def test_chunked_generation_equals_one_call(tmp_path, monkeypatch):
    monkeypatch.setattr(procedural, "_CHUNK", 7)  # 40 train images -> 6 render calls
    x, y = prepare("digit_debris", data_dir=str(tmp_path), progress=False, n_debris=(2, 5), **SMALL)["train"]
    rx, ry = render_debris(40, seed=split_seed(0, "train"), n_debris=(2, 5))
    assert np.array_equal(x, rx) and np.array_equal(y, ry)


def test_builder_names_encode_every_parameter_and_write_nothing(tmp_path):
    def name(dataset, **params):
        b = builder(dataset, data_dir=tmp_path, **params)
        assert not b.is_prepared() and str(b.data_dir).startswith(str(tmp_path / dataset / b.builder_config.name))
        return b.builder_config.name

    assert name("digit_debris") == "light-32px-n10000-2000-s0"
    assert "light-32px-n10000-2000-s0" in DigitDebris.builder_configs  # predefined light/moderate/heavy
    variants = [dict(level="heavy"), dict(n_debris=(3, 7)), dict(image_size=64), dict(num_train=5),
                dict(num_test=5), dict(seed=1)]
    names = {name("digit_debris"), *(name("digit_debris", **v) for v in variants)}
    assert len(names) == 1 + len(variants)
    assert name("digit_debris", level="heavy") == name("digit_debris", n_debris=DEBRIS_LEVELS["heavy"])
    assert name("digit_clutter", n_digits=5, seed=2) == "5digits-32px-n10000-2000-s2"
    assert name("pathfinder") == "32px-len14-n20000-2000-s0"
    assert name("pathfinder", image_size=np.int64(64), contour_length=9, num_train=10, num_test=5, seed=2) == (
        "64px-len9-n10-5-s2")
    assert isinstance(builder("pathfinder", data_dir=tmp_path), procedural.Pathfinder)
    assert not any(tmp_path.iterdir())  # asking where a set lives creates nothing
    assert split_seed(0, "train") != split_seed(0, "test") != split_seed(1, "test")
    assert procedural.NAMES == ("digit_debris", "digit_clutter", "pathfinder")


@pytest.mark.parametrize(
    "name, params",
    [
        ("digit_noise", {}),
        ("digit_debris", {"level": "extreme"}),
        ("digit_debris", {"n_digits": 3}),
        ("digit_debris", {"level": "light", "n_debris": (30, 31)}),
        ("digit_debris", {"n_debris": (4, 4)}),
        ("digit_debris", {"num_train": 0}),
        ("digit_debris", {"image_size": 8}),
        ("digit_clutter", {"n_digits": 11}),
        ("digit_clutter", {"level": "light"}),
        ("digit_clutter", {"seed": -1}),
        ("pathfinder", {"image_size": 48}),
        ("pathfinder", {"contour_length": 7}),
        ("pathfinder", {"contour_length": 14.0}),
        ("pathfinder", {"num_test": 2.5}),
        ("pathfinder", {"seed": -1}),
        ("pathfinder", {"colour": 1}),
    ],
)
def test_bad_name_or_params_raise_one_line(tmp_path, name, params):
    for call in (prepare, builder):
        with pytest.raises(ValueError) as err:
            call(name, data_dir=str(tmp_path), **params)
        assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing was written


def test_bad_pathfinder_values_name_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="image_size.*choose one of: 32, 64, 128, 150"):
        prepare("pathfinder", data_dir=str(tmp_path), image_size=100)
    with pytest.raises(ConfigError, match="contour_length.*choose one of: 6, 9, 14"):
        builder("pathfinder", data_dir=str(tmp_path), contour_length=5)


def test_build_console_is_one_line_without_bars_or_log_lines(tmp_path, monkeypatch, capfd):
    """The noisiest setting a user can have (bars on, absl at INFO with a handler) still yields one line."""
    monkeypatch.setattr(tqdm_utils, "_active", True)
    old_verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    handler = logging.StreamHandler()
    logging.getLogger("absl").addHandler(handler)
    params = dict(contour_length=6, num_train=8, num_test=4)
    try:
        # Control: the same build with the quiet context switched off does print bars and log lines here.
        with monkeypatch.context() as m:
            m.setattr(tfds_base, "quiet_tfds", lambda progress=False: contextlib.nullcontext())
            prepare("pathfinder", data_dir=str(tmp_path / "loud"), progress=True, **params)
        loud = capfd.readouterr().err
        assert "\r" in loud and "Generating splits" in loud and "Using custom data configuration" in loud

        prepare("pathfinder", data_dir=str(tmp_path / "quiet"), progress=True, **params)
        out, err = capfd.readouterr()
        prepare("pathfinder", data_dir=str(tmp_path / "quiet"), progress=True, **params)  # cached: silent
        assert capfd.readouterr() == ("", "")
        assert tqdm_utils._active and absl_logging.get_verbosity() == absl_logging.INFO  # the caller's, restored
    finally:
        logging.getLogger("absl").removeHandler(handler)
        absl_logging.set_verbosity(old_verbosity)
    folder = tmp_path / "quiet" / "pathfinder" / "32px-len6-n8-4-s0" / "1.0.0"
    assert out == "" and "\r" not in err and "\x1b" not in err
    assert err == f"recbench: generating pathfinder/32px-len6-n8-4-s0 into {folder}\n"


@pytest.mark.slow
def test_predefined_default_config_builds(tmp_path):
    """The paper-sized default (10k + 2k light) goes through the predefined-config path of tfds."""
    splits = prepare("digit_debris", data_dir=str(tmp_path), progress=False)
    assert splits["train"][0].shape == (10_000, 32, 32, 1) and splits["test"][0].shape == (2_000, 32, 32, 1)
    assert set(np.unique(splits["train"][1])) == set(range(10))
