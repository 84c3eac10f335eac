"""The networks ``recbench-bench`` times: a preset, the images it sees, its classes and batch size.

A case names a preset of ``configs/model`` and builds it for the case's input rather than the preset's natural
one where that one is too large for a CPU (CORnet-RT's 224 px ImageNet input). This module imports neither jax
nor torch, so both workers and the orchestrator can read it; :func:`model_config` (which needs the model
registry, hence flax) is called by the orchestrator only, which hands the resolved config to the PyTorch worker
as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    preset: str  # configs/model/<preset>.yaml
    input_shape: tuple[int, int, int]  # height, width, channels
    num_classes: int
    batch: int
    about: str  # one line for the table: what the network is and why this input

    @property
    def input_label(self) -> str:
        return "x".join(map(str, self.input_shape))


CASES: dict[str, Case] = {c.name: c for c in (
    Case("blt", "blt", (32, 32, 1), 10, 64,
         "Spoerer et al.'s BLT (the default model), per-step BN, at its natural 32x32 grey input"),
    Case("resnet20", "resnet20", (32, 32, 3), 10, 128,
         "He et al.'s CIFAR ResNet-20, option-A shortcuts: the deep feedforward baseline"),
    Case("cornet_rt", "cornet_rt", (64, 64, 3), 100, 32,
         "CORnet-RT (GroupNorm), at 64x64 with 100 classes: its 224 px ImageNet input is out of reach on a CPU"),
    Case("liao_poggio_4state", "liao_poggio_4state", (32, 32, 3), 10, 32,
         "Liao & Poggio's fully recurrent 4-state net, per-step BN, at its natural CIFAR input"),
)}


def unknown_cases(names: list[str]) -> list[str]:
    return [n for n in names if n not in CASES]


def model_config(preset: str, **overrides) -> dict:
    """The preset's full config (family defaults applied, ``overrides`` merged) as plain JSON-able data."""
    from omegaconf import OmegaConf

    from recbench.models.registry import preset as load_preset

    return OmegaConf.to_container(OmegaConf.merge(load_preset(preset), overrides), resolve=True)
