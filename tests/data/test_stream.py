"""The streaming pipeline: determinism in (seed, step), exact restarts, one shard per process, eval coverage, the
host-side recipes, and a tiny end-to-end run of the real trainer on a streamed stock set under tfds' mock data."""

import json

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from recbench.config import ConfigError
from recbench.data import augment, stock
from recbench.data.pipeline import Dataset, InputPipeline
from recbench.data.resident import ResidentInputs
from recbench.data.stream import StreamDataset, StreamInputs


def _source(n: int, size: int = 8, seed: int = 0) -> list[dict]:
    """Example i carries i in its label and in its top-left pixel, so batches can be traced back."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        img[0, 0, 0] = i % 256
        out.append({"image": img, "label": np.int64(i)})
    return out


def _dataset(n=40, eval_n=13, recipe="none", **kw) -> StreamDataset:
    return StreamDataset("toy", _source(n), _source(eval_n, seed=1), num_classes=max(n, eval_n),
                         image_shape=(8, 8, 3), augment=recipe, threads=2, **kw)


@pytest.mark.parametrize("recipe", ["none", "flip_crop"])
def test_batch_k_is_a_pure_function_of_seed_and_step(recipe):
    a = StreamInputs(_dataset(recipe=recipe), batch_size=8, seed=3)
    b = StreamInputs(_dataset(recipe=recipe), batch_size=8, seed=3)
    other = StreamInputs(_dataset(recipe=recipe), batch_size=8, seed=4)
    for k in (0, 7, 12):  # 12 lies in the third epoch (5 steps per epoch)
        xa, ya = a.host_batch(k)
        xb, yb = b.host_batch(k)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a.host_batch(0)[1], other.host_batch(0)[1])


def test_sequential_stream_equals_random_access_and_a_restart_continues_exactly():
    ds = _dataset(recipe="flip_crop")
    straight = StreamInputs(ds, batch_size=8, seed=0)
    ys = [np.asarray(straight.train_batch(k)[1]) for k in range(9)]
    for k in (0, 4, 8):
        np.testing.assert_array_equal(ys[k], straight.host_batch(k)[1])
        x = np.asarray(straight.train_batch(k)[0])  # random access (a restart) on the same object
        host_x = straight.host_batch(k)[0].astype(np.float32) / 255.0
        np.testing.assert_allclose(x, (host_x - np.asarray(straight._mean)) / np.asarray(straight._std), atol=1e-5)
    resumed = StreamInputs(ds, batch_size=8, seed=0)  # a fresh process resuming at step 5
    for k in range(5, 9):
        np.testing.assert_array_equal(np.asarray(resumed.train_batch(k)[1]), ys[k])


def test_worker_processes_deliver_the_same_batches():
    """grain worker processes (spawned) take every n-th batch; the interleaved stream must keep batch k as batch k."""
    inputs = StreamInputs(_dataset(recipe="flip_crop", workers=2), batch_size=8, seed=0)
    try:
        for k in range(4):
            np.testing.assert_array_equal(np.asarray(inputs.train_batch(k)[1]), inputs.host_batch(k)[1])
    finally:
        inputs.close()


def test_every_example_once_per_epoch_and_epochs_reshuffle():
    inputs = StreamInputs(_dataset(n=40), batch_size=8, seed=0)
    assert inputs.steps_per_epoch == 5
    epoch0 = np.concatenate([inputs.host_batch(k)[1] for k in range(5)])
    epoch1 = np.concatenate([inputs.host_batch(k)[1] for k in range(5, 10)])
    assert sorted(epoch0) == sorted(epoch1) == list(range(40))
    assert not np.array_equal(epoch0, epoch1)


def test_one_shard_per_process_disjoint_and_complete():
    ds = _dataset(n=41)  # 41 = 2 * 20 + 1: the odd example is dropped so both processes keep step
    shards = [StreamInputs(ds, batch_size=8, seed=0, process_index=p, process_count=2) for p in (0, 1)]
    seen = [np.concatenate([s.host_batch(k)[1] for k in range(s.steps_per_epoch)]) for s in shards]
    assert [s.local_batch for s in shards] == [4, 4] and shards[0].steps_per_epoch == 5
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(np.concatenate(seen)) == list(range(40))
    assert set(seen[0]) == set(range(0, 40, 2))


def test_batch_size_must_split_over_processes():
    with pytest.raises(ConfigError, match="divide evenly over 3 processes"):
        StreamInputs(_dataset(), batch_size=8, seed=0, process_index=0, process_count=3)
    with pytest.raises(ConfigError, match="exceeds the 40 training images"):
        StreamInputs(_dataset(), batch_size=64, seed=0)


def test_eval_batches_cover_the_split_in_order_padded_with_real_examples():
    ds = _dataset(eval_n=13)
    inputs = StreamInputs(ds, batch_size=8, seed=0)
    chunks = list(inputs.eval_batches(5))
    assert [v for _, _, v in chunks] == [5, 5, 3] and inputs.eval_size == 13
    labels = np.concatenate([np.asarray(y)[:v] for _, y, v in chunks])
    np.testing.assert_array_equal(labels, np.arange(13))
    assert np.asarray(chunks[-1][1]).tolist() == [10, 11, 12, 12, 12]
    assert ds.recorded_eval_labels is not None  # recorded by the pass: predictions.npz reads no extra source
    np.testing.assert_array_equal(inputs.eval_labels(), np.arange(13))


def test_each_dataset_serves_its_own_pipeline_through_one_interface():
    from recbench.data.sources import ArrayDataset

    arrays = ArrayDataset("a", (np.zeros((16, 8, 8, 1), np.uint8), np.zeros(16, np.int64)),
                          (np.zeros((4, 8, 8, 1), np.uint8), np.arange(4)), num_classes=2)
    for ds, kind in ((arrays, ResidentInputs), (_dataset(), StreamInputs)):
        assert isinstance(ds, Dataset)
        inputs = ds.pipeline(batch_size=4, seed=0)
        assert isinstance(inputs, kind) and isinstance(inputs, InputPipeline)
        assert inputs.num_train == ds.num_train and inputs.steps_per_epoch == ds.num_train // 4
        x, y = inputs.train_batch(0)
        assert x.shape == (4, *ds.image_shape) and x.dtype == np.float32 and len(y) == 4
        assert len(inputs.eval_labels()) == inputs.eval_size
    np.testing.assert_array_equal(arrays.pipeline(batch_size=4, seed=0).eval_labels(), np.arange(4))
    with pytest.raises(ConfigError, match="trainer.batch_size=32 exceeds the 16 training images"):
        arrays.pipeline(batch_size=32, seed=0)


def test_imagenet_recipe_shapes_and_eval_view_is_deterministic():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)
    crops = {augment.random_resized_crop(wide, 24, np.random.default_rng(s)).tobytes() for s in range(5)}
    assert len(crops) > 1
    assert augment.random_resized_crop(wide, 24, rng).shape == (24, 24, 3)
    train = augment.TrainTransform("imagenet", 24)({"image": wide, "label": 3}, rng)
    assert train[0].shape == (24, 24, 3) and train[1] == 3
    view = augment.EvalTransform("imagenet", 24)
    a, b = view({"image": wide, "label": 1})[0], view({"image": wide, "label": 1})[0]
    assert a.shape == (24, 24, 3) and np.array_equal(a, b)
    gray = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
    assert augment.resize(gray, 32, 32).shape == (32, 32, 1)


def test_flip_crop_keeps_content_shifted_or_mirrored():
    img = np.arange(8 * 8 * 1, dtype=np.uint8).reshape(8, 8, 1) + 1
    out = augment.pad_crop_flip(img, np.random.default_rng(5))
    assert out.shape == img.shape
    inner = out[out > 0]
    assert set(inner.tolist()) <= set(img.ravel().tolist())  # nothing invented, only zeros padded in


def test_streamed_stock_set_trains_end_to_end_under_mock_data(tmp_path, tiny_cfg):
    """imagenette streams through grain from tfds.data_source (mocked from the committed metadata, no TF)."""
    from recbench.train.loop import train_and_evaluate

    cfg = tiny_cfg("dataset=imagenette", "dataset.image_size=16", "dataset.threads=2", "model.channels=[4,8]",
                   "model.steps=1", "trainer.batch_size=8", "trainer.total_steps=3", "trainer.eval_batch_size=16",
                   "trainer.log_every=1")
    cfg.paths.data_dir = str(tmp_path / "tfds")  # ignored by mock_data; nothing is written there
    with tfds.testing.mock_data(num_examples=24, data_dir=str(stock.METADATA_DIR),
                                policy=tfds.testing.MockPolicy.USE_FILES):
        summary = train_and_evaluate(cfg, tmp_path / "run")
    assert summary["dataset"] == "imagenette" and summary["train_steps"] == 3
    assert 0.0 <= summary["final_accuracy"] <= 1.0 and len(summary["accuracy_per_step"]) == 1
    preds = np.load(tmp_path / "run" / "predictions.npz")
    assert preds["labels"].shape == (24,) and preds["logits"].shape == (1, 24, 10)
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2, 3]
    assert not (tmp_path / "tfds").exists()


def test_a_mesh_is_only_used_with_several_processes_or_when_the_trainer_gives_one():
    inputs = StreamInputs(_dataset(), batch_size=8, seed=0)
    assert inputs.process_count == jax.process_count() == 1 and inputs._parallel is None
