"""One process of a multi-process training run on this machine, for tests/train/test_distributed.py.

``python distributed_worker.py CONFIG.yaml WORKDIR TOTAL_STEPS`` joins the run that ``RECBENCH_COORDINATOR``,
``RECBENCH_NUM_PROCESSES`` and ``RECBENCH_PROCESS_ID`` describe (through the same call the ``recbench`` entry point
makes), trains the saved config into ``WORKDIR`` (resuming what is there) and prints one JSON line: what this
process saw, which files directly in ``WORKDIR`` it opened for writing or renamed (an audit hook sees every
``open``, whoever calls it), and what the streaming pipeline delivered across the processes.
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` gives each process N CPU devices.
"""

import faulthandler
import json
import os
import re
import sys
from pathlib import Path

import recbench  # noqa: F401  (the process environment, as the entry points set it)
from recbench.train.parallel import initialize_distributed

HANG_S = 150
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT


def watch_writes(workdir: Path) -> list[str]:
    """Names in ``workdir`` (not below it) that this process opens for writing or renames, as it does; a file
    written under its temporary name and renamed (recbench.faults.atomic_path: ``.NAME.tmp-PID``) counts as NAME."""
    written: list[str] = []

    def final(path) -> str:
        name = Path(path).name
        atomic = re.fullmatch(r"\.(.+)\.tmp-\d+", name)
        return atomic.group(1) if atomic else name

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str | os.PathLike):
            mode, flags = args[1] or "", args[2] or 0
            if (any(c in mode for c in "wax+") or flags & WRITE_FLAGS) and Path(args[0]).parent == workdir:
                written.append(final(args[0]))
        elif event == "os.rename" and Path(args[0]).parent == workdir:
            written.append(f"rename:{final(args[0])}")

    sys.addaudithook(hook)
    return written


def stream_report() -> dict:
    """The streaming pipeline across the processes: each delivers its own shard's rows of a global batch, and an
    evaluation chunk (every process reads it whole) is split over all devices; gathered back, both are exact."""
    import numpy as np
    from jax.experimental import multihost_utils

    from recbench.data.stream import StreamDataset, StreamInputs

    rng = np.random.default_rng(0)
    source = [{"image": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "label": np.int64(i)} for i in range(40)]
    ds = StreamDataset("toy", source, source[:13], num_classes=40, image_shape=(8, 8, 3), threads=1)
    inputs = ds.pipeline(batch_size=8, seed=0)  # several processes: on the all-device mesh by itself
    shards = [StreamInputs(ds, batch_size=8, seed=0, process_index=p, process_count=2) for p in range(2)]
    train_ok = True
    for k in range(3):
        _, y = inputs.train_batch(k)
        expected = np.concatenate([s.host_batch(k)[1] for s in shards])  # process 0's rows, then process 1's
        train_ok &= np.array_equal(multihost_utils.process_allgather(y, tiled=True), expected)
    chunks = list(inputs.eval_batches(5))
    labels = np.concatenate([multihost_utils.process_allgather(y, tiled=True)[:v] for _, y, v in chunks])
    for s in (inputs, *shards):
        s.close()
    return {"train_ok": bool(train_ok), "eval_labels": labels.tolist(), "spec": str(chunks[0][0].sharding.spec)}


def main() -> None:
    config, workdir, total_steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    faulthandler.dump_traceback_later(HANG_S, exit=True)  # a hung process says where, then exits
    joined = initialize_distributed()  # before any JAX computation

    import jax
    from omegaconf import OmegaConf

    from recbench.train.loop import train_and_evaluate

    cfg = OmegaConf.load(config)
    cfg.trainer.total_steps = total_steps
    written = watch_writes(Path(workdir).absolute())
    summary = train_and_evaluate(cfg, Path(workdir).absolute())
    print(json.dumps({"joined": joined, "process": jax.process_index(), "processes": jax.process_count(),
                      "devices": jax.device_count(), "local_devices": jax.local_device_count(),
                      "resumed_from": summary["resumed_from"], "loss_per_step": summary["loss_per_step"],
                      "written": sorted(set(written)), "stream": stream_report()}), flush=True)


if __name__ == "__main__":
    main()
