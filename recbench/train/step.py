"""The jitted functional train step and the per-step evaluation.

The model is split once into a static graph and pytrees (``params``, ``rest`` = BN statistics), and pure
``jax.jit`` functions merge it back inside the trace: the fastest NNX pattern on this stack
(docs/performance.md §4b). The train state is donated so XLA updates it in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from recbench.train.objectives import per_step_correct, per_step_loss


@dataclass
class TrainState:
    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState

    def tree(self) -> dict:
        return {"params": self.params, "rest": self.rest, "opt_state": self.opt_state}


jax.tree_util.register_dataclass(TrainState, data_fields=["params", "rest", "opt_state"], meta_fields=[])


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, weights: jax.Array,
                    multilabel: bool) -> Callable:
    """``step(state, x, y) -> (state, metrics)``, jitted with the state donated."""

    def loss_fn(params, rest, x, y):
        model = nnx.merge(graphdef, params, rest, copy=True)
        logits = model(x, train=True)
        losses = per_step_loss(logits, y, multilabel).mean(axis=1)  # [T]
        loss = jnp.sum(weights * losses)
        correct = per_step_correct(logits, y, multilabel).mean(axis=1)
        return loss, (nnx.state(model, nnx.Not(nnx.Param)), losses, correct)

    @partial(jax.jit, donate_argnums=0)
    def step(state: TrainState, x: jax.Array, y: jax.Array):
        (loss, (rest, losses, correct)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.rest, x, y)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "loss_per_step": losses, "accuracy_per_step": correct,
                   "grad_norm": optax.tree.norm(grads)}
        return TrainState(params, rest, opt_state), metrics

    return step


def make_eval_fn(graphdef: nnx.GraphDef, multilabel: bool) -> Callable:
    """``eval(params, rest, x, y, steps, ablate) -> (logits [T,B,C], loss [T,B], correct [T,B])``."""

    @partial(jax.jit, static_argnums=(4, 5))
    def evaluate(params, rest, x, y, steps, ablate=()):
        model = nnx.merge(graphdef, params, rest, copy=True)
        logits = model(x, steps=steps, ablate=ablate, train=False)
        return logits, per_step_loss(logits, y, multilabel), per_step_correct(logits, y, multilabel)

    return evaluate


def evaluate_split(evaluate: Callable, state: TrainState, inputs, chunk: int, steps: int | None,
                   keep_logits: bool = False, ablate: tuple[str, ...] = ()) -> dict:
    """Accuracy and loss at every time step over the whole eval split (optionally the per-image logits)."""
    correct, losses, logits_all = [], [], []
    for x, y, valid in inputs.eval_batches(chunk):
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
