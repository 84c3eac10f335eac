"""Device-resident data: the whole split lives on the device; batches are gathered inside jit.

The order is a pure function of ``(seed, epoch)`` and the augmentation of ``(seed, step)``, so a resumed
run sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

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


@partial(jax.jit, static_argnums=(3, 5))
def _gather_train(data: DeviceData, order: jax.Array, position, batch_size: int, key: jax.Array, recipe: str):
    idx = jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))
    return normalise(data, augment(key, data.images[idx], recipe)), data.labels[idx]


@partial(jax.jit, static_argnums=3)
def _gather_eval(data: DeviceData, start, valid, chunk: int):
    idx = jnp.minimum(start + jnp.arange(chunk), start + valid - 1)  # pad with a real example, masked later
    return normalise(data, data.images[idx]), data.labels[idx]


class DeviceInputs:
    """The device-resident pipeline: batch ``step`` is a pure function of ``(seed, step)``.

    Train and test splits live on the device as uint8; each train batch is gathered, augmented and
    normalised inside jit (the test split is normalised with the *training* statistics).
    """

    def __init__(self, ds: ArrayDataset, *, batch_size: int, seed: int):
        mean, std = (jnp.asarray(v) for v in ds.channel_stats())
        self.train = DeviceData(jnp.asarray(ds.train[0]), jnp.asarray(ds.train[1]), mean, std)
        self.test = DeviceData(jnp.asarray(ds.test[0]), jnp.asarray(ds.test[1]), mean, std)
        self.batch_size = batch_size
        self.recipe = ds.augment
        self.steps_per_epoch = self.train.size // batch_size
        key = jax.random.key(seed)
        self._order_key, self._aug_key = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)
        self._epoch, self._order = -1, None

    def train_batch(self, step: int) -> tuple[jax.Array, jax.Array]:
        epoch = step // self.steps_per_epoch
        if epoch != self._epoch:
            self._epoch, self._order = epoch, epoch_order(self._order_key, epoch, self.train.size)
        return _gather_train(self.train, self._order, step % self.steps_per_epoch, self.batch_size,
                             jax.random.fold_in(self._aug_key, step), self.recipe)

    def eval_batches(self, chunk: int):
        """``(x, y, valid)`` over the whole test split in equal chunks; ``valid`` rows of each are real."""
        n = self.test.size
        chunk = min(chunk, n)
        for start in range(0, n, chunk):
            valid = min(chunk, n - start)
            yield (*_gather_eval(self.test, start, valid, chunk), valid)

    @property
    def eval_size(self) -> int:
        return self.test.size


def make_inputs(ds, *, batch_size: int, seed: int):
    """The pipeline a dataset asks for: device-resident arrays, or a grain stream (``recbench.data.stream``).

    Both have one interface (``steps_per_epoch``, ``train_batch(step)``, ``eval_batches(chunk)``, ``eval_size``),
    so the trainer never branches on it.
    """
    if isinstance(ds, ArrayDataset):
        return DeviceInputs(ds, batch_size=batch_size, seed=seed)
    from recbench.data.stream import StreamInputs

    return StreamInputs(ds, batch_size=batch_size, seed=seed)
