"""Device-resident data: the whole split lives on the device; batches are gathered inside jit.

The order is a pure function of ``(seed, epoch)`` and the augmentation of ``(seed, step)``, so a resumed
run sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from recbench.data.sources import ArrayDataset


@dataclass(frozen=True)
class DeviceData:
    images: jax.Array  # uint8 [N, H, W, C]
    labels: jax.Array
    mean: jax.Array
    std: jax.Array

    @property
    def size(self) -> int:
        return int(self.images.shape[0])


jax.tree_util.register_dataclass(DeviceData, data_fields=["images", "labels", "mean", "std"], meta_fields=[])


def to_device(ds: ArrayDataset, split: str) -> DeviceData:
    mean, std = ds.channel_stats()
    images, labels = getattr(ds, split)
    return DeviceData(jnp.asarray(images), jnp.asarray(labels), jnp.asarray(mean), jnp.asarray(std))


@partial(jax.jit, static_argnums=2)
def epoch_order(key: jax.Array, epoch: int | jax.Array, n: int) -> jax.Array:
    return jax.random.permutation(jax.random.fold_in(key, epoch), n)


def normalise(data: DeviceData, images: jax.Array) -> jax.Array:
    return (images.astype(jnp.float32) / 255.0 - data.mean) / data.std


def augment(key: jax.Array, x: jax.Array, recipe: str, pad: int = 4) -> jax.Array:
    """``flip_crop``: the CIFAR recipe (pad 4 with zeros, random crop back, random horizontal flip)."""
    if recipe == "none":
        return x
    b, h, w, _ = x.shape
    k_crop, k_flip = jax.random.split(key)
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(k_crop, (b, 2), 0, 2 * pad + 1)
    crop = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1])))
    x = crop(padded, offsets)
    flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1], x)


def train_batch(data: DeviceData, order: jax.Array, position: jax.Array, batch_size: int, key: jax.Array,
                recipe: str) -> tuple[jax.Array, jax.Array]:
    idx = jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))
    x = normalise(data, augment(key, data.images[idx], recipe))
    return x, data.labels[idx]


def eval_chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    """``(start, valid)`` pairs covering ``n`` examples in equal chunks (the last one padded)."""
    return [(s, min(chunk, n - s)) for s in range(0, n, chunk)]


def padded_indices(start: int, valid: int, chunk: int) -> np.ndarray:
    idx = np.arange(start, start + chunk)
    idx[valid:] = start  # repeat a real example; masked out of the metrics
    return idx.astype(np.int32)
