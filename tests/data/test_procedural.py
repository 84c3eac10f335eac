"""Tests for the TF-free tfds builders of the procedural digit datasets (recbench.data.procedural)."""

from __future__ import annotations

import numpy as np
import pytest

from recbench.data import procedural
from recbench.data.digits import DEBRIS_LEVELS, render_clutter, render_debris
from recbench.data.procedural import DigitDebris, make_config, prepare, split_seed

SMALL = dict(num_train=40, num_test=16)


def _files(root) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_debris_build_matches_direct_render_and_is_not_rebuilt(tmp_path, monkeypatch, capfd):
    splits = prepare(
        "digit_debris", data_dir=str(tmp_path), progress=False, level="moderate", seed=3, **SMALL
    )
    assert "Downloading and preparing" not in capfd.readouterr().out
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

    monkeypatch.setattr(DigitDebris, "_generate_examples", boom)
    again = prepare("digit_debris", data_dir=str(tmp_path), progress=False, level="moderate", seed=3, **SMALL)
    assert _files(tmp_path) == before
    for split in ("train", "test"):
        assert all(np.array_equal(a, b) for a, b in zip(again[split], splits[split], strict=True))


def test_clutter_build_matches_direct_render(tmp_path):
    splits = prepare(
        "digit_clutter",
        data_dir=str(tmp_path),
        progress=False,
        n_digits=4,
        image_size=24,
        num_train=20,
        num_test=8,
        seed=1,
    )
    x, y = splits["train"]
    assert x.shape == (20, 24, 24, 1) and y.shape == (20, 10) and y.dtype == np.uint8
    assert (y.sum(1) == 4).all()
    rx, ry = render_clutter(20, seed=split_seed(1, "train"), n_digits=4, image_size=24)
    assert np.array_equal(x, rx) and np.array_equal(y, ry)


def test_chunked_generation_equals_one_call(tmp_path, monkeypatch):
    monkeypatch.setattr(procedural, "_CHUNK", 7)  # 40 train images -> 6 render calls
    x, y = prepare("digit_debris", data_dir=str(tmp_path), progress=False, n_debris=(2, 5), **SMALL)["train"]
    rx, ry = render_debris(40, seed=split_seed(0, "train"), n_debris=(2, 5))
    assert np.array_equal(x, rx) and np.array_equal(y, ry)


def test_config_names_encode_every_parameter():
    base = make_config("digit_debris")
    assert base.name == "light-32px-n10000-2000-s0"
    assert base.name in DigitDebris.builder_configs  # predefined light/moderate/heavy
    variants = [
        make_config("digit_debris", level="heavy"),
        make_config("digit_debris", n_debris=(3, 7)),
        make_config("digit_debris", image_size=64),
        make_config("digit_debris", num_train=5),
        make_config("digit_debris", num_test=5),
        make_config("digit_debris", seed=1),
    ]
    names = {base.name, *(v.name for v in variants)}
    assert len(names) == 1 + len(variants)
    assert make_config("digit_clutter", n_digits=5, seed=2).name == "5digits-32px-n10000-2000-s2"
    assert split_seed(0, "train") != split_seed(0, "test") != split_seed(1, "test")


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
    ],
)
def test_bad_name_or_params_raise_value_error(tmp_path, name, params):
    with pytest.raises(ValueError) as err:
        prepare(name, data_dir=str(tmp_path), progress=False, **params)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing was written


@pytest.mark.slow
def test_predefined_default_config_builds(tmp_path):
    """The paper-sized default (10k + 2k light) goes through the predefined-config path of tfds."""
    splits = prepare("digit_debris", data_dir=str(tmp_path), progress=False)
    assert splits["train"][0].shape == (10_000, 32, 32, 1) and splits["test"][0].shape == (2_000, 32, 32, 1)
    assert set(np.unique(splits["train"][1])) == set(range(10))
