"""A trained checkpoint evaluated deeper than trained, with connections silenced, and on a dataset variant."""

import json
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from recbench.config import ConfigError
from recbench.train import evaluate
from recbench.train.evaluate import evaluate_run
from recbench.train.loop import train_and_evaluate


def test_test_time_unroll_and_ablation_on_a_trained_checkpoint(tmp_path, tiny_cfg):
    cfg = tiny_cfg("model=blt", "model.channels=[8,8]", "trainer.total_steps=20", "trainer.checkpoint_every=20")
    summary = train_and_evaluate(cfg, tmp_path)
    same = evaluate_run(tmp_path)
    np.testing.assert_allclose(same["accuracy_per_step"], summary["accuracy_per_step"])
    deeper = evaluate_run(tmp_path, steps=4)
    assert deeper["trained_steps"] == 2 and len(deeper["accuracy_per_step"]) == 4
    np.testing.assert_allclose(deeper["accuracy_per_step"][:2], summary["accuracy_per_step"])
    cooled = evaluate_run(tmp_path, ablate=("lateral", "topdown"))
    assert cooled["accuracy_per_step"][0] == summary["accuracy_per_step"][0]  # step 0 is bottom-up only
    assert cooled["loss_per_step"][1] != pytest.approx(summary["loss_per_step"][1])
    with pytest.raises(ConfigError, match="not a recbench run directory"):
        evaluate_run(tmp_path / "nowhere")

    # another variant of the trained dataset, saved beside the run with its per-image predictions
    variant = evaluate_run(tmp_path, steps=3, dataset=["level=light"], save=True)
    assert variant["dataset_overrides"] == {"level": "light"} and variant["dataset_config"]["level"] == "light"
    stem = "eval_steps3_dataset-level=light"
    assert json.loads((tmp_path / f"{stem}.json").read_text()) == variant and variant["predictions"] == f"{stem}.npz"
    with np.load(tmp_path / f"{stem}.npz") as preds:
        assert preds["correct"].shape == (3, 256) and preds["labels"].shape == (256,)
        assert preds["logits"].shape == (3, 256, 10) and preds["logits"].dtype == np.float16
        np.testing.assert_allclose(preds["correct"].mean(axis=1), variant["accuracy_per_step"])
    assert variant["accuracy_per_step"][:2] != deeper["accuracy_per_step"][:2]  # other images
    for bad, message in (("image_size=64", "gives images"), ("name=mnist", "not another dataset"),
                         ("colour=red", "no such key"), ("level", "KEY=VALUE")):
        with pytest.raises(ConfigError, match=message):
            evaluate_run(tmp_path, dataset=[bad])


def test_eval_cli_refuses_a_variant_in_one_line(tmp_path, tiny_cfg, monkeypatch, capsys):
    OmegaConf.save(tiny_cfg(), tmp_path / "config.yaml")  # refused before anything loads: no training needed
    (tmp_path / "checkpoints").mkdir()
    monkeypatch.setattr(sys, "argv", ["recbench-eval", str(tmp_path), "--dataset", "image_size=64"])
    with pytest.raises(SystemExit) as exit_:
        evaluate.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "trained on (32, 32, 1)" in err
