"""Optimizers and learning-rate schedules from the ``optim`` config."""

from __future__ import annotations

import optax

from recbench.config import ConfigError, OptimConfig, check_int, choice

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


def validate_optim(c: OptimConfig) -> None:
    """One-line :class:`ConfigError` for a bad ``optim`` node; builds nothing."""
    choice(c.name, "optim.name", OPTIMIZERS)
    choice(c.schedule, "optim.schedule", SCHEDULES)
    if not c.lr > 0:
        raise ConfigError(f"optim.lr must be positive, got {c.lr}")
    if not 0 < c.decay_factor <= 1:
        raise ConfigError(f"optim.decay_factor multiplies the lr at each of decay_at; give a value in (0, 1], got "
                          f"{c.decay_factor}")
    if not 0 <= c.momentum < 1:
        raise ConfigError(f"optim.momentum must be in [0, 1), got {c.momentum}")
    for key in ("weight_decay", "grad_clip"):
        if not getattr(c, key) >= 0:
            raise ConfigError(f"optim.{key} must be non-negative, got {getattr(c, key)}")
    check_int("optim.warmup_steps", c.warmup_steps, 0)
    check_int("optim.schedule_steps", c.schedule_steps, 0)
    if any(not 0 < f < 1 for f in c.decay_at):
        raise ConfigError(f"optim.decay_at takes fractions of trainer.total_steps in (0, 1), got {list(c.decay_at)}")


def learning_rate(c: OptimConfig, total_steps: int) -> optax.Schedule:
    """The schedule over ``optim.schedule_steps`` (0: ``total_steps``); past its end it stays at its final value."""
    choice(c.schedule, "optim.schedule", SCHEDULES)
    total_steps = c.schedule_steps or total_steps
    warmup = min(c.warmup_steps, max(total_steps - 1, 0))
    decay_steps = max(total_steps - warmup, 1)
    if c.schedule == "constant":
        main = optax.constant_schedule(c.lr)
    elif c.schedule == "cosine":
        main = optax.cosine_decay_schedule(c.lr, decay_steps)
    else:  # step: multiply by decay_factor at each fraction of total_steps in decay_at
        bounds = {int(f * total_steps) - warmup: c.decay_factor for f in c.decay_at}
        main = optax.piecewise_constant_schedule(c.lr, {k: v for k, v in bounds.items() if k > 0})
    if warmup == 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, c.lr, warmup), main], [warmup])


def make_optimizer(c: OptimConfig, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    validate_optim(c)
    lr = learning_rate(c, total_steps)
    if c.name == "sgd":
        tx = optax.chain(optax.add_decayed_weights(c.weight_decay) if c.weight_decay else optax.identity(),
                         optax.sgd(lr, momentum=c.momentum or None, nesterov=c.nesterov))
    elif c.name == "adam":
        tx = optax.adam(lr)
    else:
        tx = optax.adamw(lr, weight_decay=c.weight_decay)
    if c.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(c.grad_clip), tx)
    return tx, lr
