#!/usr/bin/env python
"""Accelerator checks of the recurrent models, run by scripts/gpu_check.sh on a lent GPU machine and, with
``--quick`` (tiny inputs and batches), on the CPU by tests/test_gpu_check.py so that it cannot rot unseen.

    python scripts/gpu_probe.py backend                 backend, devices and library versions
    python scripts/gpu_probe.py loop-scan [--quick]     blt, cornet_s, hgru at their papers' inputs, batch 32: loop
                                                        vs rolled scan — equal logits (at highest matmul precision),
                                                        first-step time, train img/s over 5 steps
    python scripts/gpu_probe.py memory [--quick]        paper-scale blt_net and cornet_s at batch 128: peak device
                                                        memory of a train step for scan, loop and model.remat=true,
                                                        each in a fresh process (JAX's peak counter never resets)
    python scripts/gpu_probe.py memory-one MODEL VARIANT BATCH [--quick]   one of those, as one JSON line

Each command prints one JSON document (``--out FILE`` writes it there too). What it measures is recbench's own
train step (``recbench.train.step.make_train_step``) on random images, so no data set is needed. The open
questions these figures answer are listed in docs/performance.md §7.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without an install too

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import recbench  # noqa: E402
from recbench.env import backend_report  # noqa: E402
from recbench.models.registry import family_defaults, natural_input, preset  # noqa: E402
from recbench.train.step import TrainState, make_train_step  # noqa: E402

LOOP_SCAN_MODELS = ("blt", "cornet_s", "hgru")
MEMORY_MODELS = ("blt_net", "cornet_s")
# --quick: small inputs and narrow, shallow versions of the presets, so that the whole probe runs in seconds on a
# CPU (name -> input shape, classes, config overrides). cornet_s is left out there: its 53 M parameters (and
# their Adam moments, 0.6 GB) make one CPU step take seconds whatever the input.
QUICK = {"blt": ((16, 16, 1), 10, {"channels": [4, 4], "steps": 2}),
         "hgru": ((16, 16, 1), 2, {"channels": 4, "kernel": 3, "stem_kernel": 3, "steps": 2})}
QUICK_LOOP_SCAN_MODELS = ("blt", "hgru")
QUICK_MEMORY_MODELS = ("blt",)
QUICK_MEMORY_VARIANTS = ("scan", "remat")  # loop's step is compiled by loop-scan already
VARIANTS = {"scan": {"unroll": "scan"}, "loop": {"unroll": "loop"}, "remat": {"unroll": "scan", "remat": True}}


def _finite(x):
    """JSON has no NaN or infinity: such values become ``None``."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _dump(doc, out: str | None, quiet: bool = False) -> None:
    text = json.dumps(doc, indent=2, default=str)
    if not quiet:
        print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "recbench": recbench.__version__}
    for dist in ("flax", "optax", "numpy", "orbax-checkpoint", "hydra-core", "wandb", "tensorflow-datasets", "grain"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def backend() -> dict:
    from jax.extend.backend import get_backend

    env = ("JAX_PLATFORMS", "XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE", "JAX_DEFAULT_MATMUL_PRECISION")
    return {**backend_report(), "versions": _versions(), "platform_version": get_backend().platform_version,
            "memory_stats": _memory_stats(jax.devices()[0]), "env": {k: os.environ.get(k) for k in env}}


def _memory_stats(device) -> dict | None:
    """The device allocator's counters (``bytes_in_use``, ``peak_bytes_in_use``, ``bytes_limit``); ``None`` on the
    CPU, whose client keeps none."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001  (backends without an allocator raise or return None)
        return None
    return dict(stats) if stats else None


def _model(name: str, quick: bool, **overrides):
    """A preset at its paper's input (``--quick``: a small one), with config overrides (``unroll``, ``remat``)."""
    if quick:
        shape, classes, small = QUICK[name]
        overrides = {**small, **overrides}
    else:
        shape, classes = natural_input(preset(name))
    return recbench.build_model(name, input_shape=shape, num_classes=classes, **overrides), shape, classes


def _batch(shape, classes: int, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, *shape), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, classes, size=batch, dtype=np.int32))
    return x, y


def _train(model, x, y, steps: int) -> dict:
    """Compile and run recbench's train step ``steps`` times: first-step seconds (compile included), steady img/s,
    the first loss, XLA's compile-time memory analysis and the allocator's counters."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(1e-3)
    weights = jnp.full((model.trained_steps,), 1.0 / model.trained_steps)
    state = TrainState(params, rest, tx.init(params))
    step = make_train_step(graphdef, tx, weights, False)
    device = jax.devices()[0]
    before = _memory_stats(device)
    t0 = time.perf_counter()
    compiled = step.lower(state, x, y).compile()  # compiled once, and called below: no second compile
    compile_s = time.perf_counter() - t0
    state, metrics = compiled(state, x, y)
    first_loss = float(metrics["loss"])
    first_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, x, y)
    jax.block_until_ready(metrics["loss"])
    steady = time.perf_counter() - t1
    mem = compiled.memory_analysis()
    analysis = None if mem is None else {k: int(getattr(mem, k)) for k in (
        "argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
        "generated_code_size_in_bytes") if hasattr(mem, k)}
    after = _memory_stats(device)
    return {"compile_s": round(compile_s, 3), "first_step_s": round(first_s, 3),
            "images_per_s": _finite(round(steps * x.shape[0] / steady, 1)) if steps else None,
            "first_loss": _finite(first_loss), "xla_memory_analysis": analysis,
            "bytes_in_use_before": (before or {}).get("bytes_in_use"),
            "peak_bytes_in_use": (after or {}).get("peak_bytes_in_use")}


def _logits(model, x, strategy: str):
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, x):
        m = nnx.merge(graphdef, state, copy=True)
        return jnp.stack(m.unroll(x, train=False, strategy=strategy))

    return np.asarray(forward(state, x))


def loop_scan(quick: bool, batch: int, steps: int, out: str | None = None) -> dict:
    """Per model: the eval logits of one model unrolled as a loop and as a rolled scan must agree (checked at the
    highest matmul precision, so TF32-style rounding on a GPU does not hide or fake a difference), and each
    strategy's train step is timed on a model built with that ``unroll``, from the same initial parameters."""
    models: dict = {}
    doc = {"backend": jax.default_backend(), "quick": quick, "models": models}
    for name in QUICK_LOOP_SCAN_MODELS if quick else LOOP_SCAN_MODELS:
        loop_model, shape, classes = _model(name, quick, unroll="loop")
        scan_model, _, _ = _model(name, quick, unroll="scan")
        # The same initial parameters, as copies: each train step donates (frees) the buffers of its own model.
        nnx.update(scan_model, jax.tree.map(jnp.copy, nnx.state(loop_model)))
        x, y = _batch(shape, classes, batch)
        with jax.default_matmul_precision("highest"):
            a, b = _logits(loop_model, x, "loop"), _logits(loop_model, x, "scan")
        scale = float(np.max(np.abs(a))) or 1.0
        row = {"input_shape": list(shape), "batch": batch, "time_steps": int(a.shape[0]),
               "max_abs_logit_diff": _finite(float(np.max(np.abs(a - b)))),
               "max_rel_logit_diff": _finite(float(np.max(np.abs(a - b))) / scale),
               "logits_equal": bool(np.allclose(a, b, rtol=1e-4, atol=1e-4 * scale))}
        for strategy, model in (("loop", loop_model), ("scan", scan_model)):
            row[strategy] = _train(model, x, y, steps)
        row["first_loss_diff"] = _finite(abs((row["loop"]["first_loss"] or 0.0) - (row["scan"]["first_loss"] or 0.0)))
        models[name] = row
        _dump(doc, out, quiet=True)  # what is done so far survives a time limit that stops the rest
        print(f"gpu_probe: {name}: logits equal {row['logits_equal']} (max diff {row['max_abs_logit_diff']:.2e}); "
              f"loop {row['loop']['first_step_s']} s first step, {row['loop']['images_per_s']} img/s; "
              f"scan {row['scan']['first_step_s']} s, {row['scan']['images_per_s']} img/s", file=sys.stderr)
    return doc


def memory_one(name: str, variant: str, batch: int, quick: bool, steps: int = 2) -> dict:
    overrides = VARIANTS[variant]
    if "remat" in overrides and "remat" not in family_defaults(preset(name).family):
        return {"model": name, "variant": variant, "batch": batch,
                "skipped": f"the {preset(name).family} family has no remat key"}
    model, shape, classes = _model(name, quick, **overrides)
    x, y = _batch(shape, classes, batch)
    return {"model": name, "variant": variant, "batch": batch, "input_shape": list(shape),
            "backend": jax.default_backend(), **_train(model, x, y, steps)}


def memory(quick: bool, batch: int, budget: float, out: str | None = None) -> dict:
    """Each (model, variant) in its own process, so that each peak is that configuration's alone; ``budget`` seconds
    are shared out among the configurations still to run, so one slow compile cannot take the others' time."""
    rows: list = []
    doc = {"backend": jax.default_backend(), "quick": quick, "batch": batch, "rows": rows}
    configs = [(n, v) for n in (QUICK_MEMORY_MODELS if quick else MEMORY_MODELS)
               for v in (QUICK_MEMORY_VARIANTS if quick else VARIANTS)]
    deadline = time.perf_counter() + budget
    for i, (name, variant) in enumerate(configs):
        timeout = max(1.0, (deadline - time.perf_counter()) / (len(configs) - i))
        cmd = [sys.executable, __file__, "memory-one", name, variant, str(batch)] + (["--quick"] if quick else [])
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            rows.append({"model": name, "variant": variant, "batch": batch,
                         "error": f"timed out ({timeout:.0f} s)"})
            _dump(doc, out, quiet=True)
            continue
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode == 0 and lines:
            row = json.loads(lines[-1])
        else:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            row = {"model": name, "variant": variant, "batch": batch, "error": f"rc {proc.returncode}: {tail}"}
        row["process_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        _dump(doc, out, quiet=True)
        peak, why = row.get("peak_bytes_in_use"), row.get("error") or row.get("skipped")
        print(f"gpu_probe: memory {name} {variant}: peak {'n/a' if peak is None else f'{peak / 2**30:.2f} GiB'}"
              + (f" ({why})" if why else ""), file=sys.stderr)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(prog="gpu_probe.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("backend", "loop-scan", "memory", "memory-one"))
    parser.add_argument("args", nargs="*", help="memory-one: MODEL VARIANT BATCH")
    parser.add_argument("--quick", action="store_true", help="tiny inputs and batches, for a CPU")
    parser.add_argument("--batch", type=int, default=None, help="loop-scan: 32 (quick: 2); memory: 128 (quick: 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed train steps after the first (5; quick: 2)")
    parser.add_argument("--budget", type=float, default=600, help="memory: seconds for all its configurations")
    parser.add_argument("--out", default=None, help="also write the JSON document to this file")
    a = parser.parse_args()
    steps = a.steps if a.steps is not None else (2 if a.quick else 5)
    if a.command == "backend":
        _dump(backend(), a.out)
    elif a.command == "loop-scan":
        _dump(loop_scan(a.quick, a.batch or (2 if a.quick else 32), steps, a.out), a.out)
    elif a.command == "memory":
        _dump(memory(a.quick, a.batch or (2 if a.quick else 128), a.budget, a.out), a.out)
    else:
        if len(a.args) != 3 or a.args[1] not in VARIANTS:
            parser.error(f"memory-one takes MODEL VARIANT BATCH, VARIANT one of {', '.join(VARIANTS)}")
        print(json.dumps(memory_one(a.args[0], a.args[1], int(a.args[2]), a.quick), default=str))


if __name__ == "__main__":
    main()
