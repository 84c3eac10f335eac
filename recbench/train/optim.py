"""Optimizers and learning-rate schedules from the ``optim`` config."""

from __future__ import annotations

import optax

from recbench.config import ConfigError, OptimConfig

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


def learning_rate(c: OptimConfig, total_steps: int) -> optax.Schedule:
    warmup = min(c.warmup_steps, max(total_steps - 1, 0))
    decay_steps = max(total_steps - warmup, 1)
    if c.schedule == "constant":
        main = optax.constant_schedule(c.lr)
    elif c.schedule == "cosine":
        main = optax.cosine_decay_schedule(c.lr, decay_steps)
    elif c.schedule == "step":
        bounds = {int(f * total_steps) - warmup: c.decay_factor for f in c.decay_at}
        main = optax.piecewise_constant_schedule(c.lr, {k: v for k, v in bounds.items() if k > 0})
    else:
        raise ConfigError(f"optim.schedule={c.schedule!r} is not valid; choose one of: {', '.join(SCHEDULES)}")
    if warmup == 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, c.lr, warmup), main], [warmup])


def make_optimizer(c: OptimConfig, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    if c.lr <= 0:
        raise ConfigError(f"optim.lr must be positive, got {c.lr}")
    lr = learning_rate(c, total_steps)
    if c.name == "sgd":
        tx = optax.chain(optax.add_decayed_weights(c.weight_decay) if c.weight_decay else optax.identity(),
                         optax.sgd(lr, momentum=c.momentum or None, nesterov=c.nesterov))
    elif c.name == "adam":
        tx = optax.adam(lr)
    elif c.name == "adamw":
        tx = optax.adamw(lr, weight_decay=c.weight_decay)
    else:
        raise ConfigError(f"optim.name={c.name!r} is not valid; choose one of: {', '.join(OPTIMIZERS)}")
    if c.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(c.grad_clip), tx)
    return tx, lr
