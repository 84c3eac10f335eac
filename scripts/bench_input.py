"""Input-pipeline benchmark: images/s each pipeline delivers, and how much of a training step waits for input.

    python scripts/bench_input.py                     # 4-6 min on 2 idle CPU cores (BLT steps dominate)
    python scripts/bench_input.py --rounds 1 --steps 10 --data-dir ~/tensorflow_datasets

Measures, on this machine:
1. resident (``ResidentInputs``): gather + augment + normalise inside jit, for digit debris (the default dataset) and a
   CIFAR-sized synthetic set with ``flip_crop``;
2. streaming (``StreamInputs``): grain over ``tfds`` ArrayRecord sources (digit debris as built by recbench, and a
   synthetic CIFAR-sized set written to a temp dir), with threads and with worker processes;
3. the default job (BLT on digit debris, batch 128): the jitted train step alone on a fixed batch, then the same
   steps fed by each pipeline as the trainer feeds it. waiting share = (fed time - fixed time) / fed time.
   Target for the resident path: <= 5 %.

The VM this was written on swings up to 2x between identical runs, so every timing alternates the variants over
``--rounds`` rounds and reports the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import ClassVar

import numpy as np


def _synthetic_builder(n: int):
    """A CIFAR-sized set (32x32x3 uint8, raw Tensor feature) written as ArrayRecord without TensorFlow."""
    import tensorflow_datasets as tfds

    from recbench.data.tfds_base import GeneratedBuilder

    class SyntheticCifar(GeneratedBuilder, skip_registration=True):
        """Uniform-noise CIFAR-sized images with cyclic labels: benchmark data, nothing to learn."""

        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES: ClassVar[dict] = {"1.0.0": "benchmark data"}

        def _image_shape(self):
            return (32, 32, 3)

        def _label_feature(self):
            return tfds.features.ClassLabel(num_classes=10)

        def _batches(self, split):
            count = n if split == "train" else max(n // 5, 1)
            rng = np.random.default_rng(self.SPLITS.index(split))
            yield rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), np.arange(count) % 10

    return SyntheticCifar


def stream_dataset(name, b, augment, threads, workers):
    from recbench.data.stream import StreamDataset

    train, test = b.as_data_source(split="train"), b.as_data_source(split="test")
    shape = tuple(train[0]["image"].shape)
    return StreamDataset(name, train, test, 10, shape, augment=augment, threads=threads, workers=workers)


def delivered(inputs, steps: int, batch: int) -> float:
    """Images/s of ``train_batch`` alone, blocking on each batch (first batch, compile and start-up, excluded)."""
    import jax

    jax.block_until_ready(inputs.train_batch(0))
    t = time.perf_counter()
    for k in range(1, steps + 1):
        jax.block_until_ready(inputs.train_batch(k))
    return steps * batch / (time.perf_counter() - t)


class DefaultJob:
    """The default config's model, optimizer and jitted train step, built by the trainer's own run builder."""

    def __init__(self, cfg, data_dir: str):
        from recbench.train.run import build_run

        run = build_run(cfg, data_dir=data_dir, progress=False)
        self.state, self.step = run.state, run.train_step_on_batch
        self.model_name, self.time_steps = cfg.model.name, run.time_steps

    def timed_step(self, batch) -> float:
        """Seconds for one train step fed by ``batch()`` (the pipeline call included), blocking at the end."""
        import jax

        t = time.perf_counter()
        self.state, m = self.step(self.state, *batch())
        jax.block_until_ready(m)
        return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed batches/steps per measurement and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--synthetic-n", type=int, default=10_000, help="images in the synthetic CIFAR-sized set")
    parser.add_argument("--threads", type=int, default=2, help="grain threads for the streaming pipeline")
    parser.add_argument("--workers", type=int, default=2, help="grain worker processes for the mp variant")
    parser.add_argument("--data-dir", default=None, help="tfds data dir (default: a fresh temp dir)")
    args = parser.parse_args()

    import jax
    from absl import logging as absl_logging

    import recbench  # noqa: F401  (XLA flags)
    from recbench.config import compose_train
    from recbench.data import procedural
    from recbench.data.sources import ArrayDataset, load_dataset
    from recbench.data.stream import StreamInputs

    absl_logging.set_verbosity(absl_logging.ERROR)
    tmp = tempfile.mkdtemp(prefix="bench_input_")
    data_dir = os.path.expanduser(args.data_dir or tmp)
    cfg = compose_train([])  # the default job: BLT on digit debris
    b, r = args.batch, args.rounds
    print(f"device: {jax.devices()[0].platform}:{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; "
          f"batch {b}; {args.steps} steps x {r} rounds (median)")

    debris = load_dataset(cfg.dataset, data_dir=data_dir, progress=False)
    rng = np.random.default_rng(0)
    cifar = ArrayDataset("synthetic_cifar", (rng.integers(0, 256, (50_000, 32, 32, 3), np.uint8),
                                             rng.integers(0, 10, 50_000)),
                         (rng.integers(0, 256, (1000, 32, 32, 3), np.uint8), rng.integers(0, 10, 1000)),
                         num_classes=10, augment="flip_crop")
    params = {k: cfg.dataset[k] for k in ("image_size", "num_train", "num_test", "seed")}
    debris_builder = procedural.builder("digit_debris", data_dir=data_dir, level=cfg.dataset.level, **params)
    synth = _synthetic_builder(args.synthetic_n)(data_dir=tmp)
    t = time.perf_counter()
    synth.build(progress=False)
    print(f"built synthetic CIFAR-sized ArrayRecord ({args.synthetic_n} images) in {time.perf_counter() - t:.1f} s")

    pipelines = {
        "resident digit_debris (none)": lambda: debris.pipeline(batch_size=b, seed=0),
        "resident CIFAR-sized 50k (flip_crop)": lambda: cifar.pipeline(batch_size=b, seed=0),
        f"stream digit_debris ArrayRecord ({args.threads} threads)": lambda: StreamInputs(
            stream_dataset("debris", debris_builder, "none", args.threads, 0), batch_size=b, seed=0),
        f"stream CIFAR-sized ArrayRecord flip_crop ({args.threads} threads)": lambda: StreamInputs(
            stream_dataset("synthetic", synth, "flip_crop", args.threads, 0), batch_size=b, seed=0),
        f"stream CIFAR-sized ArrayRecord flip_crop ({args.workers} processes)": lambda: StreamInputs(
            stream_dataset("synthetic", synth, "flip_crop", 1, args.workers), batch_size=b, seed=0),
    }
    rates: dict[str, list[float]] = {k: [] for k in pipelines}
    for _ in range(r):
        for name, make in pipelines.items():
            inputs = make()
            rates[name].append(delivered(inputs, args.steps, b))
            getattr(inputs, "close", lambda: None)()
    print("\n1-2. images/s delivered by the pipeline alone (blocking on each batch)")
    for name, v in rates.items():
        print(f"  {name:58s} {statistics.median(v):10,.0f} img/s   (range {min(v):,.0f}-{max(v):,.0f})")

    job = DefaultJob(cfg, data_dir)
    resident = debris.pipeline(batch_size=b, seed=0)
    streamed = StreamInputs(stream_dataset("debris", debris_builder, "none", args.threads, 0), batch_size=b, seed=0)
    fixed = resident.train_batch(0)
    feeds = {"fixed": lambda k: fixed, "resident": resident.train_batch, "stream": streamed.train_batch}
    for feed in feeds.values():  # compile, fill the stream's buffers
        job.timed_step(lambda feed=feed: feed(0))
    # Interleave the feeds step by step, so the VM's slow drifts hit all three alike; medians per step.
    times: dict[str, list[float]] = {k: [] for k in feeds}
    names = list(feeds)
    for k in range(1, args.steps * r + 1):
        for name in names[k % 3:] + names[:k % 3]:  # rotate, so no feed always follows the same one
            times[name].append(job.timed_step(lambda feed=feeds[name], k=k: feed(k)))
    streamed.close()
    base = statistics.median(times["fixed"])
    print(f"\n3. default job: {job.model_name} ({job.time_steps} time steps) on digit_debris, batch {b}; "
          f"{len(times['fixed'])} interleaved steps per feed")
    print(f"  train step on a fixed batch: {1000 * base:.1f} ms/step = {b / base:,.0f} img/s")
    alone = {"resident": rates["resident digit_debris (none)"],
             "stream": next(v for k, v in rates.items() if k.startswith("stream digit_debris"))}
    for name in ("resident", "stream"):
        fed = statistics.median(times[name])
        # Paired: each fed step against the fixed-batch step next to it, so drifts of the VM's speed cancel.
        diffs = sorted(f - x for f, x in zip(times[name], times["fixed"], strict=True))
        lo, hi = diffs[len(diffs) // 4], diffs[(3 * len(diffs)) // 4]
        input_ms, wait = 1000 * b / statistics.median(alone[name]), statistics.median(diffs)
        print(f"  fed by {name:9s} {1000 * fed:7.1f} ms/step; waiting share {100 * wait / fed:5.1f} %"
              f" (paired, IQR {100 * lo / fed:.1f} to {100 * hi / fed:.1f} %); pipeline alone {input_ms:.2f} ms/batch"
              f" = {100 * input_ms / (input_ms + 1000 * base):.2f} % of a step if nothing overlapped")


if __name__ == "__main__":
    main()
