"""One run builder: everything a run needs, from one config.

``build_run(cfg)`` prepares the dataset and its input pipeline, builds the model, the optimizer, the train state
and the jitted train and eval functions. The trainer (:mod:`recbench.train.loop`), ``recbench-eval``
(:mod:`recbench.train.evaluate`) and the benchmarks all start here, so they train and evaluate the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optax
from flax import nnx
from omegaconf import DictConfig

from recbench.config import OptimConfig, TrainerConfig, as_schema
from recbench.data.pipeline import Dataset, InputPipeline
from recbench.data.sources import load_dataset
from recbench.models.registry import model_from_config
from recbench.train.objectives import step_weights
from recbench.train.optim import make_optimizer
from recbench.train.step import TrainState, make_eval_fn, make_train_step


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
    train_step: Callable  # (state, x, y) -> (state, metrics), jitted, state donated
    evaluate: Callable  # (params, rest, x, y, steps, ablate) -> (logits, loss, correct), jitted

    @property
    def time_steps(self) -> int:
        """Readouts at the trained depth: the model knows its own unroll."""
        return self.model.trained_steps


def build_run(cfg: DictConfig, *, data_dir: str | None = None, progress: bool = True) -> Run:
    """Build a run from a composed (or saved) config; ``data_dir`` overrides ``paths.data_dir``."""
    trainer = as_schema(cfg.trainer, TrainerConfig)
    optim = as_schema(cfg.optim, OptimConfig)
    dataset = load_dataset(cfg.dataset, data_dir=data_dir or cfg.paths.data_dir, progress=progress)
    inputs = dataset.pipeline(batch_size=trainer.batch_size, seed=int(cfg.seed))
    model = model_from_config(cfg.model, num_classes=dataset.num_classes, input_shape=dataset.image_shape,
                              seed=int(cfg.seed))
    tx, lr = make_optimizer(optim, trainer.total_steps)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    weights = step_weights(trainer.loss_over_steps, model.trained_steps, tuple(trainer.step_weights))
    return Run(cfg=cfg, trainer=trainer, dataset=dataset, inputs=inputs, model=model, tx=tx, lr=lr,
               state=TrainState(params, rest, tx.init(params)),
               train_step=make_train_step(graphdef, tx, weights, dataset.multilabel),
               evaluate=make_eval_fn(graphdef, dataset.multilabel))
