"""Orbax checkpoints in the run directory, so running the same command again resumes the run.

With several processes every one of them calls :meth:`Checkpoints.save` and :meth:`Checkpoints.restore`: orbax
coordinates them (process 0 writes the metadata, each process the array shards it holds) and the barriers that
keep them in step. A restore comes back with the shardings of the tree it is restored into (on a data-parallel
mesh: replicated on every device), whatever the mesh the checkpoint was saved from.
"""

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
        """The checkpoint of ``step`` laid out like ``like``: same structure, dtypes and shardings."""
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self.manager.close()
