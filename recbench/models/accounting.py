"""What a model costs, so comparisons between families are fair: parameters, FLOPs and effective depth.

* **Parameters** — the size of every ``nnx.Param`` (running BN statistics are not parameters).
* **FLOPs per image** — from XLA's cost analysis of the lowered, jitted eval-mode forward at batch 1.
  Entry ``t`` is *cumulative*: the cost of producing the readout at step ``t`` (all earlier steps included),
  i.e. what a model must spend to answer at that step. It is always counted **on the CPU backend**, whatever
  device the run trains on: backends reached through the PJRT C API (the CUDA plugin, libtpu) have no
  pre-compilation cost analysis (``Lowered.cost_analysis()`` is ``None``), and one counting platform keeps the
  figures comparable across machines. Where no CPU backend exists (``JAX_PLATFORMS=cuda``) and the default
  backend cannot count either, an entry is ``None`` ("n/a"), with one warning, rather than a crash.
* **Effective depth** — the longest chain of nonlinear transforms (ReLU, sigmoid, tanh, …) from the pixels
  to the readout at step ``t``, found by walking the jaxpr of the unrolled eval-mode forward. It is
  computed from the graph that really runs, so it counts skip paths, schedules and ablations as they are.
  Pooling and normalisation do not count (in eval mode BN is affine); a ReLU counts once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from recbench.models.contract import Model
from recbench.models.rewrites import reference_ops

# Elementwise primitives that make a layer nonlinear. ``max`` is how ReLU lowers.
NONLINEAR_PRIMITIVES = frozenset({"max", "logistic", "tanh", "erf", "erf_inv", "sin", "cos", "atan2"})
_UNREACHED = -math.inf


def count_params(model: nnx.Module) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def _per_step_fn(model: Model, steps: int | None) -> tuple[Callable, nnx.State]:
    """A pure ``(state, x) -> tuple(logits_t)`` of the eval-mode forward, unrolled as a Python loop: the depth
    walk sees every step as its own part of the jaxpr, where a rolled scan's body would be walked once."""
    graphdef, state = nnx.split(model)

    def fn(state, x):
        m = nnx.merge(graphdef, state, copy=True)
        with reference_ops():  # count what the network computes, not the CPU rewrites' zero taps
            return tuple(m.unroll(x, steps=steps, train=False, strategy="loop"))

    return fn, state


def _abstract(state: nnx.State, input_shape: Sequence[int]):
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
    return shapes, jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)


def flops_per_image(model: Model, input_shape: Sequence[int], steps: int | None = None) -> list[float | None]:
    """Cumulative FLOPs per image to reach the readout at each step (``input_shape`` is HWC), counted on the CPU
    backend so that the figure is the same on every machine; ``None`` where no backend can count (see above)."""
    fn, state = _per_step_fn(model, steps)
    n_out = len(jax.eval_shape(fn, *_abstract(state, input_shape)))
    cpu = counting_device()
    if n_out == 1:  # feedforward: one readout
        flops = [_count_flops(fn, _abstract(state, input_shape), cpu)]
    else:
        flops = [_count_flops(_per_step_fn(model, t)[0], _abstract(state, input_shape), cpu)
                 for t in range(1, n_out + 1)]
    if any(f is None for f in flops):
        _warn_no_flops(cpu is None)  # once per model, not once per step
    return flops


def counting_device() -> jax.Device | None:
    """The device FLOPs are counted on: the first CPU device, or ``None`` where JAX was started without a CPU
    backend (``JAX_PLATFORMS`` naming only an accelerator)."""
    try:
        return jax.devices("cpu")[0]
    except RuntimeError:  # "Unknown backend cpu" / no CPU platform initialised
        return None


def _count_flops(fn: Callable, args: tuple, cpu: jax.Device | None) -> float | None:
    """XLA's pre-optimisation FLOP count of ``jit(fn)`` lowered for ``args``: on ``cpu`` when there is one, else on
    the default backend; ``None`` when that backend has no cost analysis (the caller warns)."""
    try:
        if cpu is not None:
            with jax.default_device(cpu):  # abstract args carry no sharding: the default device decides
                return _flops_of(jax.jit(fn).lower(*args).cost_analysis())
        return _flops_of(jax.jit(fn).lower(*args).cost_analysis())
    except NotImplementedError:  # older jax raised instead of returning None
        return None


def _flops_of(cost: Any) -> float | None:
    """The ``flops`` entry of a cost analysis, whichever shape this jax returns (a dict, a one-element list of
    dicts in older releases, or ``None`` where the backend has none); 0 for a program with nothing to count."""
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if cost is None:
        return None
    # an analysis without a count: nothing to count (a readout the signal has not reached yet: its bias alone)
    return float(cost.get("flops", 0.0))


def _warn_no_flops(no_cpu: bool) -> None:
    platforms = jax.config.jax_platforms or jax.default_backend()
    hint = (f"JAX has no CPU backend (JAX_PLATFORMS={platforms}); add cpu, e.g. JAX_PLATFORMS={platforms},cpu"
            if no_cpu else "this jax/jaxlib returned no cost analysis")
    warnings.warn(f"FLOPs per image are n/a: {hint}", RuntimeWarning, stacklevel=3)


def effective_depth(model: Model, input_shape: Sequence[int], steps: int | None = None) -> list[int]:
    """Longest chain of nonlinearities from pixels to the readout at each step (``input_shape`` is HWC)."""
    fn, state = _per_step_fn(model, steps)
    state_shapes, x = _abstract(state, input_shape)
    n_state = len(jax.tree.leaves(state_shapes))
    closed = jax.make_jaxpr(fn)(state_shapes, x)
    depths = [_UNREACHED] * n_state + [0]
    return [0 if d == _UNREACHED else int(d) for d in jaxpr_depths(closed.jaxpr, depths)]


def jaxpr_depths(jaxpr, in_depths: Sequence[float]) -> list[float]:
    """Propagate nonlinear depth through a jaxpr: an output is as deep as its deepest input (+1 if the
    primitive is nonlinear). Inputs not connected to the pixels carry ``-inf``. Sub-jaxprs (jit, custom
    derivatives, remat) are walked recursively."""
    env: dict = {}
    for v, d in zip(jaxpr.invars, in_depths, strict=True):
        env[v] = d
    for c in jaxpr.constvars:
        env[c] = _UNREACHED

    def read(v):
        return env.get(v, _UNREACHED) if not isinstance(v, jax.extend.core.Literal) else _UNREACHED

    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        if sub is not None:
            inner, consts = sub
            outs = jaxpr_depths(inner, ins[len(ins) - len(inner.invars):] if consts else ins)
        else:
            d = max(ins, default=_UNREACHED)
            if eqn.primitive.name in NONLINEAR_PRIMITIVES and d != _UNREACHED:
                d += 1
            outs = [d] * len(eqn.outvars)
        for v, d in zip(eqn.outvars, outs, strict=True):
            env[v] = d
    return [read(v) for v in jaxpr.outvars]


def _sub_jaxpr(eqn):
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = eqn.params.get(key)
        if sub is None:
            continue
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns") and len(inner.invars) <= len(eqn.invars):
            return inner, len(inner.invars) < len(eqn.invars)
    return None


def describe(model: Model, input_shape: Sequence[int], steps: int | None = None) -> dict:
    """The accounting block every run reports. Both figures are backend-independent: FLOPs are counted on the
    CPU backend and depth is read off the jaxpr of the loop-unrolled forward, which no backend changes."""
    return {
        "params": count_params(model),
        "flops_per_image": flops_per_image(model, input_shape, steps),
        "effective_depth": effective_depth(model, input_shape, steps),
    }
