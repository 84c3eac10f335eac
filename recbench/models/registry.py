"""The model registry: a config's ``family`` names a builder; YAML presets choose its arguments.

Engine families (``blt``, ``matched_control``, ``cornet``, ``liao_poggio``, ``feedback_net``, ``hgru``) are
thin functions from a config dataclass to a :class:`GraphSpec` (``recbench.models.presets``); the ResNets
are their own small module for exact fidelity with torchvision. ``build_model("blt", steps=8)`` is the
notebook entry point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flax import nnx
from omegaconf import DictConfig, OmegaConf

from recbench.config import ConfigError, choice, family_config, load_option, check_int
from recbench.models import presets
from recbench.models.engine import AreaGraph, GraphSpec
from recbench.models.matching import MATCH_KINDS, chain_params, match_control

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class MatchedControlConfig(presets.BLTConfig):
    """A B net grown (``match``: kernel | width | depth) to the parameter count of ``target`` (a preset name),
    or to ``target_params`` if that is set."""

    match: str = "width"
    target: str = "blt"
    target_params: int = 0


@dataclass(frozen=True)
class CifarResNetConfig:
    name: str
    family: str
    depth: int = 20
    width: int = 16
    norm: str = "bn"
    share_weights: bool = False
    shortcut: str = "A"


@dataclass(frozen=True)
class ImageNetResNetConfig:
    name: str
    family: str
    depth: int = 18
    norm: str = "bn"
    share_weights: bool = False


def _matched(c: MatchedControlConfig, num_classes: int, input_shape: Shape) -> GraphSpec:
    choice(c.match, "model.match", MATCH_KINDS)
    base = presets.blt(dataclasses.replace(c, lateral=False, topdown=False), num_classes, input_shape)
    target = c.target_params
    if target <= 0:
        target_cfg = preset(c.target)
        if target_cfg.get("family") != "blt":
            raise ConfigError(f"model.target={c.target!r} must name a blt-family preset (or set model.target_params)")
        target_spec = presets.blt(family_config(presets.BLTConfig, target_cfg, f"model {c.target}"), num_classes,
                                  input_shape)
        target = _count(target_spec)
    return match_control(base, c.match, target)


def _count(spec: GraphSpec) -> int:
    from recbench.models.accounting import count_params

    if all(e.kind == "bottom_up" and e.kernel for e in spec.edges) and all(a.cell == "plain" for a in spec.areas):
        return chain_params(spec)
    return count_params(nnx.eval_shape(lambda: AreaGraph(spec, rngs=nnx.Rngs(0))))


# family -> (schema, spec builder); every engine family builds an AreaGraph from its spec
ENGINE_FAMILIES: dict[str, tuple[type, Callable[[Any, int, Shape], GraphSpec]]] = {
    "blt": (presets.BLTConfig, presets.blt),
    "matched_control": (MatchedControlConfig, _matched),
    "cornet": (presets.CornetConfig, presets.cornet),
    "liao_poggio": (presets.LiaoPoggioConfig, presets.liao_poggio),
    "feedback_net": (presets.FeedbackNetConfig, presets.feedback_net),
    "hgru": (presets.HGRUConfig, presets.hgru),
}


def _cifar_resnet(c: CifarResNetConfig, num_classes: int, input_shape: Shape, rngs: nnx.Rngs | None):
    from recbench.models.resnet import cifar_resnet

    check_int("model.depth", c.depth)
    if (c.depth - 2) % 6:
        raise ConfigError(f"model.depth={c.depth} is not 6n+2; use 20, 32, 44, 56, 110, ...")
    choice(c.norm, "model.norm", ("bn", "group", "none"))
    choice(c.shortcut, "model.shortcut", ("A", "B"))
    if rngs is None:
        return None
    return cifar_resnet(c.depth, num_classes=num_classes, in_channels=input_shape[-1], width=c.width,
                        share_weights=c.share_weights, norm=c.norm, shortcut=c.shortcut, rngs=rngs)


def _imagenet_resnet(c: ImageNetResNetConfig, num_classes: int, input_shape: Shape, rngs: nnx.Rngs | None):
    from recbench.models.resnet import IMAGENET_CONFIGS, imagenet_resnet

    choice(c.depth, "model.depth", tuple(IMAGENET_CONFIGS))
    choice(c.norm, "model.norm", ("bn", "group", "none"))
    if rngs is None:
        return None
    return imagenet_resnet(c.depth, num_classes=num_classes, in_channels=input_shape[-1],
                           share_weights=c.share_weights, norm=c.norm, rngs=rngs)


# family -> (schema, builder(config, num_classes, input_shape, rngs or None to only validate))
MODULE_FAMILIES: dict[str, tuple[type, Callable[..., nnx.Module | None]]] = {
    "cifar_resnet": (CifarResNetConfig, _cifar_resnet),
    "imagenet_resnet": (ImageNetResNetConfig, _imagenet_resnet),
}
FAMILIES = (*ENGINE_FAMILIES, *MODULE_FAMILIES)


def _parse(cfg: DictConfig | dict):
    family = cfg.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"model.family={family!r} is not a registered family; choose one of: {', '.join(FAMILIES)}")
    schema = (ENGINE_FAMILIES.get(family) or MODULE_FAMILIES[family])[0]
    c = family_config(schema, cfg, f"model {cfg.get('name')}")
    if hasattr(c, "steps"):
        check_int("model.steps", c.steps)
    return family, c


def graph_spec(cfg: DictConfig | dict, *, num_classes: int, input_shape: Shape) -> GraphSpec | None:
    """The engine graph of a ``model`` node (None for the standalone ResNets); ConfigError on bad input."""
    family, c = _parse(cfg)
    if family not in ENGINE_FAMILIES:
        return None
    try:
        return ENGINE_FAMILIES[family][1](c, num_classes, tuple(input_shape))
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"model {c.name}: {e}") from None


def validate_model_config(cfg: DictConfig | dict, input_shape: Shape, num_classes: int = 10) -> None:
    """Check a ``model`` node against its family's schema for images of ``input_shape``, building nothing."""
    family, c = _parse(cfg)
    if family in MODULE_FAMILIES:
        MODULE_FAMILIES[family][1](c, num_classes, tuple(input_shape), None)
    else:
        graph_spec(cfg, num_classes=num_classes, input_shape=input_shape)


def model_from_config(cfg: DictConfig | dict, *, num_classes: int, input_shape: Shape, seed: int = 0) -> nnx.Module:
    """Build the model a ``model`` node describes for images of ``input_shape`` (HWC); ConfigError on bad input."""
    family, c = _parse(cfg)
    if family in MODULE_FAMILIES:
        return MODULE_FAMILIES[family][1](c, num_classes, tuple(input_shape), nnx.Rngs(seed))
    return AreaGraph(graph_spec(cfg, num_classes=num_classes, input_shape=input_shape), rngs=nnx.Rngs(seed))


def preset(name: str) -> DictConfig:
    """The YAML preset ``configs/model/<name>.yaml`` (its defaults list applied)."""
    return load_option("model", name)


def build_model(name: str, *, num_classes: int = 10, input_shape: Shape = (32, 32, 1), seed: int = 0,
                **overrides: Any) -> nnx.Module:
    """Build a preset by name for use in notebooks: ``build_model("blt", steps=8)(x)`` → ``[T, B, C]``."""
    cfg = OmegaConf.merge(preset(name), overrides)
    return model_from_config(cfg, num_classes=num_classes, input_shape=input_shape, seed=seed)
