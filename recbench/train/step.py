"""The jitted functional train step and the per-step evaluation.

The model is split once into a static graph and pytrees (``params``, ``rest`` = BN statistics), and pure
``jax.jit`` functions merge it back inside the trace: the fastest NNX pattern on this stack
(docs/performance.md §4b). The train state is donated so XLA updates it in place.

* **One dispatch per step.** Given the input pipeline's pure ``gather``, the step takes ``(state, args, step)`` and
  makes batch ``step`` from ``args`` (``inputs.train_args(step)``) inside its own program: the per-step RNG fold-in,
  the gather, augmentation and normalisation compile into the step instead of running as dispatches of their own.
* **Data parallel.** Given a :class:`recbench.train.parallel.Parallel`, the state and every result come out
  replicated (``out_shardings``) while batches arrive sharded over the data axis, so the step's signature, and its
  compiled program, stay the same from one step to the next; XLA inserts the gradient and batch-norm all-reduces.
* **Mixed precision** (``precision="bf16"``). Parameters and optimizer state stay float32 (the update is applied
  in float32); inside the loss the parameters and the input are cast to bfloat16, so convolutions and matmuls run
  in bfloat16, and the logits come back to float32 for the loss. Batch-norm statistics stay float32: the running
  averages keep the dtype they had, and ``StepNorm`` computes batch statistics in float32. It is for
  accelerators: on XLA:CPU bfloat16 brings nothing (docs/performance.md §6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from recbench.faults import kill_point
from recbench.train.objectives import Objective, per_step_correct, per_step_loss

if TYPE_CHECKING:
    from recbench.train.parallel import Parallel

PRECISIONS = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


@dataclass
class TrainState:
    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState

    def tree(self) -> dict:
        return {"params": self.params, "rest": self.rest, "opt_state": self.opt_state}


jax.tree_util.register_dataclass(TrainState, data_fields=["params", "rest", "opt_state"], meta_fields=[])


def _cast_floats(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _forward(graphdef: nnx.GraphDef, params, rest, x, compute, **kwargs):
    """The merged model on ``x`` in the compute dtype, logits in float32; returns ``(logits, model)``."""
    if compute != jnp.float32:
        params, x = _cast_floats(params, compute), x.astype(compute)
    model = nnx.merge(graphdef, params, rest, copy=True)
    logits = model(x, **kwargs)
    return logits.astype(jnp.float32), model


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, objective: Objective | jax.Array,
                    multilabel: bool, *, gather: Callable | None = None, precision: str = "fp32",
                    parallel: Parallel | None = None, skip_nonfinite: bool = False) -> Callable:
    """The jitted train step, state donated: ``step(state, x, y[, step_index]) -> (state, metrics)``, or with
    ``gather`` (an input pipeline's, see :mod:`recbench.data.pipeline`) ``step(state, args, step_index)`` that makes
    the batch inside the step. ``objective`` is a :class:`recbench.train.objectives.Objective` (or just its per-step
    weights ``[T]``); ``precision`` is ``fp32`` or ``bf16`` (compute dtype); ``parallel`` replicates every output.

    ``metrics["finite"]`` says whether the loss and the gradient norm were finite; with ``skip_nonfinite`` a step
    where they were not leaves the whole state (parameters, statistics, optimizer) as it was."""
    compute = PRECISIONS[precision]
    if not isinstance(objective, Objective):
        objective = Objective(jnp.asarray(objective))
    weights = objective.weights

    def loss_fn(params, rest, x, y, step_index):
        logits, model = _forward(graphdef, params, rest, x, compute, train=True)
        losses = objective.per_step(logits, y, multilabel)  # [T]
        loss = jnp.sum(weights * losses)
        correct = per_step_correct(logits, y, multilabel).mean(axis=1)
        new_rest = nnx.state(model, nnx.Not(nnx.Param))
        if objective.progressive_alpha > 0:  # a second, partial unroll: its prefix without gradient
            n, scored = objective.prefix(step_index)
            partial_logits, _ = _forward(graphdef, params, rest, x, compute, train=True, detach=n)
            partial = jnp.take(per_step_loss(partial_logits, y, multilabel).mean(axis=1), scored)
            loss = (1.0 - objective.progressive_alpha) * loss + objective.progressive_alpha * partial
        if compute != jnp.float32:  # running statistics keep their float32
            new_rest = jax.tree.map(lambda new, old: new.astype(old.dtype), new_rest, rest)
        return loss, (new_rest, losses, correct)

    def update(state: TrainState, x: jax.Array, y: jax.Array, step_index=0):
        (loss, (rest, losses, correct)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.rest, x, y, step_index)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        metrics = {"loss": loss, "loss_per_step": losses, "accuracy_per_step": correct, "grad_norm": grad_norm,
                   "finite": finite}
        new = TrainState(params, rest, opt_state)
        if skip_nonfinite:
            new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
        return new, metrics

    jit = partial(jax.jit, donate_argnums=0,
                  out_shardings=None if parallel is None else parallel.replicated)
    if gather is None:
        return jit(update)

    @jit
    def step(state: TrainState, args, step_index):
        return update(state, *gather(args, step_index), step_index)

    return step


def make_eval_fn(graphdef: nnx.GraphDef, multilabel: bool, *, precision: str = "fp32",
                 parallel: Parallel | None = None) -> Callable:
    """``eval(params, rest, x, y, steps, ablate) -> (logits [T,B,C], loss [T,B], correct [T,B])``, in the compute
    dtype of ``precision``; with ``parallel`` the results come back replicated, so any process can fetch them."""
    compute = PRECISIONS[precision]

    @partial(jax.jit, static_argnums=(4, 5), out_shardings=None if parallel is None else parallel.replicated)
    def evaluate(params, rest, x, y, steps, ablate=()):
        logits, _ = _forward(graphdef, params, rest, x, compute, steps=steps, ablate=ablate, train=False)
        return logits, per_step_loss(logits, y, multilabel), per_step_correct(logits, y, multilabel)

    return evaluate


def evaluate_split(evaluate: Callable, state: TrainState, inputs, chunk: int, steps: int | None,
                   keep_logits: bool = False, ablate: tuple[str, ...] = ()) -> dict:
    """Accuracy and loss at every time step over the whole eval split (optionally the per-image logits)."""
    correct, losses, logits_all = [], [], []
    for i, (x, y, valid) in enumerate(inputs.eval_batches(chunk)):
        kill_point("eval", i)  # tests: a kill in the middle of an evaluation
        logits, loss, ok = evaluate(state.params, state.rest, x, y, steps, tuple(ablate))
        correct.append(jax.device_get(ok)[:, :valid])
        losses.append(jax.device_get(loss)[:, :valid])
        if keep_logits:
            logits_all.append(jax.device_get(logits)[:, :valid])
    correct = np.concatenate(correct, axis=1)
    out = {"accuracy_per_step": correct.mean(axis=1).tolist(),
           "loss_per_step": np.concatenate(losses, axis=1).mean(axis=1).tolist(),
           "correct": correct}
    if keep_logits:
        out["logits"] = np.concatenate(logits_all, axis=1)
    return out
