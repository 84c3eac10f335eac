"""A trained checkpoint evaluated deeper than trained, and with connections silenced."""

import numpy as np
import pytest

from recbench.config import ConfigError
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
