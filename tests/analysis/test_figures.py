"""recbench-figures: every experiment renders from run directories (fake ones, and two tiny real runs)."""

import csv
import json

import numpy as np
import pytest

from recbench.analysis import plots
from recbench.analysis.figures import EXPERIMENTS, TABLES, Options, main, make_figures
from recbench.config import ConfigError


def _own(written):
    """What an experiment wrote besides the tables and learning curves every experiment writes."""
    return [p for p in written if p.name not in (*TABLES, "learning_curves.png")]


def _png(path):
    assert path.suffix == ".png" and path.stat().st_size > 2000, path
    return path.name


def test_shared_helpers_draw_means_with_intervals_and_skip_missing_series():
    fig, (ax,) = plots.panels(1)
    rows = [{"task": "light", "model": "b", "acc": 0.2}, {"task": "light", "model": "b", "acc": 0.4},
            {"task": "light", "model": "bl", "acc": 0.5}, {"task": "heavy", "model": "bl", "acc": 0.3}]
    plots.bars_ci(ax, rows, lambda r: r["task"], lambda r: r["model"], "acc")
    assert sorted(round(p.get_height(), 6) for p in ax.patches) == [0.3, 0.3, 0.5]  # b has no heavy run
    assert {t.get_text() for t in ax.texts} == {"n=2", "n=1"}
    points = plots.line_ci(ax, rows, lambda r: r["task"] == "heavy", "acc", "all")
    assert [(p["_x"], p["n"], round(p["mean"], 6)) for p in points] == [(False, 3, 0.366667), (True, 1, 0.3)]
    plots.pyplot().close(fig)
    runs = [{"model": m, "seed": seed, "optim.lr": lr} for m, seed, lr in (("bl", 0, 0.1), ("bl", 1, 0.1),
                                                                            ("bl", 0, 0.01), ("b", 0, 0.1))]
    series = plots.with_series(runs, order=("b", "bl"))
    assert [(label, len(r)) for label, r in series] == [("b", 1), ("bl optim.lr=0.1", 2), ("bl optim.lr=0.01", 1)]


def _sweep(root, fake_run, models, variants, dataset="digit_debris", key="dataset.level", seeds=(0, 1), config=None):
    for m, (model, steps) in enumerate(models):
        for v in variants:
            for seed in seeds:
                acc = tuple(0.3 + 0.1 * m + 0.05 * seed + 0.02 * t for t in range(steps))
                fake_run(root / f"{model},{v},{seed}", model, acc, dataset=dataset, seed=seed,
                         config={key: v, **(config or {})}, params=1000 * (m + 1))


def test_spoerer_liao_zamir_linsley_render_on_partial_sweeps(tmp_path, fake_run):
    _sweep(tmp_path / "sp", fake_run, [("b", 1), ("bl", 4), ("blt", 4)], ["light", "heavy"])
    _sweep(tmp_path / "sp", fake_run, [("bt", 4)], [3], dataset="digit_clutter", key="dataset.n_digits", seeds=(0,))
    written = make_figures("spoerer2017", [tmp_path / "sp"], tmp_path / "out_sp")
    assert [p.name for p in written[:2]] == ["summary.csv", "summary_per_step.csv"]
    assert sorted(map(_png, _own(written))) == ["accuracy_per_step_digit_clutter_3.png",
                                              "accuracy_per_step_digit_debris_heavy.png",
                                              "accuracy_per_step_digit_debris_light.png", "final_accuracy.png"]
    assert len(list(csv.DictReader(open(written[0])))) == 13
    contrasts = {(r["task"], r["a"], r["b"]): r for r in csv.DictReader(open(tmp_path / "out_sp" / "contrasts.csv"))}
    blt_b = contrasts[("digit_debris light", "blt", "b")]  # 0.56, 0.61 against 0.30, 0.35
    assert float(blt_b["diff"]) == pytest.approx(0.26) and float(blt_b["se"]) == pytest.approx(0.05 / 2**0.5)
    assert float(blt_b["diff_over_se"]) == pytest.approx(0.26 / (0.05 / 2**0.5))
    assert not any(k[0] == "digit_clutter 3" for k in contrasts)  # only bt ran there: no pair
    conditions = list(csv.DictReader(open(tmp_path / "out_sp" / "conditions.csv")))
    assert {(r["task"], r["series"], r["n"]) for r in conditions} >= {("digit_debris heavy", "blt", "2"),
                                                                     ("digit_clutter 3", "bt", "1")}
    assert "| digit_debris light | blt − b | 2, 2 | +0.260 |" in (tmp_path / "out_sp" / "tables.md").read_text()
    readouts = {(r["task"], r["series"], r["time_step"]): r
                for r in csv.DictReader(open(tmp_path / "out_sp" / "readouts.csv"))}
    first = readouts[("digit_debris light", "blt", "0")]  # seeds 0.50, 0.55 at the first readout
    assert first["n"] == "2" and float(first["mean"]) == pytest.approx(0.525)
    assert float(readouts[("digit_debris light", "blt", "3")]["mean"]) == pytest.approx(0.585)
    assert ("digit_debris light", "b", "1") not in readouts  # b has one readout
    assert "| digit_debris light | blt | 4 |" in (tmp_path / "out_sp" / "tables.md").read_text()
    from recbench.analysis.collect import collect
    from recbench.analysis.figures import condition_tables

    condition_tables(collect([tmp_path / "sp"]), tmp_path / "out_sp", (("blt@1", "bl@4"), ("blt@9", "bl")))
    early = list(csv.DictReader(open(tmp_path / "out_sp" / "contrasts.csv")))  # blt's first readout vs bl's last
    assert [(r["task"], r["a"], r["b"]) for r in early] == [("digit_debris heavy", "blt@1", "bl@4"),
                                                             ("digit_debris light", "blt@1", "bl@4")]
    assert float(early[1]["diff"]) == pytest.approx(0.04)  # 0.50, 0.55 against 0.46, 0.51; blt has no 9th readout

    _sweep(tmp_path / "lp", fake_run, [("resnet20", 1), ("liao_poggio_2state", 8)], ["bn_step", "bn"],
           key="model.norm")
    _sweep(tmp_path / "lp", fake_run, [("resnet20_shared", 1)], [False], key="model.share_norm",
           config={"model.share_weights": True})
    assert sorted(map(_png, _own(make_figures("liao_poggio2016", [tmp_path / "lp"], tmp_path / "o")))) == [
        "accuracy_vs_cost.png", "norm_variants.png"]
    from recbench.analysis.figures import norm_group, norm_variant, sharing

    rows = [{"model": "resnet20_shared_bn", "config": {"model.share_norm": True, "model.share_weights": True}},
            {"model": "resnet20", "config": {"model.norm": "bn"}, "time_steps": 1}]
    assert [(norm_group(r), norm_variant(r), sharing(r)) for r in rows] == [
        ("resnet20_shared", "shared BN", "shared"), ("resnet20", "norm=bn", "unshared")]
    _sweep(tmp_path / "z", fake_run, [("resnet20", 1), ("feedback48", 4)], ["none"])
    assert [_png(p) for p in _own(make_figures("zamir2017", [tmp_path / "z"], tmp_path / "o"))] == [
        "accuracy_vs_virtual_depth.png"]
    _sweep(tmp_path / "li", fake_run, [("hgru", 8), ("bl", 4), ("resnet20", 1)], [6, 9, 14], dataset="pathfinder",
           key="dataset.contour_length", seeds=(0,))
    assert [_png(p) for p in _own(make_figures("linsley2018", [tmp_path / "li"], tmp_path / "o"))] == [
        "accuracy_vs_contour_length.png"]


def test_pilot_budget_views_and_learning_curve(tmp_path, fake_run):
    from recbench.analysis.collect import collect
    from recbench.analysis.figures import eval_curve, images_seen, training_flops

    for model, t in (("b", 1), ("blt", 4)):
        for steps in (100, 200):
            run = fake_run(tmp_path / "p" / f"{model}{steps}", model, [0.1 * steps / 100] * t,
                           overrides=[f"model={model}", f"trainer.total_steps={steps}"],
                           config={"trainer.total_steps": steps, "trainer.batch_size": 8})
            summary = json.loads((run / "summary.json").read_text())
            (run / "summary.json").write_text(json.dumps(summary | {"train_steps": steps}))
            events = [{"event": "train", "step": 50}, {"event": "eval", "step": 100, "accuracy_per_step": [0.3] * t},
                      {"event": "eval", "step": steps, "accuracy_per_step": [0.1] * (t - 1) + [0.4]}]
            (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, events)) + "\n{\"cut sho")
    rows = {(r["model"], r["train_steps"]): r for r in collect([tmp_path / "p"])}
    blt = rows[("blt", 200)]
    assert images_seen(blt) == 1600 and training_flops(blt) == 3 * 1600 * 4e6  # forward FLOPs to the last readout
    assert eval_curve(tmp_path / "p" / "blt200") == [(100, 0.3), (200, 0.4)]
    assert eval_curve(tmp_path / "nowhere") == []
    written = make_figures("pilot", [tmp_path / "p"], tmp_path / "out")
    assert [_png(p) for p in _own(written)] == ["pilot.png"]
    assert not (tmp_path / "out" / "learning_curves.png").exists()  # the pilot has its own


def test_learning_curves_average_the_evaluations_over_seeds(tmp_path, fake_run, monkeypatch):
    for seed in (0, 1):
        run = fake_run(tmp_path / "s" / f"blt{seed}", "blt", [0.5] * 4, seed=seed, config={"trainer.batch_size": 8})
        events = [{"event": "eval", "step": step, "accuracy_per_step": [0.0, 0.1 * step / 100 + 0.1 * seed]}
                  for step in (100, 200)]
        (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, events)) + "\n")
    fake_run(tmp_path / "s" / "b", "b", [0.3])  # no evaluations logged: not drawn
    drawn = []
    monkeypatch.setattr(plots, "line_ci", lambda ax, rows, x, y, label, **kw: drawn.append((label, rows)))
    written = make_figures("spoerer2017", [tmp_path / "s"], tmp_path / "out")
    assert (tmp_path / "out" / "learning_curves.png") in written
    curves = [(label, rows) for label, rows in drawn if rows and "images" in rows[0]]
    assert [label for label, _ in curves] == ["blt"]
    assert sorted((r["images"], round(r["accuracy"], 6)) for r in curves[0][1]) == [
        (800, 0.1), (800, 0.2), (1600, 0.2), (1600, 0.3)]  # step x batch, the last readout of both seeds
    monkeypatch.undo()
    fake_run(tmp_path / "none" / "b", "b", [0.3])
    assert "learning_curves.png" not in [p.name for p in make_figures("spoerer2017", [tmp_path / "none"],
                                                                       tmp_path / "o2")]


def test_kar2019_roles_and_outputs(tmp_path, fake_run):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200)
    ff = rng.random(200) < 0.6
    fake_run(tmp_path / "ff", "resnet20", (ff.mean(),), correct=ff[None], labels=labels)
    ref = rng.random(200) < 0.8
    fake_run(tmp_path / "ref", "bl", (0.5,) * 4, correct=np.repeat(ref[None], 4, 0), labels=labels)
    for seed in (0, 1):  # the recurrent net solves challenge images later
        t_solve = np.where(ff, rng.integers(0, 2, 200), rng.integers(1, 5, 200))
        correct = np.arange(4)[:, None] >= t_solve[None]
        fake_run(tmp_path / f"blt{seed}", "blt", (0.5,) * 4, seed=seed, correct=correct, labels=labels)
    with pytest.raises(ConfigError, match="pass --roles"):
        make_figures("kar2019", [tmp_path], tmp_path / "out")
    opts = Options(roles={"baseline": "resnet20", "recurrent": "blt", "reference": str(tmp_path / "ref")}, n_boot=200)
    written = make_figures("kar2019", [tmp_path], tmp_path / "out", opts)
    assert [p.name for p in _own(written)] == ["solution_times.png", "solution_times.csv", "challenge_control.csv"]
    _png(_own(written)[0])
    stats = list(csv.DictReader(open(_own(written)[2])))
    assert [r["seed"] for r in stats] == ["0", "1"]
    for r in stats:
        assert int(r["n_challenge"]) == (~ff).sum() and 0 < int(r["n_control"]) <= ff.sum()
        assert float(r["difference_lo"]) > 0  # later on challenge images, and the CI says so
        assert abs(float(r["reference_accuracy_challenge"]) - float(r["reference_accuracy_control"])) < 0.02
    images = list(csv.DictReader(open(_own(written)[1])))
    assert len(images) == 2 * (int(stats[0]["n_challenge"]) + int(stats[0]["n_control"]))
    unmatched = make_figures("kar2019", [tmp_path], tmp_path / "o2",
                             Options(roles={"baseline": "resnet20", "recurrent": "blt", "reference": "none"}))
    assert {r["n_control"] for r in csv.DictReader(open(_own(unmatched)[2]))} == {str(ff.sum())}
    own = make_figures("kar2019", [tmp_path], tmp_path / "o3", Options(roles={"baseline": "resnet20",
                                                                              "recurrent": "blt"}))
    matched_on_blt = {r["reference_accuracy_control"] != "" for r in csv.DictReader(open(_own(own)[2]))}
    assert matched_on_blt == {True}
    with pytest.raises(ConfigError, match="no collected run"):
        make_figures("kar2019", [tmp_path], tmp_path / "out", Options(roles={"baseline": "x", "recurrent": "blt"}))


def test_schwarzschild_reads_saved_evaluations(tmp_path, fake_run):
    for model, gain in (("bl_recall", 0.05), ("bl", -0.05)):
        for seed in (0, 1):
            fake_run(tmp_path / f"{model}{seed}", model, (0.5, 0.6), dataset="pathfinder", seed=seed,
                     config={"dataset.contour_length": 6},
                     evals=[{"accuracy_per_step": [0.5 + gain * t for t in range(16)]},
                            {"accuracy_per_step": [0.4 + gain * t for t in range(16)],
                             "dataset_overrides": {"contour_length": 14}}])
    written = make_figures("schwarzschild2021", [tmp_path], tmp_path / "out", Options(evaluate=False))
    _png(_own(written)[0])
    rows = list(csv.DictReader(open(_own(written)[1])))
    assert len(rows) == 2 * 2 * 2 * 16 and {r["eval_dataset"] for r in rows} == {"", "contour_length=14"}
    bare = tmp_path / "bare"
    fake_run(bare / "r", "bl", (0.5, 0.6))
    with pytest.raises(ConfigError, match="--no-evaluate"):
        make_figures("schwarzschild2021", [bare], tmp_path / "out2", Options(evaluate=False))


def test_cli_errors_are_one_line(tmp_path, fake_run, capsys):
    for argv, message in ((["nope"], "unknown experiment 'nope'; choose one of: spoerer2017"),
                          (["zamir2017", "--output-root", str(tmp_path)], "no runs (summary.json) below"),
                          (["kar2019", str(tmp_path), "--roles", "baseline"], "--roles takes")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert set(EXPERIMENTS) == {"spoerer2017", "liao_poggio2016", "kar2019", "zamir2017", "linsley2018",
                                "schwarzschild2021"}
    fake_run(tmp_path / "zamir2017" / "r", "feedback48", (0.2, 0.4))  # no run dirs: OUTPUT_ROOT/EXPERIMENT
    main(["zamir2017", "--output-root", str(tmp_path), "--out", str(tmp_path / "res")])
    assert (tmp_path / "res" / "accuracy_vs_virtual_depth.png").exists()


def test_end_to_end_two_tiny_runs_to_figures(tmp_path, tiny_cfg, capsys):
    from recbench.train.loop import train_and_evaluate

    for model in ("b", "bl"):
        cfg = tiny_cfg(f"model={model}", "trainer.total_steps=20", "trainer.checkpoint_every=20",
                       f"paths.output_root={tmp_path}")
        train_and_evaluate(cfg, tmp_path / "runs" / model)
    out = tmp_path / "results"
    main(["kar2019", str(tmp_path / "runs"), "--out", str(out), "--roles", "baseline=b,recurrent=bl",
          "--n-boot", "200"])
    assert (out / "solution_times.png").stat().st_size > 2000
    table = list(csv.DictReader(open(out / "summary.csv")))
    summary = json.loads((tmp_path / "runs" / "bl" / "summary.json").read_text())
    assert [r["model"] for r in table] == ["b", "bl"]
    assert float(table[1]["final_accuracy"]) == summary["final_accuracy"] and table[1]["time_steps"] == "2"
    images = list(csv.DictReader(open(out / "solution_times.csv")))
    assert len(images) > 0 and {r["set"] for r in images} <= {"challenge", "control"}
    main(["schwarzschild2021", str(tmp_path / "runs"), "--out", str(out), "--eval-factor", "2",
          "--eval-dataset", "level=light", "--data-dir", cfg.paths.data_dir])
    depth = list(csv.DictReader(open(out / "depth.csv")))
    assert {(r["model"], r["eval_dataset"]) for r in depth} == {("bl", ""), ("bl", "level=light")}
    assert max(int(r["iterations"]) for r in depth) == 4  # twice the trained 2 steps
    assert (out / "accuracy_vs_iterations.png").stat().st_size > 2000
    assert "accuracy_vs_iterations.png" in capsys.readouterr().out


def test_linear_axes_label_large_ticks_compactly():
    """Six-digit tick labels (images seen) ran into each other: linear axes write 96k and 1.5M."""
    assert [plots.compact(v) for v in (0, 6, 5000, 10000, 96000, 1_500_000, 0.5)] == [
        "0", "6", "5000", "10k", "96k", "1.5M", "0.5"]
    fig, (ax, ax_log) = plots.panels(2, "t")
    ax.plot([0, 200000], [0, 1])
    ax_log.plot([1, 200000], [0, 1])
    plots.style(ax, "training images seen", "test accuracy")
    plots.style(ax_log, "parameters", "test accuracy", logx=True)
    assert ax.xaxis.get_major_formatter()(200000, 0) == "200k"
    assert ax_log.get_xscale() == "log" and ax_log.xaxis.get_major_formatter()(100000, 0) != "100k"
