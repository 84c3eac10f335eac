"""Evaluate a trained run again: deeper than it was trained (test-time unroll) or with connections silenced.

``evaluate_run(run_dir, steps=8, ablate=("lateral",))`` rebuilds the model from the run's resolved
``config.yaml``, restores its latest checkpoint and returns accuracy at every time step — Kietzmann et al.'s
"virtual cooling" and deep-thinking's extrapolation in one call. ``recbench-eval`` is its command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from recbench.config import ConfigError, check_int
from recbench.env import enable_compile_cache
from recbench.train.checkpoint import Checkpoints
from recbench.train.run import build_run
from recbench.train.step import TrainState, evaluate_split


def evaluate_run(run_dir: str | Path, *, steps: int | None = None, ablate: tuple[str, ...] = (),
                 data_dir: str | None = None, chunk: int = 500) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists() or not (run_dir / "checkpoints").is_dir():
        raise ConfigError(f"{run_dir} is not a recbench run directory with checkpoints (config.yaml, checkpoints/)")
    run = build_run(OmegaConf.load(run_dir / "config.yaml"), data_dir=data_dir, progress=False)
    ckpt = Checkpoints(run_dir, keep=1)
    try:
        step = ckpt.latest_step()
        if step is None:
            raise ConfigError(f"{run_dir}/checkpoints holds no checkpoint yet")
        # The optimizer state comes back because it is part of the saved tree; the same config rebuilt it.
        state = TrainState(**ckpt.restore(step, run.state.tree()))
    finally:
        ckpt.close()
    ev = evaluate_split(run.evaluate, state, run.inputs, chunk, steps, ablate=tuple(ablate))
    return {"run_dir": str(run_dir), "checkpoint_step": step, "trained_steps": run.time_steps,
            "steps": steps or run.time_steps, "ablate": list(ablate),
            "accuracy_per_step": ev["accuracy_per_step"], "loss_per_step": ev["loss_per_step"]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="recbench-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory written by recbench")
    parser.add_argument("--steps", type=int, default=None, help="time steps to unroll (default: as trained)")
    parser.add_argument("--ablate", default="", help="comma-separated connection kinds to silence: lateral,topdown")
    parser.add_argument("--data-dir", default=None, help="tfds data dir (default: the run's paths.data_dir)")
    args = parser.parse_args()
    ablate = tuple(a for a in args.ablate.split(",") if a)
    try:
        if args.steps is not None:
            check_int("--steps", args.steps)
        saved = Path(args.run_dir) / "config.yaml"  # the run's own cache folder, so its eval step loads compiled
        enable_compile_cache(OmegaConf.select(OmegaConf.load(saved), "paths.compile_cache", default="")
                             if saved.exists() else "")
        result = evaluate_run(args.run_dir, steps=args.steps, ablate=ablate, data_dir=args.data_dir)
    except (ConfigError, ValueError) as e:
        print(f"recbench: error: {e}", file=sys.stderr)
        sys.exit(2)
    name = f"eval_steps{result['steps']}" + (f"_ablate-{'-'.join(ablate)}" if ablate else "") + ".json"
    (Path(args.run_dir) / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))

