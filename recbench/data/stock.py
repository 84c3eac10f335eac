"""Stock tfds image sets (CIFAR, MNIST, SVHN, Imagenette, ImageNet): prepare once, then read without TensorFlow.

Why this shape: *reading* a tfds dataset stored as ArrayRecord needs no TensorFlow (``as_data_source``), but
*building* a stock one does (its builder reads with ``tf.io.gfile`` and encodes images with ``tf.image``), and a
build that cannot download retries for minutes before it fails. So a missing dataset is diagnosed up front, in
one line that names the file to fetch and the folder to put it in, before anything is built or compiled. Builds
never touch Google's bucket (``try_gcs=False``, ``try_download_gcs=False``) and always write ArrayRecord, so the
result is readable without TF and streamable with grain. A tfrecord copy made elsewhere is read too, with TF.

``recbench/data/metadata/`` holds each dataset's ``dataset_info.json`` and label files, written offline from the
builder code plus the published split sizes (``python -m recbench.data.stock`` regenerates them); tests point
``tfds.testing.mock_data(data_dir=METADATA_DIR, policy=USE_FILES)`` at it, as flax's ImageNet example does.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recbench.config import ConfigError
from recbench.env import reachable

METADATA_DIR = Path(__file__).parent / "metadata"
TF_HINT = "pip install 'recbench[tf]'"
IMAGENET_URL = "https://image-net.org/download-images"


@dataclass(frozen=True)
class StockSpec:
    """What recbench needs to know about a tfds dataset without opening it."""

    shape: tuple[int, int, int] | None  # native HWC; None: images differ in size (streamed, resized)
    classes: dict[str, int]  # label feature -> number of classes
    splits: dict[str, int]  # published split sizes (metadata and ``info`` before a build)
    variant: str | None = None  # tfds builder config
    manual: tuple[str, ...] = ()  # files tfds cannot download; they must be in the manual folder


SPECS: dict[str, StockSpec] = {
    "cifar10": StockSpec((32, 32, 3), {"label": 10}, {"train": 50_000, "test": 10_000}),
    "cifar100": StockSpec((32, 32, 3), {"label": 100, "coarse_label": 20}, {"train": 50_000, "test": 10_000}),
    "mnist": StockSpec((28, 28, 1), {"label": 10}, {"train": 60_000, "test": 10_000}),
    "fashion_mnist": StockSpec((28, 28, 1), {"label": 10}, {"train": 60_000, "test": 10_000}),
    "svhn_cropped": StockSpec((32, 32, 3), {"label": 10}, {"train": 73_257, "test": 26_032, "extra": 531_131}),
    "imagenette": StockSpec(None, {"label": 10}, {"train": 9_469, "validation": 3_925}, variant="160px-v2"),
    "imagenet2012": StockSpec(None, {"label": 1000}, {"train": 1_281_167, "validation": 50_000},
                              manual=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")),
}

# Class hierarchies: fine class -> coarse class, for coarse-to-fine training (recbench.train.objectives). CIFAR-100's
# 20 superclasses in the order of the coarse_label names below (the dataset's published assignment of its 100 classes).
COARSE_OF: dict[tuple[str, str], tuple[int, ...]] = {
    ("cifar100", "label"): (
        4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
        0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
        10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
        18, 1, 2, 15, 6, 0, 17, 8, 14, 13),
}

# Label names the archives carry (tfds reads them during a build); written into the committed metadata.
_NAMES = {
    ("cifar10", "label"): "airplane automobile bird cat deer dog frog horse ship truck",
    ("cifar100", "label"): (
        "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
        "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
        "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
        "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
        "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
        "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
        "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"),
    ("cifar100", "coarse_label"): (
        "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
        "household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes "
        "large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals trees "
        "vehicles_1 vehicles_2"),
}


def tensorflow_installed() -> bool:
    """Whether stock builders can run here (they need TensorFlow; reading ArrayRecord does not)."""
    return importlib.util.find_spec("tensorflow") is not None


def tfds_name(name: str, variant: str | None = None) -> str:
    variant = variant if variant is not None else SPECS[name].variant
    return f"{name}/{variant}" if variant else name


def variants(name: str) -> tuple[str, ...]:
    """The tfds builder configs of ``name`` (imagenette: ``160px-v2``, ...); empty for a set without variants."""
    import tensorflow_datasets as tfds

    return tuple(c.name for c in tfds.builder_cls(name).BUILDER_CONFIGS or ())


@dataclass(frozen=True)
class SplitSize:
    """The two fields of a tfds ``SplitInfo`` that its split arithmetic reads, for a set that is not prepared."""

    num_examples: int
    shard_lengths: tuple[int, ...]


def published_sizes(name: str, variant: str | None = None) -> dict[str, SplitSize]:
    """Split sizes of ``name`` as published (:data:`SPECS`), to check split expressions before anything is read.
    Another variant's sizes are known only once it is prepared: then only split names and syntax are checked."""
    spec = SPECS[name]
    known = variant in (None, spec.variant)
    return {s: SplitSize(n if known else sys.maxsize, (n if known else sys.maxsize,)) for s, n in spec.splits.items()}


def split_parts(split: Any, sizes: dict[str, Any], key: str) -> list[tuple[str, int, int]]:
    """A tfds split expression (``train``, ``train[:90%]``, ``train[45000:]``, ``train+extra``, ``all``) as
    ``(split, start, stop)`` parts, in examples; one-line :class:`ConfigError` naming ``key`` for bad syntax, an
    unknown split, a slice past the end or one that selects nothing. ``sizes``: split name -> ``SplitInfo``."""
    import tensorflow_datasets as tfds

    if not isinstance(split, str) or not split.strip():
        raise ConfigError(f"{key}={split!r} is not a tfds split; give one of {', '.join(sizes)}, a slice "
                          "('train[:90%]', 'train[45000:]') or a sum (train+test)")
    try:
        parts = tfds.core.ReadInstruction.from_spec(split).to_absolute(sizes)
    except (ValueError, TypeError, AssertionError) as e:
        raise ConfigError(f"{key}={split!r}: {' '.join(str(e).splitlines()[0].split())}") from None
    out = [(p.splitname, p.from_ or 0, sizes[p.splitname].num_examples if p.to is None else p.to) for p in parts]
    if any(stop <= start for _, start, stop in out):
        raise ConfigError(f"{key}={split!r} selects no examples")
    return out


def first_examples(split: str, n: int | None, sizes: dict[str, Any], key: str) -> str:
    """The split expression of the first ``n`` examples of ``split`` (all of it when it has fewer; ``None``: all),
    by tfds slicing: ``train`` -> ``train[:512]``, ``train[45000:]`` -> ``train[45000:45512]``. How
    ``dataset.num_train`` / ``num_test`` shrink a stock set (``debug=smoke``)."""
    if n is None:
        return split
    out = []
    for name, start, stop in split_parts(split, sizes, key):
        take = min(stop - start, n)
        out.append(f"{name}[{start or ''}:{start + take}]")
        n -= take
        if n == 0:
            break
    return "+".join(out)


def builder(name: str, data_dir: str | os.PathLike[str], variant: str | None = None) -> Any:
    """The code builder, never a copy found on GCS (``try_gcs=False``)."""
    import tensorflow_datasets as tfds

    from recbench.data.tfds_base import quiet_tfds

    try:
        with quiet_tfds(True):  # absl warns about unbuilt variant folders here too
            return tfds.builder(tfds_name(name, variant), data_dir=os.path.expanduser(os.fspath(data_dir)),
                                try_gcs=False)
    except Exception as e:  # unknown builder config, unreadable dataset_info.json, ...
        raise ConfigError(f"dataset {tfds_name(name, variant)}: {_first_line(e)}") from None


def is_prepared(b: Any) -> bool:
    from recbench.data.tfds_base import quiet_tfds

    with quiet_tfds(True):  # absl warns "Variant folder ... has no dataset_info.json" for every unbuilt set
        return b.is_prepared()


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split("\n")[0].split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass(frozen=True)
class Needed:
    """A file a build needs: its name in the manual folder and where a person can get it."""

    filename: str
    source: str
    cache_name: str | None = None  # name of tfds' own cached download under <data_dir>/downloads


def needed_files(name: str, variant: str | None = None) -> list[Needed]:
    """The archives a build of ``name`` reads, taken from the builder's registered checksums."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import resource

    spec = SPECS[name]
    if spec.manual:
        return [Needed(f, IMAGENET_URL) for f in spec.manual]
    cls = tfds.builder_cls(name)
    wanted = None
    if name == "imagenette":  # one archive per variant: "160px-v2" -> imagenette2-160.tgz
        v = variant or spec.variant
        size = v.removesuffix("-v2")
        wanted = f"imagenette{'2' if v.endswith('-v2') else ''}{'' if size == 'full-size' else '-' + size[:-2]}.tgz"
    return [Needed(info.filename, url, resource.get_dl_fname(url, info.checksum))
            for url, info in sorted(cls.url_infos.items())
            if wanted is None or info.filename == wanted]


def build_problem(b: Any, name: str, data_dir: str, variant: str | None = None) -> str | None:
    """Why ``b`` cannot be built here, as one line naming what to fetch and where to put it; None if it can."""
    root = Path(os.path.expanduser(data_dir))
    manual = root / "downloads" / "manual"
    missing = [f for f in needed_files(name, variant)
               if not (manual / f.filename).exists()
               and not (f.cache_name and (root / "downloads" / f.cache_name).exists())]
    spec = SPECS[name]
    parts = []
    if missing and (spec.manual or not reachable(missing[0].source)):
        names = [f.filename for f in missing]
        files = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        folders = sorted({f.source for f in missing})
        folders = folders if len(folders) == 1 else sorted({u.rsplit("/", 1)[0] + "/" for u in folders})
        parts.append(f"put {files} (from {', '.join(folders)}) in {manual}/")
    if not tensorflow_installed():
        parts.append(f"building it needs TensorFlow: {TF_HINT}")
    if not parts:
        return None
    return (f"dataset {tfds_name(name, variant)} is not prepared in {b.data_dir} and cannot be built here: "
            + "; ".join(parts) + f" (then rerun, or run: recbench-data build {name})")


def ensure_prepared(name: str, data_dir: str, *, variant: str | None = None, progress: bool = True) -> Any:
    """The builder of a prepared dataset: found on disk, or built now into ``data_dir`` as ArrayRecord."""
    import tensorflow_datasets as tfds

    from recbench.data.tfds_base import quiet_tfds

    b = builder(name, data_dir, variant)
    if is_prepared(b):
        return b
    problem = build_problem(b, name, data_dir, variant)
    if problem:
        raise ConfigError(problem)
    manual = Path(os.path.expanduser(data_dir)) / "downloads" / "manual"
    config = tfds.download.DownloadConfig(try_download_gcs=False, manual_dir=os.fspath(manual))
    if progress:
        print(f"recbench: building {tfds_name(name, variant)} into {b.data_dir}", file=sys.stderr)
    _hide_gpus_from_tensorflow()
    try:
        with quiet_tfds(progress):
            b.download_and_prepare(file_format="array_record", download_config=config)
    except Exception as e:
        raise ConfigError(f"building {tfds_name(name, variant)} into {b.data_dir} failed: {_first_line(e)}") from None
    return b


def _hide_gpus_from_tensorflow() -> None:
    """A full TF build would otherwise grab the accelerator's memory before JAX can (flax/big_vision do the same)."""
    try:
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    except Exception:  # tensorflow-cpu, or devices already initialised: nothing to hide
        pass


def random_access(b: Any) -> bool:
    """Whether the prepared files allow random access (ArrayRecord, Parquet), i.e. reading without TF."""
    from tensorflow_datasets.core import file_adapters

    return bool(b.info.available_file_formats() & set(file_adapters.FileFormat.with_random_access()))


def _format_problem(b: Any, what: str) -> str:
    return (f"{b.name} in {b.data_dir} is stored as {b.info.file_format.value}; {what} "
            f"(or convert it: tfds convert_format --dataset_version_dir={b.data_dir} --out_file_format=array_record)")


def open_source(b: Any, split: str, key: str = "dataset.split") -> Any:
    """A random-access source (``len``, ``[i]`` -> dict of numpy) of one split, for the streaming pipeline."""
    if not random_access(b):
        raise ConfigError(_format_problem(b, "streaming needs ArrayRecord"))
    try:
        return b.as_data_source(split=split)
    except ValueError as e:  # unknown split name or bad slice
        raise ConfigError(f"{key}={split!r}: {_first_line(e)}") from None


def _gather(source: Any, keys: tuple[str, ...], chunk: int = 1024) -> dict[str, np.ndarray]:
    out: dict[str, list] = {k: [] for k in keys}
    for start in range(0, len(source), chunk):
        idx = range(start, min(start + chunk, len(source)))
        try:
            records = source.__getitems__(idx)
        except TypeError:  # tfds.testing.mock_data's source mock binds __getitems__ without self (tfds 4.9.10)
            records = [source[i] for i in idx]
        for k in keys:
            out[k].extend(r[k] for r in records)
    return {k: np.stack(v) for k, v in out.items()}


def read_arrays(b: Any, split: str, label_key: str, key: str = "dataset.split") -> tuple[np.ndarray, np.ndarray]:
    """One whole split as numpy ``(images uint8 [N,H,W,C], labels int64 [N])``, from whatever format is there."""
    if random_access(b):
        arrays = _gather(open_source(b, split, key), ("image", label_key))
    elif tensorflow_installed():
        import tensorflow_datasets as tfds

        arrays = tfds.as_numpy(b.as_dataset(split=split, batch_size=-1))
    else:
        raise ConfigError(_format_problem(b, f"reading tfrecord needs TensorFlow: {TF_HINT}"))
    return np.asarray(arrays["image"], np.uint8), np.asarray(arrays[label_key], np.int64)


def label_names(b: Any, label_key: str) -> tuple[str, ...] | None:
    feature = b.info.features[label_key]
    names = getattr(feature, "names", None)
    return tuple(names) if names else None


def write_metadata(root: str | os.PathLike[str] = METADATA_DIR) -> list[Path]:
    """Write ``dataset_info.json`` + label files for every stock set from builder code and published sizes.

    Split shard layout and byte counts are not known without the data; each split is recorded as one shard of
    its published size. Good enough for ``mock_data(policy=USE_FILES)`` and for ``recbench-data info``.
    """
    import tensorflow_datasets as tfds

    written = []
    for name, spec in SPECS.items():
        b = tfds.builder(tfds_name(name), data_dir=os.fspath(root), try_gcs=False, file_format="array_record")
        for (n, k), names in _NAMES.items():
            if n == name:
                b.info.features[k].names = names.split()
        template = tfds.core.ShardedFileTemplate(data_dir=b.data_dir, dataset_name=name,
                                                 filetype_suffix="array_record")
        b.info.set_splits(tfds.core.SplitDict([
            tfds.core.SplitInfo(name=s, shard_lengths=[n], num_bytes=0, filename_template=template.replace(split=s))
            for s, n in spec.splits.items()]))
        Path(b.data_dir).mkdir(parents=True, exist_ok=True)
        b.info.write_to_directory(b.data_dir)
        written.append(Path(b.data_dir))
    return written


if __name__ == "__main__":
    for path in write_metadata():
        print(path)
