"""Losses and accuracies at every time step, and how per-step losses combine into the training loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from recbench.config import ConfigError, choice

LOSS_OVER_STEPS = ("last", "mean", "weights")


def validate_objective(mode: str, weights: list[float] | tuple[float, ...] = (), steps: int | None = None) -> None:
    """One-line :class:`ConfigError` for a bad ``trainer.loss_over_steps`` / ``trainer.step_weights`` pair;
    ``steps`` (the model's readouts), when known, must match the number of weights."""
    choice(mode, "trainer.loss_over_steps", LOSS_OVER_STEPS)
    if mode != "weights":
        return
    count = f"{steps} " if steps is not None else ""
    if (steps is not None and len(weights) != steps) or not weights or min(weights) < 0 or sum(weights) <= 0:
        raise ConfigError(f"trainer.step_weights needs {count}non-negative numbers (one per time step) "
                          f"with a positive sum, got {list(weights)}")


def step_weights(mode: str, steps: int, weights: list[float] | tuple[float, ...] = ()) -> jnp.ndarray:
    """Weights ``[T]`` (summing to 1) that combine the per-step losses into one."""
    validate_objective(mode, weights, steps)
    if mode == "last":
        return jnp.zeros(steps).at[-1].set(1.0)
    if mode == "mean":
        return jnp.full(steps, 1.0 / steps)
    w = jnp.asarray(weights, jnp.float32)
    return w / w.sum()


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
