"""``train_and_evaluate(cfg, workdir)``: the one trainer. The Hydra entry point only calls it.

A run directory holds everything a run produces: the resolved ``config.yaml``, ``metrics.jsonl``,
``summary.json``, ``predictions.npz`` (per-image logits at every step), ``checkpoints/`` and ``wandb/``.
Running the same command again finds the same directory and resumes from its latest checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from omegaconf import DictConfig, OmegaConf

from recbench.config import ConfigError, OptimConfig, TrainerConfig, check_int
from recbench.data.sources import load_dataset
from recbench.models.accounting import describe
from recbench.models.registry import model_from_config
from recbench.train import batches
from recbench.train.checkpoint import Checkpoints
from recbench.train.console import Console
from recbench.train.objectives import step_weights
from recbench.train.optim import make_optimizer
from recbench.train.runlog import RunLogger
from recbench.train.step import TrainState, evaluate_split, make_eval_fn, make_train_step

# Keys that may change between a run and its resumption (they do not change what is being trained).
RESUME_FREE = ("trainer.total_steps", "trainer.eval_every", "trainer.log_every", "trainer.checkpoint_every",
               "trainer.progress", "trainer.resume", "trainer.keep_checkpoints", "trainer.eval_batch_size",
               "trainer.save_predictions", "logger", "paths", "name")
MAX_SAVED_LOGITS = 50_000_000


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{d.device_kind} x{jax.device_count()}"


def _check_trainer(t: TrainerConfig) -> None:
    for key in ("total_steps", "batch_size", "eval_every", "eval_batch_size", "log_every", "checkpoint_every"):
        check_int(f"trainer.{key}", getattr(t, key))


def _prepare_workdir(workdir: Path, resolved: dict, resume: bool) -> None:
    """Write the resolved config; refuse to resume a run directory that holds a different experiment."""
    saved = workdir / "config.yaml"
    if saved.exists() and (workdir / "checkpoints").exists():
        if not resume:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for name in ("checkpoints", "metrics.jsonl", "summary.json", "predictions.npz", "wandb_id.txt"):
                if (workdir / name).exists():
                    (workdir / name).rename(workdir / f"{name}.old-{stamp}")
        else:
            old = _flatten(OmegaConf.to_container(OmegaConf.load(saved), resolve=True))
            new = _flatten(resolved)
            diff = sorted(k for k in old.keys() | new.keys()
                          if old.get(k) != new.get(k) and not k.startswith(RESUME_FREE))
            if diff:
                k = diff[0]
                raise ConfigError(f"{workdir} holds a run with a different config ({k}: {old.get(k)!r} -> "
                                  f"{new.get(k)!r}); choose another hydra.run.dir or pass trainer.resume=false")
    OmegaConf.save(OmegaConf.create(resolved), saved)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def train_and_evaluate(cfg: DictConfig, workdir: str | Path) -> dict:
    """Train the configured model on the configured dataset; return (and write) the run summary."""
    t_start = time.time()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    tc: TrainerConfig = OmegaConf.to_object(cfg.trainer) if OmegaConf.is_config(cfg.trainer) else cfg.trainer
    oc: OptimConfig = OmegaConf.to_object(cfg.optim) if OmegaConf.is_config(cfg.optim) else cfg.optim
    _check_trainer(tc)
    _prepare_workdir(workdir, resolved, tc.resume)
    console = Console(enabled=bool(cfg.logger.console), progress=tc.progress)

    with console.status("preparing data"):
        ds = load_dataset(cfg.dataset, data_dir=cfg.paths.data_dir, progress=tc.progress)
    n_train = ds.train[0].shape[0]
    if tc.batch_size > n_train:
        raise ConfigError(f"trainer.batch_size={tc.batch_size} exceeds the {n_train} training images")
    model = model_from_config(cfg.model, num_classes=ds.num_classes, input_shape=ds.image_shape, seed=cfg.seed)
    with console.status("counting parameters, FLOPs and depth"):
        accounting = describe(model, ds.image_shape)
    steps = len(accounting["effective_depth"])
    weights = step_weights(tc.loss_over_steps, steps, tuple(tc.step_weights))
    tx, lr = make_optimizer(oc, tc.total_steps)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = TrainState(params, rest, tx.init(params))

    with contextlib.ExitStack() as cleanup:  # close the logger and checkpoints even on a crash
        ckpt = Checkpoints(workdir, tc.keep_checkpoints)
        cleanup.callback(ckpt.close)
        start = ckpt.latest_step() if tc.resume else None
        if start is not None:
            state = TrainState(**ckpt.restore(start, state.tree()))
        start = min(start or 0, tc.total_steps)
        inputs = batches.make_inputs(ds, batch_size=tc.batch_size, seed=cfg.seed)
        train_step = make_train_step(graphdef, tx, weights, ds.multilabel)
        evaluate = make_eval_fn(graphdef, ds.multilabel)
        logger = RunLogger(workdir, resolved, wandb_cfg=resolved["logger"]["wandb"], console=console.enabled,
                           group=cfg.name)
        cleanup.callback(logger.close)
        info = {"model": cfg.model.name, "dataset": cfg.dataset.name, "time_steps": steps, **accounting,
                "device": device_name()}
        logger.event("resume" if start else "start", start, **info)
        console.header(info, workdir, start)

        train_time, timed_images, t_prev, first_step_s, last_logged = 0.0, 0, None, None, start
        with console.progress(tc.total_steps, start) as bar:
            for step in range(start, tc.total_steps):
                if t_prev is None:
                    t_prev = time.time()
                state, metrics = train_step(state, *inputs.train_batch(step))
                done = step + 1
                if done % tc.log_every == 0 or done == tc.total_steps or first_step_s is None:
                    metrics = jax.device_get(metrics)
                    now = time.time()
                    if first_step_s is None:  # the first step includes compilation: keep it out of img/s
                        first_step_s = now - t_prev
                    else:
                        train_time += now - t_prev
                        timed_images += (done - last_logged) * tc.batch_size
                    t_prev, last_logged = now, done
                    img_s = timed_images / train_time if train_time else 0.0
                    logger.event("train", done, loss=float(metrics["loss"]), lr=float(lr(step)),
                                 grad_norm=float(metrics["grad_norm"]),
                                 accuracy_per_step=[float(a) for a in metrics["accuracy_per_step"]],
                                 loss_per_step=[float(v) for v in metrics["loss_per_step"]], images_per_s=img_s)
                    bar.update(done, loss=float(metrics["loss"]), img_s=img_s)
                if done % tc.eval_every == 0 and done < tc.total_steps:
                    ev = evaluate_split(evaluate, state, inputs, tc.eval_batch_size, None)
                    logger.event("eval", done, accuracy_per_step=ev["accuracy_per_step"],
                                 loss_per_step=ev["loss_per_step"])
                    bar.note(f"step {done}: test accuracy per step " + console.fmt(ev["accuracy_per_step"]))
                    t_prev = time.time()
                if done % tc.checkpoint_every == 0 or done == tc.total_steps:
                    ckpt.save(done, state.tree())
                    t_prev = time.time()

        keep_logits = tc.save_predictions and steps * inputs.eval_size * ds.num_classes <= MAX_SAVED_LOGITS
        ev = evaluate_split(evaluate, state, inputs, tc.eval_batch_size, None, keep_logits=keep_logits)
        logger.event("eval", tc.total_steps, accuracy_per_step=ev["accuracy_per_step"],
                     loss_per_step=ev["loss_per_step"])
        if tc.save_predictions:
            extra = {"logits": ev["logits"].astype(np.float16)} if keep_logits else {}
            np.savez_compressed(workdir / "predictions.npz", correct=ev["correct"], labels=ds.test[1], **extra)
        summary = {
            **info,
            "accuracy_per_step": ev["accuracy_per_step"],
            "final_accuracy": ev["accuracy_per_step"][-1],
            "best_step_accuracy": max(ev["accuracy_per_step"]),
            "loss_per_step": ev["loss_per_step"],
            "train_steps": tc.total_steps,
            "resumed_from": start,
            "wall_time_s": round(time.time() - t_start, 2),
            "first_step_s": round(first_step_s, 2) if first_step_s is not None else None,
            "images_per_s": round(timed_images / train_time, 1) if train_time else None,
            "workdir": str(workdir),
        }
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        logger.summary(summary)
        console.final(summary)
    return summary
