"""Evaluate a trained run again: deeper than it was trained, with connections silenced, or on another variant.

``evaluate_run(run_dir, steps=8, ablate=("lateral",), dataset={"contour_length": 14})`` rebuilds the model from the
run's resolved ``config.yaml``, restores its latest checkpoint and returns accuracy at every time step 1..T' (the
model reads out at every step, so one evaluation at T' gives the whole accuracy-vs-iterations curve) — Kietzmann et
al.'s "virtual cooling", deep-thinking's extrapolation to harder problems (Schwarzschild et al. 2021) in one call.

``dataset`` overrides keys of the run's ``dataset`` node (``level=heavy``, ``contour_length=14``) to test on
another variant of the trained dataset. A variant whose image shape or class count differs from the trained one
is refused (the trained weights would not fit), and so is another dataset (``name``).

``recbench-eval`` is its command line (``--steps``, ``--ablate``, ``--dataset KEY=VALUE`` repeatable). It saves
the result beside the run as ``<stem>.json`` and the per-image predictions of that evaluation as ``<stem>.npz``
(``correct [T', N]``, ``labels``, and ``logits`` float16 when at most :data:`MAX_SAVED_LOGITS` values), where
``<stem>`` encodes what was evaluated (:func:`eval_stem`): ``eval_steps8``, ``eval_steps8_ablate-lateral``,
``eval_steps32_dataset-contour_length=14``. :mod:`recbench.analysis.depth` reads these files back.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from recbench.config import ArgumentParser, ConfigError, check_folder, check_int, choice
from recbench.data.sources import dataset_meta
from recbench.env import enable_compile_cache, prefer_xla_defaults
from recbench.models.engine import ABLATABLE
from recbench.train.checkpoint import Checkpoints
from recbench.train.run import build_run
from recbench.train.step import TrainState, evaluate_split

MAX_SAVED_LOGITS = 5_000_000  # logits saved with an evaluation's predictions only up to this many values (T'*N*C)


def parse_dataset_overrides(items: Sequence[str] | Mapping[str, object] | None) -> dict:
    """``["contour_length=14", "level=heavy"]`` (or a mapping) -> ``{"contour_length": 14, "level": "heavy"}``;
    values are read as YAML scalars (``14`` an int, ``heavy`` a string)."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--dataset takes KEY=VALUE (e.g. contour_length=14), got {item!r}")
        out[key.strip().removeprefix("dataset.")] = yaml.safe_load(value)
    return out


def eval_stem(steps: int, ablate: Sequence[str] = (), dataset: Mapping[str, object] | None = None) -> str:
    """The file stem an evaluation is saved under: steps, then ablated connections, then dataset overrides."""
    stem = f"eval_steps{steps}" + (f"_ablate-{'-'.join(ablate)}" if ablate else "")
    if dataset:
        stem += "_dataset-" + ",".join(f"{k}={v}" for k, v in sorted(dataset.items()))
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", stem)


RUN_SECTIONS = ("model", "dataset", "optim", "trainer", "paths")


def read_run_config(run_dir: str | Path):
    """A run directory's resolved ``config.yaml``; one-line :class:`ConfigError` where the folder is not a run."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoints").is_dir():
        raise ConfigError(f"{run_dir} is not a recbench run directory with checkpoints (config.yaml, checkpoints/)")
    try:
        cfg = OmegaConf.load(run_dir / "config.yaml")
    except Exception as e:  # yaml's scanner and parser errors
        raise ConfigError(f"{run_dir}/config.yaml cannot be read: {' '.join(str(e).split())[:200]}") from None
    missing = [k for k in RUN_SECTIONS if not isinstance(cfg, DictConfig) or k not in cfg]
    if missing:
        raise ConfigError(f"{run_dir}/config.yaml is not a recbench run config (it has no {', '.join(missing)})")
    return cfg


def _dataset_variant(cfg, overrides: dict) -> None:
    """Apply dataset overrides to a run's config in place; one-line ConfigError for a key the dataset lacks, another
    dataset, or a variant the trained weights do not fit."""
    if not overrides:
        return
    trained = OmegaConf.to_container(cfg.dataset, resolve=True)
    unknown = sorted(set(overrides) - set(trained))
    if unknown:
        raise ConfigError(f"--dataset {unknown[0]}: {trained['name']} has no such key; valid keys: "
                          f"{', '.join(k for k in trained if k != 'name')}")
    if "name" in overrides and overrides["name"] != trained["name"]:
        raise ConfigError(f"--dataset name={overrides['name']}: evaluate on a variant of the trained dataset "
                          f"({trained['name']}), not another dataset")
    before = dataset_meta(trained)
    after = dataset_meta(trained | overrides)
    if after != before:
        raise ConfigError(f"--dataset {','.join(f'{k}={v}' for k, v in overrides.items())} gives images {after[0]} "
                          f"with {after[1]} classes; the run was trained on {before[0]} with {before[1]} classes")
    with open_dict(cfg):
        for k, v in overrides.items():
            cfg.dataset[k] = v


def evaluate_run(run_dir: str | Path, *, steps: int | None = None, ablate: tuple[str, ...] = (),
                 dataset: Sequence[str] | Mapping[str, object] | None = None, data_dir: str | None = None,
                 chunk: int = 500, save: bool = False) -> dict:
    """Accuracy and loss at every step of a trained run's latest checkpoint, unrolled ``steps`` (default: as
    trained), with ``ablate`` silenced, on the run's test set or the ``dataset`` variant. ``save`` writes the
    result (``<stem>.json``) and its per-image predictions (``<stem>.npz``) into the run directory."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    overrides = parse_dataset_overrides(dataset)
    for kind in ablate:
        choice(kind, "--ablate", ABLATABLE)
    _dataset_variant(cfg, overrides)
    run = build_run(cfg, data_dir=data_dir, progress=False)
    ckpt = Checkpoints(run_dir, keep=1)
    try:
        step = ckpt.latest_step()
        if step is None:
            raise ConfigError(f"{run_dir}/checkpoints holds no checkpoint yet")
        # The optimizer state comes back because it is part of the saved tree; the same config rebuilt it.
        state = TrainState(**ckpt.restore(step, run.state.tree()))
    finally:
        ckpt.close()
    steps = steps or run.time_steps
    keep_logits = steps * run.inputs.eval_size * run.dataset.num_classes <= MAX_SAVED_LOGITS
    ev = evaluate_split(run.evaluate, state, run.inputs, chunk, steps, keep_logits=save and keep_logits,
                        ablate=tuple(ablate))
    stem = eval_stem(steps, ablate, overrides)
    result = {"run_dir": str(run_dir), "checkpoint_step": step, "trained_steps": run.time_steps,
              "steps": steps, "ablate": list(ablate), "dataset": run.dataset.name, "dataset_overrides": overrides,
              "dataset_config": OmegaConf.to_container(cfg.dataset, resolve=True),
              "accuracy_per_step": ev["accuracy_per_step"], "loss_per_step": ev["loss_per_step"],
              "predictions": f"{stem}.npz"}
    if save:
        extra = {"logits": ev["logits"].astype(np.float16)} if "logits" in ev else {}
        np.savez_compressed(run_dir / f"{stem}.npz", correct=ev["correct"], labels=run.inputs.eval_labels(), **extra)
        (run_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = ArgumentParser(prog="recbench-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run directory written by recbench")
    parser.add_argument("--steps", type=int, default=None, help="time steps to unroll (default: as trained)")
    parser.add_argument("--ablate", default="", help="comma-separated connection kinds to silence: lateral,topdown")
    parser.add_argument("--dataset", action="append", default=[], metavar="KEY=VALUE",
                        help="evaluate on a variant of the run's dataset (repeatable): --dataset contour_length=14")
    parser.add_argument("--data-dir", default=None, help="tfds data dir (default: the run's paths.data_dir)")
    args = parser.parse_args()
    ablate = tuple(a for a in args.ablate.split(",") if a)
    try:
        if args.steps is not None:
            check_int("--steps", args.steps)
        if args.data_dir is not None:
            check_folder("--data-dir", args.data_dir)
        run_cfg = read_run_config(args.run_dir)
        prefer_xla_defaults({str(OmegaConf.select(run_cfg, "model.family"))})  # before JAX's backend starts
        # The run's own cache folder, so that its eval step loads compiled.
        enable_compile_cache(OmegaConf.select(run_cfg, "paths.compile_cache", default=""))
        result = evaluate_run(args.run_dir, steps=args.steps, ablate=ablate, dataset=args.dataset,
                              data_dir=args.data_dir, save=True)
    except (ConfigError, ValueError) as e:
        print(f"recbench: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result))



if __name__ == "__main__":
    main()
