"""Every experiment preset: its declared sweep validates at both scales, and a smoke version of it (debug=smoke, two
runs of the sweep) trains end to end and renders through recbench-figures to a PNG."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recbench.cli import check_overrides
from recbench.config import ConfigError, compose_train, group_choices, sweep_params
from recbench.train.loop import train_and_evaluate

EXPERIMENTS = ("spoerer2017", "liao_poggio2016", "kar2019", "zamir2017", "linsley2018", "schwarzschild2021")
# Two points of each declared sweep (at CPU scale), enough for every figure to draw its comparison.
SMOKE = {
    "spoerer2017": (["model=b"], ["model=blt"]),
    "liao_poggio2016": (["model=resnet20"], ["model=resnet20_shared"]),
    "kar2019": (["model=b"], ["model=blt"]),
    # two steps: the smoke checks the pipeline, and these nets compile and train slowly on XLA:CPU at full depth
    "zamir2017": (["model=feedback48", "model.steps=2"], ["model=resnet20_exits"]),
    "linsley2018": (["model=hgru_small", "model.steps=2"], ["model=bl"]),
    "schwarzschild2021": (["model=dt_net_recall"], ["model=dt_net"]),
}


def test_there_is_one_preset_per_paper():
    assert set(group_choices("experiment")) == set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_declared_sweep_validates_at_both_scales(experiment):
    cpu, paper = sweep_params([f"experiment={experiment}"]), sweep_params([f"experiment={experiment}", "scale=paper"])
    assert "seed" in cpu and len(cpu["seed"].split(",")) >= 2, "every figure aggregates seeds"
    assert cpu.keys() == paper.keys()
    # every value of the CPU sweep composes and validates (check_overrides checks each value once)
    assert len(check_overrides([f"experiment={experiment}"], multirun=True)) >= 2
    for cfg in check_overrides([f"experiment={experiment}", "scale=paper"], multirun=True)[:3]:
        assert cfg.scale == "paper"


def test_scale_selects_the_size_and_a_bad_scale_is_one_line():
    cpu = compose_train(["experiment=spoerer2017"])
    paper = compose_train(["experiment=spoerer2017", "scale=paper"])
    assert cpu.trainer.total_steps < paper.trainer.total_steps and cpu.model.width < paper.model.width
    with pytest.raises(ConfigError, match="scale='huge' is not valid"):
        check_overrides(["experiment=spoerer2017", "scale=huge"])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_smoke_experiment_runs_through_recbench_figures(experiment, tmp_path, data_dir):
    from recbench.analysis.figures import Options, make_figures

    sweep = tmp_path / experiment
    for variant in SMOKE[experiment]:
        overrides = [f"experiment={experiment}", "debug=smoke", *variant, "seed=0"]
        cfg = compose_train(overrides)
        cfg.paths.data_dir = data_dir
        cfg.trainer.progress = False
        cfg.logger.console = False
        run_dir = sweep / ",".join(variant)
        (run_dir / ".hydra").mkdir(parents=True)  # what Hydra writes next to a run: its overrides
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        train_and_evaluate(cfg, run_dir)
    opts = Options(n_boot=200, eval_factor=2, data_dir=data_dir)
    written = make_figures(experiment, [sweep], tmp_path / "results", opts)
    pngs = [p for p in written if p.suffix == ".png"]
    assert pngs and all(p.stat().st_size > 2000 for p in pngs)
    assert (tmp_path / "results" / "summary.csv").exists()


def test_recbench_multirun_of_an_experiment_then_recbench_figures(tmp_path, data_dir):
    """The real commands: the declared sweep, narrowed on the command line to one run, then the figures."""
    bin_dir = Path(sys.executable).parent
    env_args = ["debug=smoke", f"paths.output_root={tmp_path}", f"paths.data_dir={data_dir}", "trainer.progress=false"]
    done = subprocess.run([bin_dir / "recbench", "-m", "experiment=spoerer2017", "model=b", "seed=0",
                           "dataset=digit_debris_light", *env_args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [p.parent for p in (tmp_path / "spoerer2017").rglob("summary.json")]
    assert len(runs) == 1 and "model=b" in runs[0].name and "seed=0" in runs[0].name
    figs = subprocess.run([bin_dir / "recbench-figures", "spoerer2017", "--output-root", str(tmp_path),
                           "--out", str(tmp_path / "results")], capture_output=True, text=True, timeout=300)
    assert figs.returncode == 0, figs.stderr[-2000:]
    assert (tmp_path / "results" / "final_accuracy.png").exists()
