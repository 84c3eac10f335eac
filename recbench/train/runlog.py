"""Where a run reports: ``metrics.jsonl`` (the source of truth), the console, and wandb (a mirror).

Every event is one JSON object per line, flushed as written, so a killed run loses nothing it logged. In a
multi-process run only process 0 writes (metrics.jsonl and wandb); the others' loggers record nothing, so each
event is in the file once.

wandb never holds a run up: before going online the server is probed (:func:`recbench.env.reachable`, seconds),
and with no route to it — the usual state of a compute node — or an ``init`` that fails or times out, the run
logs offline and says, in one line, how to upload it later.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from recbench.env import reachable
from recbench.faults import atomic_write_text

WANDB_MODES = ("auto", "online", "offline", "disabled")
DEFAULT_WANDB_URL = "https://api.wandb.ai"
WANDB_INIT_TIMEOUT_S = 30  # a server that accepts the connection but does not answer


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` goes online only when an API key is set, so a run never waits on an unreachable server."""
    if mode not in WANDB_MODES:
        from recbench.config import ConfigError

        raise ConfigError(f"logger.wandb.mode={mode!r} is not valid; choose one of: {', '.join(WANDB_MODES)}")
    if os.environ.get("WANDB_MODE") in ("disabled", "offline", "online") and mode == "auto":
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


class RunLogger:
    def __init__(self, workdir: Path, cfg: dict, *, wandb_cfg: dict, console: bool, group: str,
                 writer: bool | None = None):
        """``writer``: whether this process records (default: process 0 of a multi-process run, else always)."""
        if writer is None:
            from recbench.train.parallel import is_writer

            writer = is_writer()
        self.workdir = workdir
        self.writer = writer
        self.console = console and writer
        log = workdir / "metrics.jsonl"
        #: seconds this run's earlier processes ran (a resumed run): its events' ``time_s`` continue from there
        self.earlier_s = earlier_seconds(log) if writer else 0.0
        self._jsonl = _open_log(log) if writer else None
        self._t0 = time.time() - self.earlier_s
        self.run = None
        self._sync_dir: str | None = None
        mode = resolve_wandb_mode(wandb_cfg["mode"])
        if mode != "disabled" and writer:
            self.run = self._start_wandb(workdir, cfg, wandb_cfg, mode, group)
            if self.run.offline:
                self._sync_dir = self.run.sync_dir
            elif not self.run.disabled and self.run.url:
                self._say(f"wandb: online run at {self.run.url}")

    def _start_wandb(self, workdir: Path, cfg: dict, wandb_cfg: dict, mode: str, group: str):
        """The wandb run; online falls back to offline (one line: why, and how to upload the run later)."""
        url = os.environ.get("WANDB_BASE_URL", DEFAULT_WANDB_URL)
        why = None
        if mode == "online" and not reachable(url):
            why, mode = f"no route to {url}", "offline"
        try:
            run = _init_wandb(workdir, cfg, wandb_cfg, mode, group)
        except Exception as e:  # wandb.errors.CommError, its init timeout, ...: the run goes on offline
            if mode != "online":
                raise
            why = f"{url} did not answer ({type(e).__name__}: {' '.join(str(e).split())[:100]})"
            run = _init_wandb(workdir, cfg, wandb_cfg, "offline", group)
        if why:
            where = _display_path(run.sync_dir)
            self._say(f"wandb: {why}; logging offline, upload later with: wandb sync {where}")
        return run

    def _say(self, line: str) -> None:
        """recbench's own wandb line (wandb itself runs silent: see :func:`_init_wandb`)."""
        if self.console:
            print(line, file=sys.stdout, flush=True)

    def event(self, kind: str, step: int, **values: Any) -> None:
        if self._jsonl is None:
            return
        record = {"event": kind, "step": step, "time_s": round(time.time() - self._t0, 3), **values}
        self._jsonl.write(json.dumps(record) + "\n")
        if self.run is not None:
            self._wandb_event(kind, step, values)

    def _wandb_event(self, kind: str, step: int, values: dict) -> None:
        flat = {"train/step": step}
        for k, v in values.items():
            if isinstance(v, list):
                flat.update({f"{kind}/{k}/t{t}": x for t, x in enumerate(v)})
            elif isinstance(v, (int, float)):
                flat[f"{kind}/{k}"] = v
        self.run.log(flat)
        if kind == "eval" and "accuracy_per_step" in values:
            import wandb

            acc = values["accuracy_per_step"]
            table = wandb.Table(columns=["time_step", "accuracy"], data=[[t, a] for t, a in enumerate(acc)])
            self.run.log({"train/step": step, "eval/accuracy_vs_time_step":
                          wandb.plot.line(table, "time_step", "accuracy", title="accuracy vs time step")})

    def summary(self, summary: dict) -> None:
        if self.run is not None:
            self._wandb_figures(summary)
            for k, v in summary.items():
                if isinstance(v, list):
                    for t, x in enumerate(v):
                        self.run.summary[f"{k}/t{t}"] = x
                elif isinstance(v, (int, float, str)):
                    self.run.summary[k] = v

    def _wandb_figures(self, summary: dict) -> None:
        """The run's final figures on the dashboard: accuracy against effective depth (one point per readout) and
        the histogram of per-image solution times (``summary["solution_time"]``)."""
        import wandb

        acc, depth = summary.get("accuracy_per_step") or [], summary.get("effective_depth") or []
        if acc and len(depth) == len(acc):
            points = [list(p) for p in zip(depth, acc, strict=True)]
            table = wandb.Table(columns=["effective_depth", "accuracy"], data=points)
            self.run.log({"eval/accuracy_vs_depth": wandb.plot.line(table, "effective_depth", "accuracy",
                                                                     title="accuracy vs effective depth")})
        hist = summary.get("solution_time")
        if hist:
            rows = [[str(t), n] for t, n in enumerate(hist["counts_per_step"])] + [["never", hist["never"]]]
            table = wandb.Table(columns=["solution_step", "images"], data=rows)
            self.run.log({"eval/solution_time": wandb.plot.bar(table, "solution_step", "images",
                                                               title="solution time (first step it stays right)")})

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self.run is not None:
            self.run.finish()
            self.run = None
            if self._sync_dir:  # once the offline run is complete: where it is and how to upload it
                where = _display_path(self._sync_dir)
                self._say(f"wandb: offline run in {where}; upload with: wandb sync {where}")


def earlier_seconds(path: Path) -> float:
    """The wall time a run's earlier processes logged in ``path``: the last ``time_s``, plus the last one before each
    restart of the clock (logs written before resumed runs kept counting)."""
    total = last = 0.0
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                t = float(json.loads(line)["time_s"])
            except (ValueError, KeyError, TypeError):  # a line cut short by a kill, or not an event
                continue
            if t < last:  # this process's clock started again at 0
                total += last
            last = t
    return total + last


def _open_log(path: Path):
    """``path`` for appending lines; a last line cut short by a kill is dropped first, so the lines appended after
    a resume stay whole JSON objects."""
    if path.exists():
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    return open(path, "a", buffering=1)


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it (``outputs/...``), else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def _init_wandb(workdir: Path, cfg: dict, wandb_cfg: dict, mode: str, group: str):
    """A wandb run that prints nothing: ``silent`` drops wandb's banner, offline notice and run summary (every
    line its printer writes), ``console="off"`` stops it capturing stdout/stderr. The one line worth keeping
    (where the run is: its sync directory, or its URL online) RunLogger prints itself."""
    import wandb

    id_file = workdir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
    atomic_write_text(id_file, run_id)
    run = wandb.init(project=wandb_cfg["project"], entity=wandb_cfg.get("entity"), group=group,
                     name=workdir.name, id=run_id, resume="allow", mode=mode, dir=str(workdir),
                     config=cfg, tags=list(wandb_cfg.get("tags") or []),
                     settings=wandb.Settings(console="off", silent=True, init_timeout=WANDB_INIT_TIMEOUT_S))
    run.define_metric("train/step")
    run.define_metric("train/*", step_metric="train/step")
    run.define_metric("eval/*", step_metric="train/step")
    return run
