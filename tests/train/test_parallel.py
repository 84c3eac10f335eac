"""Data parallelism and the fused train step: 8 simulated devices follow the single-device trajectory with the state
replicated and batches sharded; the step gathers its own batch (bit-identical to the separate gather it replaced,
so resumption stays exact) and compiles once; bad meshes and batches are one-line errors; bf16 computes in bf16
and keeps float32 state; only process 0 writes."""

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

from recbench.config import ConfigError, TrainerConfig
from recbench.data.pipeline import normalise
from recbench.data.resident import ResidentInputs, epoch_order, flip_crop
from recbench.train import parallel
from recbench.train.run import build_run, validate_trainer
from recbench.train.runlog import RunLogger

HERE = Path(__file__).parent


def test_eight_devices_follow_the_single_device_trajectory(tmp_path, tiny_cfg):
    config = tmp_path / "config.yaml"
    OmegaConf.save(tiny_cfg(), config)
    proc = subprocess.run([sys.executable, str(HERE / "mesh_probe.py"), str(config), str(tmp_path / "ckpt")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    # Global-batch gradients and BN statistics: the same trajectory up to float rounding of the all-reduces.
    np.testing.assert_allclose(out["losses_8"], out["losses_1"], rtol=1e-5)
    assert out["state_replicated_1"] and out["state_replicated_8"]
    assert out["batch_spec_8"] == "P('data',)" and out["batch_shards_8"] == [4]  # 32 rows, 4 per device
    assert out["compiles_1"] == out["compiles_8"] == 1  # the step is not recompiled from one step to the next
    # Eval chunks of 100 are padded to 104 on 8 devices; the padding is masked, so the result is the same.
    assert out["eval_count_1"] == out["eval_count_8"] == 256
    np.testing.assert_allclose(out["eval_accuracy_8"], out["eval_accuracy_1"], atol=1 / 256)
    # A checkpoint written from one device comes back replicated on eight, unchanged.
    assert out["restored_replicated"] and out["restored_equal"]
    stream = out["stream"]
    assert stream["same"] and stream["spec"] == "P('data',)"
    assert stream["eval_rows"] == [8, 8] and stream["eval_valid"] == [8, 5] and stream["eval_labels"] == list(range(13))
    errors = out["errors"]
    assert errors["ok"] == ""
    assert errors["batch"].startswith("trainer.batch_size=30 does not split over the 8 devices")
    assert "multiple of 6 such as 36" in errors["batch_mesh"]
    assert errors["mesh_high"] == "trainer.mesh must be an integer in 0..8, got 9"
    assert errors["mesh_negative"] == "trainer.mesh must be an integer in 0..8, got -1"
    assert all("\n" not in e for e in errors.values())


@partial(jax.jit, static_argnums=(3, 5))
def _separate_gather(data, order, position, batch_size, key, recipe):
    """The gather as it ran before it moved into the train step: a jit of its own, fed a key folded outside."""
    idx = jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))
    return normalise(flip_crop(key, data.images[idx], recipe), data.mean, data.std), data.labels[idx]


def _reference_batch(inputs: ResidentInputs, seed: int, step: int):
    """Batch ``step`` by its definition: the epoch's permutation from ``fold_in(key(seed), 1)``, augmentation from
    ``fold_in(fold_in(key(seed), 2), step)``."""
    key = jax.random.key(seed)
    order = epoch_order(jax.random.fold_in(key, 1), step // inputs.steps_per_epoch, inputs.num_train)
    return _separate_gather(inputs.train, order, step % inputs.steps_per_epoch, inputs.batch_size,
                            jax.random.fold_in(jax.random.fold_in(key, 2), step), inputs.recipe)


def test_gather_inside_jit_is_bit_identical_to_the_separate_gather():
    rng = np.random.default_rng(0)
    train = (rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), np.arange(40))
    test = (train[0][:4], train[1][:4])
    inputs = ResidentInputs(train, test, stats=(np.full(3, 0.5), np.full(3, 0.25)), augment="flip_crop",
                            batch_size=8, seed=3)
    traced = jax.jit(inputs.gather)  # the step index is a tracer, as inside the train step
    for k in (0, 1, 4, 5, 11):  # 5 steps per epoch: three epochs
        ref_x, ref_y = _reference_batch(inputs, 3, k)
        for x, y in (traced(inputs.train_args(k), k), inputs.train_batch(k)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(ref_x))
            np.testing.assert_array_equal(np.asarray(y), np.asarray(ref_y))
    assert not np.array_equal(np.asarray(inputs.train_batch(0)[0]), np.asarray(inputs.train_batch(5)[0]))


def test_fused_step_trains_exactly_as_a_step_fed_the_batch_and_compiles_once(tiny_cfg):
    cfg = tiny_cfg("dataset.augment=flip_crop")
    run = build_run(cfg, progress=False)
    plain = run.train_step_on_batch  # (state, x, y): the step as it was, fed a batch made outside it
    fused_state, plain_state = run.state, jax.tree.map(jnp.copy, run.state)
    for k in range(3):
        fused_state, fused_metrics = run.train_step(fused_state, run.inputs.train_args(k), k)
        plain_state, plain_metrics = plain(plain_state, *_reference_batch(run.inputs, int(cfg.seed), k))
        np.testing.assert_array_equal(fused_metrics["loss"], plain_metrics["loss"])
    for a, b in zip(jax.tree.leaves(fused_state.tree()), jax.tree.leaves(plain_state.tree()), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert run.train_step._cache_size() == 1


def test_bad_mesh_batch_and_precision_are_one_line_config_errors(monkeypatch):
    validate_trainer(TrainerConfig(mesh=1, precision="bf16"))
    cases = [({"mesh": 2}, "trainer.mesh must be an integer in 0..1, got 2"),
             ({"mesh": "all"}, "trainer.mesh must be an integer in 0..1"),
             ({"precision": "fp16"}, "trainer.precision='fp16' is not valid; choose one of: fp32, bf16")]
    for trainer, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            validate_trainer(TrainerConfig(**trainer))
    monkeypatch.setattr(jax, "device_count", lambda: 4)  # as if four devices: 4 does not divide 30
    with pytest.raises(ConfigError) as err:
        validate_trainer(TrainerConfig(batch_size=30))
    assert str(err.value) == ("trainer.batch_size=30 does not split over the 4 devices of the data axis "
                              "(trainer.mesh=0); use a multiple of 4 such as 32, or set trainer.mesh to a device "
                              "count that divides 30")


def test_the_environment_says_when_to_join_a_multi_process_run(monkeypatch):
    names = ("RECBENCH_COORDINATOR", "RECBENCH_NUM_PROCESSES", "RECBENCH_PROCESS_ID", "JAX_COORDINATOR_ADDRESS",
             "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", *parallel.SLURM_ENV)
    for name in names:
        monkeypatch.delenv(name, raising=False)
    assert parallel.distributed_request() is None and parallel.initialize_distributed() is False
    monkeypatch.setenv("RECBENCH_COORDINATOR", "node0:1234")
    with pytest.raises(ConfigError, match="needs RECBENCH_NUM_PROCESSES, RECBENCH_PROCESS_ID too"):
        parallel.distributed_request()
    monkeypatch.setenv("RECBENCH_NUM_PROCESSES", "2")
    monkeypatch.setenv("RECBENCH_PROCESS_ID", "2")
    with pytest.raises(ConfigError, match="RECBENCH_PROCESS_ID=2 must be below RECBENCH_NUM_PROCESSES=2"):
        parallel.distributed_request()
    monkeypatch.setenv("RECBENCH_PROCESS_ID", "1")
    assert parallel.distributed_request() == {"coordinator_address": "node0:1234", "num_processes": 2,
                                              "process_id": 1}
    for name in names[:3]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "node1:99")  # JAX's own names work too
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "0")
    assert parallel.distributed_request()["coordinator_address"] == "node1:99"
    for name in names[3:6]:
        monkeypatch.delenv(name)
    slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    assert parallel.distributed_request() == {}  # srun with two tasks: JAX detects the cluster itself
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "n1:4000")  # ...and takes what the environment overrides
    assert parallel.distributed_request() == {"coordinator_address": "n1:4000"}
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert parallel.distributed_request() is None


def test_only_the_writer_process_records(tmp_path):
    wandb_cfg = {"mode": "offline", "project": "recbench-test", "entity": None, "tags": []}
    logger = RunLogger(tmp_path, {}, wandb_cfg=wandb_cfg, console=True, group="g", writer=False)
    logger.event("train", 1, loss=0.5)
    logger.summary({"final_accuracy": 0.3})
    logger.close()
    assert logger.run is None and list(tmp_path.iterdir()) == []
    assert parallel.is_writer()  # one process: it is process 0


def test_bf16_computes_in_bf16_keeps_float32_state_and_learns(tiny_cfg):
    run = build_run(tiny_cfg("trainer.precision=bf16"), progress=False)
    state, args, losses = run.state, run.inputs.train_args(0), []
    for _ in range(6):  # one batch, six steps: the loss must fall
        state, metrics = run.train_step(state, args, 0)
        losses.append(float(metrics["loss"]))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert {str(a.dtype) for a in jax.tree.leaves(state.tree())} <= {"float32", "int32"}
    assert metrics["loss"].dtype == jnp.float32
    x, y = run.inputs.train_batch(0)
    logits, _, _ = run.evaluate(state.params, state.rest, x, y, None, ())
    assert logits.dtype == jnp.float32
    convs = [line for line in run.train_step.lower(state, args, 0).as_text().splitlines() if "convolution(" in line]
    assert convs and all(line.endswith("bf16>") for line in convs)  # forward and backward convs in bfloat16
