"""TensorFlow-free tfds builders for the procedural stimuli: digit debris and digit clutter
(:mod:`recbench.data.digits`) and Pathfinder (:mod:`recbench.data.pathfinder`).

Each parameter set is its own builder config whose name encodes every parameter, so the cache folder
``<data_dir>/<name>/<config>/<version>`` is the parameter set and a changed knob can never read stale images.
Storage, quiet builds and reading back are the shared base's (:mod:`recbench.data.tfds_base`).

Usage::

    splits = prepare("digit_debris", data_dir="~/tensorflow_datasets", level="heavy", num_train=10_000)
    x_train, y_train = splits["train"]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from recbench.config import ConfigError, check_int, choice
from recbench.data import digits, pathfinder
from recbench.data.tfds_base import GeneratedBuilder

__all__ = [
    "NAMES",
    "DigitClutter",
    "DigitClutterConfig",
    "DigitDebris",
    "DigitDebrisConfig",
    "Pathfinder",
    "PathfinderConfig",
    "builder",
    "prepare",
    "split_seed",
]

NAMES = ("digit_debris", "digit_clutter", "pathfinder")
_CHUNK = 1024  # digit images rendered per render_* call while generating a split
_DIGITS_CITATION = """@article{spoerer2017recurrent,
  title={Recurrent Convolutional Neural Networks: A Better Model of Biological Object Recognition},
  author={Spoerer, Courtney J. and McClure, Patrick and Kriegeskorte, Nikolaus},
  journal={Frontiers in Psychology}, volume={8}, pages={1551}, year={2017}, doi={10.3389/fpsyg.2017.01551}}"""
_PATHFINDER_CITATION = """@inproceedings{linsley2018learning,
  title={Learning long-range spatial dependencies with horizontal gated recurrent units},
  author={Linsley, Drew and Kim, Junkyung and Veerabadran, Vijay and Windolf, Charles and Serre, Thomas},
  booktitle={Advances in Neural Information Processing Systems}, volume={31}, year={2018}}"""


def split_seed(seed: int, split: str) -> int:
    """Seed of a digit split's image stream, derived from the dataset seed so train and test never share images."""
    entropy = [int(seed), GeneratedBuilder.SPLITS.index(split)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


@dataclasses.dataclass(eq=False)
class _ProceduralConfig(tfds.core.BuilderConfig):
    """Parameters every procedural set has; ``name`` is derived from all parameters (cache folder = parameter set)."""

    name: str = ""
    image_size: int = 32
    num_train: int = 10_000
    num_test: int = 2_000
    seed: int = 0

    def _check(self) -> None:
        """Validate (and normalise) the family's own fields, ``image_size`` included."""
        raise NotImplementedError

    def _derived_name(self) -> str:
        raise NotImplementedError

    def _describe(self) -> str:
        raise NotImplementedError

    def __post_init__(self) -> None:
        self._check()
        self.num_train = check_int("num_train", self.num_train)
        self.num_test = check_int("num_test", self.num_test)
        self.seed = check_int("seed", self.seed, low=0)
        derived = self._derived_name()
        if self.name and self.name != derived:
            raise ConfigError(f"config name {self.name!r} must encode its parameters, i.e. be {derived!r} or ''")
        self.name = derived
        if self.description is None:
            self.description = self._describe()

    @classmethod
    def parameters(cls) -> list[str]:
        base = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
        return sorted(f.name for f in dataclasses.fields(cls) if f.name not in base)

    def _counts(self) -> str:
        return f"n{self.num_train}-{self.num_test}-s{self.seed}"

    def num_examples(self, split: str) -> int:
        return self.num_train if split == "train" else self.num_test


def _scale_tag(scale_std: float) -> str:
    """The name part of a digit scale std: none for 0 (digitclutter's scale 1), ``-scale0.2`` otherwise."""
    return f"-scale{scale_std:g}" if scale_std else ""


def _check_scale_std(value: object) -> float:
    try:
        return digits.check_scale_std(value)
    except ValueError as e:
        raise ConfigError(str(e)) from None


@dataclasses.dataclass(eq=False)
class DigitDebrisConfig(_ProceduralConfig):
    """Digit debris: one target digit with ``n_debris`` (half-open range) fragments over it; ``scale_std`` the
    standard deviation of its scale (0: scale 1, digitclutter's default)."""

    n_debris: tuple[int, int] = digits.DEBRIS_LEVELS["light"]
    scale_std: float = 0.0

    def _check(self) -> None:
        self.n_debris = digits._check_range("n_debris", self.n_debris)
        self.image_size = check_int("image_size", self.image_size, 16, 256)
        self.scale_std = _check_scale_std(self.scale_std)

    def _derived_name(self) -> str:
        level = next((k for k, rng in digits.DEBRIS_LEVELS.items() if tuple(rng) == self.n_debris), None)
        tag = level or f"debris{self.n_debris[0]}to{self.n_debris[1]}"
        return f"{tag}-{self.image_size}px{_scale_tag(self.scale_std)}-{self._counts()}"

    def _describe(self) -> str:
        scale = f", scale std {self.scale_std:g}" if self.scale_std else ""
        return f"Digit debris, {self.n_debris[0]}..{self.n_debris[1] - 1} fragments, {self.image_size}px{scale}"


@dataclasses.dataclass(eq=False)
class DigitClutterConfig(_ProceduralConfig):
    """Digit clutter: ``n_digits`` distinct overlapping digits (later ones occlude earlier ones); ``scale_std`` as
    for digit debris."""

    n_digits: int = 3
    scale_std: float = 0.0

    def _check(self) -> None:
        self.n_digits = check_int("n_digits", self.n_digits, 1, 10)
        self.image_size = check_int("image_size", self.image_size, 16, 256)
        self.scale_std = _check_scale_std(self.scale_std)

    def _derived_name(self) -> str:
        return f"{self.n_digits}digits-{self.image_size}px{_scale_tag(self.scale_std)}-{self._counts()}"

    def _describe(self) -> str:
        scale = f", scale std {self.scale_std:g}" if self.scale_std else ""
        return f"Digit clutter, {self.n_digits} digits, {self.image_size}px{scale}"


@dataclasses.dataclass(eq=False)
class PathfinderConfig(_ProceduralConfig):
    """Pathfinder: two target snakes of ``contour_length`` paddles among distractors."""

    num_train: int = 20_000
    contour_length: int = 14

    def _check(self) -> None:
        pathfinder._check(image_size=self.image_size, contour_length=self.contour_length)
        self.image_size, self.contour_length = int(self.image_size), int(self.contour_length)

    def _derived_name(self) -> str:
        return f"{self.image_size}px-len{self.contour_length}-{self._counts()}"

    def _describe(self) -> str:
        return f"Pathfinder, contour length {self.contour_length}, {self.image_size}px"


class _DigitBuilder(GeneratedBuilder, skip_registration=True):
    """Digit sets: each split is one seeded ``render_*`` stream, rendered ``_CHUNK`` images at a time."""

    VERSION = tfds.core.Version(digits.GENERATOR_VERSION)
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "numpy/PIL port of digitclutter (digit scales drawn with std 0.2).",
        "2.0.0": "Digits at scale 1 unless scale_std > 0 (digitclutter's default); scale_std joins the config name.",
    }
    CITATION: ClassVar[str] = _DIGITS_CITATION
    HOMEPAGE: ClassVar[str] = "https://github.com/cjspoerer/digitclutter"
    builder_config: _ProceduralConfig

    def _image_shape(self) -> tuple[int, ...]:
        return (self.builder_config.image_size, self.builder_config.image_size, 1)

    def _render(self, n: int, seed: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _batches(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        total, seed = self.builder_config.num_examples(split), split_seed(self.builder_config.seed, split)
        for start in range(0, total, _CHUNK):
            yield self._render(min(_CHUNK, total - start), seed, start)


class DigitDebris(_DigitBuilder):
    """Digit debris (Spoerer et al. 2017): classify the one target digit hidden under digit fragments."""

    BUILDER_CONFIGS: ClassVar[list[DigitDebrisConfig]] = [
        DigitDebrisConfig(n_debris=rng) for rng in digits.DEBRIS_LEVELS.values()
    ]
    builder_config: DigitDebrisConfig

    def _label_feature(self) -> tfds.features.FeatureConnector:
        return tfds.features.ClassLabel(num_classes=digits.N_CLASSES)

    def _render(self, n: int, seed: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.builder_config
        return digits.render_debris(n, seed=seed, image_size=cfg.image_size, n_debris=cfg.n_debris, start=start,
                                    scale_std=cfg.scale_std)


class DigitClutter(_DigitBuilder):
    """Digit clutter (Spoerer et al. 2017): report every digit present among several overlapping digits."""

    BUILDER_CONFIGS: ClassVar[list[DigitClutterConfig]] = [DigitClutterConfig(n_digits=k) for k in (3, 4, 5)]
    LABEL_KEY: ClassVar[str] = "labels"
    builder_config: DigitClutterConfig

    def _label_feature(self) -> tfds.features.FeatureConnector:
        return tfds.features.Tensor(shape=(digits.N_CLASSES,), dtype=np.uint8)

    def _render(self, n: int, seed: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.builder_config
        return digits.render_clutter(n, seed=seed, image_size=cfg.image_size, n_digits=cfg.n_digits, start=start,
                                     scale_std=cfg.scale_std)


class Pathfinder(GeneratedBuilder):
    """Pathfinder (Linsley et al. 2018; LRA): are both markers on the same dashed curve?"""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "numpy re-implementation of snakes2 with the LRA per-size settings"
    }
    BUILDER_CONFIGS: ClassVar[list[PathfinderConfig]] = [PathfinderConfig()]
    CITATION: ClassVar[str] = _PATHFINDER_CITATION
    HOMEPAGE: ClassVar[str] = "https://github.com/drewlinsley/pathfinder"
    builder_config: PathfinderConfig

    def _image_shape(self) -> tuple[int, ...]:
        return (self.builder_config.image_size, self.builder_config.image_size, 1)

    def _label_feature(self) -> tfds.features.FeatureConnector:
        return tfds.features.ClassLabel(num_classes=2)

    def _batches(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cfg = self.builder_config
        return pathfinder.render_pathfinder_chunks(
            cfg.num_examples(split), seed=cfg.seed, image_size=cfg.image_size, contour_length=cfg.contour_length,
            stream=self.SPLITS.index(split),
        )


_FAMILIES: dict[str, tuple[type[GeneratedBuilder], type[_ProceduralConfig]]] = {
    "digit_debris": (DigitDebris, DigitDebrisConfig),
    "digit_clutter": (DigitClutter, DigitClutterConfig),
    "pathfinder": (Pathfinder, PathfinderConfig),
}


def _config(name: str, params: dict[str, Any]) -> _ProceduralConfig:
    """Validated config of ``name``; ``digit_debris`` also takes ``level`` (a DEBRIS_LEVELS key) for ``n_debris``."""
    config_cls = _FAMILIES[choice(name, "procedural dataset", NAMES)][1]
    params = dict(params)
    allowed = config_cls.parameters()
    if name == "digit_debris":
        allowed.append("level")
        if "level" in params:
            level = choice(params.pop("level"), "level", tuple(digits.DEBRIS_LEVELS))
            preset = digits.DEBRIS_LEVELS[level]
            if "n_debris" in params and digits._check_range("n_debris", params["n_debris"]) != preset:
                raise ConfigError(f"level={level!r} conflicts with n_debris={params['n_debris']!r}")
            params["n_debris"] = preset
    if unknown := sorted(set(params) - set(allowed)):
        raise ConfigError(f"unknown parameter(s) {unknown} for {name}; valid: {sorted(allowed)}")
    return config_cls(**params)


def builder(name: str, *, data_dir: str | os.PathLike[str], **params: Any) -> GeneratedBuilder:
    """The tfds builder of one parameter set of ``name``, not prepared (to ask where it lives, or if it is built).

    Params as for :func:`prepare`; a bad one raises a one-line ConfigError before anything touches ``data_dir``.
    """
    config = _config(name, params)
    return _FAMILIES[name][0].for_config(config, data_dir=data_dir)


def prepare(
    name: str, *, data_dir: str | os.PathLike[str], progress: bool = True, **params: Any
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Build ``name`` into ``data_dir`` unless already there, then return every split as numpy arrays.

    Args:
      name: one of :data:`NAMES`.
      data_dir: tfds data directory; each parameter set gets its own ``<name>/<config>/<version>`` folder.
      progress: print one ``recbench: generating ...`` line on stderr when it builds (tfds' bars never show).
      **params: config fields: ``image_size``, ``num_train``, ``num_test``, ``seed``, and ``level`` or
        ``n_debris`` (digit_debris), ``n_digits`` (digit_clutter), ``scale_std`` (both digit sets),
        ``contour_length`` (pathfinder).

    Returns:
      ``{"train": (images, labels), "test": (images, labels)}``; images uint8 ``[N, H, W, 1]``, labels int64
      ``[N]`` (debris, pathfinder) or uint8 multi-hot ``[N, 10]`` (clutter). Pathfinder's train and test equal
      ``render_pathfinder(N, ..., stream=0)`` and ``stream=1``; a digit split equals
      ``render_*(N, seed=split_seed(seed, split), ...)``.
    """
    b = builder(name, data_dir=data_dir, **params)
    b.build(progress=progress)
    return {split: b.as_arrays(split) for split in b.SPLITS}
