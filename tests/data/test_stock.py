"""Stock tfds sets and Pathfinder in the registry: real loading code under ``tfds.testing.mock_data`` (no TF), the
offline diagnosis (one line naming the file and the folder, before anything is built), and Pathfinder training."""

import filecmp
import re
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from recbench.config import ConfigError, compose_train
from recbench.data import stock
from recbench.data.sources import ArrayDataset, dataset_meta, load_dataset
from recbench.data.stream import StreamDataset

STOCK = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn_cropped", "imagenette", "imagenet2012")


@pytest.fixture
def mocked():
    """tfds mocked from the committed metadata: real split names, label names and features; random pixels."""
    with tfds.testing.mock_data(num_examples=24, data_dir=str(stock.METADATA_DIR),
                                policy=tfds.testing.MockPolicy.USE_FILES):
        yield


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("RECBENCH_OFFLINE", "1")


def _dataset_cfg(name, *overrides):
    return compose_train([f"dataset={name}", *overrides]).dataset


@pytest.mark.parametrize("name", STOCK)
def test_spec_agrees_with_the_builder_code_and_committed_metadata(name):
    spec = stock.SPECS[name]
    b = stock.builder(name, stock.METADATA_DIR)
    assert stock.is_prepared(b), f"metadata for {name} missing; run python -m recbench.data.stock"
    image = b.info.features["image"]
    assert image.shape == (spec.shape or (None, None, 3))
    assert {k: b.info.features[k].num_classes for k in spec.classes} == spec.classes
    assert {s: v.num_examples for s, v in b.info.splits.items()} == spec.splits
    assert stock.tfds_name(name) == b.info.full_name.rsplit("/", 1)[0]


def test_committed_metadata_is_what_the_generator_writes(tmp_path):
    for written in stock.write_metadata(tmp_path):
        committed = stock.METADATA_DIR / written.relative_to(tmp_path)
        files = sorted(p.name for p in written.iterdir())
        assert sorted(p.name for p in committed.iterdir()) == files
        _, mismatch, errors = filecmp.cmpfiles(written, committed, files, shallow=False)
        assert not mismatch and not errors, (committed, mismatch)


@pytest.mark.parametrize("name,overrides,classes,shape", [
    ("cifar10", [], 10, (32, 32, 3)),
    ("cifar100", ["dataset.label_type=coarse"], 20, (32, 32, 3)),
    ("mnist", [], 10, (28, 28, 1)),
    ("svhn_cropped", ["dataset.augment=none"], 10, (32, 32, 3)),
])
def test_small_stock_sets_load_resident(mocked, name, overrides, classes, shape):
    cfg = _dataset_cfg(name, *overrides)
    ds = load_dataset(cfg, data_dir="/nonexistent")
    assert isinstance(ds, ArrayDataset) and ds.num_classes == classes and ds.image_shape == shape
    assert ds.train[0].dtype == np.uint8 and ds.train[0].shape == (24, *shape) and ds.test[1].shape == (24,)
    assert ds.train[1].min() >= 0 and ds.train[1].max() < classes
    assert dataset_meta(cfg) == (shape, classes)
    assert ds.augment == cfg.augment and len(ds.label_names) == classes


def test_label_names_come_from_the_metadata(mocked):
    assert load_dataset(_dataset_cfg("cifar10"), data_dir="/x").label_names[:2] == ("airplane", "automobile")
    fine = load_dataset(_dataset_cfg("cifar100"), data_dir="/x")
    assert fine.num_classes == 100 and fine.label_names[-1] == "worm"


@pytest.mark.parametrize("name,size", [("imagenette", 24), ("imagenet2012", 32)])
def test_large_stock_sets_stream(mocked, name, size):
    ds = load_dataset(_dataset_cfg(name, f"dataset.image_size={size}"), data_dir="/x")
    assert isinstance(ds, StreamDataset) and ds.image_shape == (size, size, 3)
    assert len(ds.train_source) == 24 and ds.augment == "imagenet"
    image, label = ds.train_view()(ds.train_source[0], np.random.default_rng(0))
    assert image.shape == (size, size, 3) and 0 <= label < ds.num_classes


def test_unknown_split_is_a_config_error(mocked):
    with pytest.raises(ConfigError, match="dataset.eval_split='validation'.*Unknown split"):
        load_dataset(_dataset_cfg("cifar10", "dataset.eval_split=validation"), data_dir="/x")


@pytest.mark.parametrize("split,n,expected", [
    ("train", None, "train"),
    ("train", 512, "train[:512]"),
    ("train[45000:]", 512, "train[45000:45512]"),
    ("train[:10%]", 100_000, "train[:5000]"),  # a split smaller than n is read whole
    ("train[:10]+test", 25, "train[:10]+test[:15]"),
    ("all", 60_005, "train[:50000]+test[:10000]"),
])
def test_first_examples_slices_a_split_expression(split, n, expected):
    assert stock.first_examples(split, n, stock.published_sizes("cifar10"), "dataset.train_split") == expected


@pytest.mark.parametrize("name,streamed", [("cifar10", False), ("imagenette", True)])
def test_smoke_reads_the_first_images_of_each_stock_split(mocked, monkeypatch, name, streamed):
    """debug=smoke's num_train / num_test reach tfds as sliced splits (the mock serves its 24 examples whatever the
    slice, so the split strings are what is checked)."""
    opened = []
    real = stock.open_source
    monkeypatch.setattr(stock, "open_source", lambda b, split, key: opened.append(split) or real(b, split, key))
    ds = load_dataset(_dataset_cfg(name, "debug=smoke"), data_dir="/x")
    assert isinstance(ds, StreamDataset) == streamed
    assert opened == ["train[:512]", "validation[:256]" if streamed else "test[:256]"]


def test_smoke_on_a_missing_stock_set_fails_on_the_data_not_its_keys(tmp_path, offline):
    cfg = _dataset_cfg("cifar10", "debug=smoke")
    assert dataset_meta(cfg) == ((32, 32, 3), 10)
    with pytest.raises(ConfigError, match="dataset cifar10 is not prepared in .* cannot be built here: put cifar-10"):
        load_dataset(cfg, data_dir=str(tmp_path))


@pytest.mark.parametrize("overrides,message", [
    (["dataset=imagenette", "dataset.pipeline=resident"], "needs images of one size; imagenette must stream"),
    (["dataset=imagenet2012", "dataset.image_size=null"], "dataset.image_size must be set"),
    (["dataset=cifar10", "dataset.augment=imagenet"], "dataset.augment='imagenet' is not valid"),
    (["dataset=cifar10", "dataset.image_size=64"], "use dataset.pipeline=stream to resize"),
    (["dataset=cifar10", "+dataset.label_type=coarse"], "unknown key(s) label_type"),
    (["dataset=cifar100", "dataset.label_type=medium"], "dataset.label_type='medium' is not valid"),
    (["dataset=mnist", "+dataset.variant=x"], "mnist has no variants"),
    (["dataset=imagenette", "dataset.threads=0"], "dataset.threads must be a positive integer"),
    (["dataset=pathfinder", "dataset.contour_length=7"], "dataset.contour_length=7 is not valid; choose one of: 6"),
    (["dataset=cifar10", "dataset.train_split=nonsense"], "dataset.train_split='nonsense': Unknown split 'nonsense'"),
    (["dataset=cifar10", "dataset.eval_split='test[:20000]'"], "Requested slice [:20000] incompatible with 10000"),
    (["dataset=cifar10", "dataset.eval_split='test[10:5]'"], "dataset.eval_split='test[10:5]' selects no examples"),
    (["dataset=cifar10", "dataset.train_split=''"], "dataset.train_split='' is not a tfds split"),
    (["dataset=cifar10", "dataset.num_train=0"], "dataset.num_train must be a positive integer, got 0"),
    (["dataset=imagenette", "dataset.variant=80px"], "dataset.variant='80px' is not valid; choose one of: full-size"),
])
def test_bad_dataset_configs_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        dataset_meta(compose_train(overrides).dataset)
    assert "\n" not in str(err.value)


def test_missing_cifar10_fails_fast_naming_file_folder_and_tensorflow(tmp_path, offline):
    t0 = time.time()
    with pytest.raises(ConfigError) as err:
        load_dataset(_dataset_cfg("cifar10"), data_dir=str(tmp_path))
    message = str(err.value)
    assert time.time() - t0 < 5 and "\n" not in message
    assert f"put cifar-10-binary.tar.gz (from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) in " \
           f"{tmp_path}/downloads/manual/" in message
    assert "building it needs TensorFlow: pip install 'recbench[tf]'" in message
    assert not any(tmp_path.iterdir())  # nothing half-built


def test_missing_imagenet_names_both_tars_even_with_tensorflow(tmp_path, monkeypatch):
    monkeypatch.setattr(stock, "tensorflow_installed", lambda: True)
    monkeypatch.setattr(stock, "reachable", lambda url: pytest.fail("manual datasets are never probed"))
    with pytest.raises(ConfigError) as err:
        load_dataset(_dataset_cfg("imagenet2012"), data_dir=str(tmp_path))
    assert str(err.value) == (
        f"dataset imagenet2012 is not prepared in {tmp_path}/imagenet2012/5.1.0 and cannot be built here: put "
        f"ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from {stock.IMAGENET_URL}) in "
        f"{tmp_path}/downloads/manual/ (then rerun, or run: recbench-data build imagenet2012)")


def test_archive_in_manual_dir_is_built_as_array_record_without_gcs(tmp_path, monkeypatch, offline):
    """With TF present and the archive dropped in downloads/manual/, tfds builds with GCS off, as ArrayRecord."""
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    (manual / "cifar-10-binary.tar.gz").write_bytes(b"")
    monkeypatch.setattr(stock, "tensorflow_installed", lambda: True)
    seen = {}
    real_builder = tfds.builder

    def spy_builder(name, **kwargs):
        seen["builder"] = kwargs
        return real_builder(name, **kwargs)

    def fake_prepare(self, **kwargs):
        seen["prepare"] = kwargs
        raise RuntimeError("stop here")

    monkeypatch.setattr(tfds, "builder", spy_builder)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fake_prepare)
    with pytest.raises(ConfigError, match=r"building cifar10 into .* failed: RuntimeError: stop here"):
        load_dataset(_dataset_cfg("cifar10"), data_dir=str(tmp_path), progress=False)
    assert seen["builder"]["try_gcs"] is False
    assert seen["prepare"]["file_format"] == "array_record"
    config = seen["prepare"]["download_config"]
    assert config.try_download_gcs is False and str(config.manual_dir) == str(manual)


def test_tfds_download_cache_counts_as_present(tmp_path, monkeypatch, offline):
    monkeypatch.setattr(stock, "tensorflow_installed", lambda: True)
    b = stock.builder("mnist", tmp_path)
    problem = stock.build_problem(b, "mnist", str(tmp_path))
    assert "train-images-idx3-ubyte.gz" in problem and "TensorFlow" not in problem
    (tmp_path / "downloads").mkdir()
    for f in stock.needed_files("mnist"):
        (tmp_path / "downloads" / f.cache_name).write_bytes(b"")
    assert stock.build_problem(b, "mnist", str(tmp_path)) is None


def test_imagenette_variant_picks_its_archive():
    assert [f.filename for f in stock.needed_files("imagenette")] == ["imagenette2-160.tgz"]
    assert [f.filename for f in stock.needed_files("imagenette", "full-size")] == ["imagenette.tgz"]
    assert [f.filename for f in stock.needed_files("imagenette", "320px-v2")] == ["imagenette2-320.tgz"]


def test_tfrecord_copy_needs_tensorflow_to_read_and_cannot_stream(tmp_path):
    """A dataset prepared elsewhere in tfds' default format is recognised and explained, not misread."""
    b = tfds.builder("cifar10", data_dir=str(tmp_path), try_gcs=False, file_format="tfrecord")
    b.info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(name=s, shard_lengths=[1], num_bytes=0)
                                           for s in ("train", "test")]))
    (tmp_path / "cifar10" / "3.0.2").mkdir(parents=True)
    b.info.write_to_directory(b.data_dir)
    with pytest.raises(ConfigError, match=r"stored as tfrecord; reading tfrecord needs TensorFlow: pip install "
                                          r"'recbench\[tf\]' \(or convert it: tfds convert_format"):
        load_dataset(_dataset_cfg("cifar10"), data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="stored as tfrecord; streaming needs ArrayRecord"):
        load_dataset(_dataset_cfg("cifar10", "dataset.pipeline=stream"), data_dir=str(tmp_path))


def test_tiny_recurrent_model_trains_on_pathfinder(tmp_path, tiny_cfg):
    """Pathfinder through the real trainer: generated on first use, binary labels, a few steps of BL."""
    from recbench.train.loop import train_and_evaluate

    cfg = tiny_cfg("dataset=pathfinder", "model=bl", "model.channels=[8,8]", "dataset.num_train=256",
                   "dataset.num_test=64", "trainer.total_steps=4", "trainer.log_every=2")
    cfg.paths.data_dir = str(tmp_path / "tfds")
    summary = train_and_evaluate(cfg, tmp_path / "run")
    assert summary["dataset"] == "pathfinder" and len(summary["accuracy_per_step"]) == 2
    preds = np.load(tmp_path / "run" / "predictions.npz")
    assert preds["logits"].shape == (2, 64, 2) and set(np.unique(preds["labels"])) == {0, 1}
    assert (tmp_path / "tfds" / "pathfinder" / "32px-len14-n256-64-s0" / "1.0.0" / "dataset_info.json").exists()
