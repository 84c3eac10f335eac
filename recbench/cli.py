"""Console entry points. They parse, check and call the library; a user's mistake is one line on stderr.

* ``recbench`` — train one config (a Hydra app; ``-m`` sweeps), via ``train.loop.train_and_evaluate``.
* ``recbench-info`` — parameters, FLOPs per step, effective depth per step and the JAX backend as JSON, without
  training.
"""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

import recbench  # noqa: F401  (sets XLA flags before JAX starts)
from recbench.config import (
    CONFIG_PATH,
    ConfigError,
    check_folder,
    compose_checked,
    group_choices,
    name_presets,
    register,
)
from recbench.env import backend_report, check_backend, enable_compile_cache, prefer_xla_defaults

register()

# Hydra's own flags that take no check from us (help, config printing, shell completion, search paths).
_PASSTHROUGH = ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve", "--package", "-p",
                "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                "-cd", "--version")


def fail(message: str, code: int = 2) -> None:
    print(f"recbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def _variants(overrides: list[str]) -> list[list[str]]:
    """One override list per sweep value (the others at their first value): enough to check every value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = []
    for raw in overrides:
        try:
            parsed += parser.parse_overrides([raw])
        except Exception as e:  # hydra.errors.OverrideParseException: keep its reason, name the override
            reason = " ".join(str(e).split()).split(" See https://")[0]
            raise ConfigError(f"bad override {raw!r}: {reason}") from None
    options = []
    for raw, o in zip(overrides, parsed, strict=True):
        if o.is_sweep_override():
            options.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            options.append([raw])
    if not options:
        return [[]]
    variants = [[opts[0] for opts in options]]
    for i, opts in enumerate(options):
        for v in opts[1:]:
            variants.append([v if j == i else variants[0][j] for j in range(len(options))])
    return variants


def check_overrides(overrides: list[str], multirun: bool = False) -> list[DictConfig]:
    """Compose and validate every variant of the command line (and, for a multirun, of the sweep its experiment
    preset declares) before Hydra runs anything."""
    configs = []
    hydra_overrides = [o for o in overrides if o.startswith("hydra")]
    overrides = [o for o in overrides if not o.startswith("hydra")]
    if multirun and any(o.partition("=")[0] == "experiment" for o in overrides):
        from recbench.config import sweep_params

        try:
            declared = sweep_params([o for o in overrides if "," not in o.partition("=")[2]])
        except Exception as e:
            raise ConfigError(" ".join(str(e).split())) from None
        given = {o.partition("=")[0].lstrip("+~") for o in overrides}
        overrides = overrides + [f"{k}={v}" for k, v in declared.items() if k not in given]
    for variant in _variants(overrides):
        for o in variant:
            key, _, value = o.partition("=")
            group = key.lstrip("+~")
            if group in ("model", "dataset", "optim", "trainer", "logger", "experiment", "debug"):
                choices = group_choices(group)
                if value not in choices and value != "null":
                    raise ConfigError(f"unknown {group} {value!r}; choose one of: {', '.join(choices)}")
        configs.append(compose_checked(variant))
    # before anything starts JAX's backend (validating builds models): the XLA:CPU flags suited to what will train
    prefer_xla_defaults({str(c.model.get("family")) for c in configs})
    for cfg in configs:
        validate_config(cfg)
    if hydra_overrides:
        _check_hydra_overrides(hydra_overrides, _variants(overrides)[0], multirun)
    return configs


def _check_hydra_overrides(hydra_overrides: list[str], variant: list[str], multirun: bool) -> None:
    """Hydra's own overrides (``hydra/launcher=…``, ``hydra.launcher.timeout_min=…``, ``hydra.run.dir=…``): composed
    once with the first variant, so an unknown launcher or launcher key is one line here, not Hydra's error block;
    the folder Hydra will write must be one this user can make."""
    from recbench.config import _compose

    try:
        _compose(variant + _variants(hydra_overrides)[0])
    except Exception as e:
        text = " ".join(str(e).split("\n")[0].split()).rstrip(".")
        cause = " ".join(str(e.__cause__).split("\n")[0].split()) if e.__cause__ else ""
        hint = ""
        if "submitit" in text or "submitit" in cause:
            hint = "; the submitit launchers need the slurm extra: .venv/bin/pip install -e '.[slurm]'"
        raise ConfigError(f"{text}{': ' + cause if cause and cause not in text else ''}{hint}") from None
    for o in hydra_overrides:  # where Hydra itself writes: a folder that cannot be made fails here, not in Hydra
        key, _, value = o.partition("=")
        if key == ("hydra.sweep.dir" if multirun else "hydra.run.dir") and "${" not in value:
            check_folder(key, value, create=True)


def validate_config(cfg: DictConfig) -> None:
    """Every section checked by the module that owns it, before anything is built: every key known, every choice
    one of its options, every number in its range; the paths last, as the output root is made to test it."""
    from recbench.config import OptimConfig, TrainerConfig, as_schema, check_keys, validate_paths, validate_run_keys
    from recbench.data.sources import dataset_meta
    from recbench.models.registry import validate_model_config
    from recbench.train.optim import validate_optim
    from recbench.train.run import check_objective, validate_trainer
    from recbench.train.runlog import resolve_wandb_mode

    check_keys(cfg)
    validate_run_keys(cfg)
    shape, num_classes = dataset_meta(cfg.dataset)
    readouts = validate_model_config(cfg.model, shape, num_classes)
    trainer = as_schema(cfg.trainer, TrainerConfig)
    validate_trainer(trainer)
    check_objective(cfg, trainer, readouts)
    validate_optim(as_schema(cfg.optim, OptimConfig))
    resolve_wandb_mode(cfg.logger.wandb.mode)
    validate_paths(cfg.paths)


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base="1.3")
def _train_app(cfg: DictConfig) -> float:
    """One job. Its outcome goes to ``status.json`` in its run directory and, in a multirun, to the sweep's
    ``sweep_summary.json``. A single run ends on a failure with its one line and exit code (docs/reliability.md);
    a multirun job that fails is recorded and the sweep goes on to the next job. Preemption ends the whole process
    either way (its checkpoint is saved; the launcher requeues it)."""
    import logging
    import traceback
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from recbench.faults import Preempted, RunDirBusy, RunError, outcome_of, record_outcome
    from recbench.train.loop import train_and_evaluate
    from recbench.train.parallel import initialize_distributed, is_writer

    prefer_xla_defaults({str(cfg.model.get("family"))})  # a launcher's fresh process (submitit) has not decided yet

    for name in ("jax", "absl", "orbax", "tensorflow_datasets"):
        logging.getLogger(name).setLevel(logging.WARNING)
    hydra_cfg = HydraConfig.get()
    runtime = hydra_cfg.runtime
    name_presets(cfg, dict(runtime.choices))
    workdir = Path(runtime.output_dir)
    sweep_dir = Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    if sweep_dir is not None:
        _LAST_SWEEP["dir"] = str(sweep_dir)
    try:
        initialize_distributed()  # idempotent; under hydra-submitit each SLURM task starts here, not in train_main
        enable_compile_cache(cfg.paths.compile_cache)  # before the train step compiles, so a rerun loads it
        summary = train_and_evaluate(cfg, workdir)
    except Preempted as e:
        if is_writer():
            record_outcome(workdir, outcome_of(e), sweep_dir)
        sys.exit(e.exit_code)  # its line is printed; SystemExit passes through Hydra's job runner, ending a sweep too
    except Exception as e:
        if is_writer():
            record_outcome(workdir, outcome_of(e), sweep_dir, own_dir=not isinstance(e, RunDirBusy))
        one_line = isinstance(e, (ConfigError, RunError))
        if not one_line:
            (workdir / "error.txt").write_text(traceback.format_exc())
        if sweep_dir is None:
            if one_line:
                fail(str(e), getattr(e, "exit_code", 2))
            raise  # a bug: Hydra prints the traceback (also in error.txt)
        what = str(e) if one_line else f"{type(e).__name__}: {' '.join(str(e).split())[:300]} (traceback in " \
                                         f"{workdir / 'error.txt'})"
        print(f"recbench: job {workdir.name} failed: {what}; the sweep goes on", file=sys.stderr, flush=True)
        return float("nan")
    if is_writer():
        record_outcome(workdir, outcome_of(None, summary), sweep_dir)
    return summary["final_accuracy"]


def _report_sweep(overrides: list[str], since: float) -> None:
    """After a multirun: one line per failed job of this sweep, and exit status 1 if any failed. The sweep folder
    is the one the jobs ran in (in this process), or, when a launcher ran them elsewhere, the composed one."""
    from pathlib import Path

    from recbench.config import _compose
    from recbench.faults import SWEEP_SUMMARY, read_sweep_summary

    sweep_dir = _LAST_SWEEP.get("dir") or str(_compose(_variants(overrides)[0]).hydra.sweep.dir)
    jobs = {k: v for k, v in read_sweep_summary(Path(sweep_dir)).items() if v.get("finished_s", 0) >= since}
    failed = {k: v for k, v in jobs.items() if v["status"] != "done"}
    if failed:
        for k, v in sorted(failed.items()):
            print(f"recbench: failed ({v['reason']}): {k}: {v['message'][:200]}", file=sys.stderr)
        fail(f"{len(failed)} of {len(jobs)} jobs failed; the others finished; see {Path(sweep_dir) / SWEEP_SUMMARY}",
             code=1)


_LAST_SWEEP: dict[str, str] = {}


# Hydra's mutually exclusive modes, by flag.
MODES = {"-m": "--multirun", "--multirun": "--multirun", "-r": "--run", "--run": "--run", "-c": "--cfg",
         "--cfg": "--cfg", "-i": "--info", "--info": "--info", "-sc": "--shell-completion",
         "--shell-completion": "--shell-completion"}


def train_main() -> None:
    import time

    args = sys.argv[1:]
    from recbench.train.parallel import initialize_distributed

    multirun = any(a in ("-m", "--multirun") for a in args)
    modes = {MODES[a] for a in args if a in MODES}
    if len(modes) > 1:  # Hydra would raise a ValueError with its stack trace
        fail(f"{' and '.join(sorted(modes))} cannot be combined; give one of them (e.g. drop -m to print the config "
             "with --cfg job)")
    try:
        initialize_distributed()  # a multi-process run joins before any JAX computation (the checks count devices)
    except ConfigError as e:
        fail(str(e))
    if not any(a.startswith(_PASSTHROUGH) for a in args):
        try:
            check_overrides([a for a in args if a not in ("-m", "--multirun")], multirun=multirun)
        except ConfigError as e:
            fail(str(e))
    since = time.time()
    _train_app()
    if multirun:
        _report_sweep([a for a in args if a not in ("-m", "--multirun")], since)


def info(overrides: list[str]) -> dict:
    """Accounting for a config, without data or training: what ``recbench-info`` prints."""
    from recbench.data.sources import dataset_meta
    from recbench.models.accounting import describe
    from recbench.models.registry import model_from_config

    (cfg,) = check_overrides(overrides)
    shape, num_classes = dataset_meta(cfg.dataset)
    model = model_from_config(cfg.model, num_classes=num_classes, input_shape=shape, seed=cfg.seed)
    return {"model": cfg.model.name, "dataset": cfg.dataset.name, "input_shape": list(shape),
            "num_classes": num_classes, **describe(model, shape),
            "model_config": OmegaConf.to_container(cfg.model, resolve=True), "backend": backend_report()}


def info_main() -> None:
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print("usage: recbench-info [OVERRIDE ...]   e.g. recbench-info model=blt dataset=digit_clutter\n"
              "Prints params, flops_per_image (cumulative per time step), effective_depth (per step) and the JAX\n"
              "backend (platform, devices, jax/jaxlib/plugin versions, warnings) as JSON.")
        return
    try:
        if any(a in ("-m", "--multirun") for a in args) or len(_variants(args)) > 1:
            fail("recbench-info describes one config; drop -m and comma-separated sweeps")
        described = info(args)
        check_backend(described["backend"])  # its warnings on stderr, so stdout stays one JSON document
        print(json.dumps(described, indent=2))
    except ConfigError as e:
        fail(str(e))


