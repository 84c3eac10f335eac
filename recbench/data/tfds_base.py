"""The one tfds builder base for datasets recbench generates itself, and the quiet context tfds runs in.

Why tfds at all: it gives a versioned, self-describing on-disk cache (one folder per parameter set and generator
version) that the rest of the harness reads like any other dataset. Why these settings: without TensorFlow, tfds
can only write ``array_record`` files with ``Tensor`` (raw bytes) features and read them back through
``as_data_source`` (random access, numpy); ``tfds.load``/``as_dataset`` would need TF.

Why quiet: a generated set takes seconds, so tfds' progress bars ("Generating splits", "Shuffling") are only
carriage-return debris in logs, and its "Downloading and preparing ... Unknown size" banner is wrong (nothing is
downloaded). :meth:`GeneratedBuilder.build` prints one line of its own instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, ClassVar, Self

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import dataset_metadata
from tensorflow_datasets.core.utils import tqdm_utils

from recbench.faults import kill_point

__all__ = ["GeneratedBuilder", "quiet_tfds"]


@contextlib.contextmanager
def quiet_tfds(progress: bool = False) -> Iterator[None]:
    """Mute tfds/absl INFO and WARNING chatter, and its progress bars unless ``progress`` (and the caller has them on).

    Downloads of stock sets take minutes, so their callers may keep the bars; generated sets never show them.
    """
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


class GeneratedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A generated set of uint8 images and one label per image, stored as array_record in generation order.

    Subclasses say what an image looks like (``_image_shape``), what a label is (``_label_feature``) and how a
    split is rendered (``_batches``, in chunks so no split need fit in memory at once).
    """

    SPLITS: ClassVar[tuple[str, ...]] = ("train", "test")
    LABEL_KEY: ClassVar[str] = "label"
    CITATION: ClassVar[str] = ""
    HOMEPAGE: ClassVar[str | None] = None

    def __init__(self, *, file_format: str = "array_record", **kwargs: Any) -> None:
        super().__init__(file_format=file_format, **kwargs)

    @classmethod
    def for_config(cls, config: tfds.core.BuilderConfig, *, data_dir: str | os.PathLike[str]) -> Self:
        """The builder of ``config`` under ``data_dir``, not prepared, constructed without tfds' log lines.

        tfds refuses a custom config object named like a predefined one; config names encode every parameter,
        so a predefined name is passed as a name.
        """
        arg = config.name if config.name in cls.builder_configs else config
        with quiet_tfds():  # "Using custom data configuration ..." for every non-predefined parameter set
            return cls(data_dir=os.path.expanduser(os.fspath(data_dir)), config=arg)

    @classmethod
    def get_metadata(cls) -> dataset_metadata.DatasetMetadata:
        # tfds would otherwise read README/CITATIONS from the folder of the subclass's module.
        return dataset_metadata.DatasetMetadata(description=cls.__doc__, citation=cls.CITATION, tags=[])

    def _log_download_bytes(self) -> None:
        """Silenced: tfds would print "Downloading and preparing ... Unknown size"; nothing is downloaded."""

    def _log_download_done(self) -> None:
        """Silenced: :meth:`build` announces a build itself."""

    def is_prepared(self) -> bool:
        """Quiet: absl warns "Variant folder ... has no dataset_info.json" for every set not built yet."""
        with quiet_tfds():
            return super().is_prepared()

    def build(self, *, progress: bool = True) -> bool:
        """Generate the set unless it is on disk; ``progress`` prints one line when it does. True if it built."""
        with quiet_tfds():
            if self.is_prepared():  # download_and_prepare is also a no-op then; this skips its set-up
                return False
            if progress:
                label = f"{self.name}/{self.builder_config.name}" if self.builder_config else self.name
                print(f"recbench: generating {label} into {self.data_dir}", file=sys.stderr, flush=True)
            self.download_and_prepare()
        return True

    def as_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A prepared split as numpy: images uint8 ``[N, *shape]`` and labels stacked as the feature decodes them."""
        source = self.as_data_source(split=split)
        records = source.__getitems__(range(len(source)))
        return np.stack([r["image"] for r in records]), np.stack([r[self.LABEL_KEY] for r in records])

    def _image_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _label_feature(self) -> tfds.features.FeatureConnector:
        raise NotImplementedError

    def _batches(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(images, labels) chunks of ``split``, in order; their concatenation is the split."""
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=self._image_shape(), dtype=np.uint8),  # raw bytes: no TF
                self.LABEL_KEY: self._label_feature(),
            }),
            supervised_keys=("image", self.LABEL_KEY),
            homepage=self.HOMEPAGE,
            disable_shuffling=True,  # keep generation order: example i of a split is the renderer's image i
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in self.SPLITS}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        index = 0
        for chunk, (images, labels) in enumerate(self._batches(split)):
            kill_point("data", chunk)  # tests: a kill in the middle of a build (it is written to a temporary folder)
            for image, label in zip(images, labels, strict=True):
                yield index, {"image": image, self.LABEL_KEY: label}
                index += 1
