"""Orbax checkpoints in the run directory, so running the same command again resumes the run."""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, workdir: Path, keep: int):
        logging.getLogger("absl").setLevel(logging.WARNING)
        options = ocp.CheckpointManagerOptions(max_to_keep=max(keep, 1), enable_async_checkpointing=False,
                                               create=True)
        self.manager = ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, tree) -> None:
        self.manager.save(step, args=ocp.args.StandardSave(tree), force=True)
        self.manager.wait_until_finished()

    def restore(self, step: int, like):
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self.manager.close()
