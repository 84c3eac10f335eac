"""Saved test-time-depth evaluations read back as an accuracy-vs-iterations table."""

from recbench.analysis.collect import collect
from recbench.analysis.depth import depth_table, evaluate_missing, has_eval
from recbench.train.evaluate import eval_stem, parse_dataset_overrides


def test_depth_table_one_row_per_evaluation_and_iteration(tmp_path, fake_run):
    fake_run(tmp_path / "r", "bl", (0.4, 0.6), dataset="pathfinder", config={"dataset.contour_length": 6},
             evals=[{"accuracy_per_step": [0.4, 0.6, 0.7, 0.7]},
                    {"accuracy_per_step": [0.3, 0.4, 0.5, 0.55], "dataset_overrides": {"contour_length": 14}}])
    rows = depth_table(collect([tmp_path]))
    assert len(rows) == 8
    same = [r for r in rows if r["eval_dataset"] == ""]
    assert [(r["iterations"], r["accuracy"]) for r in same] == [(1, 0.4), (2, 0.6), (3, 0.7), (4, 0.7)]
    hard = [r for r in rows if r["eval_dataset"]]
    assert hard[0]["eval_dataset"] == "contour_length=14" and hard[0]["test_config"]["contour_length"] == 14
    assert same[0]["test_config"]["contour_length"] == 6  # an old result without dataset_config: the trained set
    assert all(r["trained_steps"] == 2 and r["steps"] == 4 and r["model"] == "bl" for r in rows)
    assert has_eval(tmp_path / "r", 4) and has_eval(tmp_path / "r", 4, {"contour_length": 14})
    assert not has_eval(tmp_path / "r", 16) and not has_eval(tmp_path / "r", 4, {"contour_length": 9})
    assert evaluate_missing(collect([tmp_path]), factor=2) == []  # already there: nothing evaluated


def test_eval_file_names_and_dataset_overrides():
    assert eval_stem(8) == "eval_steps8"
    assert eval_stem(8, ("lateral", "topdown")) == "eval_steps8_ablate-lateral-topdown"
    assert eval_stem(32, (), {"level": "heavy", "contour_length": 14}) == \
        "eval_steps32_dataset-contour_length=14,level=heavy"
    assert parse_dataset_overrides(["contour_length=14", "dataset.level=heavy"]) == {"contour_length": 14,
                                                                                    "level": "heavy"}
    assert parse_dataset_overrides(None) == {}
