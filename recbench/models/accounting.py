"""What a model costs, so comparisons between families are fair: parameters, FLOPs and effective depth.

* **Parameters** — the size of every ``nnx.Param`` (running BN statistics are not parameters).
* **FLOPs per image** — from XLA's cost analysis of the lowered, jitted eval-mode forward at batch 1.
  Entry ``t`` is *cumulative*: the cost of producing the readout at step ``t`` (all earlier steps included),
  i.e. what a model must spend to answer at that step.
* **Effective depth** — the longest chain of nonlinear transforms (ReLU, sigmoid, tanh, …) from the pixels
  to the readout at step ``t``, found by walking the jaxpr of the unrolled eval-mode forward. It is
  computed from the graph that really runs, so it counts skip paths, schedules and ablations as they are.
  Pooling and normalisation do not count (in eval mode BN is affine); a ReLU counts once.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Elementwise primitives that make a layer nonlinear. ``max`` is how ReLU lowers.
NONLINEAR_PRIMITIVES = frozenset({"max", "logistic", "tanh", "erf", "erf_inv", "sin", "cos", "atan2"})
_UNREACHED = -math.inf


def count_params(model: nnx.Module) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def _per_step_fn(model: nnx.Module, steps: int | None) -> tuple[Callable, nnx.State]:
    """A pure ``(state, x) -> tuple(logits_t)`` of the eval-mode forward, unrolled as a Python loop."""
    graphdef, state = nnx.split(model)
    kwargs = {"strategy": "loop"} if "strategy" in inspect.signature(model.unroll).parameters else {}

    def fn(state, x):
        m = nnx.merge(graphdef, state, copy=True)
        return tuple(m.unroll(x, steps=steps, train=False, **kwargs))

    return fn, state


def _abstract(state: nnx.State, input_shape: Sequence[int]):
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
    return shapes, jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)


def flops_per_image(model: nnx.Module, input_shape: Sequence[int], steps: int | None = None) -> list[float]:
    """Cumulative FLOPs per image to reach the readout at each step (``input_shape`` is HWC)."""
    fn, state = _per_step_fn(model, steps)
    n_out = len(jax.eval_shape(fn, *_abstract(state, input_shape)))
    if n_out == 1:  # feedforward: one readout
        return [float(jax.jit(fn).lower(*_abstract(state, input_shape)).cost_analysis().get("flops", 0.0))]
    out = []
    for t in range(1, n_out + 1):
        fn_t, _ = _per_step_fn(model, t)
        out.append(float(jax.jit(fn_t).lower(*_abstract(state, input_shape)).cost_analysis().get("flops", 0.0)))
    return out


def effective_depth(model: nnx.Module, input_shape: Sequence[int], steps: int | None = None) -> list[int]:
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


def describe(model: nnx.Module, input_shape: Sequence[int], steps: int | None = None) -> dict:
    """The accounting block every run reports."""
    return {
        "params": count_params(model),
        "flops_per_image": flops_per_image(model, input_shape, steps),
        "effective_depth": effective_depth(model, input_shape, steps),
    }
