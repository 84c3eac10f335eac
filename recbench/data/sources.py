"""The dataset registry: a ``dataset`` config node in, device-ready arrays out.

Small datasets (everything that fits in device memory, which is every procedural set) are loaded whole into
numpy once and then live on the device; batching, shuffling and augmentation happen inside jit
(``recbench.train.batches``). Nothing here knows about models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from recbench.config import ConfigError, choice, family_config, positive_int

AUGMENTATIONS = ("none", "flip_crop")


@dataclass
class ArrayDataset:
    """Whole splits as uint8 images ``[N, H, W, C]`` and labels (int ``[N]`` or multi-hot ``[N, K]``)."""

    name: str
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    multilabel: bool = False
    augment: str = "none"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train[0].shape[1:])

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the training images in [0, 1], for input normalisation."""
        x = self.train[0][: 10_000].astype(np.float32) / 255.0
        return x.mean(axis=(0, 1, 2)), np.maximum(x.std(axis=(0, 1, 2)), 1e-3)


@dataclass(frozen=True)
class DigitDebrisConfig:
    name: str
    level: str = "light"
    image_size: int = 32
    num_train: int = 10_000
    num_test: int = 2_000
    seed: int = 0
    augment: str = "none"


@dataclass(frozen=True)
class DigitClutterConfig:
    name: str
    n_digits: int = 3
    image_size: int = 32
    num_train: int = 10_000
    num_test: int = 2_000
    seed: int = 0
    augment: str = "none"


def _check_sizes(c) -> None:
    positive_int(c.num_train, "dataset.num_train")
    positive_int(c.num_test, "dataset.num_test")
    positive_int(c.image_size, "dataset.image_size")
    choice(c.augment, "dataset.augment", AUGMENTATIONS)


def _procedural(name: str, data_dir: str, progress: bool, **params) -> dict:
    from recbench.data import procedural

    try:
        return procedural.prepare(name, data_dir=data_dir, progress=progress, **params)
    except ValueError as e:
        raise ConfigError(f"dataset {name}: {e}") from None


def _check_debris(c: DigitDebrisConfig) -> None:
    from recbench.data.digits import DEBRIS_LEVELS

    _check_sizes(c)
    choice(c.level, "dataset.level", tuple(DEBRIS_LEVELS))


def _load_debris(c: DigitDebrisConfig, data_dir: str, progress: bool) -> ArrayDataset:
    splits = _procedural("digit_debris", data_dir, progress, level=c.level, image_size=c.image_size,
                         num_train=c.num_train, num_test=c.num_test, seed=c.seed)
    return ArrayDataset(c.name, splits["train"], splits["test"], num_classes=10, augment=c.augment)


def _check_clutter(c: DigitClutterConfig) -> None:
    _check_sizes(c)
    choice(c.n_digits, "dataset.n_digits", (3, 4, 5))


def _load_clutter(c: DigitClutterConfig, data_dir: str, progress: bool) -> ArrayDataset:
    splits = _procedural("digit_clutter", data_dir, progress, n_digits=c.n_digits, image_size=c.image_size,
                         num_train=c.num_train, num_test=c.num_test, seed=c.seed)
    return ArrayDataset(c.name, splits["train"], splits["test"], num_classes=10, multilabel=True,
                        augment=c.augment)


def _digits_meta(c) -> tuple[tuple[int, int, int], int]:
    return (c.image_size, c.image_size, 1), 10


@dataclass(frozen=True)
class DatasetEntry:
    schema: type
    check: Callable  # raises ConfigError; cheap, loads nothing
    meta: Callable  # -> (image shape HWC, number of classes), without loading
    load: Callable  # -> ArrayDataset


DATASETS: dict[str, DatasetEntry] = {
    "digit_debris": DatasetEntry(DigitDebrisConfig, _check_debris, _digits_meta, _load_debris),
    "digit_clutter": DatasetEntry(DigitClutterConfig, _check_clutter, _digits_meta, _load_clutter),
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


def load_dataset(cfg: DictConfig | dict, *, data_dir: str, progress: bool = True) -> ArrayDataset:
    """Prepare (first use) and load the dataset a config node names; :class:`ConfigError` on bad input."""
    entry, c = _entry(cfg)
    return entry.load(c, data_dir, progress)
