"""Host-side image recipes for the streaming pipeline (numpy + PIL), one example at a time.

Why on the host: streamed images arrive at different sizes (ImageNet, Imagenette), so they must be cropped and
resized to one shape before they can be batched; doing the random part here too keeps a batch a pure function of
``(seed, step)`` (grain hands each example a generator seeded by the seed and the example's stream position).
The device-resident pipeline has its own jitted ``flip_crop`` in :mod:`recbench.data.resident`; the two agree in
recipe, not bit for bit.

The transforms are small picklable classes, so grain can ship them to worker processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

RECIPES = ("none", "flip_crop", "imagenet")
EVAL_CROP = 0.875  # resize the shorter side to size / 0.875, then centre-crop (224 from 256)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear (antialiased) resize of a uint8 HWC image with 1 or 3 channels."""
    if image.shape[:2] == (height, width):
        return image
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.resize((width, height), Image.BILINEAR))
    return out[..., None] if out.ndim == 2 else out


def center_crop(image: np.ndarray, size: int, crop_fraction: float = EVAL_CROP) -> np.ndarray:
    """The standard evaluation view: shorter side to ``size / crop_fraction``, then the central ``size`` square."""
    h, w = image.shape[:2]
    scale = size / crop_fraction / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    image = resize(image, nh, nw)
    top, left = (nh - size) // 2, (nw - size) // 2
    return image[top:top + size, left:left + size]


def random_resized_crop(image: np.ndarray, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), tries: int = 10) -> np.ndarray:
    """Inception-style crop (torchvision's RandomResizedCrop): area in ``scale``, log-uniform aspect ``ratio``."""
    h, w = image.shape[:2]
    area = h * w
    for _ in range(tries):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            return resize(image[top:top + ch, left:left + cw], size, size)
    # Fallback (as torchvision): the largest central crop with the aspect clamped into ``ratio``.
    aspect = w / h
    cw, ch = (w, h) if ratio[0] <= aspect <= ratio[1] else (
        (round(h * ratio[0]), h) if aspect < ratio[0] else (w, round(w / ratio[1])))
    cw, ch = min(cw, w), min(ch, h)
    top, left = (h - ch) // 2, (w - cw) // 2
    return resize(image[top:top + ch, left:left + cw], size, size)


def pad_crop_flip(image: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """The CIFAR recipe: zero-pad by ``pad``, crop back at a random offset, flip left-right with p = 1/2."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    top, left = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
    out = padded[top:top + h, left:left + w]
    return out[:, ::-1] if rng.random() < 0.5 else out


@dataclass(frozen=True)
class _Transform:
    """One recipe at one output size, reading an example dict's image and label keys."""

    recipe: str
    size: int
    image_key: str = "image"
    label_key: str = "label"

    def _pair(self, image: np.ndarray, example: dict) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(image, np.uint8), np.asarray(example[self.label_key])


@dataclass(frozen=True)
class TrainTransform(_Transform):
    """``(example, rng) -> (image uint8 [size, size, C], label)`` for one recipe."""

    def __call__(self, example: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image = np.asarray(example[self.image_key])
        if self.recipe == "imagenet":
            image = random_resized_crop(image, self.size, rng)
            image = image[:, ::-1] if rng.random() < 0.5 else image
        else:
            image = _to_size(image, self.size)
            if self.recipe == "flip_crop":
                image = pad_crop_flip(image, rng)
        return self._pair(image, example)


@dataclass(frozen=True)
class EvalTransform(_Transform):
    """``example -> (image, label)``: the deterministic view used for evaluation and statistics."""

    def __call__(self, example: dict) -> tuple[np.ndarray, np.ndarray]:
        image = np.asarray(example[self.image_key])
        image = center_crop(image, self.size) if self.recipe == "imagenet" else _to_size(image, self.size)
        return self._pair(image, example)


def _to_size(image: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to ``size``, then the central square (a plain resize for square images)."""
    if image.shape[:2] == (size, size):
        return image
    return center_crop(image, size, crop_fraction=1.0)
