"""Shared test set-up: CPU only, wandb off, all data and outputs under pytest's tmp folders."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["WANDB_MODE"] = "disabled"
os.environ["RECBENCH_OFFLINE"] = "1"  # never probe dataset hosts from tests
os.environ.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """One tfds data dir for the whole session, so each tiny stimulus set is generated once."""
    return str(tmp_path_factory.mktemp("tfds"))
