"""The model registry: a config's ``family`` names a builder; YAML presets choose its arguments.

Families are builders, not classes per paper: ``recurrent`` builds an areas graph (B, BL, BT, BLT, …),
``cifar_resnet`` the deep feedforward baseline. ``build_model("blt", steps=8)`` is the notebook entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flax import nnx
from omegaconf import DictConfig, OmegaConf

from recbench.config import ConfigError, choice, family_config, group_choices, positive_int
from recbench.models.engine import GraphSpec, chain_graph


@dataclass(frozen=True)
class RecurrentConfig:
    """A stack of areas with optional lateral and top-down transitions (the BLT topology)."""

    name: str
    family: str
    channels: tuple[int, ...]
    pools: tuple[int, ...]
    kernels: tuple[int, ...]
    lateral: bool = False
    topdown: bool = False
    schedule: str = "sequential"
    norm: str = "bn_step"
    steps: int = 4
    unroll: str = "auto"
    topdown_resample: str = "transpose"
    readout: str = "gap"
    area_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CifarResNetConfig:
    name: str
    family: str
    depth: int = 20
    width: int = 16
    norm: str = "bn"
    share_weights: bool = False


def _recurrent_spec(c: RecurrentConfig, num_classes: int = 10, in_channels: int = 1,
                    input_size: int | None = None) -> GraphSpec:
    from recbench.models.engine import SCHEDULES, UNROLL_STRATEGIES
    from recbench.models.norms import NORM_KINDS

    positive_int(c.steps, "model.steps")
    choice(c.schedule, "model.schedule", SCHEDULES)
    choice(c.unroll, "model.unroll", UNROLL_STRATEGIES)
    choice(c.norm, "model.norm", NORM_KINDS)
    try:
        return chain_graph(
            tuple(c.channels), pools=tuple(c.pools), kernels=tuple(c.kernels), lateral=c.lateral,
            topdown=c.topdown, names=c.area_names, steps=c.steps, schedule=c.schedule, norm=c.norm,
            in_channels=in_channels, num_classes=num_classes, unroll=c.unroll,
            topdown_resample=c.topdown_resample, readout=c.readout, input_size=input_size)
    except ValueError as e:
        raise ConfigError(f"model {c.name}: {e}") from None


def _build_recurrent(c: RecurrentConfig, num_classes: int, input_shape: tuple[int, int, int],
                     rngs: nnx.Rngs) -> nnx.Module:
    from recbench.models.engine import AreaGraph

    return AreaGraph(_recurrent_spec(c, num_classes, input_shape[-1], input_shape[0]), rngs=rngs)


def _check_recurrent(c: RecurrentConfig, input_shape: tuple[int, int, int]) -> None:
    _recurrent_spec(c, 10, input_shape[-1], input_shape[0])


def _check_cifar_resnet(c: CifarResNetConfig, input_shape: tuple[int, int, int] | None = None) -> None:
    positive_int(c.depth, "model.depth")
    positive_int(c.width, "model.width")
    if (c.depth - 2) % 6:
        raise ConfigError(f"model.depth={c.depth} is not 6n+2; use 20, 32, 44, 56, 110, ...")
    choice(c.norm, "model.norm", ("bn", "group", "none"))


def _build_cifar_resnet(c: CifarResNetConfig, num_classes: int, input_shape: tuple[int, int, int],
                        rngs: nnx.Rngs) -> nnx.Module:
    from recbench.models.resnet import cifar_resnet

    _check_cifar_resnet(c)
    return cifar_resnet(c.depth, num_classes=num_classes, in_channels=input_shape[-1], width=c.width,
                        share_weights=c.share_weights, norm=c.norm, rngs=rngs)


# family -> (schema, validate, build)
FAMILIES: dict[str, tuple[type, Callable[..., None], Callable[..., nnx.Module]]] = {
    "recurrent": (RecurrentConfig, _check_recurrent, _build_recurrent),
    "cifar_resnet": (CifarResNetConfig, _check_cifar_resnet, _build_cifar_resnet),
}


def _family(cfg: DictConfig | dict):
    family = cfg.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"model.family={family!r} is not a registered family; choose one of: "
                          f"{', '.join(FAMILIES)}")
    schema, validate, build = FAMILIES[family]
    return family_config(schema, cfg, f"model {cfg.get('name')}"), validate, build


def validate_model_config(cfg: DictConfig | dict, input_shape: tuple[int, int, int]) -> None:
    """Check a ``model`` node against its family's schema, for images of ``input_shape``, building nothing."""
    c, validate, _ = _family(cfg)
    validate(c, tuple(input_shape))


def model_from_config(cfg: DictConfig | dict, *, num_classes: int, input_shape: tuple[int, int, int],
                      seed: int = 0) -> nnx.Module:
    """Build the model a ``model`` node describes for images of ``input_shape`` (HWC); ConfigError on bad input."""
    c, _, build = _family(cfg)
    return build(c, num_classes, tuple(input_shape), nnx.Rngs(seed))


def preset(name: str) -> DictConfig:
    """The resolved YAML preset ``configs/model/<name>.yaml`` (its defaults list applied)."""
    from recbench.config import compose_train

    choices = group_choices("model")
    if name not in choices:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(choices)}")
    return compose_train([f"model={name}"]).model


def build_model(name: str, *, num_classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 1),
                seed: int = 0, **overrides: Any) -> nnx.Module:
    """Build a preset by name for use in notebooks: ``build_model("blt", steps=8)(x)`` → ``[T, B, C]``."""
    cfg = OmegaConf.merge(preset(name), overrides)
    return model_from_config(cfg, num_classes=num_classes, input_shape=input_shape, seed=seed)
