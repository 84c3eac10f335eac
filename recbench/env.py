"""Process environment set before JAX initialises its backend.

On the measured CPU stack (jaxlib 0.10.x) turning YNNPACK fusions off made ResNet-20 training 1.4x faster
(docs/performance.md §5). XLA aborts the process on a flag it does not know, so the flag is added
only for jaxlib versions where it was measured, only when no accelerator plugin is installed, and never
when the user set ``XLA_FLAGS`` themselves. ``RECBENCH_XLA_CPU_FLAGS=0`` turns it off.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

CPU_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
MEASURED_JAXLIB = ("0.10.",)
ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "libtpu")


def configure_xla_cpu() -> bool:
    """Add the measured CPU flag to ``XLA_FLAGS`` when it is known to be safe; return whether it was."""
    if "XLA_FLAGS" in os.environ or os.environ.get("RECBENCH_XLA_CPU_FLAGS", "1") == "0":
        return False
    try:
        version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return False
    if not version.startswith(MEASURED_JAXLIB):
        return False
    if any(importlib.util.find_spec(p) is not None for p in ACCELERATOR_PLUGINS):
        return False
    os.environ["XLA_FLAGS"] = CPU_FLAG
    return True
