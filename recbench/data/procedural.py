"""TensorFlow-free tfds builders for the procedural digit stimuli in :mod:`recbench.data.digits`.

Why tfds at all: it gives a versioned, self-describing on-disk cache (one folder per parameter set and
generator version) that the rest of the harness reads like any other dataset. Why these settings: without
TensorFlow, tfds can only write ``array_record`` files with ``Tensor`` (raw bytes) features and read them
back through ``as_data_source`` (random access, numpy); ``tfds.load``/``as_dataset`` would need TF.

Usage::

    splits = prepare("digit_debris", data_dir="~/tensorflow_datasets", level="heavy", num_train=10_000)
    x_train, y_train = splits["train"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import dataset_metadata
from tensorflow_datasets.core.utils import tqdm_utils

from recbench.data import digits

__all__ = [
    "DATASETS",
    "DigitClutter",
    "DigitClutterConfig",
    "DigitDebris",
    "DigitDebrisConfig",
    "make_config",
    "prepare",
    "split_seed",
]

_CHUNK = 1024  # images rendered per render_* call while generating a split
_SPLITS = ("train", "test")
_CITATION = """@article{spoerer2017recurrent,
  title={Recurrent Convolutional Neural Networks: A Better Model of Biological Object Recognition},
  author={Spoerer, Courtney J. and McClure, Patrick and Kriegeskorte, Nikolaus},
  journal={Frontiers in Psychology}, volume={8}, pages={1551}, year={2017}, doi={10.3389/fpsyg.2017.01551}}"""


def split_seed(seed: int, split: str) -> int:
    """Seed of a split's image stream, derived from the dataset seed so train and test never share images."""
    return int(np.random.SeedSequence([int(seed), _SPLITS.index(split)]).generate_state(1, np.uint64)[0])


from recbench.config import check_int as _check_int


@dataclasses.dataclass(eq=False)
class _ProceduralConfig(tfds.core.BuilderConfig):
    """Common generation parameters; ``name`` is derived from them (cache folder = parameter set)."""

    name: str = ""
    image_size: int = 32
    num_train: int = 10_000
    num_test: int = 2_000
    seed: int = 0

    def _tag(self) -> str:
        raise NotImplementedError

    def __post_init__(self) -> None:
        _check_int("image_size", self.image_size, 16, 256)
        _check_int("num_train", self.num_train, 1)
        _check_int("num_test", self.num_test, 1)
        _check_int("seed", self.seed, 0)
        derived = f"{self._tag()}-{self.image_size}px-n{self.num_train}-{self.num_test}-s{self.seed}"
        if self.name and self.name != derived:
            raise ValueError(
                f"config name {self.name!r} must encode its parameters, i.e. be {derived!r} or ''"
            )
        self.name = derived
        if self.description is None:
            self.description = self._describe()

    def _describe(self) -> str:
        return self.name

    def num_examples(self, split: str) -> int:
        return self.num_train if split == "train" else self.num_test


@dataclasses.dataclass(eq=False)
class DigitDebrisConfig(_ProceduralConfig):
    """Digit debris: one target digit with ``n_debris`` (half-open range) fragments over it."""

    n_debris: tuple[int, int] = digits.DEBRIS_LEVELS["light"]

    def __post_init__(self) -> None:
        self.n_debris = digits._check_range("n_debris", self.n_debris)
        super().__post_init__()

    def _tag(self) -> str:
        for level, rng in digits.DEBRIS_LEVELS.items():
            if tuple(rng) == tuple(self.n_debris):
                return level
        return f"debris{self.n_debris[0]}to{self.n_debris[1]}"

    def _describe(self) -> str:
        return f"Digit debris, {self.n_debris[0]}..{self.n_debris[1] - 1} fragments, {self.image_size}px"


@dataclasses.dataclass(eq=False)
class DigitClutterConfig(_ProceduralConfig):
    """Digit clutter: ``n_digits`` distinct overlapping digits (later ones occlude earlier ones)."""

    n_digits: int = 3

    def __post_init__(self) -> None:
        _check_int("n_digits", self.n_digits, 1, 10)
        super().__post_init__()

    def _tag(self) -> str:
        return f"{self.n_digits}digits"

    def _describe(self) -> str:
        return f"Digit clutter, {self.n_digits} digits, {self.image_size}px"


class _ProceduralBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared builder logic: array_record, raw uint8 tensors, chunked rendering, fixed example order."""

    VERSION = tfds.core.Version(digits.GENERATOR_VERSION)
    RELEASE_NOTES: ClassVar[dict[str, str]] = {digits.GENERATOR_VERSION: "numpy/PIL port of digitclutter."}
    builder_config: _ProceduralConfig
    _label_key: ClassVar[str] = "label"

    def __init__(self, *, file_format: str = "array_record", **kwargs: Any) -> None:
        super().__init__(file_format=file_format, **kwargs)

    @classmethod
    def get_metadata(cls) -> dataset_metadata.DatasetMetadata:
        # tfds would otherwise read README/CITATIONS from the module's package folder (recbench/data).
        return dataset_metadata.DatasetMetadata(description=cls.__doc__, citation=_CITATION, tags=[])

    def _log_download_bytes(self) -> None:
        """Silenced: tfds would print "Downloading and preparing ... Unknown size"; nothing is downloaded."""

    def _log_download_done(self) -> None:
        """Silenced: ``prepare`` announces a build itself."""

    def _label_feature(self) -> tfds.features.FeatureConnector:
        raise NotImplementedError

    def _render(self, n: int, seed: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        label_key = self._label_key
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8),
                    label_key: self._label_feature(),
                }
            ),
            supervised_keys=("image", label_key),
            homepage="https://github.com/cjspoerer/digitclutter",
            disable_shuffling=True,  # keep generation order: example i of a split is render_*(...)[i]
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in _SPLITS}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        cfg = self.builder_config
        total, seed = cfg.num_examples(split), split_seed(cfg.seed, split)
        for start in range(0, total, _CHUNK):
            images, labels = self._render(min(_CHUNK, total - start), seed, start)
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                yield start + i, {"image": image, self._label_key: label}


class DigitDebris(_ProceduralBuilder):
    """Digit debris (Spoerer et al. 2017): classify the one target digit hidden under digit fragments."""

    BUILDER_CONFIGS: ClassVar[list[DigitDebrisConfig]] = [
        DigitDebrisConfig(n_debris=rng) for rng in digits.DEBRIS_LEVELS.values()
    ]
    _label_key: ClassVar[str] = "label"

    def _label_feature(self) -> tfds.features.FeatureConnector:
        return tfds.features.ClassLabel(num_classes=digits.N_CLASSES)

    def _render(self, n: int, seed: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.builder_config
        return digits.render_debris(
            n, seed=seed, image_size=cfg.image_size, n_debris=cfg.n_debris, start=start
        )


class DigitClutter(_ProceduralBuilder):
    """Digit clutter (Spoerer et al. 2017): report every digit present among several overlapping digits."""

    BUILDER_CONFIGS: ClassVar[list[DigitClutterConfig]] = [DigitClutterConfig(n_digits=k) for k in (3, 4, 5)]
    _label_key: ClassVar[str] = "labels"

    def _label_feature(self) -> tfds.features.FeatureConnector:
        return tfds.features.Tensor(shape=(digits.N_CLASSES,), dtype=np.uint8)

    def _render(self, n: int, seed: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.builder_config
        return digits.render_clutter(
            n, seed=seed, image_size=cfg.image_size, n_digits=cfg.n_digits, start=start
        )


DATASETS: dict[str, tuple[type[_ProceduralBuilder], type[_ProceduralConfig]]] = {
    "digit_debris": (DigitDebris, DigitDebrisConfig),
    "digit_clutter": (DigitClutter, DigitClutterConfig),
}


def make_config(name: str, **params: Any) -> _ProceduralConfig:
    """Validated config for dataset ``name``; ``digit_debris`` also takes ``level`` (a DEBRIS_LEVELS key)."""
    if name not in DATASETS:
        raise ValueError(f"unknown procedural dataset {name!r}; choose one of {sorted(DATASETS)}")
    config_cls = DATASETS[name][1]
    params = dict(params)
    if name == "digit_debris" and "level" in params:
        level = params.pop("level")
        if not isinstance(level, str) or level not in digits.DEBRIS_LEVELS:
            raise ValueError(f"unknown debris level {level!r}; choose one of {sorted(digits.DEBRIS_LEVELS)}")
        if "n_debris" in params and (
            digits._check_range("n_debris", params["n_debris"]) != digits.DEBRIS_LEVELS[level]
        ):
            raise ValueError(f"level={level!r} conflicts with n_debris={params['n_debris']!r}")
        params["n_debris"] = digits.DEBRIS_LEVELS[level]
    allowed = sorted(
        {f.name for f in dataclasses.fields(config_cls)}
        - {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
        | ({"level"} if name == "digit_debris" else set())
    )
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {name}; valid: {allowed}")
    return config_cls(**params)


@contextlib.contextmanager
def _quiet_tfds(progress: bool) -> Iterator[None]:
    """Mute tfds/absl INFO chatter (and optionally its progress bars) for the duration of a build."""
    from absl import logging as absl_logging

    old_verbosity = absl_logging.get_verbosity()
    loggers = [logging.getLogger(n) for n in ("absl", "tensorflow_datasets", "etils")]
    old_levels = [lg.level for lg in loggers]
    absl_logging.set_verbosity(absl_logging.ERROR)
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    old_bars = tqdm_utils._active  # tfds has no getter; restore exactly what the caller had
    tfds.display_progress_bar(bool(progress and old_bars))
    try:
        yield
    finally:
        tfds.display_progress_bar(old_bars)
        absl_logging.set_verbosity(old_verbosity)
        for lg, level in zip(loggers, old_levels, strict=True):
            lg.setLevel(level)


def _read_split(builder: _ProceduralBuilder, split: str) -> tuple[np.ndarray, np.ndarray]:
    source = builder.as_data_source(split=split)
    records = source.__getitems__(range(len(source)))
    key = builder._label_key
    images = np.stack([r["image"] for r in records])
    labels = np.stack([r[key] for r in records])
    return images, labels.astype(np.int64 if key == "label" else np.uint8)


def prepare(
    name: str, *, data_dir: str | os.PathLike[str], progress: bool = True, **params: Any
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Build ``name`` into ``data_dir`` unless already there, then return every split as numpy arrays.

    Args:
      name: ``"digit_debris"`` or ``"digit_clutter"``.
      data_dir: tfds data directory; each parameter set gets its own ``<name>/<config>/<version>`` folder.
      progress: show tfds' progress bars during a first build.
      **params: config fields (``image_size``, ``num_train``, ``num_test``, ``seed`` and ``level`` or
        ``n_debris`` for debris, ``n_digits`` for clutter).

    Returns:
      ``{"train": (images, labels), "test": (images, labels)}``; images uint8 ``[N, H, W, 1]``, labels int64
      ``[N]`` (debris) or uint8 multi-hot ``[N, 10]`` (clutter).
    """
    config = make_config(name, **params)
    builder_cls = DATASETS[name][0]
    with _quiet_tfds(progress):
        # tfds refuses a custom config object named like a predefined one; names encode all params, so pass
        # the name then.
        arg = config.name if config.name in builder_cls.builder_configs else config
        builder = builder_cls(data_dir=os.path.expanduser(os.fspath(data_dir)), config=arg)
        if not builder.is_prepared():  # download_and_prepare is also a no-op then; this skips its set-up
            if progress:
                print(f"recbench: generating {name}/{config.name} into {builder.data_dir}", file=sys.stderr)
            builder.download_and_prepare()
        return {split: _read_split(builder, split) for split in _SPLITS}
