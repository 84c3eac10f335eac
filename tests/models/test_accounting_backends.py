"""FLOP counting on backends without a cost analysis (the CUDA plugin, libtpu: PJRT C API backends return ``None``
from ``Lowered.cost_analysis()``), simulated on the CPU: accounting must count on the CPU backend where one exists,
report ``None`` with one warning where none does, and never crash the trainer's header or ``recbench-info``."""

import json
import warnings

import jax
import pytest
from flax import nnx

from recbench import cli
from recbench.models import accounting
from recbench.models.engine import AreaGraph, chain_graph
from recbench.train.console import Console

REAL_COST_ANALYSIS = jax.stages.Lowered.cost_analysis


def _pinned_to_cpu_only(self):
    """What a process whose default backend is an accelerator plugin sees: a cost analysis only for lowerings
    that were explicitly placed on the CPU device, ``None`` for everything lowered for the default backend."""
    device = jax.config.jax_default_device
    if device is not None and getattr(device, "platform", None) == "cpu":
        return REAL_COST_ANALYSIS(self)
    return None


def _blt(steps=3):
    spec = chain_graph((4, 4), lateral=True, topdown=True, steps=steps, schedule="sequential", in_channels=1,
                       num_classes=10)
    return AreaGraph(spec, rngs=nnx.Rngs(0))


@pytest.fixture
def expected():
    """The figures the unpatched CPU backend counts for the test model."""
    return accounting.flops_per_image(_blt(), (8, 8, 1))


def test_accounting_pins_the_cpu_so_an_accelerator_default_still_counts(monkeypatch, expected):
    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", _pinned_to_cpu_only)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "n/a" warning: the CPU counted
        flops = accounting.flops_per_image(_blt(), (8, 8, 1))
    assert flops == expected and all(f > 0 for f in flops)


def test_no_cpu_backend_gives_none_and_one_warning(monkeypatch):
    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", _pinned_to_cpu_only)
    monkeypatch.setattr(accounting, "counting_device", lambda: None)  # JAX_PLATFORMS=cuda: no CPU backend
    with pytest.warns(RuntimeWarning, match="n/a.*no CPU backend") as record:
        described = accounting.describe(_blt(), (8, 8, 1))
    assert len([w for w in record if "FLOPs per image" in str(w.message)]) == 1  # one, not one per step
    assert described["flops_per_image"] == [None, None, None]
    assert described["effective_depth"] == [2, 4, 6]  # depth is read off the jaxpr: no backend needed
    assert described["params"] > 0


def test_a_cost_analysis_that_raises_is_none_too(monkeypatch):
    def raises(self):
        raise NotImplementedError("cost analysis unsupported")  # what older jax did instead of returning None

    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", raises)
    with pytest.warns(RuntimeWarning, match="no cost analysis"):
        assert accounting.flops_per_image(_blt(steps=2), (8, 8, 1)) == [None, None]


def test_list_shaped_cost_analysis_is_read(monkeypatch, expected):
    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", lambda self: [REAL_COST_ANALYSIS(self)])
    assert accounting.flops_per_image(_blt(), (8, 8, 1)) == expected


def test_recbench_info_stays_valid_json_without_flops(monkeypatch, capsys):
    monkeypatch.setattr(jax.stages.Lowered, "cost_analysis", _pinned_to_cpu_only)
    monkeypatch.setattr(accounting, "counting_device", lambda: None)
    monkeypatch.setattr("sys.argv", ["recbench-info", "model=bl", "model.channels=[4,4]", "model.steps=2"])
    with pytest.warns(RuntimeWarning, match="n/a"):
        cli.info_main()
    out = json.loads(capsys.readouterr().out)
    assert out["flops_per_image"] == [None, None]
    assert out["backend"]["backend"] == jax.default_backend() and out["backend"]["jaxlib"]


def test_console_header_and_table_say_na_without_flops(tmp_path, capsys):
    info = {"model": "b", "dataset": "digits", "params": 10, "flops_per_image": [None, None], "time_steps": 2,
            "effective_depth": [2, 2], "device": "cpu:cpu x1"}
    console = Console(enabled=True, progress=False)
    console.header(info, tmp_path, 0)
    console.final({**info, "accuracy_per_step": [0.5, 0.6], "final_accuracy": 0.6, "wall_time_s": 1.0,
                   "images_per_s": None, "workdir": str(tmp_path)})
    out = capsys.readouterr().out
    assert "n/a MFLOP/image" in out and f"backend {jax.default_backend()}" in out
