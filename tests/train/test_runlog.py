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


def test_offline_wandb_is_silent_but_says_where_the_run_is(tmp_path, monkeypatch, capfd):
    """wandb prints nothing of its own (no banner, offline notice or run summary); recbench prints one line:
    where the offline run is and how to upload it."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "outputs" / "run"
    workdir.mkdir(parents=True)
    wandb_cfg = {"mode": "auto", "project": "recbench-test", "entity": None, "tags": []}
    logger = RunLogger(workdir, {"logger": {"wandb": wandb_cfg}}, wandb_cfg=wandb_cfg, console=True, group="g")
    logger.event("train", 1, loss=0.5)
    logger.event("eval", 1, accuracy_per_step=[0.1, 0.3])
    logger.summary({"final_accuracy": 0.3})
    logger.close()
    captured = capfd.readouterr()
    lines = (captured.out + captured.err).splitlines()
    run_dir = next((workdir / "wandb").glob("offline-run-*"))
    where = run_dir.relative_to(tmp_path).as_posix()  # printed relative to the working directory
    assert lines == [f"wandb: offline run in {where}; upload with: wandb sync {where}"], lines
    for banner in ("Tracking run with wandb", "W&B syncing is set", "Run data is saved locally", "wandb leet",
                   "Run history", "Run summary", "Find logs at", "View run", "Syncing run"):
        assert banner not in captured.out + captured.err


def test_online_run_prints_its_url_once(tmp_path, monkeypatch, capfd):
    """Online, the one line is the run's URL (wandb's own 'View run at' is silenced with the rest)."""
    import recbench.train.runlog as runlog

    class FakeRun:  # what RunLogger reads of an online wandb run
        offline, disabled, url = False, False, "https://wandb.ai/me/recbench/runs/abc123"

        def finish(self):
            pass

    monkeypatch.setattr(runlog, "_init_wandb", lambda *a, **k: FakeRun())
    wandb_cfg = {"mode": "online", "project": "recbench-test", "entity": None, "tags": []}
    logger = RunLogger(tmp_path, {}, wandb_cfg=wandb_cfg, console=True, group="g")
    logger.close()
    assert capfd.readouterr().out.splitlines() == ["wandb: online run at https://wandb.ai/me/recbench/runs/abc123"]


def test_final_summary_puts_depth_and_solution_time_figures_on_the_dashboard(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    wandb_cfg = {"mode": "offline", "project": "recbench-test", "entity": None, "tags": []}
    logger = RunLogger(tmp_path, {"logger": {"wandb": wandb_cfg}}, wandb_cfg=wandb_cfg, console=False, group="kar")
    logged = []
    real = logger.run.log
    monkeypatch.setattr(logger.run, "log", lambda d, *a, **k: (logged.append(d), real(d, *a, **k)))
    logger.summary({"accuracy_per_step": [0.2, 0.5, 0.6], "effective_depth": [2, 4, 6],
                    "solution_time": {"counts_per_step": [3, 2, 1], "never": 4}})
    keys = {k for d in logged for k in d}
    assert {"eval/accuracy_vs_depth", "eval/solution_time"} <= keys
    table = next(d["eval/solution_time"] for d in logged if "eval/solution_time" in d).table
    assert table.data == [["0", 3], ["1", 2], ["2", 1], ["never", 4]]
    logger.close()
