"""The one input seam: what a dataset and its input pipeline promise the trainer.

Two pipelines implement :class:`InputPipeline` — device-resident arrays (:mod:`recbench.data.resident`) and a grain
stream from disk (:mod:`recbench.data.stream`) — and each dataset says which one serves it
(:meth:`Dataset.pipeline`), so the trainer, ``recbench-eval`` and the benchmarks never ask which kind they hold.
Both pipelines make batch ``k`` a pure function of ``(seed, k)``: a resumed run sees the batches an uninterrupted
one would have seen. Both normalise with the training split's per-channel statistics, computed by
:func:`channel_stats` and applied by :func:`normalise`.

A training batch comes in two halves so that a train step is a single dispatch: ``train_args(k)`` (host side: the
device arrays batch ``k`` is made from) and the pure ``gather(args, k)``, which the jitted train step traces into
its own program (:func:`recbench.train.step.make_train_step`). ``train_batch(k)`` is the two together, for callers
that want the batch itself. ``shard(parallel)`` lays a pipeline out on a data-parallel mesh
(:mod:`recbench.train.parallel`): batches sharded over its data axis, what stays resident replicated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from recbench.config import ConfigError

if TYPE_CHECKING:
    from recbench.train.parallel import Parallel

MIN_STD = 1e-3  # a constant channel (blank borders, binary stimuli) must not divide by zero


@runtime_checkable
class InputPipeline(Protocol):
    """Batches for training and evaluation, already on the device and normalised."""

    num_train: int  # training images the pipeline draws from (per epoch)
    steps_per_epoch: int
    eval_size: int  # examples in the evaluation split

    def train_args(self, step: int) -> Any:
        """The device arrays (a pytree) that :meth:`gather` makes training batch ``step`` from."""
        ...

    def gather(self, args: Any, step: int | jax.Array) -> tuple[jax.Array, jax.Array]:
        """Images ``[B, H, W, C]`` float32 and labels of batch ``step`` from ``train_args(step)``; pure and
        traceable (``step`` may be a tracer), so the train step runs it inside its own jit."""
        ...

    def train_batch(self, step: int) -> tuple[jax.Array, jax.Array]:
        """Images ``[B, H, W, C]`` float32 and labels of training batch ``step``: ``gather(train_args(step), step)``."""
        ...

    def shard(self, parallel: Parallel) -> None:
        """Lay the pipeline out on a data-parallel mesh (before the first batch): batches sharded over its data
        axis, resident data replicated."""
        ...

    def eval_batches(self, chunk: int) -> Iterator[tuple[jax.Array, jax.Array, int]]:
        """``(x, y, valid)`` over the whole evaluation split in order, in equal chunks whose first ``valid`` rows
        are real (the last chunk is padded with a real example, masked by the caller). On a mesh the chunk is
        rounded up to a multiple of its data axis (more padding, masked the same way)."""
        ...

    def eval_labels(self) -> np.ndarray:
        """Labels of the evaluation split in the order ``eval_batches`` yields them."""
        ...


@runtime_checkable
class Dataset(Protocol):
    """A loaded dataset: what it is, and the pipeline that serves it."""

    name: str
    num_classes: int
    multilabel: bool
    label_names: tuple[str, ...] | None

    @property
    def image_shape(self) -> tuple[int, int, int]: ...

    @property
    def num_train(self) -> int: ...

    def pipeline(self, *, batch_size: int, seed: int) -> InputPipeline: ...

    def samples(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` images (uint8, as the model sees them at evaluation) and labels of a split."""
        ...


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std in [0, 1] of a sample of uint8 ``[N, H, W, C]`` training images."""
    x = np.asarray(images, np.float32) / 255.0
    return x.mean(axis=(0, 1, 2)), np.maximum(x.std(axis=(0, 1, 2)), MIN_STD)


def normalise(images: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """uint8 images to float32, standardised per channel (traceable: both pipelines call it inside jit)."""
    return (images.astype(jnp.float32) / 255.0 - mean) / std


def check_batch_size(batch_size: int, num_train: int) -> None:
    if batch_size > num_train:
        raise ConfigError(f"trainer.batch_size={batch_size} exceeds the {num_train} training images")
