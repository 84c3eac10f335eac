"""recbench: deep feedforward CNNs vs shallow recurrent vision networks, in JAX.

Notebook API::

    import recbench
    model = recbench.build_model("blt", steps=8)   # any preset in configs/model, at its paper's input
    logits = model(images)                          # float NHWC -> [T, B, num_classes]
    resnet = recbench.load_torch_weights(recbench.build_model("resnet18"), "resnet18.pth")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from recbench.env import configure_xla_cpu

if TYPE_CHECKING:
    from flax import nnx

configure_xla_cpu()

__version__ = "0.1.0"
__all__ = ["build_model", "load_torch_weights", "__version__"]


def build_model(name: str, **kwargs: Any) -> nnx.Module:
    """Build a model preset by name, by default at the input and classes its paper trained on (``input_shape=``,
    ``num_classes=`` and config keys override); see :func:`recbench.models.registry.build_model`."""
    from recbench.models.registry import build_model as _build

    return _build(name, **kwargs)


def load_torch_weights(model: nnx.Module, source: str | os.PathLike | Mapping[str, Any]) -> nnx.Module:
    """Copy a PyTorch state dict (or ``.pth`` path) into ``model``; see
    :func:`recbench.models.torch_weights.load_torch_weights`."""
    from recbench.models.torch_weights import load_torch_weights as _load

    return _load(model, source)

