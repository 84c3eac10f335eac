"""Fault tests on real processes (docs/reliability.md): ``kill -9`` at every stage of a run, preemption signals,
divergence, a damaged checkpoint, two writers on one run directory, a sweep with a failing job.

Every run is the real ``recbench`` console script on the tiny config; a killed or preempted run is rerun with the
same command and must end with exactly the metrics (and per-image predictions) of a run never interrupted.
"""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from recbench.faults import EXIT_DIVERGED, EXIT_PREEMPTED, SWEEP_SUMMARY, RunLock

RECBENCH = Path(sys.executable).parent / "recbench"
# 12 steps, checkpoints at 4, 8, 12, an evaluation at step 6; 2048 training images make two chunks to generate.
STEPS = ("trainer.total_steps=12", "trainer.checkpoint_every=4", "trainer.eval_every=6", "trainer.log_every=2",
         "trainer.keep_checkpoints=3", "dataset.num_train=2048", "paths.compile_cache=")


def recbench(run_dir: Path, data_dir: Path, overrides, *extra, env=None, timeout=300, wait=True):
    """The real command line, its run directory given; returns the finished process (or the running one)."""
    args = [str(RECBENCH), *overrides, *STEPS, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", *extra]
    full_env = {**os.environ, **(env or {})}
    if not wait:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=full_env)


def result(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    preds = np.load(run_dir / "predictions.npz")
    return {"accuracy_per_step": summary["accuracy_per_step"], "loss_per_step": summary["loss_per_step"],
            "correct": preds["correct"].tolist(), "logits": preds["logits"].tolist(),
            "train_steps": summary["train_steps"]}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, tiny_overrides):
    """One run never interrupted: what every interrupted-and-resumed run must end with."""
    root = tmp_path_factory.mktemp("baseline")
    done = recbench(root / "run", root / "data", tiny_overrides)
    assert done.returncode == 0, done.stderr[-2000:]
    return result(root / "run")


KILLS = {  # point -> the step the rerun resumes from
    "data:1": 0,  # generating the training split (the second of its two chunks)
    "compile": 0,  # 0.5 s into the first step, which is compiling
    "train:7": 4,  # after step 7: the step-4 checkpoint is the latest
    "checkpoint": 0,  # while the step-4 checkpoint is being written: its temporary folder holds a file
    "eval:1": 4,  # the second batch of the step-6 evaluation
}


def test_kill_9_at_any_point_then_rerun_ends_exactly_like_an_uninterrupted_run(tmp_path, baseline,
                                                                                tiny_overrides):
    def kill_and_resume(point: str) -> tuple[str, int, list[str], int, dict]:
        run_dir, data_dir = tmp_path / point.replace(":", "_"), tmp_path / f"data_{point.replace(':', '_')}"
        killed = recbench(run_dir, data_dir, tiny_overrides, env={"RECBENCH_KILL_AT": point})
        left = sorted(p.name for p in (run_dir / "checkpoints").iterdir()) if (run_dir / "checkpoints").exists() else []
        rerun = recbench(run_dir, data_dir, tiny_overrides)
        assert rerun.returncode == 0, f"{point}: {rerun.stderr[-2000:]}"
        resumed_from = json.loads((run_dir / "summary.json").read_text())["resumed_from"]
        return point, killed.returncode, left, resumed_from, result(run_dir)

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(kill_and_resume, KILLS))
    for point, killed_rc, left, resumed_from, res in outcomes:
        assert killed_rc == -signal.SIGKILL, f"{point}: the fault hook did not fire (exit {killed_rc})"
        assert resumed_from == KILLS[point], point
        assert res == baseline, f"{point}: the resumed run's metrics differ from the uninterrupted run's"
        if point == "checkpoint":
            assert left == ["4.orbax-checkpoint-tmp"], left  # killed half-way: nothing but the temporary folder


@pytest.mark.parametrize("sig", ["TERM", "USR1"])
def test_a_preemption_signal_saves_the_current_step_and_exits_75(tmp_path, baseline, tiny_overrides, sig):
    run_dir, data = tmp_path / "run", tmp_path / "data"
    first = recbench(run_dir, data, tiny_overrides, env={"RECBENCH_KILL_AT": f"train:6:{sig}"})
    assert first.returncode == EXIT_PREEMPTED, first.stderr[-2000:]
    assert f"SIG{sig} at step 6: checkpoint saved in {run_dir / 'checkpoints'}" in first.stderr
    assert "Traceback" not in first.stderr
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == [4, 6]
    assert json.loads((run_dir / "status.json").read_text())["reason"] == "preempted"
    second = recbench(run_dir, data, tiny_overrides)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["resumed_from"] == 6
    assert result(run_dir) == baseline


def test_a_signal_from_outside_stops_a_long_run_promptly(tmp_path, tiny_overrides):
    run_dir = tmp_path / "run"
    proc = recbench(run_dir, tmp_path / "data", tiny_overrides, "trainer.total_steps=100000",
                    "trainer.checkpoint_every=100000", wait=False)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and '"event": "train"' in metrics.read_text()):
        time.sleep(0.2)
    sent = time.time()
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED and time.time() - sent < 30, err[-2000:]
    step = int(err.split("SIGUSR1 at step ")[1].split(":")[0])
    assert step > 0 and (run_dir / "checkpoints" / str(step)).is_dir()


def test_the_launchers_own_handler_is_called_after_the_checkpoint(tmp_path, tiny_overrides):
    """submitit's SIGUSR2 handler requeues the job: ours saves first, then hands the signal on."""
    run_dir, marker = tmp_path / "run", tmp_path / "requeued"
    args = [*tiny_overrides, *STEPS, f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run_dir}"]
    script = (
        "import signal, sys\n"
        "def requeue(signum, frame):\n"
        f"    open({str(marker)!r}, 'w').write(str(signum)); sys.exit(42)\n"
        "signal.signal(signal.SIGUSR2, requeue)\n"
        f"sys.argv = ['recbench', *{args!r}]\n"
        "from recbench.cli import train_main\n"
        "train_main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RECBENCH_KILL_AT": "train:5:USR2"})
    assert done.returncode == 42, done.stderr[-2000:]
    assert marker.read_text() == str(int(signal.SIGUSR2))
    assert (run_dir / "checkpoints" / "5").is_dir()


def test_divergence_stops_at_the_step_with_exit_3_and_keeps_the_last_good_checkpoint(tmp_path,
                                                                                     tiny_overrides):
    run_dir = tmp_path / "run"
    done = recbench(run_dir, tmp_path / "data", tiny_overrides, "optim=sgd", "optim.lr=1e30",
                    "trainer.checkpoint_every=1")
    assert done.returncode == EXIT_DIVERGED, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    step = int(lines[0].split("step ")[1].split(":")[0])
    assert "is nan" in lines[0] or "is inf" in lines[0]
    assert f"last good checkpoint (step {step - 1})" in lines[0]
    saved = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved[-1] == step - 1  # nothing of the diverged step was saved
    assert not (run_dir / "summary.json").exists()
    assert json.loads((run_dir / "status.json").read_text())["reason"] == "diverged"


def test_skip_mode_skips_non_finite_steps_but_stops_when_every_step_is(tmp_path, tiny_overrides):
    done = recbench(tmp_path / "run", tmp_path / "data", tiny_overrides, "optim=sgd", "optim.lr=1e30",
                    "trainer.on_nonfinite=skip", "trainer.total_steps=80", "trainer.checkpoint_every=100")
    assert done.returncode == EXIT_DIVERGED, done.stderr[-2000:]
    assert "50 steps in a row were non-finite and skipped" in done.stderr


def test_a_damaged_latest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, baseline,
                                                                           tiny_overrides):
    run_dir, data = tmp_path / "run", tmp_path / "data"
    first = recbench(run_dir, data, tiny_overrides, env={"RECBENCH_KILL_AT": "train:10"})
    assert first.returncode == -signal.SIGKILL
    for f in (run_dir / "checkpoints" / "8").rglob("*"):
        if f.is_file() and f.stat().st_size > 64:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # every sizeable file cut in half
    rerun = recbench(run_dir, data, tiny_overrides)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    damaged = [line for line in rerun.stderr.splitlines() if "is damaged" in line]
    assert len(damaged) == 1 and f"checkpoint {run_dir / 'checkpoints' / '8'} is damaged" in damaged[0]
    assert json.loads((run_dir / "summary.json").read_text())["resumed_from"] == 4
    assert any((run_dir / "damaged_checkpoints").iterdir())
    assert result(run_dir) == baseline


def test_a_second_writer_on_a_run_directory_exits_naming_the_first(tmp_path, tiny_overrides):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    held = RunLock(run_dir)  # this test process is "the other run"
    try:
        done = recbench(run_dir, tmp_path / "data", tiny_overrides)
    finally:
        held.release()
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"recbench: error: {run_dir} is in use by another run (pid {os.getpid()} on {os.uname().nodename} since "
        f"{json.loads((run_dir / '.lock').read_text())['since']}: {' '.join(sys.argv)}); wait for it to end, or "
        "choose another hydra.run.dir")
    # the second writer wrote nothing of the run's (Hydra's own .hydra/ and cli.log are written before any app code)
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", ".lock", "cli.log"]


def test_a_failing_job_of_a_sweep_is_recorded_and_the_others_finish(tmp_path, tiny_overrides):
    sweep = tmp_path / "sweep"
    args = [str(RECBENCH), "-m", *tiny_overrides, *STEPS, f"paths.data_dir={tmp_path / 'data'}",
            "optim=sgd", "optim.lr=0.05,1e30,0.02", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"recbench: error: 1 of 3 jobs failed; the others finished; see {sweep / SWEEP_SUMMARY}")
    jobs = json.loads((sweep / SWEEP_SUMMARY).read_text())
    assert sorted(v["status"] for v in jobs.values()) == ["done", "done", "failed"]
    (failed,) = [k for k, v in jobs.items() if v["status"] == "failed"]
    assert jobs[failed]["reason"] == "diverged" and "1e+30" in failed
    for name, job in jobs.items():
        assert json.loads((sweep / name / "status.json").read_text())["status"] == job["status"]
        assert (sweep / name / "summary.json").exists() == (job["status"] == "done")
