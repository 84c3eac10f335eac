"""The process's JAX environment: XLA flags set before the backend starts, which backend a run got, and the
persistent compilation cache.

* :func:`configure_xla_cpu` — one measured XLA:CPU flag (below); :func:`prefer_xla_defaults` takes it back out,
  before the backend starts, unless every family to be trained was measured faster with it (the trainer's command
  line, a launcher's job process, ``recbench-eval`` and ``recbench-bench``'s worker call it).
* :func:`backend_report` / :func:`backend_line` / :func:`check_backend` — platform, devices and jax/jaxlib/plugin
  versions, with a one-line warning when an installed accelerator plugin was not used (JAX fell back to the CPU)
  or does not match jaxlib, saying which extra installs the matching one. The trainer's header and
  ``recbench-info`` show them.
* :func:`enable_compile_cache` — JAX's on-disk cache of compiled programs (``paths.compile_cache``), so the second
  run of a job starts without recompiling its train and eval steps.

On the measured CPU stack (jaxlib 0.10.x) turning YNNPACK fusions off made ResNet-20 training 1.4x faster on an
Intel CPU (docs/performance.md §5) and the default BLT's 1.3x faster on an AMD one (§8). XLA aborts the process
on a flag it does not know, so the flag is added
only for jaxlib versions where it was measured, only when no accelerator plugin is installed, and never
when the user set ``XLA_FLAGS`` themselves. ``RECBENCH_XLA_CPU_FLAGS=0`` turns it off, ``=1`` keeps it for every
family, unset (``auto``) lets :func:`prefer_xla_defaults` choose by family.
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


#: Model families whose train step was measured faster with :data:`CPU_FLAG` (YNNPACK fusions off) than with
#: XLA's own defaults (scripts/xla_flag_check.py, docs/performance.md §5): CIFAR ResNets 1.4x, BLT 1.1-1.3x (and
#: Spoerer's matched controls, B's layers). Others were slower with it (the hGRU 8x, Liao-Poggio 2.4x,
#: Feedback48 1.3x), level (DT-net) or not measured, and keep XLA's defaults.
FASTER_WITH_FLAG = ("blt", "matched_control", "cifar_resnet")


def prefer_xla_defaults(families) -> bool:
    """Take :func:`configure_xla_cpu`'s flag back out of ``XLA_FLAGS`` unless every model family this process will
    train is in :data:`FASTER_WITH_FLAG`. Only before JAX starts its backend (flags are read once, then), only when
    the flag is recbench's own (a user's ``XLA_FLAGS`` is never touched), and only when ``RECBENCH_XLA_CPU_FLAGS``
    is unset or ``auto`` (``1`` keeps the flag for every family, ``0`` never sets it). Returns whether it was taken
    out."""
    if os.environ.get("RECBENCH_XLA_CPU_FLAGS", "auto") != "auto" or os.environ.get("XLA_FLAGS") != CPU_FLAG:
        return False
    if set(families) <= set(FASTER_WITH_FLAG):
        return False
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return False
    del os.environ["XLA_FLAGS"]
    return True


# -- which backend a run got ----------------------------------------------------------------------------------------

# Accelerator plugins by distribution: the platform ``JAX_PLATFORMS`` names it by, and recbench's extra that
# installs the release matching the pinned jaxlib (pyproject.toml). The CUDA plugins ship as two distributions
# that must both equal jaxlib's version; libtpu has versions of its own, checked against jax's ``tpu`` extra.
PLUGIN_DISTRIBUTIONS = {
    "jax-cuda12-plugin": ("cuda", "cuda12"),
    "jax-cuda12-pjrt": ("cuda", "cuda12"),
    "jax-cuda13-plugin": ("cuda", "cuda13"),
    "jax-cuda13-pjrt": ("cuda", "cuda13"),
    "jax-rocm60-plugin": ("rocm", None),
    "jax-rocm60-pjrt": ("rocm", None),
    "libtpu": ("tpu", "tpu"),
}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_plugins() -> dict[str, str]:
    """``{distribution: version}`` of the accelerator plugins installed in this environment."""
    return {d: v for d in PLUGIN_DISTRIBUTIONS if (v := _version(d)) is not None}


def _libtpu_requirement() -> str | None:
    """The libtpu specifier that the installed jax's ``tpu`` extra asks for (``==0.0.42.*``), if it names one."""
    for req in importlib.metadata.requires("jax") or ():
        name, _, rest = req.partition(";")
        if name.strip().startswith("libtpu") and 'extra == "tpu"' in rest:
            return name.strip()[len("libtpu"):].strip() or None
    return None


def _libtpu_matches(version: str) -> bool | None:
    """Whether ``version`` satisfies jax's libtpu pin; ``None`` where that cannot be told (no pin, no packaging)."""
    spec = _libtpu_requirement()
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return None
    return None if spec is None else SpecifierSet(spec).contains(version, prereleases=True)


def _fix(dist: str, jaxlib: str | None) -> str:
    extra = PLUGIN_DISTRIBUTIONS[dist][1]
    if extra is not None:
        return f"install the matching one with: pip install -e '.[{extra}]'"
    return f"install the {dist} release equal to jaxlib {jaxlib}"


def requested_platforms() -> set[str]:
    """The platforms ``JAX_PLATFORMS`` (or ``jax_platforms``) asked for; empty when JAX chooses by itself."""
    import jax

    return {p.strip() for p in (jax.config.jax_platforms or "").split(",") if p.strip()}


def backend_report() -> dict:
    """What JAX is running on and what is installed, with a warning for each thing that looks wrong.

    Warned: an accelerator plugin whose version does not match jaxlib (JAX then skips it or fails to load it), and
    an installed plugin while JAX runs on the CPU (no device visible, a driver problem, or the mismatch above),
    unless ``JAX_PLATFORMS`` asked for the CPU. Each warning is one line that says how to fix it.
    """
    import jax

    jaxlib = _version("jaxlib")
    plugins = installed_plugins()
    devices = jax.devices()
    backend = jax.default_backend()
    problems = []
    for dist, version in plugins.items():
        if dist == "libtpu":
            if _libtpu_matches(version) is False:
                problems.append(f"libtpu {version} is not the one jax {jax.__version__} pins "
                                f"({_libtpu_requirement()}); {_fix(dist, jaxlib)}")
        elif version != jaxlib:
            problems.append(f"{dist} {version} does not match jaxlib {jaxlib}, so JAX may not use it; "
                            f"{_fix(dist, jaxlib)}")
    requested = requested_platforms()
    wanted = {PLUGIN_DISTRIBUTIONS[d][0] for d in plugins}
    if backend == "cpu" and wanted and "cpu" not in requested:
        names = ", ".join(f"{d} {v}" for d, v in plugins.items())
        platforms = ",".join(sorted(wanted))
        problems.append(f"JAX fell back to the CPU although {names} is installed (no device visible, a driver "
                        f"problem, or a version mismatch); run with JAX_PLATFORMS={platforms} to get the error "
                        f"that says why")
    return {"backend": backend, "device_kind": devices[0].device_kind, "device_count": len(devices),
            "jax": jax.__version__, "jaxlib": jaxlib, "plugins": plugins, "warnings": problems}


def backend_line(report: dict | None = None) -> str:
    """One line for a console header: ``backend gpu: NVIDIA H200 x1 | jax 0.10.2, jaxlib 0.10.2, <plugins>``."""
    r = report or backend_report()
    versions = [f"jax {r['jax']}", f"jaxlib {r['jaxlib']}", *(f"{d} {v}" for d, v in r["plugins"].items())]
    return f"backend {r['backend']}: {r['device_kind']} x{r['device_count']} | " + ", ".join(versions)


def check_backend(report: dict | None = None) -> list[str]:
    """Print each backend warning as one line on stderr (``recbench: warning: ...``); return them."""
    import sys

    r = report or backend_report()
    for w in r["warnings"]:
        print(f"recbench: warning: {w}", file=sys.stderr)
    return r["warnings"]


# -- persistent compilation cache ---------------------------------------------------------------------------------

CACHE_OPT_OUT = "RECBENCH_COMPILE_CACHE"  # "0" turns the cache off whatever paths.compile_cache says
# Every compile is written (JAX's default skips those under 1 s): the default job's 37 programs take 0.5 MB, and
# caching the small ones too (parameter init, the input pipeline's ops) gave the fastest second start. Measured on
# the 2-core CPU with `recbench trainer.total_steps=1 logger=disabled trainer.resume=false`, medians of 3
# alternating rounds on a loaded machine (docs/performance.md, "Noise"): first step 9.8 s with no cache, 10.1 s
# cold (writing costs nothing visible), 1.7 s warm; the run's wall time 25.8 s, 25.4 s and 9.6 s. Warm wall time
# by threshold, an earlier set of rounds: 7.6 s at 0, 9.1 s at 0.2 s, 11.6 s at JAX's 1 s, 20.5 s with no cache.
MIN_COMPILE_S = 0.0


def enable_compile_cache(path: str | os.PathLike | None) -> str | None:
    """Point JAX's persistent compilation cache at ``path`` (created if needed) and return it as an absolute path,
    so that a rerun of the same job loads its compiled train and eval steps instead of compiling them again.

    ``""``/``None`` turns the cache off, and so do ``RECBENCH_COMPILE_CACHE=0`` and JAX's own
    ``JAX_ENABLE_COMPILATION_CACHE=false``; then ``None`` is returned. Call it before the first compile that should
    be cached; calling it again with another folder switches folders. A folder that cannot be created is a
    :class:`~recbench.config.ConfigError`.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    off = not path or os.environ.get(CACHE_OPT_OUT, "1") == "0" or not jax.config.jax_enable_compilation_cache
    target = None if off else os.path.abspath(os.path.expanduser(os.fspath(path)))
    if target is not None:
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as e:
            from recbench.config import ConfigError

            raise ConfigError(f"paths.compile_cache={os.fspath(path)!r} cannot be created ({e.strerror}); "
                              f"choose a writable folder or pass paths.compile_cache=''") from None
    if jax.config.jax_compilation_cache_dir != target:
        jax.config.update("jax_compilation_cache_dir", target)
        compilation_cache.reset_cache()  # JAX opens its cache once; forget the folder it opened before
    if target is not None:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # no size floor: CPU entries are small
    return target


def offline() -> bool:
    """``RECBENCH_OFFLINE=1``: never probe a server (dataset hosts, wandb); on air-gapped machines a lookup can
    hang instead of failing."""
    return os.environ.get("RECBENCH_OFFLINE", "0") not in ("", "0", "false", "False")


def reachable(url: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the host of ``url`` opens within ``timeout_s`` — name lookup included, which a
    socket timeout does not bound (on a compute node without a route a lookup can hang for minutes), so the
    attempt runs in a daemon thread that is abandoned at the deadline. ``RECBENCH_OFFLINE=1``: never, at once."""
    import socket
    import threading
    from urllib.parse import urlsplit

    if offline():
        return False
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if not parts.hostname:
        return False
    port = parts.port or (80 if parts.scheme == "http" else 443)
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])
