"""Where recbench's train step spends its time: profile a few steps and add up XLA's op time by kind.

    python scripts/profile_step.py blt --batch 64
    python scripts/profile_step.py resnet20 --batch 128 --input 32,32,3

It builds the preset with ``recbench.build_model``, times it through recbench's own jitted train step
(``recbench.train.step.make_train_step``, Adam, mean loss over time steps), traces ``--steps`` steps with
``jax.profiler`` and classifies every executed HLO op — a fusion by what its fused computation contains — into
convolution, transpose / copy (layout changes), reduction (BatchNorm statistics, pooling, loss), gather /
scatter / dynamic slices, dot, elementwise and other. The table is per step, summed over XLA's threads. XLA:CPU
runs most convolutions as library calls whose time the trace does not attribute to the op (a conv then shows
only a fraction of a millisecond), so read the kinds' shares of the attributed time, not the total.
docs/performance.md §8 records what it found.
"""

from __future__ import annotations

import argparse
import glob
import re
import shutil
import tempfile
import time
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import recbench  # noqa: F401  (sets the measured XLA CPU flags before JAX creates its backend)
from recbench.models.registry import build_model
from recbench.train.objectives import step_weights
from recbench.train.step import TrainState, make_train_step

KINDS = ("convolution", "transpose/copy", "reduce", "gather/scatter/slice", "dot", "elementwise", "other")


def classify(hlo: str) -> dict[str, str]:
    """Map each instruction name of the optimised HLO to a kind (fusions by the ops they contain)."""
    comps: dict[str, str] = {}
    current, body = None, []
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line.strip())
        if m and not line.startswith(" "):
            current, body = m.group(1), []
            continue
        if line.strip() == "}" and current:
            comps[current] = "\n".join(body)
            current = None
            continue
        if current:
            body.append(line)

    def kind_of(text: str) -> str:
        ops = set(re.findall(r"= [\w\[\]{}:,. ()]*? ([a-z\-]+)\(", text))
        for k, names in (("convolution", {"convolution"}), ("dot", {"dot"}),
                         ("gather/scatter/slice", {"gather", "scatter", "dynamic-slice", "dynamic-update-slice"}),
                         ("reduce", {"reduce", "reduce-window", "select-and-scatter"}),
                         ("transpose/copy", {"transpose", "copy"})):
            if ops & names:
                return k
        return "elementwise" if ops else "other"

    kinds = {}
    for text in comps.values():
        for line in text.splitlines():
            m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = \S+ ([a-z\-]+)\((.*)", line)
            if not m:
                continue
            name, op, rest = m.groups()
            if op == "fusion":
                called = re.search(r"calls=%?([\w.\-]+)", rest)
                kinds[name] = kind_of(comps.get(called.group(1), "")) if called else "other"
            elif op == "custom-call":
                kinds[name] = "convolution" if "conv" in rest.lower() else "dot" if "dot" in rest.lower() \
                    or "matmul" in rest.lower() else "other"
            else:
                kinds[name] = kind_of(f"= x {op}(")
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="blt")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--input", default="32,32,1", help="H,W,C")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--set", nargs="*", default=[], help="model overrides key=value (YAML values)")
    ap.add_argument("--top", type=int, default=12, help="also list the N costliest ops")
    args = ap.parse_args()

    import yaml
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    shape = tuple(int(v) for v in args.input.split(","))
    model = build_model(args.model, num_classes=args.classes, input_shape=shape, **overrides)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(1e-3)
    weights = step_weights("mean", model.trained_steps, ())
    step = make_train_step(graphdef, tx, weights, False)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((args.batch, *shape)), jnp.float32)
    y = jnp.asarray(rng.integers(0, args.classes, args.batch))
    state = TrainState(params, rest, tx.init(params))
    hlo = step.lower(state, x, y).compile().as_text()
    kinds = classify(hlo)
    for _ in range(2):
        state, m = step(state, x, y)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        state, m = step(state, x, y)
    jax.block_until_ready(m)
    wall = (time.perf_counter() - t0) / args.steps

    out = tempfile.mkdtemp(prefix="recbench_prof_")
    jax.profiler.start_trace(out)
    for _ in range(args.steps):
        state, m = step(state, x, y)
    jax.block_until_ready(m)
    jax.profiler.stop_trace()
    from jax.profiler import ProfileData
    data = ProfileData.from_file(glob.glob(f"{out}/**/*.xplane.pb", recursive=True)[0])
    per_kind, per_op = defaultdict(float), defaultdict(float)
    for plane in data.planes:
        for line in plane.lines:
            if "XLAEigen" not in line.name and "XLA" not in plane.name:
                continue
            for ev in line.events:
                if ev.name not in kinds:
                    continue
                ms = ev.duration_ns / 1e6 / args.steps
                per_kind[kinds[ev.name]] += ms
                per_op[ev.name] += ms
    if not __import__("os").environ.get("KEEP_PROFILE"):
        shutil.rmtree(out, ignore_errors=True)
    total = sum(per_kind.values()) or 1.0
    print(f"{args.model} batch {args.batch} {shape}: {wall * 1e3:.0f} ms/step wall, "
          f"{args.batch / wall:.0f} img/s; op time summed over threads {total:.0f} ms/step")
    for k in KINDS:
        if per_kind.get(k):
            print(f"  {k:22s} {per_kind[k]:8.1f} ms  {100 * per_kind[k] / total:5.1f} %")
    print("costliest ops:")
    for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {ms:8.1f} ms  {kinds[name]:22s} {name}")


if __name__ == "__main__":
    main()
