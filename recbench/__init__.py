"""recbench: deep feedforward CNNs vs shallow recurrent vision networks, in JAX.

Notebook API::

    import recbench
    model = recbench.build_model("blt", steps=8)   # any preset in recbench/configs/model
    logits = model(images)                          # float NHWC -> [T, B, num_classes]
"""

from recbench.env import configure_xla_cpu

configure_xla_cpu()

__version__ = "0.1.0"
__all__ = ["build_model", "load_torch_weights", "__version__"]


def build_model(name: str, **kwargs):
    """Build a model preset by name; see :func:`recbench.models.registry.build_model`."""
    from recbench.models.registry import build_model as _build

    return _build(name, **kwargs)


def load_torch_weights(model, source):
    """Copy a PyTorch state dict (or ``.pth`` path) into ``model``; see
    :func:`recbench.models.torch_weights.load_torch_weights`."""
    from recbench.models.torch_weights import load_torch_weights as _load

    return _load(model, source)

