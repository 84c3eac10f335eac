"""Every config composes and validates; bad configs end in one line and a nonzero exit."""

import re
import subprocess
import sys

import pytest

from recbench.cli import check_overrides, validate_config
from recbench.config import ConfigError, compose_train, group_choices

GROUPS = ("model", "dataset", "optim", "trainer", "logger", "experiment", "debug")


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_and_validates(group):
    options = group_choices(group)
    assert options, f"config group {group} is empty"
    for option in options:
        cfg = compose_train([f"{group}={option}"])
        validate_config(cfg)


@pytest.mark.parametrize("dataset", group_choices("dataset"))
def test_smoke_shrinks_every_dataset(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the output root is made to check it
    (cfg,) = check_overrides(["debug=smoke", f"dataset={dataset}"])
    assert (cfg.dataset.num_train, cfg.dataset.num_test) == (512, 256)


def test_defaults_are_the_documented_main_job():
    cfg = compose_train([])
    assert (cfg.model.name, cfg.dataset.name, cfg.model.steps) == ("blt", "digit_debris", 4)


def test_override_syntax_error_names_the_override():
    with pytest.raises(ConfigError, match=re.escape("bad override 'model.steps==3'")):
        check_overrides(["model.steps==3"])


def test_sweep_values_are_each_checked():
    assert len(check_overrides(["model=b,bl,bt,blt"])) == 4
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        check_overrides(["model=b,nope"])


@pytest.mark.parametrize("override,message", [
    ("model=nope", "unknown model 'nope'; choose one of: b, b_d, b_f"),
    ("model.steps=0", "model.steps must be a positive integer, got 0"),
    ("model.steps=-1", "model.steps must be a positive integer, got -1"),
    ("model.steps=x", "model.steps must be a positive integer, got 'x'"),
    ("model.schedule=backwards",
     "model blt: schedule must be one of sequential, synchronous, stagewise, got 'backwards'"),
    ("model=resnet20 model.depth=21", "not 6n+2"),
    ("dataset.level=extreme", "dataset.level='extreme' is not valid"),
    ("trainer.total_steps=abc", "trainer.total_steps"),
    ("trainer.nope=1", "trainer: unknown key(s) nope; valid keys: batch_size"),
    ("trainer.totl_steps=5", "trainer: unknown key(s) totl_steps (did you mean total_steps?)"),
    ("+trainer.totl_steps=5", "trainer: unknown key(s) totl_steps (did you mean total_steps?)"),
    ("+foo=1", "config: unknown key(s) foo; valid keys: dataset, logger"),
    ("model.cell=lstm", "model blt: unknown key(s) cell; valid keys: area_names"),
    ("model=b model.norm=nope", "model b: norm must be one of bn_step, bn, group, lrn, none, got 'nope'"),
    ("model.channels=[0,32]", "model.channels[0] must be a positive integer, got 0"),
    ("model.lateral=maybe", "model.lateral must be true or false, got 'maybe'"),
    ("model=hgru dataset=pathfinder trainer.loss_over_steps=weights trainer.step_weights=[1,1]",
     "trainer.step_weights needs 8 non-negative numbers"),
    ("optim.momentum=1.5", "optim.momentum must be in [0, 1), got 1.5"),
    ("seed=-1", "seed must be an integer >= 0, got -1"),
    ("name=../x", "name='../x' must be one folder name"),
    ("paths.output_root=/dev/null", "paths.output_root='/dev/null' is a file, not a folder"),
    ("paths.output_root=/proc/recbench", "paths.output_root='/proc/recbench' is not a writable folder"),
    ("dataset=cifar10 dataset.train_split='train[:60000]'", "dataset.train_split='train[:60000]': Requested slice"),
    ("optim.name=lbfgs", "optim.name='lbfgs' is not valid"),
    ("logger.wandb.mode=sometimes", "logger.wandb.mode='sometimes' is not valid"),
])
def test_bad_configs_raise_config_errors(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_overrides(override.split())


@pytest.mark.parametrize("cmd", [["recbench", "model=nope"], ["recbench", "model.steps=0"],
                                 ["recbench-info", "model.steps=x"]])
def test_cli_bad_config_is_one_line_and_nonzero(cmd, tmp_path):
    script = "from recbench.cli import {}; import sys; sys.argv = {!r}; {}()".format(
        "train_main" if cmd[0] == "recbench" else "info_main", cmd, "train_main" if cmd[0] == "recbench"
        else "info_main")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recbench: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()  # nothing was started
