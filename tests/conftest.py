"""Shared test set-up: CPU only, wandb off, all data and outputs under pytest's tmp folders, and the one tiny
config every end-to-end test starts from."""

import copy
import functools
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["WANDB_MODE"] = "disabled"
os.environ["RECBENCH_OFFLINE"] = "1"  # never probe dataset hosts from tests
os.environ.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")

import pytest  # noqa: E402

# A two-step B net on clean digits: trains in seconds, learns well above chance in 60 steps. Tests add the
# overrides they are about (another model or dataset, more steps) to this list; choosing another dataset drops
# the digit-debris keys.
TINY = ("model=bl", "dataset.level=none", "model.channels=[8,16]", "model.steps=2", "dataset.num_train=1024",
        "dataset.num_test=256", "trainer.batch_size=32", "trainer.eval_batch_size=128", "trainer.log_every=10",
        "trainer.total_steps=2", "trainer.eval_every=100", "trainer.checkpoint_every=100", "trainer.progress=false",
        "logger=disabled", "logger.console=false", "optim.lr=0.01", "optim.warmup_steps=0")


@functools.cache
def _composed(overrides: tuple[str, ...]):
    from recbench.config import compose_train

    return compose_train(list(overrides))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """One tfds data dir for the whole session, so each tiny stimulus set is generated once."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def tiny_overrides() -> tuple[str, ...]:
    """The tiny config's overrides, for tests that start the real command line."""
    return TINY


@pytest.fixture
def tiny_cfg(data_dir):
    """``tiny_cfg(*overrides)``: a private copy of the tiny config (composed once per override set), data in the
    session's data dir. Tests change it further by assignment, e.g. ``cfg.trainer.total_steps = 12``."""

    def make(*overrides: str):
        base = TINY
        if any(o.startswith("dataset=") for o in overrides):
            base = tuple(o for o in TINY if not o.startswith("dataset."))
        cfg = copy.deepcopy(_composed((*base, *overrides)))
        cfg.paths.data_dir = data_dir
        return cfg

    return make
