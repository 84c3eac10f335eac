"""The dataset registry: a ``dataset`` config node in, a :class:`recbench.data.pipeline.Dataset` out.

Two kinds of dataset, one interface (each serves batches through its own :meth:`pipeline`):

* ``resident``: small datasets (every procedural set, CIFAR, MNIST, SVHN) are loaded whole into numpy once as an
  :class:`ArrayDataset` and then live on the device (:mod:`recbench.data.resident`); batching, shuffling and
  augmentation happen inside jit.
* ``stream``: large ones (Imagenette, ImageNet) stay on disk as ArrayRecord and are read, decoded and augmented
  by grain worker threads as a :class:`recbench.data.stream.StreamDataset`.

Stock tfds sets choose with the ``pipeline`` key of their YAML; procedural sets are always resident. Nothing here
knows about models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from recbench.config import ConfigError, check_int, choice, family_config
from recbench.data.pipeline import InputPipeline, channel_stats
from recbench.data.resident import AUGMENTATIONS, ResidentInputs

STAT_SAMPLES = 10_000  # training images that estimate the per-channel mean and std
DIGIT_NAMES = tuple("0123456789")


@dataclass
class ArrayDataset:
    """Whole splits as uint8 images ``[N, H, W, C]`` and labels (int ``[N]`` or multi-hot ``[N, K]``)."""

    name: str
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    multilabel: bool = False
    augment: str = "none"
    label_names: tuple[str, ...] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train[0].shape[1:])

    @property
    def num_train(self) -> int:
        return len(self.train[0])

    def pipeline(self, *, batch_size: int, seed: int) -> InputPipeline:
        return ResidentInputs(self.train, self.test, stats=channel_stats(self.train[0][:STAT_SAMPLES]),
                              augment=self.augment, batch_size=batch_size, seed=seed)

    def samples(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = self.train if split == "train" else self.test
        return images[:n], labels[:n]


@dataclass(frozen=True)
class ProceduralConfig:
    """What every generated stimulus set has: a size, split sizes, a seed, an augmentation recipe."""

    name: str
    image_size: int = 32
    num_train: int = 10_000
    num_test: int = 2_000
    seed: int = 0
    augment: str = "none"


@dataclass(frozen=True)
class DigitDebrisConfig(ProceduralConfig):
    level: str = "light"
    scale_std: float = 0.0  # std of the digit's scale; 0 = scale 1, the public digitclutter generator's default


@dataclass(frozen=True)
class DigitClutterConfig(ProceduralConfig):
    n_digits: int = 3
    scale_std: float = 0.0  # as for digit debris


def _check_sizes(c) -> None:
    check_int("dataset.num_train", c.num_train)
    check_int("dataset.num_test", c.num_test)
    check_int("dataset.image_size", c.image_size)
    check_int("dataset.seed", c.seed, 0)
    choice(c.augment, "dataset.augment", AUGMENTATIONS)


def _check_scale_std(c) -> None:
    from recbench.data.digits import check_scale_std

    try:
        check_scale_std(c.scale_std)
    except ValueError as e:
        raise ConfigError(f"dataset.{e}") from None


def _check_debris(c: DigitDebrisConfig) -> None:
    from recbench.data.digits import DEBRIS_LEVELS

    _check_sizes(c)
    choice(c.level, "dataset.level", tuple(DEBRIS_LEVELS))
    _check_scale_std(c)


def _check_clutter(c: DigitClutterConfig) -> None:
    _check_sizes(c)
    choice(c.n_digits, "dataset.n_digits", (3, 4, 5))
    _check_scale_std(c)


# --- Pathfinder (Linsley et al. 2018; LRA): are both markers on one dashed curve? Binary labels. ---------------

PATHFINDER_LABELS = ("different", "same")  # label 1: both markers sit on the ends of one path


@dataclass(frozen=True)
class PathfinderConfig(ProceduralConfig):
    contour_length: int = 14
    num_train: int = 20_000


def _check_pathfinder(c: PathfinderConfig) -> None:
    from recbench.data.pathfinder import CONTOUR_LENGTHS, GEOMETRY

    _check_sizes(c)
    choice(c.image_size, "dataset.image_size", sorted(GEOMETRY))
    choice(c.contour_length, "dataset.contour_length", CONTOUR_LENGTHS)


# --- What the three generated sets share: built by recbench.data.procedural, held resident --------------------


@dataclass(frozen=True)
class _Generated:
    params: tuple[str, ...]  # the config fields that are generation parameters, beyond the common four
    num_classes: int
    labels: tuple[str, ...]
    multilabel: bool = False


_GENERATED = {
    "digit_debris": _Generated(("level", "scale_std"), 10, DIGIT_NAMES),
    "digit_clutter": _Generated(("n_digits", "scale_std"), 10, DIGIT_NAMES, multilabel=True),
    "pathfinder": _Generated(("contour_length",), 2, PATHFINDER_LABELS),
}


def _generation_params(c: ProceduralConfig) -> dict:
    keys = ("image_size", "num_train", "num_test", "seed", *_GENERATED[c.name].params)
    return {k: getattr(c, k) for k in keys}


def _generated_meta(c: ProceduralConfig) -> tuple[tuple[int, int, int], int]:
    return (c.image_size, c.image_size, 1), _GENERATED[c.name].num_classes


def _load_generated(c: ProceduralConfig, data_dir: str, progress: bool) -> ArrayDataset:
    from recbench.data import procedural

    g = _GENERATED[c.name]
    try:
        splits = procedural.prepare(c.name, data_dir=data_dir, progress=progress, **_generation_params(c))
    except ValueError as e:
        raise ConfigError(f"dataset {c.name}: {e}") from None
    return ArrayDataset(c.name, splits["train"], splits["test"], num_classes=g.num_classes, multilabel=g.multilabel,
                        augment=c.augment, label_names=g.labels)


def _describe_generated(c: ProceduralConfig, data_dir: str) -> dict:
    from recbench.data import procedural

    b = procedural.builder(c.name, data_dir=data_dir, **_generation_params(c))
    return {"tfds_name": f"{c.name}/{b.builder_config.name}", "location": str(b.data_dir),
            "prepared": b.is_prepared(), "splits": {"train": c.num_train, "test": c.num_test},
            "label_names": list(_GENERATED[c.name].labels)}


# --- Stock tfds sets (recbench.data.stock) ---------------------------------------------------------------------

PIPELINES = ("resident", "stream")


@dataclass(frozen=True)
class StockConfig:
    name: str
    pipeline: str = "resident"  # resident (whole split on the device) | stream (grain from disk)
    augment: str = "none"  # none | flip_crop | imagenet (stream only)
    image_size: int | None = None  # None: native size; streamed images are cropped/resized to it
    variant: str | None = None  # tfds builder config (imagenette: 160px-v2, 320px-v2, full-size-v2, ...)
    train_split: str = "train"  # any tfds split expression, e.g. train[:90%]
    eval_split: str = "test"
    num_train: int | None = None  # None: all of train_split; N: its first N images (tfds slicing: train[:N])
    num_test: int | None = None  # the same for eval_split (debug=smoke shrinks every dataset with these two)
    workers: int = 0  # stream: grain worker processes (0: threads only)
    threads: int = 4  # stream: decoding/augmentation threads
    prefetch: int = 2  # stream: batches copied to the device ahead of the step


@dataclass(frozen=True)
class Cifar100Config(StockConfig):
    label_type: str = "fine"  # fine (100 classes) | coarse (20 superclasses)


def _label_key(c: StockConfig) -> str:
    return "coarse_label" if getattr(c, "label_type", "fine") == "coarse" else "label"


def coarse_classes(cfg: DictConfig | dict) -> tuple[int, ...] | None:
    """Fine class → coarse class for a dataset whose labels have a hierarchy (CIFAR-100's fine labels), else None."""
    from recbench.data.stock import COARSE_OF

    key = "coarse_label" if cfg.get("label_type", "fine") == "coarse" else "label"
    return COARSE_OF.get((cfg.get("name"), key))


def _check_stock(c: StockConfig) -> None:
    from recbench.data import stock
    from recbench.data.augment import RECIPES

    spec = stock.SPECS[c.name]
    choice(c.pipeline, "dataset.pipeline", PIPELINES)
    if c.image_size is not None:
        check_int("dataset.image_size", c.image_size)
    if spec.shape is None:
        if c.pipeline == "resident":
            raise ConfigError(f"dataset.pipeline=resident needs images of one size; {c.name} must stream "
                              "(dataset.pipeline=stream)")
        if c.image_size is None:
            raise ConfigError(f"dataset.image_size must be set for {c.name} (its images differ in size)")
    elif c.pipeline == "resident" and c.image_size not in (None, spec.shape[0]):
        raise ConfigError(f"dataset.image_size={c.image_size}: resident {c.name} keeps its native "
                          f"{spec.shape[0]} px; use dataset.pipeline=stream to resize")
    choice(c.augment, "dataset.augment", AUGMENTATIONS if c.pipeline == "resident" else RECIPES)
    if hasattr(c, "label_type"):
        choice(c.label_type, "dataset.label_type", ("fine", "coarse"))
    if c.variant is not None and spec.variant is None:
        raise ConfigError(f"dataset.variant={c.variant!r}: {c.name} has no variants; leave it null")
    if c.variant is not None:
        choice(c.variant, "dataset.variant", stock.variants(c.name))
    for key, low in (("workers", 0), ("threads", 1), ("prefetch", 0)):
        check_int(f"dataset.{key}", getattr(c, key), low)
    sizes = stock.published_sizes(c.name, c.variant)
    for split, count in (("train_split", "num_train"), ("eval_split", "num_test")):
        stock.split_parts(getattr(c, split), sizes, f"dataset.{split}")
        if getattr(c, count) is not None:
            check_int(f"dataset.{count}", getattr(c, count))


def _stock_meta(c: StockConfig) -> tuple[tuple[int, int, int], int]:
    from recbench.data.stock import SPECS

    spec = SPECS[c.name]
    channels = spec.shape[2] if spec.shape else 3
    size = c.image_size or spec.shape[0]
    return (size, size, channels), spec.classes[_label_key(c)]


def _load_stock(c: StockConfig, data_dir: str, progress: bool):
    from recbench.data import stock

    label_key = _label_key(c)
    b = stock.ensure_prepared(c.name, data_dir, variant=c.variant, progress=progress)
    names = stock.label_names(b, label_key)
    shape, num_classes = _stock_meta(c)
    train_split = stock.first_examples(c.train_split, c.num_train, b.info.splits, "dataset.train_split")
    eval_split = stock.first_examples(c.eval_split, c.num_test, b.info.splits, "dataset.eval_split")
    if c.pipeline == "resident":
        train = stock.read_arrays(b, train_split, label_key, "dataset.train_split")
        test = stock.read_arrays(b, eval_split, label_key, "dataset.eval_split")
        return ArrayDataset(c.name, train, test, num_classes=num_classes, augment=c.augment, label_names=names)
    from recbench.data.stream import StreamDataset

    return StreamDataset(c.name, stock.open_source(b, train_split, "dataset.train_split"),
                         stock.open_source(b, eval_split, "dataset.eval_split"), num_classes, shape,
                         augment=c.augment, label_key=label_key, label_names=names, workers=c.workers,
                         threads=c.threads, prefetch=c.prefetch)


def _describe_stock(c: StockConfig, data_dir: str) -> dict:
    from recbench.data import stock

    b = stock.builder(c.name, data_dir, c.variant)
    prepared = stock.is_prepared(b)
    out = {"tfds_name": stock.tfds_name(c.name, c.variant), "location": str(b.data_dir), "prepared": prepared}
    if prepared:
        out["file_format"] = b.info.file_format.value
        out["splits"] = {name: split.num_examples for name, split in b.info.splits.items()}
    else:
        out["splits"] = dict(stock.SPECS[c.name].splits)  # published sizes
        out["to_build"] = stock.build_problem(b, c.name, data_dir, c.variant) or "ready: recbench-data build " + c.name
        b = stock.builder(c.name, stock.METADATA_DIR, c.variant)  # label names from the committed metadata
    names = stock.label_names(b, _label_key(c)) if b.info.features else None
    out["label_names"] = list(names) if names else None
    return out


@dataclass(frozen=True)
class DatasetEntry:
    schema: type
    check: Callable  # raises ConfigError; cheap, loads nothing
    meta: Callable  # -> (image shape HWC, number of classes), without loading
    load: Callable  # -> ArrayDataset (resident) or StreamDataset (stream)
    describe: Callable | None = None  # (config, data_dir) -> dict for ``recbench-data info``; builds nothing


DATASETS: dict[str, DatasetEntry] = {
    **{name: DatasetEntry(schema, check, _generated_meta, _load_generated, _describe_generated)
       for name, schema, check in (("digit_debris", DigitDebrisConfig, _check_debris),
                                   ("digit_clutter", DigitClutterConfig, _check_clutter),
                                   ("pathfinder", PathfinderConfig, _check_pathfinder))},
    **{name: DatasetEntry(Cifar100Config if name == "cifar100" else StockConfig, _check_stock, _stock_meta,
                          _load_stock, _describe_stock)
       for name in ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn_cropped", "imagenette", "imagenet2012")},
}


def _entry(cfg: DictConfig | dict):
    name = cfg.get("name")
    if name not in DATASETS:
        raise ConfigError(f"dataset.name={name!r} is not a registered dataset; choose one of: "
                          f"{', '.join(DATASETS)}")
    entry = DATASETS[name]
    c = family_config(entry.schema, cfg, f"dataset {name}")
    entry.check(c)
    return entry, c


def dataset_meta(cfg: DictConfig | dict) -> tuple[tuple[int, int, int], int]:
    """Image shape (HWC) and class count of a dataset config, without preparing or loading it."""
    entry, c = _entry(cfg)
    return entry.meta(c)


def load_dataset(cfg: DictConfig | dict, *, data_dir: str, progress: bool = True):
    """Prepare (first use) and load the dataset a config node names; :class:`ConfigError` on bad input.

    Returns an :class:`ArrayDataset` for resident datasets, a ``StreamDataset`` for streamed ones. A stock set
    that is missing and cannot be built here fails now, in one line, before any model is built.
    """
    entry, c = _entry(cfg)
    return entry.load(c, data_dir, progress)


def describe_dataset(cfg: DictConfig | dict, *, data_dir: str) -> dict:
    """Where a dataset lives, whether it is prepared, its splits and classes; prepares nothing."""
    entry, c = _entry(cfg)
    shape, num_classes = entry.meta(c)
    out = {"name": c.name, "pipeline": getattr(c, "pipeline", "resident"), "image_shape": list(shape),
           "num_classes": num_classes, "augment": c.augment}
    if entry.describe is not None:
        out.update(entry.describe(c, data_dir))
    return out
