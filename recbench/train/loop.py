"""``train_and_evaluate(cfg, workdir)``: the one trainer. The Hydra entry point only calls it.

A run directory holds everything a run produces: the resolved ``config.yaml``, ``metrics.jsonl``,
``summary.json``, ``predictions.npz`` (per-image logits at every step), ``checkpoints/`` and ``wandb/``.
Running the same command again finds the same directory and resumes from its latest checkpoint.

What can go wrong is handled here and in :mod:`recbench.train.faults` (docs/reliability.md): one process writes a
run directory at a time (``.lock``); every file is written under a temporary name and renamed; a preemption signal
saves a checkpoint at the current step and exits with status 75; a non-finite loss or gradient stops the run
before anything of that step is saved (exit status 3), or with ``trainer.on_nonfinite=skip`` leaves the state as
it was and goes on.
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
from recbench.faults import Diverged, Preemption, RunLock, atomic_path, atomic_write_text, kill_point, kill_soon
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
            _set_aside(workdir, ("checkpoints", *_RUN_RECORDS))
        with atomic_path(saved) as tmp:
            OmegaConf.save(OmegaConf.create(resolved), tmp)
    barrier("workdir-ready")  # no process opens checkpoints/ before an old run's is moved aside


#: what a run writes beside its checkpoints; set aside (renamed ``NAME.old-STAMP``) when a new run takes the directory
_RUN_RECORDS = ("metrics.jsonl", "summary.json", "predictions.npz", "wandb_id.txt")


def _set_aside(workdir: Path, names: tuple[str, ...]) -> None:
    """Rename each of ``names`` in ``workdir`` that exists to ``NAME.old-STAMP``: kept, but no longer this run's."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in names:
        if (workdir / name).exists():
            (workdir / name).rename(workdir / f"{name}.old-{stamp}")


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


class NonFiniteWatch:
    """``trainer.on_nonfinite``. Each step's ``finite`` flag stays on the device until the loop next fetches
    (every ``log_every`` steps, before a checkpoint and at the end), so watching costs no synchronisation of its
    own. ``stop``: the first non-finite step raises :class:`Diverged`, and since the loop checks before it saves,
    no checkpoint ever holds that step's state. ``skip``: the step left the state as it was (see
    :func:`recbench.train.step.make_train_step`); the skips are counted, and ``MAX_CONSECUTIVE_SKIPS`` in a row stop
    the run as diverged."""

    MAX_CONSECUTIVE_SKIPS = 50

    def __init__(self, mode: str, checkpoints: Path):
        self.mode, self.checkpoints = mode, checkpoints
        self.pending: list[tuple[int, dict]] = []
        self.skipped = self.consecutive = 0
        self.last_saved: int | None = None

    def add(self, done: int, metrics: dict) -> None:
        self.pending.append((done, {k: metrics[k] for k in ("finite", "loss", "grad_norm")}))

    def _last_good(self) -> str:
        if self.last_saved is None:
            return "no checkpoint was saved before it"
        return f"the last good checkpoint (step {self.last_saved}) is in {self.checkpoints}, untouched"

    def check(self) -> int:
        """Raise :class:`Diverged` for a non-finite step since the last check; return the steps newly skipped."""
        if not self.pending:
            return 0
        flags = jax.device_get([m["finite"] for _, m in self.pending])
        before = self.skipped
        for (done, m), ok in zip(self.pending, flags, strict=True):
            if ok:
                self.consecutive = 0
                continue
            if self.mode == "skip":
                self.skipped, self.consecutive = self.skipped + 1, self.consecutive + 1
                if self.consecutive < self.MAX_CONSECUTIVE_SKIPS:
                    continue
            self.pending.clear()
            loss, grad_norm = float(m["loss"]), float(m["grad_norm"])
            what = f"the loss is {loss}" if not np.isfinite(loss) else f"the gradient norm is {grad_norm}"
            if self.mode == "skip":
                what = f"{self.consecutive} steps in a row were non-finite and skipped (the last: {what})"
            raise Diverged(f"step {done}: {what}: the run diverged and stopped; {self._last_good()} (lower optim.lr, "
                           f"or pass trainer.on_nonfinite=skip to skip such steps)")
        self.pending.clear()
        return self.skipped - before


def train_and_evaluate(cfg: DictConfig, workdir: str | Path) -> dict:
    """Train the configured model on the configured dataset; return (and write) the run summary.

    Raises :class:`recbench.faults.Diverged` (a non-finite step), :class:`recbench.faults.Preempted` (a signal:
    the checkpoint of the current step is saved first) and :class:`recbench.config.ConfigError` (a mistake, or a
    run directory another process is writing)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(workdir) if is_writer() else None
    try:
        with Preemption() as preemption:
            return _train(cfg, workdir, preemption)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: DictConfig, workdir: Path, preemption: Preemption) -> dict:
    t_start = time.time()
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
        state, start = run.state, None
        if tc.resume:
            start, tree = ckpt.restore_latest(state.tree())
            state = TrainState(**tree) if start is not None else state
        start = min(start or 0, tc.total_steps)
        if start == 0 and is_writer():  # nothing restored (a run killed before its first checkpoint): it starts
            _set_aside(workdir, _RUN_RECORDS)  # again, so the earlier process's log and time are not this run's
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
        watch = NonFiniteWatch(tc.on_nonfinite, ckpt.directory)
        watch.last_saved = start or None

        def save(done: int) -> None:
            if watch.check():
                logger.event("skipped", done, skipped_steps=watch.skipped)
            ckpt.save(done, state.tree())
            watch.last_saved = done
            clock.resume()

        preemption.armed = True  # from here a signal is served at the end of the step it arrives in
        with console.progress(tc.total_steps, start) as bar:
            for step in range(start, start if target.reached else tc.total_steps):
                clock.begin()
                if clock.first_step_s is None:
                    kill_soon("compile")  # tests: a kill while the first step compiles
                state, metrics = run.train_step(state, run.inputs.train_args(step), step)  # one dispatch
                done = step + 1
                watch.add(done, metrics)
                kill_point("train", done)
                if done % tc.log_every == 0 or done == tc.total_steps or clock.first_step_s is None:
                    if watch.check():
                        bar.note(f"step {done}: {watch.skipped} non-finite steps skipped so far")
                    metrics = jax.device_get(metrics)
                    clock.lap(done)
                    img_s = clock.images_per_s or 0.0
                    logger.event("train", done, loss=float(metrics["loss"]), lr=float(run.lr(step)),
                                 grad_norm=float(metrics["grad_norm"]),
                                 accuracy_per_step=[float(a) for a in metrics["accuracy_per_step"]],
                                 loss_per_step=[float(v) for v in metrics["loss_per_step"]], images_per_s=img_s,
                                 **({"skipped_steps": watch.skipped} if watch.skipped else {}))
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
                    save(done)
                if preemption.requested:
                    if watch.last_saved != done:
                        save(done)
                    logger.event("preempted", done, signal=preemption.name)
                    preemption.exit(done, ckpt.directory)
                if target.reached:
                    break
        preemption.armed = False
        watch.check()

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
            with atomic_path(workdir / "predictions.npz") as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, correct=ev["correct"], labels=run.inputs.eval_labels(), **extra)
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
            **({"skipped_steps": watch.skipped} if tc.on_nonfinite == "skip" else {}),
            **target.summary(),
            "wall_time_s": round(time.time() - t_start + logger.earlier_s, 2),  # over every process of the run
            "first_step_s": round(clock.first_step_s, 2) if clock.first_step_s is not None else None,
            "images_per_s": round(clock.images_per_s, 1) if clock.images_per_s else None,
            "workdir": str(workdir),
        }
        if is_writer():
            atomic_write_text(workdir / "summary.json", json.dumps(summary, indent=2) + "\n")
        logger.summary(summary)
        console.final(summary)
    return summary
