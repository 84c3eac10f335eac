"""Two ``jax.distributed`` processes on this machine (CPU devices, gloo collectives) train a tiny config,
checkpoint, resume, and match one process on one device; process 0 alone writes the run directory; the streaming
pipeline feeds one global batch from both processes' shards."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from recbench.train.loop import train_and_evaluate

WORKER = Path(__file__).parent / "distributed_worker.py"
DEVICES_PER_PROCESS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(config: Path, workdir: Path, total_steps: int) -> list[dict]:
    """Both processes of one run (coordinator on a free local port); each one's JSON report, by process id."""
    port = _free_port()
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES_PER_PROCESS}"
    procs = []
    for pid in range(2):
        env = dict(os.environ, RECBENCH_COORDINATOR=f"localhost:{port}", RECBENCH_NUM_PROCESSES="2",
                   RECBENCH_PROCESS_ID=str(pid), XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(config), str(workdir), str(total_steps)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for p in procs:  # a hung worker dumps its stack and exits on its own (distributed_worker.HANG_S)
            results.append((p.communicate(timeout=240), p.returncode))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    failed = [f"process {i} (exit {rc}):\n{err[-2500:]}" for i, ((_, err), rc) in enumerate(results) if rc]
    assert not failed, "\n".join(failed)
    return sorted((json.loads(out.strip().splitlines()[-1]) for (out, _), _ in results), key=lambda r: r["process"])


def _events(workdir: Path) -> tuple[list[str], list[dict]]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return lines, [json.loads(x) for x in lines]


@pytest.mark.slow  # four Python processes start (two per run), each compiling the step: about a minute on 2 cores
def test_two_processes_train_resume_and_write_the_run_directory_once(tmp_path, tiny_cfg):
    cfg = tiny_cfg("trainer.total_steps=6", "trainer.log_every=1")
    config = tmp_path / "config.yaml"
    OmegaConf.save(cfg, config)
    workdir = tmp_path / "run"

    first = _launch(config, workdir, 6)
    for pid, r in enumerate(first):
        assert r["joined"] and r["process"] == pid and r["processes"] == 2
        assert r["devices"] == 2 * DEVICES_PER_PROCESS and r["local_devices"] == DEVICES_PER_PROCESS
    assert first[0]["loss_per_step"] == first[1]["loss_per_step"]  # the same replicated result on both
    for r in first:  # streamed: one shard per process, one global batch; eval chunks of 5 padded to 8 (4 devices)
        assert r["stream"] == {"train_ok": True, "eval_labels": list(range(13)), "spec": "P('data',)"}
    # One writer: process 1 opened nothing in the run directory for writing; process 0 wrote each file.
    assert first[1]["written"] == []
    assert {"config.yaml", "metrics.jsonl", "summary.json", "predictions.npz"} <= set(first[0]["written"])
    lines, events = _events(workdir)
    assert len(lines) == len(set(lines))
    assert [e["event"] for e in events] == ["start", *["train"] * 6, "eval"]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["6"]

    second = _launch(config, workdir, 10)  # the same command with more steps resumes from the checkpoint
    assert [r["resumed_from"] for r in second] == [6, 6] and second[1]["written"] == []
    lines, events = _events(workdir)
    assert len(lines) == len(set(lines))
    assert [e["event"] for e in events].count("start") == [e["event"] for e in events].count("resume") == 1
    assert [e["step"] for e in events if e["event"] == "train"] == list(range(1, 11))
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["train_steps"] == 10 and summary["resumed_from"] == 6

    # Four devices in two processes follow one device doing the same (6 steps, then resumed to 10: the cosine
    # schedule follows total_steps, so the second leg is compared with a second leg).
    train_and_evaluate(cfg, tmp_path / "single")
    cfg.trainer.total_steps = 10
    single = train_and_evaluate(cfg, tmp_path / "single")
    _, one = _events(tmp_path / "single")
    np.testing.assert_allclose([e["loss"] for e in events if e["event"] == "train"],
                               [e["loss"] for e in one if e["event"] == "train"], rtol=1e-4)
    np.testing.assert_allclose(summary["loss_per_step"], single["loss_per_step"], rtol=1e-4)
