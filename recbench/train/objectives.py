"""Losses and accuracies at every time step, and how per-step losses combine into the training loss.

Each family trains as its paper trains (``model.objective``, used when ``trainer.loss_over_steps=auto``):

=====================  ============  ===========================================================================
family                 objective     why
=====================  ============  ===========================================================================
BLT / B-K / B-F        mean          Spoerer et al. 2017 put the loss on the readout of every time step
Feedback48 (Zamir)     mean          a loss at every iteration (``-sequenceOut``); coarse→fine optional
ResNet early exits     mean          a loss at every exit, as Zamir et al.'s feedforward early-exit baseline
CORnet-R / RT / S      last          the decoder reads IT after the last time step
hGRU                   last          one readout after the 8th step (Linsley et al. 2018)
Liao & Poggio          last          the post-net reads the final state
DT-net                 progressive   Bansal et al. 2022's progressive loss (Schwarzschild et al. 2021: last)
=====================  ============  ===========================================================================

Modes (``trainer.loss_over_steps``): ``last``, ``mean``, ``weights`` (``trainer.step_weights``, one per step) and
``progressive``: the full unroll's last-step loss mixed by ``trainer.progressive_alpha`` with the loss of a
partial unroll — a random prefix of ``n`` ∈ [0, T) steps run without gradient (the state entering step ``n`` is
detached, ``recbench.models.engine``), then ``k`` ∈ [1, T − n] steps with gradient, the loss on step ``n + k``'s
readout (deep-thinking's ``train_progressive``). Readouts are still evaluated and logged at every step.

``trainer.coarse_to_fine`` is Zamir et al.'s curriculum (their ``CoarseFineCriterion``): at step ``t`` of ``T``
the loss is ``t/(T-1)`` × the fine cross-entropy + ``(1 − t/(T-1))`` × the coarse one, the coarse class's
log-probability being the log of the summed probabilities of its fine classes (CIFAR-100's 20 superclasses).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from recbench.config import ConfigError, choice

LOSS_OVER_STEPS = ("auto", "last", "mean", "weights", "progressive")
MODEL_OBJECTIVES = ("last", "mean", "progressive")


def resolve_mode(mode: str, model_objective: str = "mean") -> str:
    """``auto`` → the model preset's own objective (``model.objective``); anything else as given."""
    choice(mode, "trainer.loss_over_steps", LOSS_OVER_STEPS)
    if mode == "auto":
        return choice(model_objective, "model.objective", MODEL_OBJECTIVES)
    return mode


def validate_objective(mode: str, weights: list[float] | tuple[float, ...] = (), steps: int | None = None,
                       alpha: float = 0.5) -> None:
    """One-line :class:`ConfigError` for a bad ``trainer.loss_over_steps`` / ``trainer.step_weights`` pair;
    ``steps`` (the model's readouts), when known, must match the number of weights."""
    choice(mode, "trainer.loss_over_steps", LOSS_OVER_STEPS)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"trainer.progressive_alpha={alpha} must be in [0, 1] (0: the full unroll's loss alone)")
    if mode != "weights":
        return
    count = f"{steps} " if steps is not None else ""
    if (steps is not None and len(weights) != steps) or not weights or min(weights) < 0 or sum(weights) <= 0:
        raise ConfigError(f"trainer.step_weights needs {count}non-negative numbers (one per time step) "
                          f"with a positive sum, got {list(weights)}")


def step_weights(mode: str, steps: int, weights: list[float] | tuple[float, ...] = ()) -> jnp.ndarray:
    """Weights ``[T]`` (summing to 1) that combine the per-step losses into one (progressive: the last step's, for
    its full-unroll term)."""
    validate_objective(mode, weights, steps)
    if mode in ("last", "progressive"):
        return jnp.zeros(steps).at[-1].set(1.0)
    if mode == "mean":
        return jnp.full(steps, 1.0 / steps)
    if mode == "auto":
        raise ValueError("resolve loss_over_steps=auto with resolve_mode first")
    w = jnp.asarray(weights, jnp.float32)
    return w / w.sum()


@dataclass(frozen=True)
class Objective:
    """What the train step minimises: per-step ``weights`` ``[T]``; with ``progressive_alpha`` > 0 the progressive
    term; with ``coarse_of`` (fine class → coarse class) the coarse→fine curriculum."""

    weights: jax.Array
    progressive_alpha: float = 0.0
    coarse_of: tuple[int, ...] | None = None
    seed: int = 0

    @property
    def steps(self) -> int:
        return int(self.weights.shape[0])

    def fine_weights(self) -> jax.Array:
        """Per step, the share of the fine loss (1 everywhere without the curriculum)."""
        t = self.steps
        if self.coarse_of is None or t == 1:
            return jnp.ones(t)
        return jnp.arange(t, dtype=jnp.float32) / (t - 1)

    def per_step(self, logits: jax.Array, labels: jax.Array, multilabel: bool) -> jax.Array:
        """The batch-mean loss at every step ``[T]`` (the curriculum mixed in)."""
        fine = per_step_loss(logits, labels, multilabel).mean(axis=1)
        if self.coarse_of is None:
            return fine
        coarse = coarse_loss(logits, labels, np.asarray(self.coarse_of)).mean(axis=1)
        a = self.fine_weights()[: fine.shape[0]]
        return a * fine + (1.0 - a) * coarse

    def prefix(self, step_index) -> tuple[jax.Array, jax.Array]:
        """Progressive loss: the no-gradient prefix ``n`` ∈ [0, T) and the readout ``n + k - 1`` it is scored on,
        ``k`` ∈ [1, T − n]; drawn from the step index, so a resumed run draws the same."""
        key = jax.random.fold_in(jax.random.key(self.seed), step_index)
        kn, kk = jax.random.split(key)
        n = jax.random.randint(kn, (), 0, self.steps)
        k = jax.random.randint(kk, (), 1, self.steps - n + 1)
        return n, n + k - 1


def build_objective(mode: str, steps: int, *, weights=(), alpha: float = 0.5, coarse_of=None,
                    seed: int = 0) -> Objective:
    """The :class:`Objective` of a resolved mode (see :func:`resolve_mode`) for a model of ``steps`` readouts."""
    w = step_weights(mode, steps, tuple(weights))
    progressive = mode == "progressive" and steps > 1
    return Objective(w, progressive_alpha=alpha if progressive else 0.0,
                     coarse_of=None if coarse_of is None else tuple(int(c) for c in coarse_of), seed=seed)


def coarse_loss(logits: jax.Array, labels: jax.Array, coarse_of: np.ndarray) -> jax.Array:
    """Cross-entropy ``[T, B]`` of the coarse class, whose probability is the sum over its fine classes."""
    groups = jnp.asarray(np.eye(int(coarse_of.max()) + 1, dtype=np.float32)[coarse_of])  # [C_fine, C_coarse]
    logp = jax.nn.log_softmax(logits, axis=-1)
    top = jnp.max(logp, axis=-1, keepdims=True)
    coarse_logp = jnp.log(jnp.exp(logp - top) @ groups + 1e-30) + top
    target = jnp.asarray(coarse_of)[labels]
    return -jnp.take_along_axis(coarse_logp, jnp.broadcast_to(target[None, :, None], (*coarse_logp.shape[:2], 1)),
                                axis=-1)[..., 0]


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
