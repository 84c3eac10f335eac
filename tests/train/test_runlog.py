"""metrics.jsonl is always written; wandb runs offline (no network, no key) and mirrors it."""

import json

from recbench.train.runlog import RunLogger, resolve_wandb_mode


def test_auto_mode_is_offline_without_a_key(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("auto") == "disabled"


def test_offline_wandb_run_writes_locally_and_resumes_its_id(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = {"logger": {"wandb": {"mode": "offline", "project": "recbench-test", "entity": None, "tags": ["t"]}}}
    for _ in range(2):  # the second logger is a resumed run: same wandb id
        logger = RunLogger(tmp_path, cfg, wandb_cfg=cfg["logger"]["wandb"], console=False, group="g")
        logger.event("train", 1, loss=0.5, accuracy_per_step=[0.1, 0.2])
        logger.event("eval", 1, accuracy_per_step=[0.1, 0.3])
        logger.summary({"final_accuracy": 0.3, "accuracy_per_step": [0.1, 0.3]})
        logger.close()
    events = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["train", "eval", "train", "eval"]
    run_id = (tmp_path / "wandb_id.txt").read_text()
    runs = list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))
    assert runs and list(runs[0].glob("*.wandb"))
