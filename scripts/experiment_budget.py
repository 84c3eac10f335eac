"""How long an experiment's whole sweep takes here: a short pilot of every distinct run, projected to the full size.

    .venv/bin/python scripts/experiment_budget.py spoerer2017 [--scale cpu] [--pilot-steps 40] [--json out.json]

Every point of the experiment's declared sweep (``hydra.sweeper.params``) that differs in more than its seed is
trained for ``--pilot-steps`` steps into a temporary folder (data generated once, in ``paths.data_dir``). Its
wall time and its steady-state throughput project the full run::

    projected = pilot wall time + (total_steps - pilot_steps) x batch / (images per s)
                + (evaluations - 1) x test images / (3 x images per s)

(the pilot's own wall time holds start-up, data, compilation and one final evaluation; a forward pass costs about
a third of a training step).
summed over the sweep (seeds multiply it). It prints one line per distinct run and the total in CPU-minutes of
this machine (two cores for the runs Hydra's basic launcher runs one after another).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from recbench.config import compose_train, sweep_params
from recbench.env import prefer_xla_defaults
from recbench.train.loop import train_and_evaluate


def sweep_points(experiment: str, scale: str) -> tuple[list[list[str]], int]:
    """The sweep's distinct runs apart from the seed, and how many seeds each has."""
    params = sweep_params([f"experiment={experiment}", f"scale={scale}"])
    parser = OverridesParser.create()
    axes = []
    seeds = 1
    for key, value in params.items():
        parsed = parser.parse_overrides([f"{key}={value}"])[0]
        values = list(parsed.sweep_string_iterator()) if parsed.is_sweep_override() else [str(value)]
        if key == "seed":
            seeds = len(values)
        else:
            axes.append([f"{key}={v}" for v in values])
    return [list(p) for p in itertools.product(*axes)], seeds


def pilot(experiment: str, scale: str, point: list[str], steps: int, root: Path) -> dict:
    cfg = compose_train([f"experiment={experiment}", f"scale={scale}", *point])
    total, batch = int(cfg.trainer.total_steps), int(cfg.trainer.batch_size)
    evals = max(total // int(cfg.trainer.eval_every), 1)
    cfg.trainer.total_steps = steps
    cfg.trainer.eval_every = cfg.trainer.checkpoint_every = steps
    cfg.trainer.log_every = max(steps // 4, 1)
    cfg.trainer.progress = False
    cfg.logger.console = False
    cfg.logger.wandb.mode = "disabled"
    t0 = time.time()
    s = train_and_evaluate(cfg, root / "_".join(point).replace("/", "-"))
    wall = time.time() - t0
    ips = s["images_per_s"] or batch * steps / wall
    # one evaluation of the test set: a forward pass costs about a third of a training step per image
    eval_s = int(cfg.dataset.get("num_test", 2000)) / (3 * ips)
    projected = wall + (total - steps) * batch / ips + (evals - 1) * eval_s
    return {"run": " ".join(point), "pilot_wall_s": round(wall, 1), "images_per_s": round(ips, 1),
            "total_steps": total, "batch_size": batch, "projected_s": round(projected, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment")
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--pilot-steps", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    points, seeds = sweep_points(args.experiment, args.scale)
    # the XLA:CPU flags the trainer would choose for this sweep's models, before anything starts JAX's backend
    prefer_xla_defaults({str(compose_train([f"experiment={args.experiment}", f"scale={args.scale}", *p]).model.family)
                         for p in points})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for point in points:
            row = pilot(args.experiment, args.scale, point, args.pilot_steps, Path(tmp))
            rows.append(row)
            print(f"{row['run']:<60} {row['images_per_s']:>8.1f} img/s  projected {row['projected_s'] / 60:6.1f} min",
                  flush=True)
    total_min = seeds * sum(r["projected_s"] for r in rows) / 60
    print(f"{args.experiment} ({args.scale}): {len(points)} runs x {seeds} seeds, projected {total_min:.0f} minutes")
    if args.json:
        args.json.write_text(json.dumps({"experiment": args.experiment, "scale": args.scale, "seeds": seeds,
                                         "runs": rows, "projected_minutes": round(total_min, 1)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
