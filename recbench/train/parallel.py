"""Data parallelism over every device of every process, and joining a multi-process run.

One mesh axis, ``data``: each batch is split over the devices on it (``NamedSharding(mesh, P("data"))``) and the
train state is replicated on all of them (``P()``). Under ``jax.jit`` the step is then one SPMD program: XLA
partitions the forward and backward passes over the batch and inserts the all-reduces, so gradients and batch-norm
statistics are those of the *global* batch and the trajectory matches a single device within float rounding.

* :func:`initialize_distributed` — join a multi-process run (SLURM with several tasks, or the coordinator given
  in the environment) before JAX does any computation; the training entry point calls it first.
* :func:`make_parallel` — the mesh for ``trainer.mesh`` (0 = every device of every process) and its shardings.
* :func:`is_writer` / :func:`barrier` — one process (0) writes the run directory; the others wait where it must
  have finished first.

With several processes every one runs the same program: each feeds the devices it can address (the streaming
pipeline its own shard of the data, the resident pipeline its copy of the whole split) and orbax coordinates the
checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from recbench.config import ConfigError, check_int

AXIS = "data"
# The environment that describes a multi-process run when no cluster manager does: recbench's names first, then
# the ones JAX documents for ``jax.distributed.initialize`` (JAX itself reads only the address).
COORDINATOR_ENV = ("RECBENCH_COORDINATOR", "JAX_COORDINATOR_ADDRESS")
NUM_PROCESSES_ENV = ("RECBENCH_NUM_PROCESSES", "JAX_NUM_PROCESSES")
PROCESS_ID_ENV = ("RECBENCH_PROCESS_ID", "JAX_PROCESS_ID")
# What JAX's own SLURM detection reads (jax._src.clusters.slurm_cluster): present inside an ``srun`` step.
SLURM_ENV = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


def _first(names: tuple[str, ...]) -> tuple[str, str] | None:
    return next(((n, os.environ[n]) for n in names if os.environ.get(n)), None)


def _env_int(found: tuple[str, str], low: int) -> int:
    name, value = found
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low:
        raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
    return number


def distributed_request() -> dict | None:
    """The ``jax.distributed.initialize`` arguments the environment asks for, or ``None`` for one process.

    SLURM with ``SLURM_NTASKS`` > 1 inside an ``srun`` step: JAX detects the cluster (any of the variables below
    that is set overrides what it detects). Otherwise a coordinator address (``RECBENCH_COORDINATOR`` or
    ``JAX_COORDINATOR_ADDRESS``, ``host:port``) with the number of processes and this process's id
    (``RECBENCH_NUM_PROCESSES`` / ``JAX_NUM_PROCESSES``, ``RECBENCH_PROCESS_ID`` / ``JAX_PROCESS_ID``); one of them
    set without the others is a :class:`ConfigError`.
    """
    address, count, pid = _first(COORDINATOR_ENV), _first(NUM_PROCESSES_ENV), _first(PROCESS_ID_ENV)
    tasks = os.environ.get("SLURM_NTASKS", "1")
    slurm = tasks.isdigit() and int(tasks) > 1 and all(v in os.environ for v in SLURM_ENV)
    if not (address or count or pid):
        return {} if slurm else None
    if not slurm and not (address and count and pid):
        missing = [names[0] for names, v in ((COORDINATOR_ENV, address), (NUM_PROCESSES_ENV, count),
                                             (PROCESS_ID_ENV, pid)) if not v]
        raise ConfigError(f"a multi-process run needs {', '.join(missing)} too (set {COORDINATOR_ENV[0]}="
                          f"host:port, {NUM_PROCESSES_ENV[0]} and {PROCESS_ID_ENV[0]} on every process)")
    request = {}
    if address:
        request["coordinator_address"] = address[1]
    if count:
        request["num_processes"] = _env_int(count, 1)
    if pid:
        request["process_id"] = _env_int(pid, 0)
    if count and pid and request["process_id"] >= request["num_processes"]:
        raise ConfigError(f"{pid[0]}={request['process_id']} must be below {count[0]}={request['num_processes']}")
    return request


def initialize_distributed() -> bool:
    """Join the multi-process run the environment describes (see :func:`distributed_request`); return whether
    this is one. Call it before any JAX computation: ``jax.distributed.initialize`` must come first."""
    request = distributed_request()
    if request is None:
        return False
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(**request)
    return True


def data_axis_size(requested: int) -> int:
    """The devices on the data axis for ``trainer.mesh`` (0 = all), or a one-line :class:`ConfigError`."""
    total, processes = jax.device_count(), jax.process_count()
    n = check_int("trainer.mesh", requested, 0, total) or total
    if n % processes:
        raise ConfigError(f"trainer.mesh={requested} puts {n} devices on the data axis, which do not split over "
                          f"{processes} processes; use a multiple of {processes} (0 = all {total} devices)")
    return n


def check_divides(key: str, value: int, n: int, requested: int) -> None:
    """A batch dimension (``trainer.batch_size``) must split evenly over the ``n`` devices of the data axis."""
    if value % n:
        up = round_up(value, n)
        raise ConfigError(f"{key}={value} does not split over the {n} devices of the data axis "
                          f"(trainer.mesh={requested}); use a multiple of {n} such as {up}, or set trainer.mesh "
                          f"to a device count that divides {value}")


def round_up(value: int, n: int) -> int:
    return -(-value // n) * n


@dataclass(frozen=True)
class Parallel:
    """The data-parallel layout: ``batch`` shards the leading axis over the mesh, ``replicated`` copies."""

    mesh: Mesh
    batch: NamedSharding
    replicated: NamedSharding

    @property
    def size(self) -> int:
        """Devices on the data axis: batch dimensions must be multiples of it."""
        return int(self.mesh.devices.size)

    def whole_rows(self, chunk: int) -> int:
        """``chunk`` rounded up to whole rows per device (an eval chunk; the extra rows are padding, masked)."""
        return round_up(chunk, self.size)

    def replicate(self, tree):
        """Every leaf of ``tree`` on every device of the mesh. Values must be equal on all processes (they are: each
        process builds the same state from the same seed and loads the same split). With several processes each
        one copies its own value to its own devices: ``device_put`` would first all-gather every leaf to check
        that the processes agree, which for a resident training split is a large transfer."""
        if self.replicated.is_fully_addressable:
            return jax.device_put(tree, self.replicated)
        return jax.tree.map(self._replicate_leaf, tree)

    def _replicate_leaf(self, x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = self._replicate_leaf(jax.random.key_data(x))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, self.replicated, lambda index: host[index])

    def shard_global(self, array: np.ndarray) -> jax.Array:
        """A batch that every process holds whole (an evaluation chunk), split over the data axis."""
        if self.batch.is_fully_addressable:
            return jax.device_put(array, self.batch)
        return jax.make_array_from_process_local_data(self.batch, array, array.shape)

    def shard_local(self, rows: np.ndarray) -> jax.Array:
        """One global batch from each process's own rows (the streaming pipeline's shard), split over the data
        axis; process ``p``'s rows land on its own devices."""
        if self.batch.is_fully_addressable:
            return jax.device_put(rows, self.batch)
        return jax.make_array_from_process_local_data(self.batch, rows)


def make_parallel(requested: int = 0) -> Parallel:
    """The data-axis mesh for ``trainer.mesh``: all devices, or ``requested`` of them taken equally from every
    process (each process must feed devices of its own). The axis is ``Auto``: XLA propagates the shardings."""
    n = data_axis_size(requested)
    devices = jax.devices()
    if n < len(devices):
        per_process = n // jax.process_count()
        by_process: dict[int, list] = {}
        for d in devices:
            by_process.setdefault(d.process_index, []).append(d)
        devices = [d for p in sorted(by_process) for d in by_process[p][:per_process]]
    mesh = jax.make_mesh((n,), (AXIS,), axis_types=(AxisType.Auto,), devices=devices)
    return Parallel(mesh, NamedSharding(mesh, PartitionSpec(AXIS)), NamedSharding(mesh, PartitionSpec()))


def is_writer() -> bool:
    """Whether this process writes the run directory (config, metrics, summary, predictions, wandb): process 0."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (a no-op with one process); ``name`` must match on all of them."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"recbench:{name}")
