"""recbench-bench's orchestration: alternating rounds, medians and per-round ratios, the table and the JSON, the
depth and time-to-target sections, and one-line errors.

One test runs the real thing end to end at a tiny size (fresh worker processes for recbench and both PyTorch
layouts); the others replace the worker by a stub whose numbers are known, so the arithmetic can be checked
exactly and quickly.
"""

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="recbench-bench needs the torch extra (pip install -e .[torch])")

from recbench.bench import cli  # noqa: E402
from recbench.bench.cases import CASES  # noqa: E402

# ---- a stub worker -----------------------------------------------------------------------------------------------

TRAIN = {"recbench": 30.0, "nchw": 20.0, "channels_last": 25.0}  # img/s in round 1, scaled by the round


def stub_worker(calls: list, fail: str | None = None):
    def call(spec: dict, timeout: float) -> dict:
        calls.append(spec)
        if spec["mode"] == "probe":
            return {"backend": "cpu", "device_kind": "cpu", "device_count": 1, "xla_flags": ""}
        key = spec.get("layout", spec["framework"])
        if key == fail:
            return {"error": "RuntimeError: boom", "process_s": 0.1}
        r = max(1, sum(1 for c in calls if c.get("layout", c.get("framework")) == key and c["mode"] == "train_eval"
                       and c["preset"] == spec["preset"]))
        out = {"init_s": 1.0, "peak_rss_mib": 100.0 * r, "process_s": 1.0}
        if spec["mode"] in ("train_eval", "train"):
            img_s = TRAIN.get(key, 10.0) * r  # the r-th call of this variant of this case: round r
            out.update(train_img_s=img_s, train_step_s=[spec["batch"] / img_s] * spec["steps"], first_step_s=3.0)
            if spec["framework"] == "recbench":
                out["compile_s"] = 2.0
        if spec["mode"] in ("train_eval", "eval"):
            out.update(eval_img_s=2 * TRAIN.get(key, 10.0) * r, first_eval_s=0.5)
            if spec["framework"] == "recbench":
                out["eval_compile_s"] = 0.4
        return out

    return call


def run_stubbed(monkeypatch, capsys, argv, fail=None):
    calls = []
    monkeypatch.setattr(cli, "call_worker", stub_worker(calls, fail))
    code = 0
    try:
        cli.main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return calls, out, code


def test_rounds_alternate_and_ratios_are_taken_within_each_round(monkeypatch, capsys):
    calls, out, code = run_stubbed(monkeypatch, capsys, ["--cases", "blt,resnet20", "--rounds", "3", "--json",
                                                         "--depths", "none", "--eval-depth", "0"])
    assert code == 0, out.err
    report = json.loads(out.out)
    order = [c.get("layout", c.get("framework")) for c in calls if c["mode"] == "train_eval"]
    first, second = ["recbench", "nchw", "channels_last"], ["channels_last", "nchw", "recbench"]
    assert order == first * 2 + second * 2 + first * 2  # per round: both cases, the order reversed every round
    blt = report["cases"]["blt"]
    assert blt["batch"] == CASES["blt"].batch and blt["time_steps"] == 4
    assert [r["round"] for r in blt["runs"]["recbench"]] == [1, 2, 3]
    # round r: recbench 30r, torch best = channels_last 25r -> ratio 1.2 in every round
    assert blt["torch_best"]["train_layout_per_round"] == ["channels_last"] * 3
    assert blt["ratio"]["train"]["per_round"] == pytest.approx([1.2] * 3)
    assert blt["ratio"]["train"]["median"] == pytest.approx(1.2)
    assert blt["summary"]["recbench"]["train_img_s"] == {"median": 60.0, "min": 30.0, "max": 90.0, "n": 3}
    assert blt["summary"]["torch_nchw"]["compile_s"] is None  # eager PyTorch compiles nothing
    assert report["depth"] is None and report["time_to_target"] is None
    assert set(report["machine"]) >= {"cpu", "cores", "versions", "backend", "device_kind"}
    assert set(report["machine"]["versions"]) == {"jax", "jaxlib", "flax", "optax", "torch", "numpy"}


def test_the_depth_section_times_scan_over_one_step_on_cpu(monkeypatch, capsys):
    calls, out, code = run_stubbed(monkeypatch, capsys, ["--cases", "none", "--depths", "4,8", "--depth-steps",
                                                         "3", "--eval-depth", "64"])
    assert code == 0, out.err
    train = [c for c in calls if c["mode"] == "train"]
    assert [(c["overrides"]["steps"], c["overrides"]["unroll"], c["steps"]) for c in train] == [
        (4, "loop", 3), (4, "scan", 1), (8, "loop", 3), (8, "scan", 1)]
    assert all(c["batch"] == cli.CPU_DEPTH_BATCH for c in train)
    evals = [c for c in calls if c["mode"] == "eval"]
    assert [(c["eval_steps_T"], c["overrides"]["unroll"]) for c in evals] == [(64, "loop"), (64, "scan")]
    table = out.out
    assert f"unroll depth: recbench's blt train step at batch {cli.CPU_DEPTH_BATCH}" in table
    assert "eval at test-time depth T'=64 of the T=4 blt" in table
    assert "round" not in table  # no case section when --cases none


def test_a_failed_measurement_shows_in_the_table_and_exits_1(monkeypatch, capsys):
    _, out, code = run_stubbed(monkeypatch, capsys, ["--cases", "blt", "--rounds", "1", "--depths", "none",
                                                     "--eval-depth", "0"], fail="nchw")
    assert code == 1
    assert "failed 1x: RuntimeError: boom" in out.out
    assert "torch best" in out.out  # channels_last still gives a best layout
    assert out.err.strip().splitlines()[-1] == ("recbench-bench: error: 1 measurement(s) failed: blt torch NCHW "
                                                "round 1")


def write_stub_trainer(tmp_path, summary: dict):
    """A stand-in for ``recbench``: writes ``summary`` where the real trainer would, under paths.output_root."""
    stub = tmp_path / "trainer.py"
    stub.write_text(
        "import json, pathlib, sys\n"
        "args = dict(a.split('=', 1) for a in sys.argv[1:])\n"
        "run = pathlib.Path(args['paths.output_root']) / 'default' / 'run'\n"
        "run.mkdir(parents=True)\n"
        f"summary = {summary!r}\n"
        "summary['target_accuracy'] = float(args['trainer.target_accuracy'])\n"
        "(run / 'summary.json').write_text(json.dumps(summary))\n")
    return [sys.executable, str(stub)]


def test_time_to_target_reads_the_trainer_summary(tmp_path, monkeypatch, capsys):
    summary = {"time_to_target_s": 42.5, "steps_to_target": 120, "images_to_target": 7680, "wall_time_s": 50.0,
               "final_accuracy": 0.93, "train_steps": 120}
    out = cli.time_to_target(0.9, command=write_stub_trainer(tmp_path, summary))
    assert out["reached"] and out["time_to_target_s"] == 42.5 and out["images_to_target"] == 7680
    assert out["command"] == ("recbench trainer.target_accuracy=0.9 paths.output_root=<tmp> logger=disabled "
                              "trainer.progress=false")
    assert out["process_s"] > 0
    again = tmp_path / "again"
    again.mkdir()
    monkeypatch.setattr(cli, "TRAINER", write_stub_trainer(again, summary))
    _, printed, code = run_stubbed(monkeypatch, capsys, ["--cases", "none", "--depths", "none", "--eval-depth",
                                                         "0", "--time-to-target", "0.9"])
    assert code == 0, printed.err
    assert "time to target: `recbench trainer.target_accuracy=0.9" in printed.out
    assert "42.5 s to accuracy 0.9 (7680 images, step 120)" in printed.out


def test_time_to_target_says_when_the_trainer_does_not_know_the_key(tmp_path):
    out = cli.time_to_target(0.9, command=write_stub_trainer(tmp_path, {"final_accuracy": 0.5, "wall_time_s": 9}))
    assert not out["reached"] and "no time_to_target_s" in out["note"]


# ---- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    (["--cases", "blt,alexnet"], "unknown case 'alexnet'; choose from blt, resnet20, cornet_rt, liao_poggio_4state"),
    (["--rounds", "0"], "argument --rounds: expected a number >= 1, got 0"),
    (["--depths", "4,eight"], "argument --depths: expected depths like 4,8,16,32 (or none), got '4,eight'"),
    (["--time-to-target", "1.5"], "argument --time-to-target: expected an accuracy in (0, 1], got '1.5'"),
    (["--steps"], "argument --steps: expected one argument"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_a_bad_argument_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("recbench-bench: error: ") and message in err[0]


def test_without_torch_it_says_which_extra_to_install(monkeypatch, capsys):
    monkeypatch.setattr(cli, "torch_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        cli.main(["--cases", "blt"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "recbench-bench: error: install the torch extra: pip install -e .[torch]\n"


def test_the_console_command_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "recbench.bench", "--cases", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# ---- the real thing, tiny ------------------------------------------------------------------------------------------


def test_end_to_end_tiny_run_prints_the_table_and_writes_the_json(tmp_path):
    path = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "recbench.bench", "--cases", "blt", "--rounds", "1", "--steps", "1",
                           "--warmup", "0", "--batch", "2", "--depths", "none", "--eval-depth", "0",
                           "--json", str(path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    for text in ("recbench-bench: JAX on cpu", "load average (1 min) after the measurements",
                 "blt: batch 2, 32x32x1, 10 classes, T=4", "  recbench ",
                 "  torch NCHW ", "  torch channels_last ", "  torch best ", "  recbench / torch best "):
        assert text in table
    report = json.loads(path.read_text())
    assert set(report) == {"machine", "settings", "cases", "depth", "time_to_target"}
    blt = report["cases"]["blt"]
    runs = {v: blt["runs"][v][0] for v in cli.VARIANTS}
    for r in runs.values():
        assert "error" not in r, r
        assert r["train_img_s"] > 0 and r["eval_img_s"] > 0 and r["peak_rss_mib"] > 0 and r["time_steps"] == 4
        assert len(r["train_step_s"]) == 1 and len(r["eval_step_s"]) == 1
        assert r["load_1m"] is not None and r["process_s"] > 0
    assert runs["recbench"]["compile_s"] > 0 and runs["recbench"]["first_step_s"] >= runs["recbench"]["compile_s"]
    best = max(runs["torch_nchw"]["train_img_s"], runs["torch_channels_last"]["train_img_s"])
    assert blt["ratio"]["train"]["median"] == pytest.approx(runs["recbench"]["train_img_s"] / best)
    best_eval = max(runs["torch_nchw"]["eval_img_s"], runs["torch_channels_last"]["eval_img_s"])
    assert blt["ratio"]["eval"]["per_round"] == [pytest.approx(runs["recbench"]["eval_img_s"] / best_eval)]
