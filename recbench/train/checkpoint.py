"""Orbax checkpoints in the run directory, so running the same command again resumes the run.

With several processes every one of them calls :meth:`Checkpoints.save` and :meth:`Checkpoints.restore`: orbax
coordinates them (process 0 writes the metadata, each process the array shards it holds) and the barriers that
keep them in step. A restore comes back with the shardings of the tree it is restored into (on a data-parallel
mesh: replicated on every device), whatever the mesh the checkpoint was saved from.

A checkpoint is written into a temporary folder and renamed when complete (orbax's commit), so a run killed while
writing leaves no checkpoint that :meth:`Checkpoints.latest_step` would pick. One that is damaged after the fact
(a truncated or deleted file) fails to restore: :meth:`Checkpoints.restore_latest` reports it in one line, moves it
aside into ``damaged_checkpoints/`` and falls back to the one before it.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from recbench.faults import kill_while_writing


class Checkpoints:
    def __init__(self, workdir: Path, keep: int):
        logging.getLogger("absl").setLevel(logging.WARNING)
        options = ocp.CheckpointManagerOptions(max_to_keep=max(keep, 1), enable_async_checkpointing=False,
                                               create=True)
        self.directory = (workdir / "checkpoints").absolute()
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, tree) -> None:
        with kill_while_writing("checkpoint", self.directory):
            self.manager.save(step, args=ocp.args.StandardSave(tree), force=True)
            self.manager.wait_until_finished()

    def restore(self, step: int, like):
        """The checkpoint of ``step`` laid out like ``like``: same structure, dtypes and shardings."""
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_latest(self, like) -> tuple[int | None, object]:
        """``(step, tree)`` of the newest checkpoint that restores, or ``(None, like)`` when there is none. Each one
        that fails is reported on stderr in one line and moved to ``damaged_checkpoints/``."""
        from recbench.train.parallel import barrier, is_writer

        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                return step, self.restore(step, like)
            except Exception as e:  # truncated arrays, missing files, unreadable metadata: the checkpoint is lost
                reason = " ".join(str(e).split())[:200] or type(e).__name__
                aside = self.directory.parent / "damaged_checkpoints" / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
                print(f"recbench: checkpoint {self.directory / str(step)} is damaged ({type(e).__name__}: {reason}); "
                      f"moved to {aside}, trying the one before it", file=sys.stderr, flush=True)
                barrier(f"checkpoint-{step}-damaged")  # every process has failed on it before one moves it
                if is_writer():
                    aside.parent.mkdir(exist_ok=True)
                    (self.directory / str(step)).rename(aside)
                barrier(f"checkpoint-{step}-moved")
                self.manager.reload()
        return None, like

    def close(self) -> None:
        self.manager.close()
