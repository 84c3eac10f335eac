"""Config schemas, their registration with Hydra, and user-facing config errors.

The top-level schema types every group whose fields are the same for all choices (``optim``, ``trainer``,
``logger``); ``model`` and ``dataset`` differ per family, so each family has its own dataclass schema that
the model / dataset registries check when they build (``recbench.models.registry``,
``recbench.data.sources``). Either way a bad key or value ends in a :class:`ConfigError` whose one-line
message names the problem and the valid choices.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

# The Hydra config tree lives at the top of the repository (configs/) and is installed as the package
# ``recbench.configs`` (pyproject.toml maps the folder); this is the one place that locates it.
CONFIG_MODULE = "recbench.configs"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"


class ConfigError(ValueError):
    """A mistake in the user's config or environment: reported as one line, never as a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """The console scripts' parser: a bad argument is one line on stderr and exit status 2, as every other mistake,
    instead of argparse's usage block (``--help`` still shows it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog.split()[0]}: error: {message} (see {self.prog} --help)\n")


@dataclass
class OptimConfig:
    name: str = "adam"  # sgd | adam | adamw
    lr: float = 1e-3
    # Steps the schedule spans (cosine decays to 0 over them; step's decay_at are fractions of them). 0: the run's
    # trainer.total_steps at its first start, kept when a finished run is extended (no warm restart).
    schedule_steps: int = 0
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    weight_decay: float = 0.0  # sgd: L2 added to the gradient; adamw: decoupled
    schedule: str = "cosine"  # constant | cosine | step
    warmup_steps: int = 0
    decay_at: list[float] = field(default_factory=lambda: [0.5, 0.75])  # step: fractions of total_steps
    decay_factor: float = 0.1
    grad_clip: float = 0.0  # global-norm clip; 0 = off


@dataclass
class TrainerConfig:
    total_steps: int = 300
    batch_size: int = 128
    loss_over_steps: str = "auto"  # auto (the model preset's objective) | last | mean | weights | progressive
    step_weights: list[float] = field(default_factory=list)  # used when loss_over_steps=weights
    progressive_alpha: float = 0.5  # progressive: weight of the partial-unroll loss (1 - alpha: the full unroll's)
    coarse_to_fine: bool = False  # Zamir et al.'s curriculum: early steps trained on coarse classes (CIFAR-100)
    eval_every: int = 100
    eval_batch_size: int = 500
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    resume: bool = True
    progress: bool = True
    save_predictions: bool = True  # per-image logits at every step of the final eval (predictions.npz)
    target_accuracy: float = 0.0  # > 0: stop once the last-step test accuracy (checked every eval_every) reaches it
    precision: str = "fp32"  # fp32 | bf16 (compute in bf16; parameters, optimizer and BN statistics in fp32)
    on_nonfinite: str = "stop"  # non-finite loss or gradient: stop (exit 3, last good checkpoint kept) | skip the step
    mesh: int = 0  # devices on the data axis (batches sharded, state replicated); 0 = every device of every process


@dataclass
class WandbConfig:
    mode: str = "auto"  # auto (online if an API key is set, else offline) | online | offline | disabled
    project: str = "recbench"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)
    console: bool = True


@dataclass
class PathsConfig:
    output_root: str = "outputs"
    data_dir: str = MISSING
    compile_cache: str = MISSING  # JAX's persistent compilation cache; "" turns it off


@dataclass
class TrainConfig:
    name: str = "default"  # experiment name: groups runs on disk and in wandb
    seed: int = 0
    scale: str = "cpu"  # cpu | paper: which size of an experiment preset runs (its values read ${at_scale:cpu,paper})
    model: Any = MISSING
    dataset: Any = MISSING
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


def register() -> None:
    """Register the schema, each model family's defaults and the ``run_dirname`` resolver (idempotent; call before
    Hydra composes).

    A family's defaults come from its dataclass alone: they are stored as the config ``model/family/<family>``,
    which every preset lists first in its defaults, so each key is in the composed config (Hydra overrides only
    keys a config has: ``model.norm=group``) while a preset's YAML states only what differs.
    """
    from hydra.core.config_store import ConfigStore

    from recbench.models.registry import FAMILIES, family_defaults

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for family in FAMILIES:
        store.store(group="model/family", name=family, node=family_defaults(family), package="model")
    if not OmegaConf.has_resolver("run_dirname"):
        OmegaConf.register_new_resolver("run_dirname", run_dirname)
    if not OmegaConf.has_resolver("at_scale"):
        OmegaConf.register_new_resolver("at_scale", at_scale)


SCALES = ("cpu", "paper")


def at_scale(cpu: Any, paper: Any, *, _root_: DictConfig) -> Any:
    """``${at_scale:CPU_VALUE,PAPER_VALUE}``: an experiment preset's value at the scale the top-level ``scale`` key
    selects (``scale=paper`` on the command line turns a CPU-sized figure into the paper's)."""
    scale = _root_.get("scale", "cpu")
    if scale not in SCALES:
        raise ConfigError(f"scale={scale!r} is not valid; choose one of: {', '.join(SCALES)}")
    return cpu if scale == "cpu" else paper


# Config keys (and the keys below them) that may change when a run is resumed: they say how long to train, how
# often to log, evaluate and checkpoint, and where output goes, not what is trained. The same list keeps them out
# of the run directory's name, so `trainer.total_steps=2000` on a finished 1000-step run continues it.
RESUME_FREE = ("trainer.total_steps", "trainer.eval_every", "trainer.log_every", "trainer.checkpoint_every",
               "trainer.progress", "trainer.resume", "trainer.keep_checkpoints", "trainer.eval_batch_size",
               "trainer.save_predictions", "trainer.target_accuracy", "trainer.mesh", "optim.schedule_steps",
               "logger", "paths", "name")
# Not in the directory name either: the experiment preset names its folder through ``name``.
_DIRNAME_FREE = (*RESUME_FREE, "experiment")
_MAX_DIRNAME = 200


def resume_free(key: str, free: tuple[str, ...] = RESUME_FREE) -> bool:
    """Whether a dotted config key (``trainer.total_steps``, ``logger.wandb.mode``) may change on resume."""
    return any(key == k or key.startswith(k + ".") for k in free)


def run_dirname(overrides) -> str:
    """A run's folder name from its command-line overrides (Hydra's ``overrides.task``): the same command, in
    any order, finds the same folder (and resumes); overrides that may change on resume are left out."""
    import hashlib

    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    kept = sorted(o.input_line for o in parsed
                  if not resume_free(o.key_or_group, _DIRNAME_FREE))
    if not kept:
        return "default"
    name = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", ",".join(kept))
    if len(name) > _MAX_DIRNAME:  # long sweeps: keep a readable prefix and tell runs apart by a hash
        name = name[: _MAX_DIRNAME - 9] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def family_config(cls: type, cfg: DictConfig | dict, what: str) -> Any:
    """Build a family dataclass from a config node, with one-line errors for unknown or missing keys."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise unknown_keys(what, unknown, names)
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{what}: missing key(s) {', '.join(missing)}")
    for f in dataclasses.fields(cls):
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(data[f.name])
    return cls(**data)


def as_schema(node: Any, schema: type) -> Any:
    """A config section as its dataclass, whether it comes typed (a composed config) or untyped (a run's saved
    ``config.yaml``); unknown keys and wrong types raise."""
    if isinstance(node, schema):
        return node
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))


def unknown_keys(what: str, unknown: list[str], valid: Any) -> ConfigError:
    """The one-line error for keys a section lacks: the keys, the closest valid one, every valid one."""
    close = difflib.get_close_matches(str(unknown[0]), [str(v) for v in valid], n=1) if len(unknown) == 1 else []
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"{what}: unknown key(s) {', '.join(map(str, unknown))}{hint}; "
                       f"valid keys: {', '.join(sorted(map(str, valid)))}")


def check_keys(cfg: DictConfig, schema: type | None = None, prefix: str = "") -> None:
    """Every key of the schema-typed sections is the schema's: Hydra's ``+key=value`` adds any key (``+foo=1``,
    ``+trainer.totl_steps=5``), which nothing would read. ``model`` and ``dataset`` differ per family; their
    registries check them (:func:`family_config`)."""
    schema = schema or TrainConfig
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(str(k) for k in cfg if k not in fields)
    if unknown:
        raise unknown_keys(prefix.rstrip(".") or "config", unknown, fields)
    for name, f in fields.items():
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(sub) and isinstance(cfg.get(name), DictConfig):
            check_keys(cfg[name], sub, f"{prefix}{name}.")


def check_folder(key: str, path: Any, *, create: bool = False) -> Path:
    """A folder path of the config or a flag: where it exists it must be a folder; with ``create`` it is made (with
    its parents) and a temporary file is written in it, so an unwritable output folder fails now, in one line."""
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise ConfigError(f"{key} must be a folder path, got {path!r}")
    folder = Path(os.path.expanduser(os.fspath(path)))
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"lies inside {existing}, which is a file"
        raise ConfigError(f"{key}={os.fspath(path)!r} {what}, not a folder")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            raise ConfigError(f"{key}={os.fspath(path)!r} is not a writable folder ({e.strerror or e}); "
                              "choose one this user can write") from None
    return folder


def validate_run_keys(cfg: DictConfig) -> None:
    """The top-level keys: a scale, a seed, an experiment name that is one folder."""
    choice(cfg.get("scale", "cpu"), "scale", SCALES)  # before any ${at_scale:...} resolves
    check_int("seed", cfg.seed, 0)
    name = cfg.get("name")
    if not isinstance(name, str) or not name or name in (".", "..") or re.search(r"[/\\]", name):
        raise ConfigError(f"name={name!r} must be one folder name (runs land in paths.output_root/name/), e.g. "
                          "name=pilot")


def validate_paths(paths: DictConfig) -> None:
    """``paths``: the output root made and written to (so an unwritable one fails now), the data dir and the
    compile cache folders where they exist."""
    check_folder("paths.output_root", paths.output_root, create=True)
    check_folder("paths.data_dir", paths.data_dir)
    if paths.compile_cache:
        check_folder("paths.compile_cache", paths.compile_cache)


def check_int(key: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """An integer in ``low..high`` (bools and floats refused), or a one-line :class:`ConfigError` naming the range."""
    if (isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low
            or (high is not None and value > high)):
        if high is not None:
            rule = f"an integer in {low}..{high}"
        else:
            rule = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ConfigError(f"{key} must be {rule}, got {value!r}")
    return int(value)


def choice(value: Any, key: str, valid: tuple[str, ...] | list[str]) -> str:
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, valid))}")
    return value


def _config_files():
    return resources.files(CONFIG_MODULE)


def group_choices(group: str) -> list[str]:
    """The YAML options of a config group, for error messages."""
    folder = _config_files() / group
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_option(group: str, name: str, *, _base: bool = False) -> DictConfig:
    """One YAML option of a group with its defaults list applied (``defaults: [other_option, _self_]``),
    without touching Hydra's global state, so it is safe inside a running Hydra job."""
    path = _config_files() / group / f"{name}.yaml"
    if path.is_file():
        node = OmegaConf.create(path.read_text())
    else:  # a config registered in code (a family's defaults, see register)
        from hydra.core.config_store import ConfigStore

        register()
        try:
            node = OmegaConf.create(ConfigStore.instance().load(f"{group}/{name}.yaml").node)
        except Exception:
            raise ConfigError(f"unknown {group} {name!r}; choose one of: {', '.join(group_choices(group))}") from None
    defaults = node.pop("defaults", [])
    merged = OmegaConf.create()
    for entry in defaults:
        merged = OmegaConf.merge(merged, node if entry == "_self_" else load_option(group, entry, _base=True))
    merged = merged if "_self_" in defaults else OmegaConf.merge(merged, node)
    if group in NAMED_GROUPS and not _base and not merged.get("name"):
        merged.name = name
    return merged


NAMED_GROUPS = ("model",)  # a preset of these groups is named after its file unless it sets ``name``


def name_presets(cfg: DictConfig, choices: dict) -> DictConfig:
    """Fill ``model.name`` from the option Hydra chose (``model=blt`` -> ``blt``) where the preset sets none."""
    for group in NAMED_GROUPS:
        node = cfg.get(group)
        if node is not None and not node.get("name") and choices.get(group):
            with open_dict(node):
                node.name = choices[group]
    return cfg


def _compose(overrides: list[str]) -> DictConfig:
    """The training config with its ``hydra`` node, composed as the Hydra app would, outside it."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def sweep_params(overrides: list[str]) -> dict[str, str]:
    """The sweep an experiment preset declares (``hydra.sweeper.params``, resolved at the chosen ``scale``), as
    ``{key: "v1,v2,..."}``; what ``recbench -m experiment=X`` runs besides the command line's own sweeps."""
    params = OmegaConf.select(_compose(overrides), "hydra.sweeper.params", default=None)
    return {str(k): str(v) for k, v in (params or {}).items()}


def compose_train(overrides: list[str]) -> DictConfig:
    """Compose the training config as Hydra would, outside a Hydra app (tests, notebooks, recbench-info)."""
    cfg = _compose(overrides)
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return name_presets(cfg, choices)


def compose_checked(overrides: list[str]) -> DictConfig:
    """:func:`compose_train` for a command line: Hydra's and OmegaConf's errors become one-line
    :class:`ConfigError` s, and a key the config lacks (``trainer.totl_steps=5``, ``+foo=1``) is named with the
    keys its section has."""
    try:
        cfg = compose_train(overrides)
    except ConfigError:
        raise
    except Exception as e:  # Hydra/OmegaConf composition errors, with the reason they carry
        missing = re.match(r"Could not override '([^']+)'\.\s+To append", str(e))
        key = missing.group(1) if missing else None
        rest = [o for o in overrides if o.partition("=")[0] != key]
        if len(rest) == len(overrides):
            cause = f": {str(e.__cause__).splitlines()[0]}" if e.__cause__ else ""
            raise ConfigError(" ".join(str(e).split()) + cause) from None
        parent = compose_checked(rest)
        parts = key.split(".")
        depth = 0  # the first part of the key the config lacks
        while depth < len(parts) - 1 and isinstance(parent.get(parts[depth]), DictConfig):
            parent, depth = parent[parts[depth]], depth + 1
        section = ".".join(parts[:depth])
        what = f"{section} {parent.get('name')}" if section in ("model", "dataset") else section or "config"
        raise unknown_keys(what, [parts[depth]], list(parent)) from None
    check_keys(cfg)
    return cfg
