"""The model registry: a config's ``family`` names its schema, a cheap check and a builder; YAML presets
(``configs/model/``) choose the arguments.

Checking is separate from building so that a sweep can be validated, every variant, before anything
allocates weights (``recbench.cli.validate_config``). Engine families are thin functions from a config
dataclass to a :class:`GraphSpec`, which checks itself as it is made, so the spec *is* the check; the ResNets
are their own module (exact fidelity with torchvision) with their own checks.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flax import nnx
from omegaconf import DictConfig, OmegaConf

from recbench.config import ConfigError, check_int, family_config, load_option
from recbench.models import deep_thinking, feedback, hgru, liao_poggio, presets, resnet
from recbench.models.contract import Shape
from recbench.models.cornet import CornetConfig, cornet
from recbench.models.engine import AreaGraph, GraphSpec


@dataclass(frozen=True)
class Family:
    schema: type
    #: ``(config, num_classes, input_shape)``: raises on a bad config; allocates no weights
    check: Callable[[Any, int, Shape], object]
    #: ``(config, num_classes, input_shape, rngs) -> model``; checks as it builds
    build: Callable[[Any, int, Shape, nnx.Rngs], nnx.Module]
    #: engine families: ``(config, num_classes, input_shape) -> GraphSpec``
    spec: Callable[[Any, int, Shape], GraphSpec] | None = None


def _engine(schema: type, graph: Callable[[Any, int, Shape], GraphSpec]) -> Family:
    """An engine family: its graph, with the keys every engine family has (``model.init``) applied here once."""
    def spec(c: Any, n: int, s: Shape) -> GraphSpec:
        return dataclasses.replace(graph(c, n, s), init=c.init)

    return Family(schema, check=spec, build=lambda c, n, s, rngs: AreaGraph(spec(c, n, s), rngs=rngs), spec=spec)


FAMILIES: dict[str, Family] = {
    "blt": _engine(presets.BLTConfig, presets.blt),
    "matched_control": _engine(presets.MatchedControlConfig, presets.matched_control),
    "cornet": _engine(CornetConfig, cornet),
    "liao_poggio": _engine(liao_poggio.LiaoPoggioConfig, liao_poggio.liao_poggio),
    "feedback_net": _engine(feedback.FeedbackNetConfig, feedback.feedback_net),
    "hgru": _engine(hgru.HGRUConfig, hgru.hgru),
    "dt_net": _engine(deep_thinking.DTNetConfig, deep_thinking.dt_net),
    "cifar_resnet": Family(resnet.CifarResNetConfig, resnet.check_cifar_resnet, resnet.build_cifar_resnet),
    "imagenet_resnet": Family(resnet.ImageNetResNetConfig, resnet.check_imagenet_resnet,
                              resnet.build_imagenet_resnet),
}


#: Integer keys where 0 means something: match ``target``'s count (matched controls), an identity edge (BLT kernels).
ZERO_OK = ("target_params", "kernels")


def _check_fields(c: Any) -> None:
    """Every boolean key a boolean, every integer key (and every entry of an integer list) positive, or >= 0 where 0
    means something (:data:`ZERO_OK`): the checks that are the same for every family, named by their key."""
    hints = typing.get_type_hints(type(c))
    for f in dataclasses.fields(c):
        key, value, hint = f"model.{f.name}", getattr(c, f.name), hints[f.name]
        low = 0 if f.name in ZERO_OK else 1
        if hint is bool and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        if hint is int:
            check_int(key, value, low)
        elif typing.get_origin(hint) is tuple and set(typing.get_args(hint)) <= {int, Ellipsis}:
            if not isinstance(value, tuple):
                raise ConfigError(f"{key} must be a list of integers, got {value!r}")
            for i, v in enumerate(value):
                check_int(f"{key}[{i}]", v, low)


def _parse(cfg: DictConfig | dict) -> tuple[Family, Any]:
    family = cfg.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"model.family={family!r} is not a registered family; choose one of: {', '.join(FAMILIES)}")
    c = family_config(FAMILIES[family].schema, cfg, f"model {cfg.get('name')}")
    _check_fields(c)
    if len(c.natural_input) != 3:
        raise ConfigError(f"model.natural_input must be [height, width, channels], got {list(c.natural_input)}")
    width = getattr(c, "width", 1.0)
    if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
        raise ConfigError(f"model.width must be a positive channel multiplier (1 = the paper's widths), got {width!r}")
    return FAMILIES[family], c


def _run(c: Any, fn: Callable, *args: Any) -> Any:
    """``fn(c, *args)`` with a builder's ValueError turned into the one-line ConfigError that names the preset."""
    try:
        return fn(c, *args)
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"model {c.name}: {e}") from None


def graph_spec(cfg: DictConfig | dict, *, num_classes: int, input_shape: Shape) -> GraphSpec | None:
    """The engine graph of a ``model`` node (None for the standalone ResNets); ConfigError on bad input."""
    family, c = _parse(cfg)
    return None if family.spec is None else _run(c, family.spec, num_classes, tuple(input_shape))


def validate_model_config(cfg: DictConfig | dict, input_shape: Shape, num_classes: int = 10) -> int | None:
    """Check a ``model`` node against its family's schema for images of ``input_shape``, building nothing; the
    readouts the model will give (the ``T`` of ``[T, B, C]``) where its check knows them, else None."""
    family, c = _parse(cfg)
    checked = _run(c, family.check, num_classes, tuple(input_shape))
    return checked.readouts() if isinstance(checked, GraphSpec) else checked


def model_from_config(cfg: DictConfig | dict, *, num_classes: int, input_shape: Shape, seed: int = 0) -> nnx.Module:
    """Build the model a ``model`` node describes for images of ``input_shape`` (HWC); ConfigError on bad input."""
    family, c = _parse(cfg)
    return _run(c, family.build, num_classes, tuple(input_shape), nnx.Rngs(seed))


def natural_input(cfg: DictConfig | dict) -> tuple[Shape, int]:
    """The input shape (HWC) and class count a preset's paper trained on: ``build_model``'s defaults."""
    _, c = _parse(cfg)
    return tuple(c.natural_input), c.natural_classes


def preset(name: str) -> DictConfig:
    """The YAML preset ``configs/model/<name>.yaml`` (its defaults list applied)."""
    return load_option("model", name)


def family_defaults(family: str) -> dict[str, Any]:
    """The config ``model/family/<family>`` (registered by ``recbench.config.register``): the family name and every
    default of its dataclass.

    Every preset lists it first, so that each key is in the composed config, which is what lets Hydra override it
    (``model.norm=group``; Hydra refuses keys a config lacks). The dataclass is the one source of these values.
    """
    out: dict[str, Any] = {"family": family}
    for f in dataclasses.fields(FAMILIES[family].schema):
        if f.default is not dataclasses.MISSING:
            out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
    return out


def build_model(name: str, *, num_classes: int | None = None, input_shape: Shape | None = None, seed: int = 0,
                **overrides: Any) -> nnx.Module:
    """Build a preset by name for notebooks, by default at its natural input, so that published weights load
    as typed (``load_torch_weights(build_model("resnet18"), "resnet18.pth")``); ``build_model("blt", steps=8)(x)``
    → ``[T, B, C]``. ``num_classes`` and ``input_shape`` override the natural ones."""
    cfg = OmegaConf.merge(preset(name), overrides)
    shape, classes = natural_input(cfg)
    return model_from_config(cfg, num_classes=classes if num_classes is None else num_classes,
                             input_shape=shape if input_shape is None else tuple(input_shape), seed=seed)
