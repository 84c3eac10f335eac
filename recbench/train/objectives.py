"""Losses and accuracies at every time step, and how per-step losses combine into the training loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from recbench.config import ConfigError

LOSS_OVER_STEPS = ("last", "mean", "weights")


def step_weights(mode: str, steps: int, weights: list[float] | tuple[float, ...] = ()) -> jnp.ndarray:
    """Weights ``[T]`` (summing to 1) that combine the per-step losses into one."""
    if mode == "last":
        return jnp.zeros(steps).at[-1].set(1.0)
    if mode == "mean":
        return jnp.full(steps, 1.0 / steps)
    if mode == "weights":
        if len(weights) != steps or min(weights, default=0) < 0 or sum(weights) <= 0:
            raise ConfigError(f"trainer.step_weights needs {steps} non-negative numbers (one per time step) "
                              f"with a positive sum, got {list(weights)}")
        w = jnp.asarray(weights, jnp.float32)
        return w / w.sum()
    raise ConfigError(f"trainer.loss_over_steps={mode!r} is not valid; choose one of: {', '.join(LOSS_OVER_STEPS)}")


def per_step_loss(logits: jax.Array, labels: jax.Array, multilabel: bool) -> jax.Array:
    """Per-example loss at every step, ``[T, B]``: softmax cross-entropy, or summed sigmoid BCE."""
    if multilabel:
        return optax.sigmoid_binary_cross_entropy(logits, labels[None].astype(logits.dtype)).sum(-1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels[None])


def per_step_correct(logits: jax.Array, labels: jax.Array, multilabel: bool) -> jax.Array:
    """Per-example correctness at every step, ``[T, B]`` bool.

    Multi-label (digit clutter): right only when the k digits present are exactly the k highest outputs,
    i.e. the lowest logit among the present digits beats the highest among the absent ones.
    """
    if multilabel:
        present = labels[None].astype(bool)
        lowest_present = jnp.min(jnp.where(present, logits, jnp.inf), axis=-1)
        highest_absent = jnp.max(jnp.where(present, -jnp.inf, logits), axis=-1)
        return lowest_present > highest_absent
    return jnp.argmax(logits, -1) == labels[None]
