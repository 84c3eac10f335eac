"""The streaming pipeline: grain over random-access sources, for datasets too large to live on the device.

:class:`StreamInputs` implements :class:`recbench.data.pipeline.InputPipeline`, as the device-resident pipeline
does, so the trainer does not know which one it drives (a :class:`StreamDataset` hands out this one).

* **Order.** The training stream is a grain ``MapDataset``: this process's shard of the source, shuffled afresh
  every epoch, augmented with a generator seeded by ``(seed, position)``. Batch ``k`` is therefore a pure function
  of ``(seed, k)`` (:meth:`StreamInputs.host_batch` computes it by random access); a resumed run asks for step
  ``k`` and the iterator restarts exactly there.
* **Parallelism.** ``threads`` decode and augment examples in grain's thread pool; ``workers > 0`` adds that many
  worker processes (``mp_prefetch``; the entry script needs an ``if __name__ == "__main__"`` guard). The next
  ``prefetch`` batches are already copied to the device (copies are asynchronous) while a step runs.
* **One dispatch per step.** :meth:`StreamInputs.train_args` hands the prefetched uint8 batch (and the
  normalisation statistics) to the train step, which normalises it inside its own jit (:meth:`StreamInputs.gather`)
  instead of in a dispatch of its own.
* **Data parallel, multi-host.** On a mesh (:meth:`StreamInputs.shard`) batches are sharded over its data axis. Each
  of ``jax.process_count()`` processes reads every ``process_count``-th example and delivers
  ``batch_size / process_count`` rows to its own devices (``jax.make_array_from_process_local_data``), assembled
  into one global batch. Evaluation reads the whole split on every process; each process puts its devices' rows of
  a chunk, and the eval step returns replicated results that can be fetched anywhere.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grain
import jax
import jax.numpy as jnp
import numpy as np

from recbench.config import ConfigError
from recbench.data.augment import EvalTransform, TrainTransform
from recbench.data.pipeline import channel_stats, check_batch_size, normalise

if TYPE_CHECKING:
    from recbench.train.parallel import Parallel

STAT_SAMPLES = 256  # training images used to estimate the per-channel mean and std


@dataclass
class StreamDataset:
    """A dataset read on demand: two random-access sources (``len``, ``[i]`` -> dict of numpy) and how to view them."""

    name: str
    train_source: Sequence
    eval_source: Sequence
    num_classes: int
    image_shape: tuple[int, int, int]  # after the recipe: (image_size, image_size, channels)
    augment: str = "none"
    image_key: str = "image"
    label_key: str = "label"
    label_names: tuple[str, ...] | None = None
    workers: int = 0
    threads: int = 4
    prefetch: int = 2
    multilabel: bool = False
    recorded_eval_labels: np.ndarray | None = None  # recorded by the first complete pass of ``eval_batches``

    @property
    def num_train(self) -> int:
        return len(self.train_source)

    def pipeline(self, *, batch_size: int, seed: int) -> StreamInputs:
        return StreamInputs(self, batch_size=batch_size, seed=seed)

    def eval_labels(self) -> np.ndarray:
        """Eval labels in split order; read from the source only if no evaluation pass has recorded them."""
        if self.recorded_eval_labels is None:
            self.recorded_eval_labels = np.asarray([self.eval_source[i][self.label_key]
                                                    for i in range(len(self.eval_source))])
        return self.recorded_eval_labels

    def samples(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        source = self.train_source if split == "train" else self.eval_source
        view = self.eval_view()
        return _stack([view(source[i]) for i in range(min(n, len(source)))])

    def eval_view(self) -> EvalTransform:
        return EvalTransform(self.augment, self.image_shape[0], self.image_key, self.label_key)

    def train_view(self) -> TrainTransform:
        return TrainTransform(self.augment, self.image_shape[0], self.image_key, self.label_key)

    def stats_sample(self) -> np.ndarray:
        """Evenly spaced training images (the eval view) that estimate the normalisation statistics."""
        n = len(self.train_source)
        view = self.eval_view()
        return np.stack([view(self.train_source[int(i)])[0] for i in np.linspace(0, n - 1, min(n, STAT_SAMPLES))])


def _seed(seed: int, stream: int) -> int:
    """A 32-bit grain seed for one purpose (1: order, 2: augmentation) derived from the run seed."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1, np.uint32)[0])


def _stack(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([x for x, _ in items]), np.stack([y for _, y in items])


def _labels(y: np.ndarray) -> np.ndarray:
    return y.astype(np.int32) if y.dtype.kind in "iu" and y.ndim == 1 else y


def _normalised(args: dict, step: int | jax.Array) -> tuple[jax.Array, jax.Array]:
    """The batch from :meth:`StreamInputs.train_args`, normalised (traceable: the train step runs it in its jit)."""
    return normalise(args["x"], args["mean"], args["std"]), args["y"]


_normalise = jax.jit(normalise)
_gather = jax.jit(_normalised)


def _allow_worker_processes() -> None:
    """grain's workers read absl flags; outside ``absl.app.run`` they are unparsed and grain would fail."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


class StreamInputs:
    """The streaming pipeline (an :class:`recbench.data.pipeline.InputPipeline`); see the module docstring."""

    def __init__(self, ds: StreamDataset, *, batch_size: int, seed: int, process_index: int | None = None,
                 process_count: int | None = None):
        self.dataset = ds
        self.process_index = jax.process_index() if process_index is None else process_index
        self.process_count = jax.process_count() if process_count is None else process_count
        if batch_size % self.process_count:
            raise ConfigError(f"trainer.batch_size={batch_size} must divide evenly over {self.process_count} "
                              "processes")
        self.batch_size, self.local_batch = batch_size, batch_size // self.process_count
        self.num_train = n = ds.num_train
        check_batch_size(batch_size, n)
        per_process = n // self.process_count
        if per_process < self.local_batch:
            raise ConfigError(f"trainer.batch_size={batch_size} needs {batch_size} training images per process; "
                              f"{n} over {self.process_count} processes leave {per_process}")
        self.steps_per_epoch = per_process // self.local_batch
        self.prefetch, self.threads, self.workers = max(0, ds.prefetch), max(1, ds.threads), max(0, ds.workers)
        mean, std = channel_stats(ds.stats_sample())
        self._mean, self._std = jnp.asarray(mean), jnp.asarray(std)
        # Equal shards keep every process on the same epoch boundaries.
        shard = grain.MapDataset.source(ds.train_source)[: per_process * self.process_count]
        shard = shard[self.process_index::self.process_count]
        self._elements = shard.shuffle(seed=_seed(seed, 1)).repeat().random_map(ds.train_view(), seed=_seed(seed, 2))
        self._eval = grain.MapDataset.source(ds.eval_source).map(ds.eval_view())
        self._next_step: int | None = None
        self._iter: Iterator | None = None
        self._queue: collections.deque = collections.deque()
        self._parallel: Parallel | None = None
        if jax.process_count() > 1:  # a global batch needs a mesh; the trainer lays out its own (shard)
            from recbench.train.parallel import make_parallel

            self.shard(make_parallel(0))

    def shard(self, parallel: Parallel) -> None:
        """Deliver batches sharded over ``parallel``'s data axis (each process its own rows) and keep the
        normalisation statistics replicated on it. Restarts the stream, so call it before the first batch."""
        self.close()
        self._parallel = parallel
        self._mean, self._std = parallel.replicate((self._mean, self._std))

    def host_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """This process's rows of batch ``step`` as numpy, by random access: the definition the iterator follows."""
        start = step * self.local_batch
        return _stack([self._elements[start + i] for i in range(self.local_batch)])

    def _iterator(self, step: int) -> Iterator:
        # Batch before going iterable: worker processes take every n-th *batch* and grain interleaves them back
        # in order, so batch k stays batch k whatever the number of workers (batching after would mix workers).
        batches = self._elements.batch(self.local_batch, drop_remainder=True, batch_fn=_stack)
        ds = batches[step:].to_iter_dataset(
            grain.ReadOptions(num_threads=self.threads, prefetch_buffer_size=max(self.threads, self.prefetch)))
        if self.workers:
            _allow_worker_processes()
            ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.workers))
        return iter(ds)

    def _put(self, x: np.ndarray, y: np.ndarray, whole: bool) -> tuple[jax.Array, jax.Array]:
        """Host rows to the device: this process's rows of a global batch, or (``whole``) a chunk every process
        holds entirely; sharded over the data axis once the pipeline is on a mesh."""
        y = _labels(y)
        if self._parallel is None:
            return jax.device_put(x), jax.device_put(y)
        put = self._parallel.shard_global if whole else self._parallel.shard_local
        return put(x), put(y)

    def train_args(self, step: int) -> dict:
        """Batch ``step`` on the device as uint8, with the statistics :meth:`gather` normalises it with; sequential
        calls are served from the prefetched stream."""
        if step != self._next_step:  # first call, a resumed run, or random access: restart the stream at ``step``
            self.close()
            self._iter = self._iterator(step)
        while len(self._queue) <= self.prefetch:
            self._queue.append(self._put(*next(self._iter), whole=False))
        self._next_step = step + 1
        x, y = self._queue.popleft()
        return {"x": x, "y": y, "mean": self._mean, "std": self._std}

    gather = staticmethod(_normalised)

    def train_batch(self, step: int) -> tuple[jax.Array, jax.Array]:
        """Batch ``step`` on the device, normalised (benchmarks, tests): the same gather the train step traces."""
        return _gather(self.train_args(step), step)

    def close(self) -> None:
        """Stop the training stream's threads and worker processes (also done on a restart and when collected)."""
        it, self._iter, self._next_step = self._iter, None, None
        self._queue.clear()
        if it is not None and hasattr(it, "close"):
            it.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: grain's machinery may already be gone
            pass

    def eval_batches(self, chunk: int) -> Iterator[tuple[jax.Array, jax.Array, int]]:
        """``(x, y, valid)`` over the whole eval split in order; the last chunk is padded with a real example."""
        n = self.eval_size
        chunk = min(chunk, n)
        if self._parallel is not None:  # whole rows per device: pad the chunk up, the extra rows are masked
            chunk = self._parallel.whole_rows(chunk)
        stream = self._eval.to_iter_dataset(grain.ReadOptions(num_threads=self.threads, prefetch_buffer_size=chunk))
        labels = []
        for x, y in stream.batch(chunk, batch_fn=_stack):
            valid = len(x)
            labels.append(y)
            if valid < chunk:
                pad = np.full(chunk - valid, valid - 1)
                x, y = np.concatenate([x, x[pad]]), np.concatenate([y, y[pad]])
            x, y = self._put(x, y, whole=True)
            yield _normalise(x, self._mean, self._std), y, valid
        self.dataset.recorded_eval_labels = np.concatenate(labels)

    @property
    def eval_size(self) -> int:
        return len(self.dataset.eval_source)

    def eval_labels(self) -> np.ndarray:
        return self.dataset.eval_labels()
