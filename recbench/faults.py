"""What a run does when something goes wrong on a shared machine or a cluster (docs/reliability.md).

* **Exit codes** — 0 done; 1 a crash (a bug: the traceback is kept) or, for a multirun, some of its jobs failed;
  2 a user's mistake (config, arguments, environment: one line); 3 the run diverged (a non-finite loss or
  gradient); 75 preempted (``EX_TEMPFAIL``: a checkpoint was saved, rerun the same command to resume).
* **Preemption** — :class:`Preemption` turns SIGTERM, SIGUSR1 and SIGUSR2 (and submitit's preemption signal) into
  "save a checkpoint at the current step and exit". In the training loop the signal only sets a flag, which the
  loop reads after each step; before and after it (data preparation, compilation, the final evaluation) the run
  stops at once, since its checkpoints are already as current as they can be. A handler that was installed before
  ours (submitit's, which requeues the job) is called after the checkpoint is written.
* **Divergence** — :class:`Diverged`, raised by the loop at the first non-finite step (``trainer.on_nonfinite=stop``)
  before anything of that step is saved.
* **One writer** — :class:`RunLock`, an advisory lock on ``<run dir>/.lock`` naming the process that holds it.
* **Atomic files** — :func:`atomic_path`: write to a temporary name in the same folder, rename on success.
* **Fault injection** — :func:`kill_point`: with ``RECBENCH_KILL_AT=<point>[:<n>[:<SIGNAL>]]`` the process sends
  itself SIGKILL (or the named signal) at that point, so the tests can kill a real run during data preparation
  (``data:<chunk>``), compilation (``compile``), training (``train:<step>``), a checkpoint write (``checkpoint``)
  and evaluation (``eval:<batch>``), or preempt it at an exact step. Unset (always, outside tests) it does
  nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from recbench.config import ConfigError

EXIT_CRASH = 1
EXIT_MISTAKE = 2
EXIT_DIVERGED = 3
EXIT_PREEMPTED = 75  # sysexits.h EX_TEMPFAIL: "temporary failure; the user is invited to retry"


class RunError(Exception):
    """A run-time failure that is reported in one line (no traceback) and ends the process with ``exit_code``."""

    exit_code = EXIT_CRASH
    reason = "failed"


class Diverged(RunError):
    exit_code = EXIT_DIVERGED
    reason = "diverged"


class Preempted(RunError):
    exit_code = EXIT_PREEMPTED
    reason = "preempted"


def _preemption_signals() -> tuple[int, ...]:
    sigs = [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2]
    extra = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)  # submitit's choice
    if extra is not None and extra not in sigs:
        sigs.append(extra)
    return tuple(sigs)


class Preemption:
    """Context manager that handles the preemption signals for the duration of a run (main thread only).

    ``armed`` is set by the training loop while it can save at the end of a step: then a signal sets ``signum``
    and the loop saves and calls :meth:`exit`; otherwise the handler raises :class:`Preempted` at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "?"

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            for s in _preemption_signals():
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        first = self.signum is None
        self.signum = signum
        if not self.armed and first:
            self._leave(f"{self.name} outside the training loop: the run's checkpoints are as current as they can be; "
                        "rerun the same command to resume")

    def exit(self, step: int, where: Path) -> None:
        """After the checkpoint of ``step`` is written: report, hand the signal on, raise :class:`Preempted`."""
        self._leave(f"{self.name} at step {step}: checkpoint saved in {where}; rerun the same command to resume")

    def _leave(self, message: str) -> None:
        """One line on stderr; then the launcher's own handler, if one was installed before ours (submitit's
        requeues the job and exits), else :class:`Preempted` (exit status 75, which asks a launcher to requeue)."""
        print(f"recbench: {message} (exit status {EXIT_PREEMPTED} asks a launcher to requeue)", file=sys.stderr,
              flush=True)
        previous = self._previous.get(self.signum)
        if callable(previous):
            try:
                previous(self.signum, None)  # submitit: requeues and exits (SystemExit passes through)
            except Exception as e:  # submitit's "not requeued because: timed-out too many times"
                raise Preempted(f"{message}; the launcher did not requeue it: {' '.join(str(e).split())}") from None
        raise Preempted(message)


class RunDirBusy(ConfigError):
    """Another process holds the run directory: a mistake in what was asked (exit status 2); nothing of this
    process may be written there, not even its ``status.json``."""


class RunLock:
    """One writer per run directory: an exclusive ``flock`` on ``<dir>/.lock``, held until :meth:`release` or the
    process ends (the kernel drops it even after ``kill -9``). The file names the holder, for the error line."""

    def __init__(self, workdir: Path):
        import fcntl

        self.path = workdir / ".lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            holder = self._holder()
            raise RunDirBusy(f"{workdir} is in use by another run ({holder}); wait for it to end, or choose another "
                             "hydra.run.dir") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)}
        os.ftruncate(self._fd, 0)
        os.write(self._fd, (json.dumps(info) + "\n").encode())

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            return f"pid {info['pid']} on {info['host']} since {info['since']}: {info['command']}"
        except (OSError, ValueError, KeyError):
            return "a process that has not written its name yet"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (an unlocked file means a free dir)
            self._fd = None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (atomic on POSIX), on failure
    remove it. A reader therefore sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# -- fault injection (tests) -------------------------------------------------------------------------------------

KILL_ENV = "RECBENCH_KILL_AT"


def _kill_spec() -> tuple[str, int, str] | None:
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return None
    point, n, sig = (spec.split(":") + ["", ""])[:3]
    return point, int(n or 1), sig or "KILL"


def _die() -> None:
    spec = _kill_spec()
    os.kill(os.getpid(), getattr(signal, "SIG" + (spec[2] if spec else "KILL")))


def kill_point(point: str, count: int = 1) -> None:
    """Signal this process if ``RECBENCH_KILL_AT`` names ``point`` and ``count`` (default 1)."""
    spec = _kill_spec()
    if spec is not None and spec[:2] == (point, count):
        _die()


def kill_soon(point: str, delay_s: float = 0.5) -> None:
    """SIGKILL this process ``delay_s`` from now (from a thread) if ``RECBENCH_KILL_AT`` names ``point``: for a
    point that is one long call (the first train step, which compiles)."""
    spec = _kill_spec()
    if spec is not None and spec[0] == point:
        threading.Timer(delay_s, _die).start()


@contextlib.contextmanager
def kill_while_writing(point: str, folder: Path) -> Iterator[None]:
    """If ``RECBENCH_KILL_AT`` names ``point``: SIGKILL this process as soon as a temporary folder in ``folder``
    holds a file (a checkpoint half written), or at the latest when the write returns."""
    if _kill_spec() is None or _kill_spec()[0] != point:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):  # entries come and go while orbax writes and renames
                if any("tmp" in p.name and any(f.is_file() for f in p.rglob("*")) for p in folder.iterdir()):
                    _die()
            time.sleep(0.0002)

    threading.Thread(target=watch, daemon=True).start()
    yield
    _die()


# -- outcomes: the run directory's status.json and the sweep's sweep_summary.json --------------------------------

SWEEP_SUMMARY = "sweep_summary.json"


def outcome_of(error: BaseException | None, summary: dict | None = None) -> dict:
    """What ``status.json`` records: ``done`` (with the final accuracy) or ``failed`` with its reason and message."""
    if error is None:
        return {"status": "done", "final_accuracy": (summary or {}).get("final_accuracy")}

    if isinstance(error, RunError):
        reason = error.reason
    elif isinstance(error, RunDirBusy):
        reason = "busy"
    elif isinstance(error, ConfigError):
        reason = "config"
    elif isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error):
        reason = "out_of_memory"
    else:
        reason = "crash"
    return {"status": "failed", "reason": reason, "error": type(error).__name__,
            "message": " ".join(str(error).split())[:2000]}


def record_outcome(workdir: Path, outcome: dict, sweep_dir: Path | None = None, *, own_dir: bool = True) -> None:
    """Write ``<workdir>/status.json`` (unless the directory is another process's: ``own_dir=False``) and, in a
    multirun, this job's entry of ``<sweep_dir>/sweep_summary.json`` (one entry per run directory, the latest
    outcome; updated under a lock, since jobs may run in parallel)."""
    import fcntl

    outcome = {**outcome, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "finished_s": round(time.time(), 3)}
    if own_dir:
        workdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(workdir / "status.json", json.dumps(outcome, indent=2) + "\n")
    if sweep_dir is None:
        return
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / f".{SWEEP_SUMMARY}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        jobs = read_sweep_summary(sweep_dir)
        jobs[os.path.relpath(workdir, sweep_dir)] = outcome
        atomic_write_text(sweep_dir / SWEEP_SUMMARY, json.dumps(jobs, indent=2, sort_keys=True) + "\n")


def read_sweep_summary(sweep_dir: Path) -> dict[str, dict]:
    try:
        return json.loads((sweep_dir / SWEEP_SUMMARY).read_text())
    except (OSError, ValueError):
        return {}
