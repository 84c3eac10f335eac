"""``recbench-data build|show|info``: the training config's overrides, PNG grids, JSON info, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from recbench.data import cli, stock
from recbench.data.digits import GENERATOR_VERSION

TINY = ["dataset.num_train=64", "dataset.num_test=16"]


def _run(capsys, *argv):
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    try:
        cli.main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_info_says_where_a_dataset_lives_before_it_is_built(capsys, tmp_path):
    code, out, _ = _run(capsys, "info", "digit_debris", "dataset.level=heavy", *TINY, f"paths.data_dir={tmp_path}")
    info = json.loads(out)
    assert code == 0 and info["prepared"] is False
    assert info["splits"] == {"train": 64, "test": 16} and info["num_classes"] == 10
    assert info["location"] == f"{tmp_path}/digit_debris/heavy-32px-n64-16-s0/{GENERATOR_VERSION}"
    assert not any(tmp_path.iterdir())


def test_build_prepares_once_then_info_reports_it(capsys, tmp_path):
    code, out, _ = _run(capsys, "build", "digit_clutter", *TINY, f"paths.data_dir={tmp_path}")
    assert code == 0 and json.loads(out)["prepared"] is True
    code, out, _ = _run(capsys, "info", "digit_clutter", *TINY, f"paths.data_dir={tmp_path}")
    assert json.loads(out)["prepared"] is True


def test_show_writes_a_labelled_grid(capsys, tmp_path):
    png = tmp_path / "grid" / "debris.png"
    code, out, _ = _run(capsys, "show", "digit_debris", *TINY, "--n", "12", "--out", str(png),
                        f"paths.data_dir={tmp_path / 'tfds'}")
    assert code == 0 and out.strip() == str(png)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 200
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 10  # not a blank canvas


def test_captions_name_every_class_present():
    assert cli.caption(np.array([0, 1, 0, 1]), ("a", "b", "c", "d")) == "b d"
    assert cli.caption(np.int64(2), ("a", "b", "c")) == "c"
    assert cli.caption(np.int64(7), None) == "7"


def test_show_a_streamed_stock_set_under_mock_data(capsys, tmp_path):
    png = tmp_path / "imagenette.png"
    with tfds.testing.mock_data(num_examples=8, data_dir=str(stock.METADATA_DIR),
                                policy=tfds.testing.MockPolicy.USE_FILES):
        code, _, err = _run(capsys, "show", "imagenette", "dataset.image_size=32", "--n", "8", "--out", str(png))
    assert code == 0, err
    with Image.open(png) as im:
        assert im.size[0] > 300


@pytest.mark.parametrize("argv,message", [
    (["frobnicate", "cifar10"], "unknown command 'frobnicate'; choose one of: build, show, info"),
    (["info"], "missing DATASET"),
    (["info", "nope"], "unknown dataset 'nope'; choose one of: cifar10"),
    (["info", "digit_debris", "dataset.level=extreme"], "dataset.level='extreme' is not valid"),
    (["info", "digit_debris", "dataset.nope=1"], "dataset digit_debris: unknown key(s) nope; valid keys: augment"),
    (["info", "cifar10", "dataset.train_split=nonsense"], "dataset.train_split='nonsense': Unknown split"),
    (["info", "digit_debris", "paths.data_dir=/dev/null"], "paths.data_dir='/dev/null' is a file, not a folder"),
    (["show", "digit_debris", "--out", "/dev/null/x.png"], "--out='/dev/null' is a file, not a folder"),
    (["info", "digit_debris", "+dataset.nope=1"], "unknown key(s) nope"),
    (["show", "digit_debris", "--n", "x"], "argument --n: invalid int value: 'x'"),
    (["show", "digit_debris", "--n", "0"], "--n must be a positive integer, got 0"),
])
def test_mistakes_are_one_line_and_exit_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("recbench-data: error: ") and message in err and err.count("\n") == 1


def test_build_of_a_missing_stock_set_names_what_to_fetch(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RECBENCH_OFFLINE", "1")
    code, _, err = _run(capsys, "build", "cifar10", f"paths.data_dir={tmp_path}")
    assert code == 2 and err.count("\n") == 1
    assert f"put cifar-10-binary.tar.gz (from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) in " \
           f"{tmp_path}/downloads/manual/" in err


def test_console_script_is_installed_and_fails_in_one_line(tmp_path):
    exe = f"{sys.prefix}/bin/recbench-data"
    result = subprocess.run([exe, "info", "nope"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unknown dataset 'nope'" in result.stderr
