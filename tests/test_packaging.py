"""The built wheel carries the Hydra config tree and the dataset metadata, and an installed (non-editable) copy
composes its configs from the package alone, far from the repository.

The config tree lives at the top of the repository (``configs/``) and reaches the wheel as ``recbench/configs``
through the ``recbench/configs`` symlink and pyproject.toml's package-data globs; a YAML that no glob matches
would work from a checkout and vanish from an install, which is what this test catches. It builds offline
(``--no-build-isolation`` with the environment's setuptools, ``--no-index``) from a copy of the sources, so the
shared checkout gets no ``build/`` or ``*.egg-info`` written into it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Not part of a build: environments, build leftovers, run outputs, caches.
_SKIP = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "outputs", "multirun",
                               "wandb", "__pycache__", ".pytest_cache", ".ruff_cache", "*.pyc")


def _files_under(root: Path, pattern: str = "*") -> set[str]:
    """Paths (posix, relative to ``root``) of the files under ``root`` matching ``pattern``, caches left out."""
    return {p.relative_to(root).as_posix() for p in root.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, f"pip {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools", minversion="77")  # the build backend, used without isolation (offline)
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=_SKIP)  # symlinks kept: recbench/configs -> ../configs
    assert (src / "recbench" / "configs").is_symlink()
    out = tmp / "wheels"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(src), cwd=tmp)
    (built,) = out.glob("recbench-*.whl")
    return built


def test_wheel_carries_every_config_and_the_dataset_metadata(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "recbench/configs/train.yaml" in names
    source_yamls = _files_under(REPO / "configs", "*.yaml")
    assert len(source_yamls) > 10
    wheel_yamls = {n.removeprefix("recbench/configs/") for n in names
                   if n.startswith("recbench/configs/") and n.endswith(".yaml")}
    assert wheel_yamls == source_yamls, (f"missing from the wheel: {sorted(source_yamls - wheel_yamls)}; "
                                         f"not in configs/: {sorted(wheel_yamls - source_yamls)}")
    metadata = _files_under(REPO / "recbench" / "data" / "metadata")
    assert metadata
    wheel_metadata = {n.removeprefix("recbench/data/metadata/") for n in names
                      if n.startswith("recbench/data/metadata/")}
    assert wheel_metadata == metadata, f"missing from the wheel: {sorted(metadata - wheel_metadata)}"


def test_installed_wheel_composes_its_configs_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel), cwd=tmp_path)
    assert not (site / "recbench" / "configs").is_symlink()  # a real folder in the install
    probe = textwrap.dedent("""
        import json
        from importlib import resources

        import recbench
        from recbench.config import compose_train, group_choices

        cfg = compose_train([])
        print(json.dumps({"recbench": recbench.__file__, "configs": str(resources.files("recbench.configs")),
                          "model": cfg.model.name, "dataset": cfg.dataset.name,
                          "models": group_choices("model")}))
    """)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu", "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=run_dir, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("recbench", "configs"):
        path = Path(got[key]).resolve()
        assert path.is_relative_to(site.resolve()), f"{key} came from {path}, not the installed wheel"
        assert not path.is_relative_to(REPO), f"{key} came from the repository: {path}"
    assert (got["model"], got["dataset"]) == ("blt", "digit_debris")
    presets = sorted(p.stem for p in (REPO / "configs" / "model").glob("*.yaml"))
    assert got["models"] == presets
    assert {"blt", "bl", "b", "resnet"} <= set(got["models"])
