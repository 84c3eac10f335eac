"""The device-resident pipeline: the whole split lives on the device; batches are gathered inside jit.

For every dataset that fits (every procedural set, CIFAR, MNIST, SVHN) this is the fastest path: no host work per
step. The order is a pure function of ``(seed, epoch)`` and the augmentation of ``(seed, step)``, so a resumed run
sees exactly the batches an uninterrupted one would have seen. The streaming pipeline applies the same recipes on
the host (:mod:`recbench.data.augment`); the two agree in recipe, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from recbench.data.pipeline import check_batch_size, normalise

AUGMENTATIONS = ("none", "flip_crop")  # what this pipeline can do inside jit


@dataclass(frozen=True)
class DeviceSplit:
    images: jax.Array  # uint8 [N, H, W, C]
    labels: jax.Array
    mean: jax.Array
    std: jax.Array

    @property
    def size(self) -> int:
        return int(self.images.shape[0])


jax.tree_util.register_dataclass(DeviceSplit, data_fields=["images", "labels", "mean", "std"], meta_fields=[])


@partial(jax.jit, static_argnums=2)
def epoch_order(key: jax.Array, epoch: int | jax.Array, n: int) -> jax.Array:
    return jax.random.permutation(jax.random.fold_in(key, epoch), n)


def flip_crop(key: jax.Array, x: jax.Array, recipe: str, pad: int = 4) -> jax.Array:
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
def _gather_train(data: DeviceSplit, order: jax.Array, position, batch_size: int, key: jax.Array, recipe: str):
    idx = jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))
    return normalise(flip_crop(key, data.images[idx], recipe), data.mean, data.std), data.labels[idx]


@partial(jax.jit, static_argnums=3)
def _gather_eval(data: DeviceSplit, start, valid, chunk: int):
    idx = jnp.minimum(start + jnp.arange(chunk), start + valid - 1)  # pad with a real example, masked later
    return normalise(data.images[idx], data.mean, data.std), data.labels[idx]


class ResidentInputs:
    """:class:`recbench.data.pipeline.InputPipeline` over uint8 arrays copied to the device once.

    Each train batch is gathered, augmented and normalised inside jit; the test split is normalised with the
    *training* statistics.
    """

    def __init__(self, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], *,
                 stats: tuple[np.ndarray, np.ndarray], augment: str, batch_size: int, seed: int):
        mean, std = (jnp.asarray(v) for v in stats)
        self.train = DeviceSplit(jnp.asarray(train[0]), jnp.asarray(train[1]), mean, std)
        self.test = DeviceSplit(jnp.asarray(test[0]), jnp.asarray(test[1]), mean, std)
        self._test_labels = np.asarray(test[1])
        self.num_train, self.eval_size = self.train.size, self.test.size
        check_batch_size(batch_size, self.num_train)
        self.batch_size = batch_size
        self.recipe = augment
        self.steps_per_epoch = self.num_train // batch_size
        key = jax.random.key(seed)
        self._order_key, self._aug_key = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)
        self._epoch, self._order = -1, None

    def train_batch(self, step: int) -> tuple[jax.Array, jax.Array]:
        epoch = step // self.steps_per_epoch
        if epoch != self._epoch:
            self._epoch, self._order = epoch, epoch_order(self._order_key, epoch, self.num_train)
        return _gather_train(self.train, self._order, step % self.steps_per_epoch, self.batch_size,
                             jax.random.fold_in(self._aug_key, step), self.recipe)

    def eval_batches(self, chunk: int) -> Iterator[tuple[jax.Array, jax.Array, int]]:
        n = self.eval_size
        chunk = min(chunk, n)
        for start in range(0, n, chunk):
            valid = min(chunk, n - start)
            yield (*_gather_eval(self.test, start, valid, chunk), valid)

    def eval_labels(self) -> np.ndarray:
        return self._test_labels
