"""metrics.jsonl is always written; wandb runs offline (no network, no key) and mirrors it."""

import json
import time

from recbench.train.runlog import RunLogger, resolve_wandb_mode

WANDB_AUTO = {"mode": "auto", "project": "recbench-test", "entity": None, "tags": []}


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
    monkeypatch.setattr(runlog, "reachable", lambda url: True)
    wandb_cfg = {"mode": "online", "project": "recbench-test", "entity": None, "tags": []}
    logger = RunLogger(tmp_path, {}, wandb_cfg=wandb_cfg, console=True, group="g")
    logger.close()
    assert capfd.readouterr().out.splitlines() == ["wandb: online run at https://wandb.ai/me/recbench/runs/abc123"]


def test_no_route_to_the_server_logs_offline_at_once_and_says_how_to_sync(tmp_path, monkeypatch, capfd):
    """A key set and no route (a compute node): no wait in wandb.init, one line naming the sync command."""
    import recbench.train.runlog as runlog

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.invalid")
    monkeypatch.delenv("RECBENCH_OFFLINE")  # the probe itself runs, and fails fast: .invalid never resolves
    modes = []
    real = runlog._init_wandb
    monkeypatch.setattr(runlog, "_init_wandb",
                        lambda w, c, wc, mode, g: (modes.append(mode), real(w, c, wc, mode, g))[1])
    t0 = time.time()
    logger = RunLogger(tmp_path, {}, wandb_cfg=WANDB_AUTO, console=True, group="g")
    assert time.time() - t0 < 30 and modes == ["offline"] and logger.run.offline
    lines = capfd.readouterr().out.splitlines()
    logger.close()
    assert len(lines) == 1 and lines[0].startswith("wandb: no route to http://wandb.invalid; logging offline")
    assert "wandb sync " in lines[0]


def test_an_online_init_that_fails_falls_back_to_offline(tmp_path, monkeypatch, capfd):
    import recbench.train.runlog as runlog

    monkeypatch.setattr(runlog, "reachable", lambda url: True)
    real, modes = runlog._init_wandb, []

    def init(w, c, wc, mode, g):
        modes.append(mode)
        if mode == "online":
            raise TimeoutError("Run initialization has timed out after 30.0 sec.")
        return real(w, c, wc, mode, g)

    monkeypatch.setattr(runlog, "_init_wandb", init)
    logger = RunLogger(tmp_path, {}, wandb_cfg={**WANDB_AUTO, "mode": "online"}, console=True, group="g")
    out = capfd.readouterr().out
    logger.close()
    assert modes == ["online", "offline"] and "did not answer (TimeoutError" in out and "wandb sync " in out


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"event": "start", "step": 0}\n{"event": "train", "st')
    logger = RunLogger(tmp_path, {}, wandb_cfg={**WANDB_AUTO, "mode": "disabled"}, console=False, group="g")
    logger.event("resume", 0)
    logger.close()
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "resume"]


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
