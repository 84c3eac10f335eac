"""recbench.env: the backend report and its warnings (plugins faked through importlib.metadata), the accelerator
extras kept at the jaxlib pin, and the compilation-cache switch."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import jax
import pytest

from recbench import env
from recbench.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
REAL_VERSION = importlib.metadata.version
# The fallback warnings are about a run that got the CPU; on an accelerator (JAX_PLATFORMS=cuda,cpu) they differ.
on_cpu = pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks what a CPU run reports")


def fake_dists(monkeypatch, **versions: str) -> None:
    """Pretend exactly these accelerator distributions are installed (``jax_cuda12_plugin="0.10.2"``); the rest of
    the environment reads as it is, except ``jaxlib=`` when given."""
    versions = {k.replace("_", "-"): v for k, v in versions.items()}

    def version(name):
        if name in versions:
            return versions[name]
        if name in env.PLUGIN_DISTRIBUTIONS:
            raise importlib.metadata.PackageNotFoundError(name)
        return REAL_VERSION(name)

    monkeypatch.setattr(importlib.metadata, "version", version)


@on_cpu
def test_report_on_this_cpu(monkeypatch):
    fake_dists(monkeypatch)
    r = env.backend_report()
    assert r["backend"] == "cpu" and r["device_count"] >= 1 and r["warnings"] == []
    assert r["jax"] == jax.__version__ and r["jaxlib"] == REAL_VERSION("jaxlib") and r["plugins"] == {}
    line = env.backend_line(r)
    assert line.startswith("backend cpu: ") and f"jaxlib {r['jaxlib']}" in line and "\n" not in line


@on_cpu
def test_mismatched_plugin_says_which_extra_fixes_it(monkeypatch):
    fake_dists(monkeypatch, jaxlib="0.10.2", jax_cuda12_plugin="0.10.1", jax_cuda12_pjrt="0.10.2")
    monkeypatch.setattr(env, "requested_platforms", lambda: {"cpu"})  # the fallback itself was asked for
    (warning,) = env.backend_report()["warnings"]
    assert "jax-cuda12-plugin 0.10.1 does not match jaxlib 0.10.2" in warning
    assert "pip install -e '.[cuda12]'" in warning


@on_cpu
def test_cpu_fallback_with_a_plugin_installed_is_one_line(monkeypatch):
    fake_dists(monkeypatch, jaxlib="0.10.2", jax_cuda13_plugin="0.10.2", jax_cuda13_pjrt="0.10.2")
    monkeypatch.setattr(env, "requested_platforms", lambda: set())  # JAX chose the backend by itself
    r = env.backend_report()
    (warning,) = r["warnings"]
    assert "fell back to the CPU" in warning and "jax-cuda13-plugin 0.10.2" in warning
    assert "JAX_PLATFORMS=cuda" in warning and "\n" not in warning
    assert "jax-cuda13-plugin 0.10.2" in env.backend_line(r)


@on_cpu
def test_cpu_asked_for_is_no_fallback(monkeypatch):
    fake_dists(monkeypatch, jaxlib="0.10.2", jax_cuda12_plugin="0.10.2", jax_cuda12_pjrt="0.10.2")
    monkeypatch.setattr(env, "requested_platforms", lambda: {"cpu"})
    assert env.backend_report()["warnings"] == []


@on_cpu
def test_libtpu_is_checked_against_the_pin_in_jax(monkeypatch):
    monkeypatch.setattr(env, "requested_platforms", lambda: {"cpu"})
    monkeypatch.setattr(env, "_libtpu_requirement", lambda: "==0.0.42.*")
    fake_dists(monkeypatch, libtpu="0.0.42.1")
    assert env.backend_report()["warnings"] == []
    fake_dists(monkeypatch, libtpu="0.0.30")
    (warning,) = env.backend_report()["warnings"]
    assert "libtpu 0.0.30" in warning and "==0.0.42.*" in warning and "'.[tpu]'" in warning


def test_check_backend_prints_each_warning_as_one_stderr_line(capsys):
    report = {"warnings": ["first thing", "second thing"]}
    assert env.check_backend(report) == report["warnings"]
    err = capsys.readouterr().err.splitlines()
    assert err == ["recbench: warning: first thing", "recbench: warning: second thing"]


# -- the accelerator extras ----------------------------------------------------------------------------------------

def _pins(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*==\s*(\S+)", req.split(";")[0].strip())
        if m:
            out[m[1].lower()] = m[2]
    return out


def test_accelerator_extras_pin_the_plugins_to_the_jaxlib_pin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    jaxlib = _pins(project["dependencies"])["jaxlib"]
    extras = {k: _pins(v) for k, v in project["optional-dependencies"].items()}
    for extra, cuda in (("cuda12", "cuda12"), ("cuda13", "cuda13")):
        assert extras[extra][f"jax-{cuda}-plugin"] == jaxlib
        assert extras[extra][f"jax-{cuda}-pjrt"] == jaxlib
        assert any("[with-cuda]" in r for r in project["optional-dependencies"][extra])
    # libtpu has its own numbering: the extra asks for exactly what the pinned jax's tpu extra asks for.
    assert _pins(project["dependencies"])["jax"] == jaxlib
    if REAL_VERSION("jax") == jaxlib:  # the installed jax is the pinned one, so its metadata is the pin's
        assert f"=={extras['tpu']['libtpu']}" == env._libtpu_requirement()


def test_every_plugin_distribution_has_an_extra_or_says_so():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for _, extra in env.PLUGIN_DISTRIBUTIONS.values():
        assert extra is None or extra in extras


# -- the compilation cache switch ----------------------------------------------------------------------------------

@pytest.fixture
def cache_config():
    """JAX's cache settings back as they were after the test (tests/conftest.py turns the cache off)."""
    keys = ("jax_enable_compilation_cache", "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    saved = {k: getattr(jax.config, k) for k in keys}
    jax.config.update("jax_enable_compilation_cache", True)
    yield
    for k, v in saved.items():
        jax.config.update(k, v)
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


def test_enable_compile_cache_sets_an_absolute_folder(tmp_path, monkeypatch, cache_config):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(env.CACHE_OPT_OUT, raising=False)
    assert env.enable_compile_cache("out/.jax_cache") == str(tmp_path / "out" / ".jax_cache")
    assert (tmp_path / "out" / ".jax_cache").is_dir()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "out" / ".jax_cache")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == env.MIN_COMPILE_S
    assert env.enable_compile_cache("") is None and jax.config.jax_compilation_cache_dir is None


@pytest.mark.parametrize("how", ["env", "jax"])
def test_compile_cache_opt_outs(tmp_path, monkeypatch, cache_config, how):
    if how == "env":
        monkeypatch.setenv(env.CACHE_OPT_OUT, "0")
    else:
        jax.config.update("jax_enable_compilation_cache", False)  # JAX_ENABLE_COMPILATION_CACHE=false
    assert env.enable_compile_cache(tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists() and jax.config.jax_compilation_cache_dir is None


def test_unwritable_cache_folder_is_a_config_error(tmp_path, cache_config):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"paths.compile_cache=.*cannot be created"):
        env.enable_compile_cache(tmp_path / "file" / "cache")


def test_reachable_is_bounded_even_when_the_name_lookup_hangs(monkeypatch):
    """A node without a route can hang in getaddrinfo for minutes; the probe gives up at its deadline."""
    import socket
    import time

    from recbench import env

    monkeypatch.delenv("RECBENCH_OFFLINE", raising=False)
    def hang(*args, **kwargs):
        time.sleep(3)
        raise OSError("the lookup gave up")

    monkeypatch.setattr(socket, "create_connection", hang)
    t0 = time.time()
    assert env.reachable("https://api.wandb.ai", timeout_s=0.5) is False
    assert time.time() - t0 < 5


def test_reachable_sees_a_listening_server_and_never_probes_offline(monkeypatch):
    import socket

    from recbench import env

    monkeypatch.delenv("RECBENCH_OFFLINE", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        assert env.reachable(url)
        monkeypatch.setenv("RECBENCH_OFFLINE", "1")
        assert not env.reachable(url)


def test_prefer_xla_defaults_keeps_the_flag_only_for_families_it_speeds_up(monkeypatch):
    from jax._src import xla_bridge

    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    monkeypatch.delenv("RECBENCH_XLA_CPU_FLAGS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", env.CPU_FLAG)
    assert not env.prefer_xla_defaults({"blt", "cifar_resnet"}) and env.os.environ["XLA_FLAGS"] == env.CPU_FLAG
    monkeypatch.setenv("RECBENCH_XLA_CPU_FLAGS", "1")  # asked for the flag whatever trains
    assert not env.prefer_xla_defaults({"hgru"}) and env.os.environ["XLA_FLAGS"] == env.CPU_FLAG
    monkeypatch.setenv("RECBENCH_XLA_CPU_FLAGS", "auto")
    assert env.prefer_xla_defaults({"blt", "hgru"}) and "XLA_FLAGS" not in env.os.environ
    monkeypatch.setenv("XLA_FLAGS", "--my_own_flag")  # a user's flags are theirs
    assert not env.prefer_xla_defaults({"hgru"}) and env.os.environ["XLA_FLAGS"] == "--my_own_flag"
    monkeypatch.setenv("XLA_FLAGS", env.CPU_FLAG)
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: True)  # too late: flags were read
    assert not env.prefer_xla_defaults({"hgru"}) and env.os.environ["XLA_FLAGS"] == env.CPU_FLAG


@on_cpu
@pytest.mark.parametrize("model, flags", [("hgru_small", None), ("liao_poggio_2state", None), ("blt", env.CPU_FLAG)])
def test_the_command_line_check_sets_the_flags_for_what_it_will_train(model, flags):
    """The trainer's own path: its override check decides before validation starts JAX's backend."""
    import os
    import subprocess
    import sys

    code = ("import os, recbench; from recbench.cli import check_overrides; "
            f"check_overrides(['model={model}']); print(repr(os.environ.get('XLA_FLAGS')))")
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "RECBENCH_XLA_CPU_FLAGS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean, timeout=300)
    assert out.returncode == 0, out.stderr[-1000:]
    measured = env._version("jaxlib").startswith(env.MEASURED_JAXLIB) and not env.installed_plugins()
    expected = flags if measured else None  # where recbench sets no flag, there is none to take out
    assert out.stdout.strip().splitlines()[-1] == repr(expected)
