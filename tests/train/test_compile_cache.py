"""The persistent compilation cache: a second tiny run loads its compiled steps instead of compiling them, ``""``
writes nothing, and the ``recbench`` entry point turns it on at ``paths.compile_cache`` by default.

tests/conftest.py turns JAX's cache off for the suite (``JAX_ENABLE_COMPILATION_CACHE=false``); these tests turn it
back on for themselves and put JAX's settings back afterwards.
"""

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from jax import monitoring
from jax.experimental.compilation_cache import compilation_cache

from recbench import env
from recbench.train.loop import train_and_evaluate

HIT, MISS = "/jax/compilation_cache/cache_hits", "/jax/compilation_cache/cache_misses"


@pytest.fixture
def cache_events(monkeypatch):
    """JAX's cache enabled for this test only; yields the list of cache events JAX records meanwhile."""
    monkeypatch.delenv(env.CACHE_OPT_OUT, raising=False)
    keys = ("jax_enable_compilation_cache", "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    saved = {k: getattr(jax.config, k) for k in keys}
    jax.config.update("jax_enable_compilation_cache", True)
    events: list[str] = []

    def listener(event, **_):
        if event in (HIT, MISS):
            events.append(event)

    monitoring.register_event_listener(listener)
    yield events
    monitoring.unregister_event_listener(listener)
    for k, v in saved.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*-cache")} if folder.exists() else set()


def test_second_run_loads_its_compiled_steps(tmp_path, tiny_cfg, cache_events):
    cache = tmp_path / "cache"
    env.enable_compile_cache(cache)
    train_and_evaluate(tiny_cfg(), tmp_path / "first")
    written = _entries(cache)
    assert written, "the first run wrote no cache entry"
    assert MISS in cache_events
    cache_events.clear()
    train_and_evaluate(tiny_cfg("seed=1"), tmp_path / "second")  # another run dir, same programs
    assert HIT in cache_events  # misses remain: small programs are looked up but not worth writing
    assert _entries(cache) == written  # every program worth caching came from the folder


def test_empty_path_writes_nothing(tmp_path, tiny_cfg, cache_events):
    env.enable_compile_cache(tmp_path / "cache")
    assert env.enable_compile_cache("") is None  # switching off after it was on
    train_and_evaluate(tiny_cfg(), tmp_path / "run")
    assert cache_events == [] and _entries(tmp_path) == set()


def test_recbench_turns_the_cache_on_at_paths_compile_cache(tmp_path, data_dir, tiny_overrides):
    environ = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_COMPILATION_CACHE", env.CACHE_OPT_OUT)}
    argv = ["recbench", *tiny_overrides, f"paths.output_root={tmp_path / 'out'}", f"paths.data_dir={data_dir}"]
    script = f"import sys; sys.argv = {argv!r}; from recbench.cli import train_main; train_main()"
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environ, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _entries(tmp_path / "out" / ".jax_cache")  # the default: ${paths.output_root}/.jax_cache
