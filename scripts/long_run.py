"""Does a long run stay flat? Memory (RSS) and step time at the start and the end of one long training run.

    .venv/bin/python scripts/long_run.py --steps 5000 [--json out.json] [OVERRIDE ...]

Runs the real ``recbench`` (the default model on the default dataset unless overrides say otherwise) for
``--steps`` steps with evaluation and checkpoints only at the end, samples the process's resident memory from
``/proc/<pid>/status`` every half second, and reads the step times from ``metrics.jsonl`` (a ``train`` event every
10 steps, stamped with seconds since the run started). It prints, and writes with ``--json``: RSS and anonymous
memory (see :func:`rss_mb`) after the first 110 steps, in the last steps and every 500 steps between, the peak
RSS, and the mean step time of steps 10-110 and of the last 100 steps. The run directory is a fresh temporary
folder; docs/reliability.md §8 records the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WINDOW = 100


def rss_mb(pid: int) -> tuple[float, float] | None:
    """``(VmRSS, RssAnon)`` in MB. RssAnon (the heap: what a leak grows) is the figure to watch: VmRSS also counts
    the mapped pages of the shared libraries (jaxlib's alone are hundreds of MB), which the kernel drops and maps
    again as other processes need memory, so it moves by 100-200 MB on a busy machine with no change in the run."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def train_times(metrics: Path) -> dict[int, float]:
    """``{step: seconds since the run started}`` of the train events written so far."""
    out = {}
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "train":
                out[e["step"]] = e["time_s"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000, help="training steps (default 5000)")
    p.add_argument("--json", type=Path, help="also write the report here")
    p.add_argument("overrides", nargs="*", help="recbench overrides (default: the default job)")
    args = p.parse_args()
    if args.steps < 2 * WINDOW + 10:
        p.error(f"--steps must be at least {2 * WINDOW + 10}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [str(Path(sys.executable).parent / "recbench"), *args.overrides, f"trainer.total_steps={args.steps}",
               f"trainer.eval_every={args.steps}", f"trainer.checkpoint_every={args.steps}", "trainer.log_every=10",
               "trainer.progress=false", "logger.wandb.mode=disabled", f"hydra.run.dir={run_dir}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, tuple[float, float], int]] = []  # (wall time, (RSS, anon) MB, latest step)
        t0 = time.time()
        while proc.poll() is None:
            rss = rss_mb(proc.pid)
            steps = train_times(run_dir / "metrics.jsonl")
            last = max(steps) if steps else 0
            if rss is not None:
                samples.append((time.time() - t0, rss, last))
            time.sleep(0.5)
        err = proc.stderr.read()
        if proc.returncode != 0:
            sys.exit(f"long_run: recbench exited {proc.returncode}: {err.strip()[-500:]}")
        times = train_times(run_dir / "metrics.jsonl")
        summary = json.loads((run_dir / "summary.json").read_text())
    first = (times[10 + WINDOW] - times[10]) / WINDOW
    last = (times[args.steps] - times[args.steps - WINDOW]) / WINDOW
    start_rss = next(r for _, r, s in samples if s >= 10 + WINDOW)
    end_rss = [r for _, r, s in samples if s < args.steps][-1]  # the last sample still in training
    report = {"command": " ".join(cmd[1:-1]), "steps": args.steps, "model": summary["model"],
              "dataset": summary["dataset"], "final_accuracy": summary["final_accuracy"],
              "rss_mb_after_first_110_steps": round(start_rss[0], 1), "rss_mb_at_the_end": round(end_rss[0], 1),
              "rss_mb_peak": round(max(r[0] for _, r, _ in samples), 1),
              "anon_mb_after_first_110_steps": round(start_rss[1], 1), "anon_mb_at_the_end": round(end_rss[1], 1),
              "anon_growth_mb": round(end_rss[1] - start_rss[1], 1),
              "step_s_steps_10_to_110": round(first, 4), f"step_s_last_{WINDOW}": round(last, 4),
              "step_time_ratio_last_over_first": round(last / first, 3),
              "rss_growth_mb": round(end_rss[0] - start_rss[0], 1), "wall_time_s": summary["wall_time_s"],
              # the trajectory, (RSS, anon) at the first sample past each multiple of 500 steps: a plateau, or a leak?
              "rss_anon_mb_by_step": {k: [round(x, 1) for x in next(r for _, r, s in samples if s >= k)]
                                      for k in range(500, args.steps, 500) if any(s >= k for _, _, s in samples)}}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
