"""Gather run directories into one table: a row per run, keyed by every override that made the run what it is.

``recbench-collect OUT_DIR RUN_DIR_OR_SWEEP_DIR ...`` finds every ``summary.json`` below the given folders and
writes ``OUT_DIR/summary.csv`` (one row per run), ``OUT_DIR/summary_per_step.csv`` (one row per run and time step)
and ``OUT_DIR/accuracy_per_step.png`` (mean and 95 % CI over seeds). It reads only the run directories (the source
of truth), never wandb, so it works offline.

**Key columns.** A run's key is its overrides: ``.hydra/overrides.yaml`` when it ran through the Hydra app
(``recbench model=bl dataset.level=heavy seed=1``). Each overridden key is a column (``seed``, ``dataset.level``,
``model.steps``; a group choice such as ``debug=smoke`` as ``debug``), except those that change where output goes,
what is printed or how often a run evaluates and checkpoints, not what is trained (:data:`NOT_KEYS`: ``paths.*``,
``logger.*``, ``hydra.*``, ``trainer.eval_every``, ``trainer.progress``, ...; ``trainer.total_steps`` and ``name``
stay). A run made without the app (``train_and_evaluate`` from Python) has no overrides file; for it the
``model.*`` and ``dataset.*`` keys of its ``config.yaml`` that differ from its model and dataset presets (what was
overridden, however: command line, ``debug=smoke``, code) become columns, and so does any other config key whose
value differs between such runs (``seed``, ``optim.lr``; the same skips applied). Every key column is then filled for
every run from its resolved ``config.yaml``, so a run that did not override ``seed`` still shows ``seed=0``; a group
choice with no config key (``debug``) is left empty where not given. Lists are written as JSON (``[8, 16]``).

**Task.** ``task`` is the dataset with the value of the key that sets its difficulty (``digit_debris light``,
``digit_clutter 3``, ``pathfinder 14``: :data:`TASK_KEYS`), however it was chosen (``dataset=digit_debris_heavy``
or ``dataset.level=heavy``), so runs of one dataset at two difficulties never read alike.

**Per-step columns** are JSON lists, as in ``summary.json``: ``accuracy_per_step``, ``flops_per_image``
(cumulative, per step), ``effective_depth`` (per step), so one CSV holds runs of any number of time steps;
:func:`long_rows` expands them to one row per time step (``time_step``, ``accuracy``, ``flops``, ``depth``).
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from recbench.config import RESUME_FREE, ArgumentParser, ConfigError, check_folder

# What a run is besides its key columns: one value per run, or a JSON list per step.
RUN_COLUMNS = ("model", "dataset", "task", "seed", "time_steps", "params", "final_accuracy", "final_flops_per_image",
               "final_effective_depth", "accuracy_per_step", "flops_per_image", "effective_depth", "train_steps",
               "wall_time_s", "images_per_s", "device", "run_dir")
# The key that sets a procedural dataset's difficulty: a run's task is its dataset and that key's value.
TASK_KEYS = {"digit_debris": "level", "digit_clutter": "n_digits", "pathfinder": "contour_length"}
PER_STEP = ("accuracy_per_step", "flops_per_image", "effective_depth")
STEP_COLUMNS = ("time_step", "accuracy", "flops", "depth")
# Override keys that say where output goes, what is printed and how often a run evaluates or checkpoints, never
# what is trained (the resume-free keys, less the three that do change the result or name the experiment).
NOT_KEYS = ("hydra", *(k for k in RESUME_FREE if k not in ("trainer.total_steps", "trainer.target_accuracy", "name")))


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories (folders holding ``summary.json``) at or below the given paths, sorted."""
    return sorted({p.parent for d in paths for p in Path(d).rglob("summary.json")})


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_overrides(run_dir: Path) -> dict[str, str] | None:
    """``key -> value`` of a run's command-line overrides (``.hydra/overrides.yaml``) less the :data:`NOT_KEYS`,
    or None without the file."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    out = {}
    for line in OmegaConf.to_container(OmegaConf.load(path)) or []:
        key, _, value = str(line).partition("=")
        key = key.lstrip("+")
        if key.startswith("~") or not _is_key(key):
            continue
        out[key] = value
    return out


def _is_key(key: str) -> bool:
    return not any(key == k or key.startswith(k + ".") for k in NOT_KEYS)


def _cell(value):
    return json.dumps(value) if isinstance(value, list | dict) else value


def _read(path: Path, parse: Callable[[Path], Any]) -> Any:
    """``parse(path)``; a file recbench did not write that way (cut short, edited by hand, another tool's) is one
    line naming it."""
    try:
        return parse(path)
    except Exception as e:  # json, yaml and OmegaConf errors alike
        raise ConfigError(f"{path} is not a recbench run file: {' '.join(str(e).split())[:200]}") from None


def _summary(path: Path) -> dict:
    summary = json.loads(path.read_text())
    if not isinstance(summary, dict) or not {"model", "dataset"} <= set(summary):
        raise ValueError("it names no model and dataset")
    return summary


def _load(run_dir: Path) -> tuple[dict, dict, dict | None]:
    summary = _read(run_dir / "summary.json", _summary)
    cfg_path = run_dir / "config.yaml"
    config = (_read(cfg_path, lambda p: flatten(OmegaConf.to_container(OmegaConf.load(p), resolve=False)))
              if cfg_path.is_file() else {})
    return summary, config, _read(run_dir / ".hydra" / "overrides.yaml", lambda _: read_overrides(run_dir))


@functools.cache
def _preset(group: str, name: str) -> dict | None:
    from recbench.config import ConfigError, load_option

    try:
        return flatten(OmegaConf.to_container(load_option(group, name)), f"{group}.")
    except (ConfigError, OSError):
        return None


def preset_diff(config: dict) -> list[str]:
    """``model.*`` / ``dataset.*`` keys of a flattened run config that differ from its model and dataset presets
    (``configs/model/<model.name>.yaml``, ``configs/dataset/<dataset.name>.yaml``); a group whose preset is
    not found (a custom ``model.name``) contributes nothing."""
    out = []
    for group in ("model", "dataset"):
        preset = _preset(group, str(config.get(f"{group}.name")))
        out += [k for k, v in config.items() if preset and k.startswith(f"{group}.") and k in preset
                and json.dumps(preset[k]) != json.dumps(v)]
    return out


def key_columns(loaded: list[tuple[dict, dict, dict | None]]) -> list[str]:
    """The key columns of a set of runs: every override; for runs without an overrides file, the model and
    dataset keys that differ from their presets and any other config key whose value differs between them."""
    keys: dict[str, None] = {}
    for _, config, overrides in loaded:
        keys |= dict.fromkeys(overrides if overrides is not None else preset_diff(config))
    bare = [config for _, config, overrides in loaded if overrides is None]
    if len(bare) > 1:
        every = dict.fromkeys(k for c in bare for k in c if not k.startswith(("model.", "dataset.")))
        keys |= {k: None for k in every if len({json.dumps(c.get(k)) for c in bare}) > 1}
    return [k for k in keys if _is_key(k) and k not in ("model", "dataset", "model.name", "dataset.name")]


def task_of(dataset: str, config: dict) -> str:
    """A run's task: its dataset and the value of the key that sets its difficulty (``digit_debris light``,
    ``digit_clutter 3``), from its flattened config; the dataset alone where it has no such key."""
    key = TASK_KEYS.get(dataset)
    value = config.get(f"dataset.{key}") if key else None
    return str(dataset) if value is None else f"{dataset} {value}"


def run_row(run_dir: Path, summary: dict, config: dict, overrides: dict | None, keys: list[str]) -> dict:
    """One run's row: its key columns and :data:`RUN_COLUMNS`; ``config`` (the flattened resolved config) rides
    along for figures and is not written to CSV."""
    row = {"model": summary["model"], "dataset": summary["dataset"], "task": task_of(summary["dataset"], config)}
    for k in keys:
        row[k] = _cell(config[k]) if k in config else (overrides or {}).get(k)
    per_step = {k: list(summary.get(k) or []) for k in PER_STEP}
    last = {k: (v[-1] if v else None) for k, v in per_step.items()}
    row |= {"seed": config.get("seed", row.get("seed")), "time_steps": len(per_step["accuracy_per_step"]),
            "params": summary.get("params"), "final_accuracy": summary.get("final_accuracy"),
            "final_flops_per_image": last["flops_per_image"], "final_effective_depth": last["effective_depth"],
            **per_step, "train_steps": summary.get("train_steps"), "wall_time_s": summary.get("wall_time_s"),
            "images_per_s": summary.get("images_per_s"), "device": summary.get("device"), "run_dir": str(run_dir)}
    row["config"] = config
    return row


def collect(paths: list[str | Path]) -> list[dict]:
    """One row per run found below ``paths`` (see the module docstring for the columns)."""
    runs = find_runs(paths)
    loaded = [_load(d) for d in runs]
    keys = key_columns(loaded)
    return [run_row(d, *x, keys) for d, x in zip(runs, loaded, strict=True)]


def columns(table: list[dict]) -> list[str]:
    """CSV column order: model, dataset, the key columns, then the run's measurements."""
    keys = [k for k in (table[0] if table else {}) if k not in RUN_COLUMNS and k != "config"]
    return ["model", "dataset", "task", *keys, *(c for c in RUN_COLUMNS if c not in ("model", "dataset", "task"))]


def long_rows(table: list[dict]) -> list[dict]:
    """One row per run and time step: the run's columns (per-step lists dropped) plus ``time_step`` (0-based),
    ``accuracy``, ``flops`` (cumulative FLOPs per image to that readout) and ``depth`` (its effective depth)."""
    out = []
    for row in table:
        base = {k: v for k, v in row.items() if k not in PER_STEP}
        acc, flops, depth = (row[k] for k in PER_STEP)
        for t, a in enumerate(acc):
            out.append(base | {"time_step": t, "accuracy": a, "flops": flops[t] if t < len(flops) else None,
                               "depth": depth[t] if t < len(depth) else None})
    return out


def write_csv(rows: list[dict], path: Path, fieldnames: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: _cell(r.get(k)) for k in fieldnames} for r in rows)
    return path


def write_tables(table: list[dict], out_dir: Path) -> list[Path]:
    """``summary.csv`` (a row per run) and ``summary_per_step.csv`` (a row per run and time step)."""
    cols = columns(table)
    per_step = [c for c in cols if c not in PER_STEP]
    per_step[per_step.index("time_steps") + 1:per_step.index("time_steps") + 1] = list(STEP_COLUMNS)
    return [write_csv(table, out_dir / "summary.csv", cols),
            write_csv(long_rows(table), out_dir / "summary_per_step.csv", per_step)]


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="recbench-collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        table = collect(args.runs)
        if not table:
            raise ConfigError(f"no summary.json below {', '.join(map(str, args.runs))}")
        check_folder("OUT_DIR", args.out_dir, create=True)
    except ConfigError as e:
        print(f"recbench: error: {e}", file=sys.stderr)
        sys.exit(2)
    from recbench.analysis.plots import accuracy_per_step_figure

    write_tables(table, args.out_dir)
    accuracy_per_step_figure(long_rows(table), args.out_dir / "accuracy_per_step.png")
    print(f"{len(table)} runs -> {args.out_dir}")


if __name__ == "__main__":
    main()
