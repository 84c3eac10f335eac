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
from omegaconf import DictConfig, OmegaConf

from recbench.analysis.solution_time import solution_time_histogram, solution_times
from recbench.config import ConfigError, TrainerConfig, as_schema, resume_free
from recbench.models.accounting import describe
from recbench.train.checkpoint import Checkpoints
from recbench.train.console import Console
from recbench.train.parallel import barrier, is_writer
from recbench.train.run import build_run, validate_trainer
from recbench.train.runlog import RunLogger
from recbench.train.step import TrainState, evaluate_split

MAX_SAVED_LOGITS = 50_000_000


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{d.device_kind} x{jax.device_count()}"


class Throughput:
    """Training images per second over steady-state steps: the first step, which compiles, is timed on its own,
    and pauses for evaluation and checkpoints are left out (call :meth:`resume` after one)."""

    def __init__(self, batch_size: int, start: int):
        self.batch_size = batch_size
        self.first_step_s: float | None = None
        self._seconds, self._images, self._since, self._last = 0.0, 0, None, start

    def begin(self) -> None:
        if self._since is None:
            self._since = time.time()

    def lap(self, done: int) -> None:
        """Steps up to ``done`` have finished (their metrics were fetched from the device)."""
        now = time.time()
        if self.first_step_s is None:
            self.first_step_s = now - self._since
        else:
            self._seconds += now - self._since
            self._images += (done - self._last) * self.batch_size
        self._since, self._last = now, done

    def resume(self) -> None:
        self._since = time.time()

    @property
    def images_per_s(self) -> float | None:
        return self._images / self._seconds if self._seconds else None


class TargetWatch:
    """``trainer.target_accuracy``: stop at the first evaluation whose last-step accuracy reaches the target, and
    record the time to it (airbench's measure: seconds since the run started, data preparation and compilation
    included, and the images seen). A rerun of a run that stopped at its target finds it in ``summary.json`` and
    does not train on."""

    def __init__(self, target: float, t_start: float, workdir: Path | None, start: int):
        self.target, self.t_start = target, t_start
        self.step: int | None = None
        self.seconds: float | None = None
        self.images: int | None = None
        if target > 0 and workdir is not None and (workdir / "summary.json").exists():
            old = json.loads((workdir / "summary.json").read_text())
            if old.get("target_accuracy") == target and old.get("steps_to_target") == start:
                self.step, self.seconds, self.images = start, old["time_to_target_s"], old["images_to_target"]

    @property
    def reached(self) -> bool:
        return self.step is not None

    def check(self, step: int, accuracy: float, batch_size: int) -> bool:
        if self.target <= 0 or self.reached or accuracy < self.target:
            return False
        self.step, self.seconds, self.images = step, round(time.time() - self.t_start, 2), step * batch_size
        return True

    def summary(self) -> dict:
        if self.target <= 0:
            return {}
        return {"target_accuracy": self.target, "time_to_target_s": self.seconds, "steps_to_target": self.step,
                "images_to_target": self.images}


def _prepare_workdir(workdir: Path, resolved: dict, resume: bool) -> None:
    """Write the resolved config; refuse to resume a run directory that holds a different experiment. Every process
    checks (reading only); process 0 alone renames and writes, and every process waits until it has."""
    saved = workdir / "config.yaml"
    previous = saved.exists() and (workdir / "checkpoints").exists()
    if previous and resume:
        old = _flatten(OmegaConf.to_container(OmegaConf.load(saved), resolve=True))
        new = _flatten(resolved)
        diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and not resume_free(k))
        if diff:
            k = diff[0]
            raise ConfigError(f"{workdir} holds a run with a different config ({k}: {old.get(k)!r} -> "
                              f"{new.get(k)!r}); choose another hydra.run.dir or pass trainer.resume=false")
    barrier("workdir-checked")  # no process reads config.yaml while process 0 rewrites it
    if is_writer():
        if previous and not resume:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for name in ("checkpoints", "metrics.jsonl", "summary.json", "predictions.npz", "wandb_id.txt"):
                if (workdir / name).exists():
                    (workdir / name).rename(workdir / f"{name}.old-{stamp}")
        OmegaConf.save(OmegaConf.create(resolved), saved)
    barrier("workdir-ready")  # no process opens checkpoints/ before an old run's is moved aside


def _schedule_horizon(cfg: DictConfig, workdir: Path, tc: TrainerConfig) -> int:
    """The steps the learning-rate schedule spans: ``optim.schedule_steps`` if set, else the horizon the run
    started with (a saved run's), else ``trainer.total_steps``. Extending a finished run (a larger total_steps on
    resume) therefore continues its schedule instead of rebuilding it: no warm restart."""
    if cfg.optim.schedule_steps:
        return int(cfg.optim.schedule_steps)
    saved = workdir / "config.yaml"
    if tc.resume and saved.exists() and (workdir / "checkpoints").exists():
        old = OmegaConf.load(saved)
        return int(OmegaConf.select(old, "optim.schedule_steps", default=0)
                   or OmegaConf.select(old, "trainer.total_steps", default=tc.total_steps))
    return tc.total_steps


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
    tc = as_schema(cfg.trainer, TrainerConfig)
    horizon = _schedule_horizon(cfg, workdir, tc)
    if horizon != cfg.optim.schedule_steps:
        cfg = cfg.copy()
        cfg.optim.schedule_steps = horizon
    resolved = OmegaConf.to_container(cfg, resolve=True)
    validate_trainer(tc)
    _prepare_workdir(workdir, resolved, tc.resume)
    console = Console(enabled=bool(cfg.logger.console) and is_writer(), progress=tc.progress)

    # -- set up ------------------------------------------------------------------------------------------------
    with console.status("preparing data"):
        run = build_run(cfg, progress=tc.progress)
    with console.status("counting parameters, FLOPs and depth"):
        accounting = describe(run.model, run.dataset.image_shape)
    info = {"model": cfg.model.name, "dataset": cfg.dataset.name, "time_steps": run.time_steps, **accounting,
            "device": device_name()}

    with contextlib.ExitStack() as cleanup:  # close the logger and checkpoints even on a crash
        ckpt = Checkpoints(workdir, tc.keep_checkpoints)
        cleanup.callback(ckpt.close)
        state, start = run.state, (ckpt.latest_step() if tc.resume else None)
        if start is not None:
            state = TrainState(**ckpt.restore(start, state.tree()))
        start = min(start or 0, tc.total_steps)
        logger = RunLogger(workdir, resolved, wandb_cfg=resolved["logger"]["wandb"], console=console.enabled,
                           group=cfg.name)
        cleanup.callback(logger.close)
        logger.event("resume" if start else "start", start, **info)
        console.header(info, workdir, start)
        if tc.total_steps > horizon and start < tc.total_steps and cfg.optim.schedule != "constant":
            console.say(f"note: training to step {tc.total_steps} past the {cfg.optim.schedule} schedule's "
                        f"{horizon} steps: the learning rate stays at its final value {float(run.lr(horizon)):.3g} "
                        f"(a longer schedule: pass optim.schedule_steps=N)")

        # -- loop ----------------------------------------------------------------------------------------------
        clock = Throughput(tc.batch_size, start)
        target = TargetWatch(tc.target_accuracy, t_start, workdir if start else None, start)
        with console.progress(tc.total_steps, start) as bar:
            for step in range(start, start if target.reached else tc.total_steps):
                clock.begin()
                state, metrics = run.train_step(state, run.inputs.train_args(step), step)  # one dispatch
                done = step + 1
                if done % tc.log_every == 0 or done == tc.total_steps or clock.first_step_s is None:
                    metrics = jax.device_get(metrics)
                    clock.lap(done)
                    img_s = clock.images_per_s or 0.0
                    logger.event("train", done, loss=float(metrics["loss"]), lr=float(run.lr(step)),
                                 grad_norm=float(metrics["grad_norm"]),
                                 accuracy_per_step=[float(a) for a in metrics["accuracy_per_step"]],
                                 loss_per_step=[float(v) for v in metrics["loss_per_step"]], images_per_s=img_s)
                    bar.update(done, loss=float(metrics["loss"]), img_s=img_s)
                if done % tc.eval_every == 0 and done < tc.total_steps:
                    ev = evaluate_split(run.evaluate, state, run.inputs, tc.eval_batch_size, None)
                    logger.event("eval", done, accuracy_per_step=ev["accuracy_per_step"],
                                 loss_per_step=ev["loss_per_step"])
                    bar.note(f"step {done}: test accuracy per step " + console.fmt(ev["accuracy_per_step"]))
                    if target.check(done, ev["accuracy_per_step"][-1], tc.batch_size):
                        bar.note(f"step {done}: reached target accuracy {tc.target_accuracy} after "
                                 f"{target.seconds:.1f} s; stopping")
                    clock.resume()
                if done % tc.checkpoint_every == 0 or done == tc.total_steps or target.reached:
                    ckpt.save(done, state.tree())
                    clock.resume()
                if target.reached:
                    break

        # -- summarise -----------------------------------------------------------------------------------------
        keep_logits = (tc.save_predictions
                       and run.time_steps * run.inputs.eval_size * run.dataset.num_classes <= MAX_SAVED_LOGITS)
        end = target.step or tc.total_steps
        ev = evaluate_split(run.evaluate, state, run.inputs, tc.eval_batch_size, None, keep_logits=keep_logits)
        if not target.reached:  # a run stopped at its target has logged this very evaluation already
            logger.event("eval", end, accuracy_per_step=ev["accuracy_per_step"], loss_per_step=ev["loss_per_step"])
            target.check(end, ev["accuracy_per_step"][-1], tc.batch_size)
        if tc.save_predictions and is_writer():
            extra = {"logits": ev["logits"].astype(np.float16)} if keep_logits else {}
            np.savez_compressed(workdir / "predictions.npz", correct=ev["correct"], labels=run.inputs.eval_labels(),
                                **extra)
        summary = {
            **info,
            "accuracy_per_step": ev["accuracy_per_step"],
            "final_accuracy": ev["accuracy_per_step"][-1],
            "best_step_accuracy": max(ev["accuracy_per_step"]),
            "loss_per_step": ev["loss_per_step"],
            # images first solved (right from then on) at each step, and never: Kar et al.'s solution time
            "solution_time": solution_time_histogram(solution_times(ev["correct"]), len(ev["accuracy_per_step"])),
            "train_steps": end,
            "resumed_from": start,
            **target.summary(),
            "wall_time_s": round(time.time() - t_start, 2),
            "first_step_s": round(clock.first_step_s, 2) if clock.first_step_s is not None else None,
            "images_per_s": round(clock.images_per_s, 1) if clock.images_per_s else None,
            "workdir": str(workdir),
        }
        if is_writer():
            (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        logger.summary(summary)
        console.final(summary)
    return summary
