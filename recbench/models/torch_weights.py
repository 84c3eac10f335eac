"""Load PyTorch state dicts into recbench's NNX models: the generic machinery a family's renamer plugs into.

A state-dict key becomes a variable in two steps:

1. a *renamer* registered for the model's class rewrites the key into recbench's module layout, still in
   PyTorch spelling (``linear.weight`` → ``fc.weight`` for akamaster's CIFAR ResNets), or drops it, or
   names one row of a time-specific norm (``V2.norm1_0.weight`` → ``("V2.norm1.weight", 0)``);
2. a mechanical rule resolves the dotted name: every part but the last walks attributes, digits index
   lists (``layer1.0.downsample.1`` → ``layer1[0].downsample[1]``); the last part and the kind of module
   it lands on pick the variable and the array transform (:data:`MODULE_RULES`): conv ``weight``
   ``[O,I,kh,kw]`` → ``kernel`` ``[kh,kw,I,O]``, linear ``weight`` ``[out,in]`` → ``kernel`` ``[in,out]``,
   BN ``weight/bias/running_mean/running_var`` → :class:`StepNorm` ``scale/bias/mean/var``, broadcast
   into every row unless the renamer named one. ``num_batches_tracked`` is always dropped.

Everything is checked before anything is written: keys without a target, shape mismatches, and model
parameters (``nnx.Param`` / ``nnx.BatchStat``) that no key sets all fail with one ``ValueError`` line, and
the model is left as it was. Because every parameter is set, the model may be abstract
(``nnx.eval_shape(lambda: imagenet_resnet(50, rngs=...))``), which skips the random initialisation.

A family registers its renamer once, in its own module (:mod:`recbench.models.resnet` for torchvision's and
akamaster's ResNets, :mod:`recbench.models.cornet` for dicarlolab/CORnet)::

    def my_renamer(key):
        area, name, rest = key.split(".", 2)
        if name.startswith("norm") and "_" in name:        # per-step BN: V2.norm1_0 -> row 0 of V2.norm1
            base, step = name.rsplit("_", 1)
            return f"{area}.{base}.{rest}", int(step)
        return key

    register_torch_renamer(MyNet, my_renamer)

A class whose instances lay out the same PyTorch names differently registers ``per_model=True``: the function
then takes the model and returns its key renamer. CORnet does so for :class:`AreaGraph` (``V1.conv1`` is a
cell conv of CORnet-R/RT but the first edge of CORnet-S).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from recbench.models.norms import StepNorm

#: What a renamer returns: a dotted name in recbench's layout (PyTorch leaf names), that name plus the row
#: of a multi-row norm to fill, or ``None`` to drop the key on purpose.
Renamed = str | tuple[str, int] | None
Renamer = Callable[[str], Renamed]

#: Leaf names PyTorch stores that have no counterpart in any recbench model.
DROPPED_LEAVES = frozenset({"num_batches_tracked"})

#: How many names of each kind a ValueError lists.
_SHOW = 5


def _conv_kernel(w: np.ndarray) -> np.ndarray:
    """``[O, I, *k]`` → ``[*k, I, O]`` (any number of spatial dims)."""
    return w.transpose(*range(2, w.ndim), 1, 0)


def _identity(w: np.ndarray) -> np.ndarray:
    return w


def _conv_transpose_kernel(w: np.ndarray) -> np.ndarray:
    """PyTorch ``ConvTranspose2d`` ``[I, O, kh, kw]`` → flax ``ConvTranspose`` ``[kh, kw, I, O]``, flipped: PyTorch's
    layer is the gradient of a correlation, so it applies the kernel flipped relative to ``lax.conv_transpose``
    (flax's default ``transpose_kernel=False``). The padding is the layer's own: flax's ``"SAME"`` pads a 3×3
    stride-2 kernel (2, 1), PyTorch's usual ``padding=1, output_padding=1`` (1, 2), so weights trained with the
    latter see the output shifted by one pixel."""
    return w.transpose(2, 3, 0, 1)[::-1, ::-1]


@dataclass(frozen=True)
class ModuleRule:
    """How PyTorch leaf names of one module kind map onto its NNX variables."""

    #: torch leaf name → (NNX attribute, array transform)
    leaves: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]
    #: variables may carry a leading row axis that a torch tensor is broadcast into (time-specific BN)
    rows: bool = False


_NORM_LEAVES = {
    "weight": ("scale", _identity),
    "bias": ("bias", _identity),
    "running_mean": ("mean", _identity),
    "running_var": ("var", _identity),
}

#: Module kinds, checked in order with ``isinstance``.
MODULE_RULES: list[tuple[type, ModuleRule]] = [
    (nnx.Conv, ModuleRule({"weight": ("kernel", _conv_kernel), "bias": ("bias", _identity)})),
    (nnx.ConvTranspose, ModuleRule({"weight": ("kernel", _conv_transpose_kernel), "bias": ("bias", _identity)})),
    (nnx.Linear, ModuleRule({"weight": ("kernel", np.transpose), "bias": ("bias", _identity)})),
    (StepNorm, ModuleRule(_NORM_LEAVES, rows=True)),
    (nnx.BatchNorm, ModuleRule(_NORM_LEAVES)),
    (nnx.GroupNorm, ModuleRule(_NORM_LEAVES)),
    (nnx.LayerNorm, ModuleRule(_NORM_LEAVES)),
]

_RENAMERS: dict[type, Renamer] = {}
#: ``per_model`` registrations: model -> its key renamer
_RENAMER_FACTORIES: dict[type, Callable[[nnx.Module], Renamer]] = {}


def register_torch_renamer(model_cls: type, renamer: Callable, *, per_model: bool = False) -> Callable:
    """Use ``renamer`` for state dicts loaded into ``model_cls`` (and its subclasses, unless they register
    their own). A class with no renamer in its MRO gets the mechanical rule alone. With ``per_model=True``
    ``renamer(model)`` returns the key renamer for that model (instances of one class with different layouts)."""
    _RENAMERS.pop(model_cls, None)
    _RENAMER_FACTORIES.pop(model_cls, None)
    (_RENAMER_FACTORIES if per_model else _RENAMERS)[model_cls] = renamer
    return renamer


def renamer_for(model: nnx.Module) -> Renamer:
    for cls in type(model).__mro__:
        if cls in _RENAMERS:
            return _RENAMERS[cls]
        if cls in _RENAMER_FACTORIES:
            return _RENAMER_FACTORIES[cls](model)
    return lambda key: key


# --------------------------------------------------------------------------------------------------------


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16; float32 holds it exactly
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _read_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, (str, os.PathLike)):
        import torch

        source = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
    if not isinstance(source, Mapping):
        raise ValueError(f"load_torch_weights: expected a state dict or a path to one, got {type(source).__name__}")
    while isinstance(source.get("state_dict"), Mapping):  # training checkpoints wrap it
        source = source["state_dict"]
    bad = [k for k in source if not isinstance(k, str)]
    if bad:
        raise ValueError(f"load_torch_weights: state-dict keys must be strings, got {bad[:_SHOW]!r}")
    keys = list(source)
    prefix = "module."  # DataParallel / DistributedDataParallel
    n = 0
    while keys and all(k.startswith(prefix * (n + 1)) for k in keys):
        n += 1
    return {k[len(prefix) * n :]: v for k, v in source.items()}


@dataclass
class _Target:
    var: nnx.Variable
    rows: bool
    full: np.ndarray | None = None  # broadcast into all rows / the whole variable
    by_row: dict[int, np.ndarray] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


def parse_key(name: str) -> tuple:
    """A dotted PyTorch key as a path (``"layer1.0.conv1.weight"`` → ``("layer1", 0, "conv1", "weight")``)."""
    return tuple(int(p) if p.isdigit() else p for p in name.split("."))


class ModelIndex:
    """A model's modules and its ``Param`` / ``BatchStat`` variables by path, and the rule that maps a PyTorch
    leaf onto them: one lookup for the loader and for its inverse (:mod:`recbench.bench.weights`)."""

    def __init__(self, model: nnx.Module):
        self.modules: dict[tuple, nnx.Module] = {}
        self.variables: dict[tuple, nnx.Variable] = {}
        for path, node in nnx.iter_graph(model):
            if isinstance(node, nnx.Module):
                self.modules[tuple(path)] = node
            elif isinstance(node, (nnx.Param, nnx.BatchStat)):
                self.variables[tuple(path)] = node

    def resolve(self, mod: tuple, leaf: str) -> tuple[ModuleRule, tuple, nnx.Variable] | None:
        """``(rule, variable path, variable)`` for PyTorch leaf ``leaf`` of module ``mod``; ``None`` if none maps."""
        module = self.modules.get(mod)
        rule = next((r for cls, r in MODULE_RULES if isinstance(module, cls)), None)
        if rule is None or leaf not in rule.leaves:
            return None
        path = (*mod, rule.leaves[leaf][0])
        var = self.variables.get(path)
        return None if var is None else (rule, path, var)


def load_torch_weights(model: nnx.Module, source: str | os.PathLike | Mapping[str, Any]) -> nnx.Module:
    """Copy a PyTorch state dict into ``model``'s variables in place and return ``model``.

    ``source`` is a path to a ``.pth``/``.pt`` file (read with ``torch.load(weights_only=True)``; torch is
    imported only then) or a mapping of names to torch tensors or numpy arrays. A checkpoint that wraps the
    weights under ``"state_dict"`` and keys prefixed ``module.`` are unwrapped. Every key must land on a
    variable of the right shape and every ``Param``/``BatchStat`` must be set, else a one-line
    ``ValueError`` names the first offenders and nothing is written.
    """
    state = _read_state_dict(source)
    rename = renamer_for(model)
    index = ModelIndex(model)
    variables = index.variables

    targets: dict[tuple, _Target] = {}
    unmatched: list[str] = []
    shapes: list[str] = []
    duplicates: list[str] = []
    misshapen: set[tuple] = set()  # reported as shape mismatches, not again as unset
    for key, value in state.items():
        if key.rsplit(".", 1)[-1] in DROPPED_LEAVES:
            continue
        renamed = rename(key)
        if renamed is None:
            continue
        name, row = renamed if isinstance(renamed, tuple) else (renamed, None)
        *mod_parts, leaf = parse_key(name)
        found = index.resolve(tuple(mod_parts), leaf)
        if found is None:
            unmatched.append(key)
            continue
        rule, path, var = found
        transform = rule.leaves[leaf][1]
        arr = transform(_to_numpy(value))
        want = tuple(var.shape)
        rowed = rule.rows and len(want) == arr.ndim + 1
        if row is not None and not (rowed and 0 <= row < want[0]):
            unmatched.append(f"{key} (row {row} of {_fmt(path)} {want})")
            continue
        if (want[1:] if rowed else want) != arr.shape:
            shapes.append(f"{key} {tuple(np.shape(value))} -> {_fmt(path)} {want}")
            misshapen.add(path)
            continue
        t = targets.setdefault(path, _Target(var, rowed))
        t.sources.append(key)
        if row is None:
            if t.full is not None:
                duplicates.append(f"{' & '.join(t.sources)} -> {_fmt(path)}")
            t.full = arr
        else:
            if row in t.by_row:
                duplicates.append(f"{' & '.join(t.sources)} -> {_fmt(path)}[row {row}]")
            t.by_row[row] = arr

    missing = []
    for path, var in variables.items():
        t = targets.get(path)
        if path in misshapen:
            continue
        if t is None:
            missing.append(_fmt(path))
        elif t.full is None and (not t.rows or len(t.by_row) < var.shape[0]):
            unset = [r for r in range(var.shape[0]) if r not in t.by_row]
            missing.append(f"{_fmt(path)} (rows {unset})")

    problems = []
    for label, items in (
        ("keys with no target in the model", unmatched),
        ("shape mismatches", shapes),
        ("keys setting the same variable", duplicates),
        ("model variables no key sets", missing),
    ):
        if items:
            more = f", ... (+{len(items) - _SHOW})" if len(items) > _SHOW else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}")
    if problems:
        raise ValueError(f"load_torch_weights into {type(model).__name__}: " + "; ".join(problems))

    for t in targets.values():
        var = t.var
        if t.rows:
            full = np.empty(var.shape, var.dtype)
            if t.full is not None:
                full[...] = t.full
            for r, arr in t.by_row.items():
                full[r] = arr
        else:
            full = t.full
        var.set_value(jnp.asarray(full, dtype=var.dtype))
    return model
