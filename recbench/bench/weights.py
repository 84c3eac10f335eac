"""Copy a recbench model's weights into its PyTorch reference: :mod:`recbench.models.torch_weights` run backwards.

The loader maps a PyTorch key onto an NNX variable by walking the dotted name through the module tree and
letting the module kind pick the variable and the array transform (``MODULE_RULES``: conv ``weight`` ``[O,I,kh,kw]``
→ ``kernel`` ``[kh,kw,I,O]``, and so on). The copy walks the same way from each key of the reference's state dict,
with the same rules, and inverts the transform by where it moves each element (every rule only transposes or
flips), so the two directions cannot drift apart. One thing the loader does not need is added here: a
time-specific norm row is named by its index, as :class:`recbench.bench.torch_refs.StepBatchNorm` lays them out
(``areas.V1.cells.0.norm1.3.weight`` → row 3 of ``areas.V1.cells.0.norm1.scale``).

Every key must land on a variable of matching shape and every ``Param`` / ``BatchStat`` row must be set, or a
one-line ``ValueError`` says which did not, before anything is written.
"""

from __future__ import annotations

import math

import numpy as np
from flax import nnx

from recbench.models.norms import StepNorm
from recbench.models.torch_weights import DROPPED_LEAVES, ModelIndex, parse_key

_SHOW = 5


def invert(transform, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The array ``w`` of ``shape`` with ``transform(w) == value``, for a transform that only moves elements."""
    index = np.arange(math.prod(shape)).reshape(shape)
    moved = np.asarray(transform(index))
    if moved.shape != value.shape:
        raise ValueError(f"shape {shape} maps to {moved.shape}, not {value.shape}")
    out = np.empty(math.prod(shape), value.dtype)
    out[moved.ravel()] = value.ravel()
    return out.reshape(shape)


def torch_state_from(model: nnx.Module, reference) -> dict:
    """The reference's state dict filled with ``model``'s values (numpy arrays; ``num_batches_tracked`` kept)."""
    index = ModelIndex(model)
    modules, variables = index.modules, index.variables
    out: dict = {}
    unmatched, shapes = [], []
    rows_set: dict[tuple, set[int] | None] = {}  # None: the whole variable
    for key, tensor in reference.state_dict().items():
        *mod, leaf = parse_key(key)
        if leaf in DROPPED_LEAVES:
            out[key] = tensor.detach().cpu().numpy()
            continue
        mod, row = tuple(mod), None
        if mod not in modules and mod and isinstance(mod[-1], int) and isinstance(modules.get(mod[:-1]), StepNorm):
            mod, row = mod[:-1], mod[-1]
        found = index.resolve(mod, leaf)
        if found is None:
            unmatched.append(key)
            continue
        rule, path, var = found
        transform = rule.leaves[leaf][1]
        value = np.asarray(var[...])
        shape = tuple(tensor.shape)
        if rule.rows and value.ndim == len(shape) + 1:  # a norm with one row per trained step
            if row is None and value.shape[0] != 1:
                unmatched.append(f"{key} (the norm has {value.shape[0]} rows; name one per row)")
                continue
            row = row or 0
            if not 0 <= row < value.shape[0]:
                unmatched.append(f"{key} (row {row} of {value.shape[0]})")
                continue
            value = value[row]
            seen = rows_set.setdefault(path, set())
            if seen is not None:
                seen.add(row)
        elif row is not None:
            unmatched.append(key)
            continue
        else:
            rows_set[path] = None
        try:
            out[key] = invert(transform, value, shape)
        except ValueError as e:
            shapes.append(f"{key}: {e}")
    missing = []
    for path, var in variables.items():
        if path not in rows_set:
            missing.append(".".join(map(str, path)))
        elif rows_set[path] is not None and len(rows_set[path]) < var.shape[0]:
            missing.append(f"{'.'.join(map(str, path))} (rows {sorted(set(range(var.shape[0])) - rows_set[path])})")
    problems = []
    for label, items in (("reference keys with no recbench variable", unmatched), ("shape mismatches", shapes),
                         ("recbench variables no reference key takes", missing)):
        if items:
            more = f", ... (+{len(items) - _SHOW})" if len(items) > _SHOW else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}")
    if problems:
        raise ValueError(f"copy {type(model).__name__} into {type(reference).__name__}: " + "; ".join(problems))
    return out


def copy_into_torch(model: nnx.Module, reference):
    """Copy ``model``'s parameters and BatchNorm statistics into its PyTorch reference in place; return it."""
    import torch

    state = torch_state_from(model, reference)
    reference.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return reference
