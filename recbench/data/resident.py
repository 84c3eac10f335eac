"""The device-resident pipeline: the whole split lives on the device; batches are gathered inside jit.

For every dataset that fits (every procedural set, CIFAR, MNIST, SVHN) this is the fastest path: no host work per
step. The order is a pure function of ``(seed, epoch)`` and the augmentation of ``(seed, step)``, so a resumed run
sees exactly the batches an uninterrupted one would have seen. The streaming pipeline applies the same recipes on
the host (:mod:`recbench.data.augment`); the two agree in recipe, not bit for bit.

The trainer does not fetch a batch and then step: :meth:`ResidentInputs.train_args` hands over the split, the
epoch's permutation (computed once per epoch) and the augmentation key, and the jitted train step calls the pure
:meth:`ResidentInputs.gather` inside its own trace, so a step is one dispatch. On a data-parallel mesh
(:meth:`ResidentInputs.shard`) the split is replicated on every device (every process loads it whole) and the
gather is constrained to the batch sharding, so each device gathers and augments only its own rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from recbench.data.pipeline import check_batch_size, normalise

if TYPE_CHECKING:
    from recbench.train.parallel import Parallel

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


def _permutation(key: jax.Array, epoch: int | jax.Array, n: int) -> jax.Array:
    return jax.random.permutation(jax.random.fold_in(key, epoch), n)


epoch_order = jax.jit(_permutation, static_argnums=2)


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


def gather_batch(args: dict, step: int | jax.Array, *, batch_size: int, steps_per_epoch: int, recipe: str,
                 sharding: jax.sharding.Sharding | None = None) -> tuple[jax.Array, jax.Array]:
    """Training batch ``step``: rows ``step % steps_per_epoch`` of the epoch's permutation, augmented with
    ``fold_in(key, step)``, normalised; ``sharding`` (a data-parallel batch sharding) splits the gather itself."""
    data = args["data"]
    position = step % steps_per_epoch
    idx = jax.lax.dynamic_slice(args["order"], (position * batch_size,), (batch_size,))
    if sharding is not None:
        idx = jax.lax.with_sharding_constraint(idx, sharding)
    x = normalise(flip_crop(jax.random.fold_in(args["key"], step), data.images[idx], recipe), data.mean, data.std)
    y = data.labels[idx]
    if sharding is not None:
        x, y = jax.lax.with_sharding_constraint((x, y), sharding)
    return x, y


_gather_train = jax.jit(gather_batch, static_argnames=("batch_size", "steps_per_epoch", "recipe", "sharding"))


def _eval_rows(data: DeviceSplit, start, valid, chunk: int):
    idx = jnp.minimum(start + jnp.arange(chunk), start + valid - 1)  # pad with a real example, masked later
    return normalise(data.images[idx], data.mean, data.std), data.labels[idx]


_gather_eval = jax.jit(_eval_rows, static_argnums=3)


class ResidentInputs:
    """:class:`recbench.data.pipeline.InputPipeline` over uint8 arrays copied to the device once.

    Each train batch is gathered, augmented and normalised inside jit (inside the train step itself, through
    :meth:`gather`); the test split is normalised with the *training* statistics.
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
        self._parallel: Parallel | None = None
        self._epoch_order, self._gather_eval = epoch_order, _gather_eval

    def shard(self, parallel: Parallel) -> None:
        """Lay the pipeline out on a data-parallel mesh: splits, keys and permutations replicated, batches
        sharded over the data axis (``parallel.batch``)."""
        self._parallel = parallel
        self.train, self.test = parallel.replicate(self.train), parallel.replicate(self.test)
        self._order_key, self._aug_key = parallel.replicate((self._order_key, self._aug_key))
        self._epoch, self._order = -1, None
        self._epoch_order = jax.jit(_permutation, static_argnums=2, out_shardings=parallel.replicated)
        self._gather_eval = jax.jit(_eval_rows, static_argnums=3, out_shardings=(parallel.batch, parallel.batch))

    def train_args(self, step: int) -> dict:
        """What :meth:`gather` needs for batch ``step``: the split, this epoch's permutation, the augmentation key."""
        epoch = step // self.steps_per_epoch
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self._epoch_order(self._order_key, epoch, self.num_train)
        return {"data": self.train, "order": self._order, "key": self._aug_key}

    def _statics(self) -> dict:
        sharding = self._parallel.batch if self._parallel is not None and self._parallel.size > 1 else None
        return {"batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch, "recipe": self.recipe,
                "sharding": sharding}

    def gather(self, args: dict, step: int | jax.Array) -> tuple[jax.Array, jax.Array]:
        """Batch ``step`` from ``train_args(step)`` (:func:`gather_batch`); pure, so the train step traces it."""
        return gather_batch(args, step, **self._statics())

    def train_batch(self, step: int) -> tuple[jax.Array, jax.Array]:
        """Batch ``step`` on its own (benchmarks, tests): the same gather the train step traces."""
        return _gather_train(self.train_args(step), step, **self._statics())

    def eval_batches(self, chunk: int) -> Iterator[tuple[jax.Array, jax.Array, int]]:
        n = self.eval_size
        chunk = min(chunk, n)
        if self._parallel is not None:  # whole rows per device: pad the chunk up, the extra rows are masked
            chunk = self._parallel.whole_rows(chunk)
        for start in range(0, n, chunk):
            valid = min(chunk, n - start)
            yield (*self._gather_eval(self.test, start, valid, chunk), valid)

    def eval_labels(self) -> np.ndarray:
        return self._test_labels
