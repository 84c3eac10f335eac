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

from flax import nnx
from omegaconf import OmegaConf

from recbench.config import ConfigError
from recbench.data.sources import load_dataset
from recbench.models.registry import model_from_config
from recbench.train import batches
from recbench.train.checkpoint import Checkpoints
from recbench.train.optim import make_optimizer
from recbench.train.step import TrainState, evaluate_split, make_eval_fn


def evaluate_run(run_dir: str | Path, *, steps: int | None = None, ablate: tuple[str, ...] = (),
                 data_dir: str | None = None, chunk: int = 500) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists() or not (run_dir / "checkpoints").is_dir():
        raise ConfigError(f"{run_dir} is not a recbench run directory with checkpoints (config.yaml, checkpoints/)")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    ds = load_dataset(cfg.dataset, data_dir=data_dir or cfg.paths.data_dir, progress=False)
    model = model_from_config(cfg.model, num_classes=ds.num_classes, input_shape=ds.image_shape, seed=cfg.seed)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    ckpt = Checkpoints(run_dir, keep=1)
    step = ckpt.latest_step()
    if step is None:
        raise ConfigError(f"{run_dir}/checkpoints holds no checkpoint yet")
    # The optimizer state comes back only because it is part of the saved tree; the same config rebuilds
    # an optimizer of the same structure.
    tx, _ = make_optimizer(cfg.optim, int(cfg.trainer.total_steps))
    like = TrainState(params, rest, tx.init(params))
    state = TrainState(**ckpt.restore(step, like.tree()))
    ckpt.close()
    inputs = batches.make_inputs(ds, batch_size=int(cfg.trainer.batch_size), seed=int(cfg.seed))
    ev = evaluate_split(make_eval_fn(graphdef, ds.multilabel), state, inputs, chunk, steps, ablate=tuple(ablate))
    return {"run_dir": str(run_dir), "checkpoint_step": step, "trained_steps": model.trained_steps,
            "steps": steps or model.trained_steps, "ablate": list(ablate),
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
        if args.steps is not None and args.steps < 1:
            raise ConfigError(f"--steps must be a positive integer, got {args.steps}")
        result = evaluate_run(args.run_dir, steps=args.steps, ablate=ablate, data_dir=args.data_dir)
    except (ConfigError, ValueError) as e:
        print(f"recbench: error: {e}", file=sys.stderr)
        sys.exit(2)
    name = f"eval_steps{result['steps']}" + (f"_ablate-{'-'.join(ablate)}" if ablate else "") + ".json"
    (Path(args.run_dir) / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))

