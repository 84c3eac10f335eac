"""One measurement in one fresh process: ``python -m recbench.bench.worker --spec '<json>'`` prints one JSON line.

A fresh process per measurement keeps the frameworks from sharing caches, allocators or thread pools, and lets
the orchestrator alternate them (docs/performance.md, *Noise*: compare by alternating processes). The spec says
what to measure (``mode``):

* ``train_eval`` — a case's train step and eval forward, by ``framework`` ``recbench`` or ``torch`` (with a
  ``layout``, ``nchw`` or ``channels_last``, and a ``device``);
* ``train`` / ``eval`` — recbench's train step alone (the unroll-depth section: ``overrides`` sets ``steps`` and
  ``unroll``), or its eval forward alone at ``eval_steps_T`` time steps (the test-time unroll);
* ``probe`` — the backend and device, for the report's header.

recbench is timed through its own step, as the trainer runs it (``recbench/train/run.py``): the model split into
``params`` and the rest, ``TrainState`` donated to :func:`recbench.train.step.make_train_step` with the mean
cross-entropy over time steps, and :func:`recbench.train.step.make_eval_fn`. The PyTorch reference runs eager in
fp32 with ``torch.optim.Adam`` and the same loss. Both see the same random batch at every step, Adam at the same
learning rate.

Reported: ``init_s`` (build the model and initialise its parameters and optimizer state); for recbench
``compile_s`` / ``eval_compile_s`` (trace, lower and compile, ahead of time, so a slow first execution is not
mistaken for compilation; the timed steps then call that very executable); ``first_step_s`` / ``first_eval_s``
(compilation plus the first call for recbench, PyTorch's first eager call: what a user waits for); per-step times
of ``steps`` timed train steps and ``eval_calls`` timed eval calls after ``warmup`` untimed ones, their
medians as images per second, and ``peak_rss_mib`` (``ru_maxrss`` of this process). Every timed call ends in
``jax.block_until_ready`` / ``torch.cuda.synchronize``. PyTorch's ``init_s`` includes the first construction of
``torch.optim.Adam``, which imports a part of torch lazily (about 1 s); the PyTorch worker never imports JAX, so
its peak RSS is PyTorch's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

LEARNING_RATE = 1e-3
SEED = 0


def peak_rss_mib() -> float:
    """Peak resident set of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if platform.system() == "Darwin" else 1024), 1)


def random_batch(batch: int, shape, classes: int):
    """The same NHWC images and labels for every framework."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    return x, rng.integers(0, classes, batch).astype(np.int32)


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summarise(result: dict, batch: int) -> dict:
    for kind in ("train", "eval"):
        times = result.get(f"{kind}_step_s")
        if times:
            result[f"{kind}_img_s"] = batch / statistics.median(times)
    result["peak_rss_mib"] = peak_rss_mib()
    return result


# ---- recbench -----------------------------------------------------------------------------------------------


def run_recbench(spec: dict) -> dict:
    # recbench's XLA flags were set when this module's package was imported (recbench/__init__.py) and are fitted
    # to the preset's family here, before JAX starts its backend, as the trainer fits them (recbench/env.py)
    from recbench.config import load_option
    from recbench.env import prefer_xla_defaults

    prefer_xla_defaults({str(load_option("model", spec["preset"]).get("family"))})
    import jax
    import optax
    from flax import nnx

    import recbench
    from recbench.train.objectives import step_weights
    from recbench.train.step import TrainState, make_eval_fn, make_train_step

    batch, shape, classes = spec["batch"], tuple(spec["input_shape"]), spec["num_classes"]
    x, y = random_batch(batch, shape, classes)
    x, y = jax.device_put(x), jax.device_put(y)
    result = {"framework": "recbench", "layout": "nhwc", **device_info()}

    t0 = time.perf_counter()
    model = recbench.build_model(spec["preset"], num_classes=classes, input_shape=shape, **spec.get("overrides", {}))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(LEARNING_RATE)
    state = TrainState(params, rest, tx.init(params))
    jax.block_until_ready(state)
    result["init_s"] = time.perf_counter() - t0
    result["time_steps"] = model.trained_steps
    evaluate = make_eval_fn(graphdef, multilabel=False)
    eval_steps = spec.get("eval_steps_T")  # None: the trained depth

    if spec["mode"] in ("train_eval", "train"):
        train_step = make_train_step(graphdef, tx, step_weights("mean", model.trained_steps), multilabel=False)
        t0 = time.perf_counter()
        compiled = train_step.lower(state, x, y).compile()
        result["compile_s"] = time.perf_counter() - t0
        box = [state]

        def train():
            box[0], metrics = compiled(box[0], x, y)  # the jitted step's own executable, state donated
            jax.block_until_ready((box[0], metrics))

        result["first_step_s"] = result["compile_s"] + timed(train, 1)[0]
        timed(train, spec["warmup"])
        result["train_step_s"] = timed(train, spec["steps"])
        state = box[0]

    if spec["mode"] in ("train_eval", "eval"):
        t0 = time.perf_counter()
        compiled_eval = evaluate.lower(state.params, state.rest, x, y, eval_steps, ()).compile()
        result["eval_compile_s"] = time.perf_counter() - t0

        def ev():
            jax.block_until_ready(compiled_eval(state.params, state.rest, x, y))

        result["first_eval_s"] = result["eval_compile_s"] + timed(ev, 1)[0]
        timed(ev, spec["warmup"])
        result["eval_step_s"] = timed(ev, spec["eval_calls"])
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        result["peak_device_mib"] = round(stats["peak_bytes_in_use"] / 2**20, 1)
    return summarise(result, batch)


def device_info() -> dict:
    import jax

    d = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": d.device_kind, "device_count": jax.device_count()}


# ---- PyTorch ----------------------------------------------------------------------------------------------------


def run_torch(spec: dict) -> dict:
    import numpy as np
    import torch
    from torch.nn import functional as F

    from recbench.bench.torch_refs import build_reference

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(SEED)
    device = torch.device(spec["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("JAX runs on a GPU but this torch has no CUDA; install a CUDA build of torch")
    channels_last = spec["layout"] == "channels_last"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batch, shape, classes = spec["batch"], tuple(spec["input_shape"]), spec["num_classes"]
    xn, yn = random_batch(batch, shape, classes)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    result = {"framework": "torch", "layout": spec["layout"], "backend": device.type,
              "device_kind": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    model = build_reference(spec["model_config"], classes, shape).to(device, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    sync()
    result["init_s"] = time.perf_counter() - t0
    x = torch.from_numpy(np.ascontiguousarray(xn.transpose(0, 3, 1, 2))).to(device).contiguous(memory_format=fmt)
    y = torch.from_numpy(yn.astype(np.int64)).to(device)
    steps_t = model.trained_steps
    result["time_steps"] = steps_t

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        logits = model(x)  # [T, B, C]
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(steps_t))  # = mean over steps of the batch means
        loss.backward()
        opt.step()
        sync()

    def ev():
        model.eval()
        with torch.inference_mode():
            logits = model(x)
            F.cross_entropy(logits.flatten(0, 1), y.repeat(steps_t), reduction="none")
            (logits.argmax(-1) == y).float()
        sync()

    result["first_step_s"] = timed(train, 1)[0]
    timed(train, spec["warmup"])
    result["train_step_s"] = timed(train, spec["steps"])
    result["first_eval_s"] = timed(ev, 1)[0]
    timed(ev, spec["warmup"])
    result["eval_step_s"] = timed(ev, spec["eval_calls"])
    if device.type == "cuda":
        result["peak_device_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return summarise(result, batch)


# ---- entry point --------------------------------------------------------------------------------------------


def probe() -> dict:
    """The backend and device the recbench workers get, with the XLA flags that ``import recbench`` set."""
    return {**device_info(), "xla_flags": os.environ.get("XLA_FLAGS", "")}


def measure(spec: dict) -> dict:
    if spec["mode"] == "probe":
        return probe()
    if spec["framework"] == "torch":
        return run_torch(spec)
    return run_recbench(spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recbench.bench.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", required=True, help="the measurement, as JSON (see the module docstring)")
    spec = json.loads(parser.parse_args(argv).spec)
    result = measure(spec)
    sys.stdout.write(json.dumps({"spec": {k: v for k, v in spec.items() if k != "model_config"}, **result}) + "\n")


if __name__ == "__main__":
    main()
