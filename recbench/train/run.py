"""One run builder: everything a run needs, from one config.

``build_run(cfg)`` prepares the dataset and its input pipeline, builds the model, the optimizer, the train state
and the jitted train and eval functions. The trainer (:mod:`recbench.train.loop`), ``recbench-eval``
(:mod:`recbench.train.evaluate`) and the benchmarks all start here, so they train and evaluate the same thing.

Everything is laid out on the data-parallel mesh of ``trainer.mesh`` (:mod:`recbench.train.parallel`; one device
is a mesh of one): the state replicated, the pipeline's batches sharded. A train step is one dispatch::

    state, metrics = run.train_step(state, run.inputs.train_args(k), k)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import optax
from flax import nnx
from omegaconf import DictConfig

from recbench.config import ConfigError, OptimConfig, TrainerConfig, as_schema, check_int, choice
from recbench.data.pipeline import Dataset, InputPipeline
from recbench.data.sources import coarse_classes, load_dataset
from recbench.models.engine import AreaGraph
from recbench.models.registry import model_from_config
from recbench.train.objectives import Objective, build_objective, resolve_mode, validate_objective
from recbench.train.optim import make_optimizer
from recbench.train.parallel import Parallel, barrier, check_divides, data_axis_size, is_writer, make_parallel
from recbench.train.step import PRECISIONS, TrainState, make_eval_fn, make_train_step

NONFINITE = ("stop", "skip")  # trainer.on_nonfinite


@dataclass
class Run:
    """What a run trains and evaluates; ``state`` is the freshly initialised train state."""

    cfg: DictConfig
    trainer: TrainerConfig
    dataset: Dataset
    inputs: InputPipeline
    model: nnx.Module
    tx: optax.GradientTransformation
    lr: optax.Schedule
    state: TrainState
    train_step: Callable  # (state, inputs.train_args(k), k) -> (state, metrics), jitted, state donated
    evaluate: Callable  # (params, rest, x, y, steps, ablate) -> (logits, loss, correct), jitted
    parallel: Parallel
    # (state, x, y) -> (state, metrics): the same step fed a batch made outside it, for benchmarks that time the
    # input pipeline apart (scripts/bench_input.py); jit compiles it only if it is called.
    train_step_on_batch: Callable

    @property
    def time_steps(self) -> int:
        """Readouts at the trained depth: the model knows its own unroll."""
        return self.model.trained_steps


def _load_dataset(cfg: DictConfig, data_dir: str | None, progress: bool) -> Dataset:
    """The dataset; with several processes process 0 loads it first (generating a procedural set, or preparing a
    download, where the data dir lacks it) and the others load it once it is there, so they never build it at the
    same time into one shared folder."""
    load = partial(load_dataset, cfg.dataset, data_dir=data_dir or cfg.paths.data_dir)
    dataset = load(progress=progress) if is_writer() else None
    barrier("dataset-prepared")  # a no-op with one process
    return dataset if dataset is not None else load(progress=False)


def validate_trainer(t: TrainerConfig) -> None:
    """One-line :class:`ConfigError` for a bad ``trainer`` node (the objective has its own check)."""
    for key in ("total_steps", "batch_size", "eval_every", "eval_batch_size", "log_every", "checkpoint_every",
                "keep_checkpoints"):
        check_int(f"trainer.{key}", getattr(t, key))
    choice(t.precision, "trainer.precision", tuple(PRECISIONS))
    choice(t.on_nonfinite, "trainer.on_nonfinite", NONFINITE)
    # Eval chunks need no check: they are padded up to a multiple of the data axis (masked rows).
    check_divides("trainer.batch_size", t.batch_size, data_axis_size(t.mesh), t.mesh)
    if not 0.0 <= t.target_accuracy <= 1.0:
        raise ConfigError(f"trainer.target_accuracy={t.target_accuracy} is not an accuracy; give a value in (0, 1], "
                          "or 0 to train for trainer.total_steps")


def check_objective(cfg: DictConfig, trainer: TrainerConfig, steps: int | None = None) -> tuple[str, tuple | None]:
    """The resolved loss mode (``auto`` → ``model.objective``) and the coarse-class map it needs; one-line
    :class:`ConfigError` for a bad combination. ``steps`` (the model's readouts) is checked when known."""
    mode = resolve_mode(trainer.loss_over_steps, cfg.model.get("objective", "mean"))
    validate_objective(mode, tuple(trainer.step_weights), steps, trainer.progressive_alpha)
    coarse = coarse_classes(cfg.dataset) if trainer.coarse_to_fine else None
    if trainer.coarse_to_fine and coarse is None:
        raise ConfigError(f"trainer.coarse_to_fine needs a dataset with coarse classes (cifar100 with fine labels); "
                          f"dataset {cfg.dataset.name!r} has none")
    return mode, coarse


def make_objective(cfg: DictConfig, trainer: TrainerConfig, model: nnx.Module) -> Objective:
    mode, coarse = check_objective(cfg, trainer, model.trained_steps)
    if mode == "progressive" and model.trained_steps > 1 and not isinstance(model, AreaGraph):
        raise ConfigError(f"trainer.loss_over_steps=progressive needs a recurrent model of the areas-graph engine; "
                          f"model {cfg.model.name!r} ({cfg.model.family}) cannot run a detached prefix")
    return build_objective(mode, model.trained_steps, weights=trainer.step_weights, alpha=trainer.progressive_alpha,
                           coarse_of=coarse, seed=int(cfg.seed))


def build_run(cfg: DictConfig, *, data_dir: str | None = None, progress: bool = True) -> Run:
    """Build a run from a composed (or saved) config; ``data_dir`` overrides ``paths.data_dir``."""
    trainer = as_schema(cfg.trainer, TrainerConfig)
    optim = as_schema(cfg.optim, OptimConfig)
    validate_trainer(trainer)
    parallel = make_parallel(trainer.mesh)
    dataset = _load_dataset(cfg, data_dir, progress)
    inputs = dataset.pipeline(batch_size=trainer.batch_size, seed=int(cfg.seed))
    inputs.shard(parallel)
    model = model_from_config(cfg.model, num_classes=dataset.num_classes, input_shape=dataset.image_shape,
                              seed=int(cfg.seed))
    tx, lr = make_optimizer(optim, trainer.total_steps)  # over optim.schedule_steps when set (the loop sets it)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    objective = make_objective(cfg, trainer, model)
    return Run(cfg=cfg, trainer=trainer, dataset=dataset, inputs=inputs, model=model, tx=tx, lr=lr,
               state=parallel.replicate(TrainState(params, rest, tx.init(params))),
               train_step=make_train_step(graphdef, tx, objective, dataset.multilabel, gather=inputs.gather,
                                          precision=trainer.precision, parallel=parallel,
                                          skip_nonfinite=trainer.on_nonfinite == "skip"),
               evaluate=make_eval_fn(graphdef, dataset.multilabel, precision=trainer.precision, parallel=parallel),
               parallel=parallel,
               train_step_on_batch=make_train_step(graphdef, tx, objective, dataset.multilabel,
                                                   precision=trainer.precision, parallel=parallel,
                                                   skip_nonfinite=trainer.on_nonfinite == "skip"))
