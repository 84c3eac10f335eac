"""Data parallelism on 8 simulated CPU devices, for tests/train/test_parallel.py (XLA reads the device count once,
when JAX starts, so this runs in a process of its own).

``python mesh_probe.py CONFIG.yaml WORKDIR`` prints one JSON object: per ``trainer.mesh`` (1 and 8) the loss
trajectory of a few train steps, how the state and a batch are laid out, how often the step compiled and the
padded evaluation; a checkpoint saved from one device restored onto eight; the streaming pipeline's batches on the
mesh; and the one-line errors for a batch or mesh that does not fit.
"""

import json
import os
import sys
from pathlib import Path

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from recbench.config import ConfigError, TrainerConfig  # noqa: E402
from recbench.train.checkpoint import Checkpoints  # noqa: E402
from recbench.train.run import build_run, validate_trainer  # noqa: E402
from recbench.train.step import TrainState, evaluate_split  # noqa: E402

STEPS = 4


def train(cfg, mesh: int) -> dict:
    cfg.trainer.mesh = mesh
    run = build_run(cfg, progress=False)
    state, losses = run.state, []
    for k in range(STEPS):
        state, metrics = run.train_step(state, run.inputs.train_args(k), k)
        losses.append(float(metrics["loss"]))
    x, _ = run.inputs.train_batch(0)
    ev = evaluate_split(run.evaluate, state, run.inputs, 100, None)  # 100: not a multiple of 8, padded to 104
    leaves = jax.tree.leaves(state.tree())
    return {"run": run, "state": state, "losses": losses, "compiles": run.train_step._cache_size(),
            "state_replicated": all(a.sharding.is_fully_replicated and len(a.sharding.device_set) == mesh
                                    for a in leaves),
            "batch_spec": str(x.sharding.spec), "batch_shards": sorted({s.data.shape[0] for s in x.addressable_shards}),
            "eval_accuracy": ev["accuracy_per_step"], "eval_count": int(ev["correct"].shape[1])}


def error(**trainer) -> str:
    try:
        validate_trainer(TrainerConfig(**trainer))
    except ConfigError as e:
        return str(e)
    return ""


def stream_batches() -> dict:
    from recbench.data.stream import StreamDataset
    from recbench.train.parallel import make_parallel

    rng = np.random.default_rng(0)
    source = [{"image": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "label": np.int64(i)} for i in range(40)]
    ds = StreamDataset("toy", source, source[:13], num_classes=40, image_shape=(8, 8, 3), threads=1)
    plain, sharded = ds.pipeline(batch_size=8, seed=0), ds.pipeline(batch_size=8, seed=0)
    sharded.shard(make_parallel(8))
    same = all(np.array_equal(np.asarray(plain.train_batch(k)[0]), np.asarray(sharded.train_batch(k)[0]))
               for k in range(3))
    chunks = list(sharded.eval_batches(5))  # chunks of 5 asked: 8 delivered (one row per device), 13 = 8 + 5 real
    out = {"same": same, "spec": str(sharded.train_batch(3)[0].sharding.spec),
           "eval_rows": [int(x.shape[0]) for x, _, _ in chunks], "eval_valid": [v for _, _, v in chunks],
           "eval_labels": np.concatenate([np.asarray(y)[:v] for _, y, v in chunks]).tolist()}
    plain.close()
    sharded.close()
    return out


def main() -> None:
    cfg, workdir = OmegaConf.load(sys.argv[1]), sys.argv[2]
    one, eight = train(cfg.copy(), 1), train(cfg.copy(), 8)
    ckpt = Checkpoints(Path(workdir), keep=1)
    ckpt.save(STEPS, one["state"].tree())
    restored = TrainState(**ckpt.restore(STEPS, eight["run"].state.tree()))
    ckpt.close()
    restored_leaves = jax.tree.leaves(restored.tree())
    out = {
        "devices": jax.device_count(),
        **{f"{k}_{n}": r[k] for n, r in ((1, one), (8, eight))
           for k in ("losses", "compiles", "state_replicated", "batch_spec", "batch_shards", "eval_accuracy",
                     "eval_count")},
        "restored_replicated": all(a.sharding.is_fully_replicated and len(a.sharding.device_set) == 8
                                   for a in restored_leaves),
        "restored_equal": all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(one["state"].tree()), restored_leaves, strict=True)),
        "stream": stream_batches(),
        "errors": {"batch": error(batch_size=30, mesh=0), "batch_mesh": error(batch_size=32, mesh=6),
                   "mesh_high": error(mesh=9), "mesh_negative": error(mesh=-1), "ok": error(batch_size=30, mesh=6)},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
