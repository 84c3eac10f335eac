"""``recbench-figures EXPERIMENT [RUN_DIRS_OR_SWEEP_DIRS...]``: one experiment's table and figures, from run dirs.

With no run directories it reads ``outputs/EXPERIMENT`` (``${paths.output_root}/${name}``: ``--output-root``
changes the root); it writes ``summary.csv`` and ``summary_per_step.csv`` (:mod:`recbench.analysis.collect`),
``conditions.csv`` (final accuracy per task and series: n, mean, 95 % CI, SE), ``readouts.csv`` (the same at
every readout, with its effective depth and MFLOPs), ``contrasts.csv`` (the paper's
comparisons, :data:`CONTRASTS`: differences with Welch's interval and in standard errors), ``tables.md`` (all three as
Markdown), ``learning_curves.png`` (test accuracy at every evaluation, :func:`learning_curves`) and the
experiment's PNGs into ``--out`` (default ``results/EXPERIMENT/``). Every point, bar and band is
the mean over seeds with a Student-t 95 % CI and the number of runs shown (:mod:`recbench.analysis.plots`); a model
or variant missing from a partial sweep is simply not drawn. :data:`RENDERS` maps each name to its render function,
``render(table, run_dirs, out_dir, options) -> [written paths]``:

* ``pilot`` — not a paper: the pilot that sets an experiment's budget, the same runs at several
  ``trainer.total_steps`` (``recbench-figures pilot outputs/pilot_spoerer2017 --out results/spoerer2017/pilot``).
  Final accuracy against images seen (equal epochs) and against training FLOPs (equal compute), and the learning
  curve within each series' longest run.
* ``spoerer2017`` — last-step accuracy per model grouped by task (digit debris level, digit clutter digits);
  accuracy per time step (and per MFLOP) per model, one figure per task.
* ``liao_poggio2016`` — accuracy against effective depth, parameters (log) and FLOPs, weight-shared vs unshared;
  bars of the weight-shared models' norm variants (time-specific vs shared BN from ``model.share_norm`` where the
  config has it, else the value of ``model.norm``; a ``<model>_bn`` preset is grouped with ``<model>``) when some
  model ran with more than one.
* ``kar2019`` — solution-time histograms and ECDFs of the recurrent run on challenge vs control images
  (:mod:`recbench.analysis.challenge`), the difference of means with its 95 % CI in the title, and the CSVs.
  Roles: ``--roles baseline=X,recurrent=Y[,reference=Z]``, each X a model name or a folder of runs; without it
  the one model with a single readout is the baseline and the one with several is the recurrent run. Control is
  matched on the reference's accuracy, on the recurrent run's without one (``reference=none``: unmatched). See
  :mod:`recbench.analysis.kar`.
* ``zamir2017`` — accuracy against virtual depth (the effective depth of each readout) and MFLOPs per model.
* ``linsley2018`` — accuracy against Pathfinder contour length per model; accuracy against parameters.
* ``schwarzschild2021`` — accuracy against test-time iterations on each test variant, from the runs' saved
  ``recbench-eval`` results (:mod:`recbench.analysis.depth`); it first evaluates runs that lack them (unless
  ``--no-evaluate``) at
  ``--eval-factor`` (8) x the trained steps, on the trained test set and on ``--eval-dataset`` (default
  ``contour_length=14``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recbench.analysis import plots
from recbench.analysis.collect import PER_STEP, TASK_KEYS, collect, columns, long_rows, task_of, write_csv, write_tables
from recbench.analysis.depth import DEPTH_COLUMNS, depth_table, evaluate_missing
from recbench.config import ArgumentParser, ConfigError, check_folder, check_int

SPOERER_MODELS = ("b", "b_k", "b_f", "b_d", "bl", "bt", "blt")


@dataclass
class Options:
    """What some experiments need beyond the runs (``recbench-figures`` flags)."""

    roles: dict[str, str] = field(default_factory=dict)  # kar2019: role -> model name or folder
    seed: int = 0  # kar2019: control subsampling and bootstrap
    n_boot: int = 10_000
    evaluate: bool = True  # schwarzschild2021: run missing evaluations (--no-evaluate: only read saved ones)
    eval_factor: int = 8
    eval_dataset: list[str] = field(default_factory=lambda: ["contour_length=14"])
    data_dir: str | None = None


def task(row: dict) -> str:
    """A run's task (:func:`recbench.analysis.collect.task_of`): its dataset and the key that sets its difficulty."""
    return row.get("task") or task_of(row["dataset"], row.get("config", {}))


def spoerer2017(table: list[dict], run_dirs: list[Path], out: Path, opts: Options) -> list[Path]:
    fig, (ax,) = plots.panels(1, "last-step accuracy per model and task", width=max(5.0, 1.5 * len(table) ** 0.5))
    labelled = [r | {"_s": plots.series_label(r, table, skip=_dataset_keys(r))} for r in table]
    plots.bars_ci(ax, labelled, task, lambda r: r["_s"], "final_accuracy", SPOERER_MODELS)
    plots.style(ax, "task", "test accuracy at the last step")
    written = [plots.save(fig, out / "final_accuracy.png")]
    for name in dict.fromkeys(task(r) for r in table):
        per_step = long_rows([r for r in table if task(r) == name])
        written.append(plots.accuracy_per_step_figure(per_step, out / f"accuracy_per_step_{_slug(name)}.png", name))
    return written


def _dataset_keys(row: dict) -> list[str]:
    return [k for k in row if k.startswith("dataset.")]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def sharing(row: dict) -> str:
    """Weight-shared (a ResNet with ``share_weights``, a recurrent net unrolled in time) or unshared."""
    cfg = row.get("config", {})
    shared = cfg.get("model.share_weights") or (row.get("time_steps") or 1) > 1 or "shared" in str(row["model"])
    return "shared" if shared else "unshared"


def liao_poggio2016(table: list[dict], run_dirs: list[Path], out: Path, opts: Options) -> list[Path]:
    rows = [r | {"_label": plots.series_label(r, table)} for r in table]
    fig, axes = plots.panels(3, "Liao & Poggio 2016: weight-shared vs unshared")
    for kind in ("unshared", "shared"):
        mine = [r for r in rows if sharing(r) == kind]
        for ax, x, scale in zip(axes, ("final_effective_depth", "params", "final_flops_per_image"), (1, 1, 1e-6),
                                strict=True):
            plots.line_ci(ax, mine, x, "final_accuracy", kind, annotate="_label", scale=scale, linestyle=":")
    plots.style(axes[0], "effective depth at the last readout", "test accuracy", "accuracy vs depth")
    plots.style(axes[1], "parameters", "test accuracy", "accuracy vs parameters", logx=True)
    plots.style(axes[2], "MFLOPs per image", "test accuracy", "accuracy vs compute", logx=True)
    written = [plots.save(fig, out / "accuracy_vs_cost.png")]
    shared = [r for r in table if sharing(r) == "shared"]
    variants = {(norm_group(r), norm_variant(r)) for r in shared}
    if len(variants) > len({m for m, _ in variants}):  # some model ran with two norms
        fig, (ax,) = plots.panels(1, "time-specific vs shared normalisation", width=6)
        plots.bars_ci(ax, shared, norm_group, norm_variant, "final_accuracy")
        plots.style(ax, "weight-shared model", "test accuracy at the last step")
        written.append(plots.save(fig, out / "norm_variants.png"))
    return written


def norm_group(row: dict) -> str:
    return str(row["model"]).removesuffix("_bn")  # resnet20_shared_bn: resnet20_shared with shared BN


def norm_variant(row: dict) -> str:
    cfg = row.get("config", {})
    if "model.share_norm" in cfg:
        return "shared BN" if cfg["model.share_norm"] else "time-specific BN"
    return f"norm={cfg.get('model.norm')}"


def kar2019(table: list[dict], run_dirs: list[Path], out: Path, opts: Options) -> list[Path]:
    from recbench.analysis.kar import render_kar

    return render_kar(table, out, roles=opts.roles, seed=opts.seed, n_boot=opts.n_boot)


def zamir2017(table: list[dict], run_dirs: list[Path], out: Path, opts: Options) -> list[Path]:
    fig, (ax_d, ax_f) = plots.panels(2, "Zamir et al. 2017: accuracy at every readout")
    for label, rows in plots.with_series(long_rows(table)):
        plots.line_ci(ax_d, rows, "depth", "accuracy", label)
        plots.line_ci(ax_f, rows, "flops", "accuracy", label, scale=1e-6)
    plots.style(ax_d, "virtual depth (effective depth of the readout)", "test accuracy", "accuracy vs virtual depth")
    plots.style(ax_f, "MFLOPs per image to the readout", "test accuracy", "accuracy vs compute", logx=True)
    return [plots.save(fig, out / "accuracy_vs_virtual_depth.png")]


def linsley2018(table: list[dict], run_dirs: list[Path], out: Path, opts: Options) -> list[Path]:
    length = lambda r: r.get("config", {}).get("dataset.contour_length")
    fig, (ax_l, ax_p) = plots.panels(2, "Linsley et al. 2018: Pathfinder")
    for label, rows in plots.with_series(table, skip=["dataset.contour_length"]):
        plots.line_ci(ax_l, rows, length, "final_accuracy", label)
    rows = [r | {"_label": plots.series_label(r, table, skip=["dataset.contour_length"])} for r in table]
    for value in sorted({length(r) for r in rows if length(r) is not None}):
        plots.line_ci(ax_p, [r for r in rows if length(r) == value], "params", "final_accuracy",
                      f"contour length {value}", annotate="_label", linestyle=":")
    plots.style(ax_l, "contour length (paddles)", "test accuracy", "accuracy vs path length", integer_x=True)
    plots.style(ax_p, "parameters", "test accuracy", "accuracy vs parameters", logx=True)
    return [plots.save(fig, out / "accuracy_vs_contour_length.png")]


def test_variant(row: dict) -> str:
    """The test set an evaluation ran on: the dataset's difficulty key (``contour_length=14``), else its overrides."""
    key = TASK_KEYS.get(row["dataset"])
    value = row["test_config"].get(key) if key else None
    return f"{key}={value}" if value is not None else (row["eval_dataset"] or "as trained")


def schwarzschild2021(table: list[dict], run_dirs: list[Path], out: Path, opts: Options) -> list[Path]:
    if opts.evaluate:
        for variant in (None, opts.eval_dataset):
            evaluate_missing(table, factor=opts.eval_factor, dataset=variant, data_dir=opts.data_dir)
    rows = [r for r in depth_table(table) if not r["ablate"]]
    if not rows:
        raise ConfigError("no saved evaluations (eval_*.json) in these runs; run recbench-eval RUN --steps T' "
                          "[--dataset contour_length=14], or drop --no-evaluate")
    deepest = {}  # per run and test variant keep the evaluation with the most steps
    for r in rows:
        key = (r["run_dir"], test_variant(r))
        deepest[key] = max(deepest.get(key, 0), r["steps"])
    rows = [r for r in rows if r["steps"] == deepest[(r["run_dir"], test_variant(r))]]
    variants = list(dict.fromkeys(test_variant(r) for r in rows))
    fig, axes = plots.panels(len(variants), "Schwarzschild et al. 2021: test-time iterations")
    for ax, variant in zip(axes, variants, strict=True):
        mine = [r for r in rows if test_variant(r) == variant]
        for label, series in plots.with_series(mine):
            plots.line_ci(ax, series, "iterations", "accuracy", label, marker=".")
        for t in sorted({r["trained_steps"] for r in mine}):
            ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        plots.style(ax, "iterations at test time (dotted: as trained)", "test accuracy", f"test {variant}",
                    integer_x=True)
    cols = [c for c in columns(table) if c not in PER_STEP] + [c for c in DEPTH_COLUMNS if c != "trained_steps"]
    return [plots.save(fig, out / "accuracy_vs_iterations.png"),
            write_csv(rows, out / "depth.csv", ["trained_steps" if c == "time_steps" else c for c in cols])]


def images_seen(row: dict) -> float | None:
    """Training images a run saw: its steps times its batch size."""
    batch = row.get("config", {}).get("trainer.batch_size")
    return row["train_steps"] * batch if row.get("train_steps") is not None and batch is not None else None


def training_flops(row: dict) -> float | None:
    """A run's training compute: images seen x 3 x the forward FLOPs per image to the last readout (a backward
    pass costs about twice a forward one)."""
    images, flops = images_seen(row), row.get("final_flops_per_image")
    return 3 * images * flops if images is not None and flops is not None else None


def eval_curve(run_dir: Path) -> list[tuple[int, float]]:
    """``(step, last-readout test accuracy)`` at each evaluation of a run (its ``metrics.jsonl``)."""
    import json

    out = []
    path = run_dir / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else ():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "eval" and event.get("accuracy_per_step"):
            out.append((int(event["step"]), float(event["accuracy_per_step"][-1])))
    return sorted(dict(out).items())


def condition(row: dict, table: list[dict]) -> str:
    """A run's condition within its task: its series label without the dataset's keys and the run name (the rows
    of conditions.csv, readouts.csv and the learning curves)."""
    return plots.series_label(row, table, skip=[*_dataset_keys(row), "name"])


def learning_curves(table: list[dict], out: Path) -> list[Path]:
    """``learning_curves.png``: each series' test accuracy at the last readout at every evaluation of its runs,
    against training images seen (mean over seeds, 95 % band), one panel per task; whether a budget reached a
    plateau is read here. Nothing when no run logged an evaluation."""
    curves = []
    for r in table:
        batch = r.get("config", {}).get("trainer.batch_size") or 1
        curves += [{"task": task(r), "series": condition(r, table), "images": step * batch, "accuracy": acc}
                   for step, acc in eval_curve(Path(r["run_dir"]))]
    if not curves:
        return []
    tasks = list(dict.fromkeys(c["task"] for c in curves))
    fig, axes = plots.panels(len(tasks), "learning curves: test accuracy during training")
    for ax, name in zip(axes, tasks, strict=True):
        mine = [c for c in curves if c["task"] == name]
        for label in dict.fromkeys(c["series"] for c in mine):
            plots.line_ci(ax, [c for c in mine if c["series"] == label], "images", "accuracy", label, marker=".")
        plots.style(ax, "training images seen", "test accuracy at the last readout", name)
    return [plots.save(fig, out / "learning_curves.png")]


def pilot(table: list[dict], run_dirs: list[Path], out: Path, opts: Options) -> list[Path]:
    """The pilot that sets an experiment's budget: the same runs trained for several ``trainer.total_steps``.
    Final accuracy against images seen (the equal-epoch view) and against training FLOPs (equal compute), and each
    run's test accuracy at its evaluations (the learning curve within a run, dashed)."""
    skip = ["trainer.total_steps", "name"]  # a pilot's budgets may run under names of their own (name=steps1000)
    fig, (ax_i, ax_f, ax_c) = plots.panels(3, "pilot: accuracy against the training budget")
    series: dict[str, list[dict]] = {}
    for r in table:
        series.setdefault(f"{plots.series_label(r, table, skip=[*skip, *_dataset_keys(r)])}, {task(r)}", []).append(r)
    for label, rows in series.items():
        plots.line_ci(ax_i, rows, images_seen, "final_accuracy", label)
        plots.line_ci(ax_f, rows, training_flops, "final_accuracy", label, scale=1e-12)
        longest = max(rows, key=lambda r: r["train_steps"] or 0)
        curve = eval_curve(Path(longest["run_dir"]))
        if curve:
            batch = longest["config"].get("trainer.batch_size") or 1
            ax_c.plot([s * batch for s, _ in curve], [a for _, a in curve], marker=".", linestyle="--",
                      label=f"{label} ({longest['train_steps']} steps)")
    plots.style(ax_i, "training images seen (cosine schedule run to its end)", "test accuracy at the last readout",
                "equal epochs", logx=True)
    plots.style(ax_f, "training TFLOPs (3 x forward x images)", "test accuracy at the last readout",
                "equal compute", logx=True)
    plots.style(ax_c, "training images seen", "test accuracy at the last readout", "within the longest run")
    return [plots.save(fig, out / "pilot.png")]


# The comparisons each paper makes, as (condition, against): written to contrasts.csv per task. A series is compared
# at its last readout, or at its k-th with "SERIES@k" (the early-readout comparisons of zamir2017).
LOSS = "trainer.loss_over_steps"
CONTRASTS: dict[str, tuple[tuple[str, str], ...]] = {
    "spoerer2017": (("blt", "b"), ("blt", "b_k"), ("blt", "b_f"), ("bl", "b"), ("bt", "b"), ("bl", "b_k"),
                    ("bl", "b_f"), ("bt", "b_k"), ("bt", "b_f"), ("blt", "bl"), ("blt", "bt"), ("blt", "b_d")),
    "liao_poggio2016": (("resnet20_shared", "resnet20"), ("resnet56_shared", "resnet56"),
                        ("resnet20_shared", "resnet20_shared_bn"), ("liao_poggio_1state", "resnet20_shared"),
                        ("liao_poggio_2state", "liao_poggio_1state"), ("liao_poggio_3state", "liao_poggio_1state"),
                        ("liao_poggio_4state", "liao_poggio_1state"), ("liao_poggio_2state", "resnet20"),
                        ("liao_poggio_3state", "resnet20"),
                        ("liao_poggio_2state", "resnet56")),  # matched compute: 56 and 58 MFLOPs at width 0.5
    "zamir2017": tuple((f"feedback48 {LOSS}=mean@{k}", other) for k, other in (
        (1, f"feedback48 {LOSS}=last@1"), (2, f"feedback48 {LOSS}=last@2"), (4, f"feedback48 {LOSS}=last@4"),
        (1, f"resnet20_exits {LOSS}=mean@2"),  # Zamir's virtual depth: 12 conv layers against 13
        (1, f"resnet20_exits {LOSS}=mean@3"),  # our effective depth: 18 against 19
        (4, f"resnet20_exits {LOSS}=mean@3"))),  # the endpoints
    "linsley2018": (("hgru_small", "resnet20"), ("hgru_small", "resnet56"), ("hgru", "resnet56"),
                    ("bl", "resnet20"), ("bl", "resnet56")),
    "schwarzschild2021": (("dt_net_recall", "dt_net"),),
}


TABLES = ("summary.csv", "summary_per_step.csv", "conditions.csv", "readouts.csv", "contrasts.csv",
          "tables.md")  # every experiment's


def _summary(accs: list[float]) -> dict:
    """n, mean, Student-t 95 % interval and standard error of a condition's accuracies over seeds."""
    from recbench.analysis.stats import mean_ci

    ci = mean_ci(accs)
    sem = float(np.std(accs, ddof=1) / np.sqrt(ci.n)) if ci.n > 1 else float("nan")
    return {"n": ci.n, "mean": ci.mean, "ci_lo": ci.lo, "ci_hi": ci.hi, "sem": sem}


def condition_tables(table: list[dict], out: Path, pairs: tuple[tuple[str, str], ...] = ()) -> list[Path]:
    """Final accuracy per task and series over seeds (``conditions.csv``: n, mean, 95 % t interval, standard error),
    the same at every readout with its effective depth and MFLOPs (``readouts.csv``: the matched-depth and
    matched-compute comparison of early readouts) and, for each ``(a, b)`` pair of series present in a task,
    ``mean(a) - mean(b)`` with Welch's 95 % interval and how many standard errors it is (``contrasts.csv``); all
    also as Markdown (``tables.md``)."""
    from recbench.analysis.stats import difference_ci

    values: dict[tuple[str, str], list[float]] = {}
    for r in table:
        values.setdefault((task(r), condition(r, table)), []).append(r["final_accuracy"])
    conditions = [{"task": name, "series": label} | _summary(accs) for (name, label), accs in values.items()]
    steps: dict[tuple[str, str, int], list[dict]] = {}
    for r in long_rows(table):
        steps.setdefault((task(r), condition(r, table), r["time_step"]), []).append(r)
    readouts = [{"task": name, "series": label, "time_step": t,
                 "depth": rows[0]["depth"], "mflops": rows[0]["flops"] / 1e6 if rows[0]["flops"] else None}
                | _summary([r["accuracy"] for r in rows]) for (name, label, t), rows in steps.items()]

    def accuracies(name: str, series: str) -> list[float] | None:  # "label" (last readout) or "label@k" (k-th)
        label, at, k = series.rpartition("@")
        if not at:
            return values.get((name, series))
        rows = steps.get((name, label, int(k) - 1))
        return [r["accuracy"] for r in rows] if rows else None

    contrasts = []
    for name in dict.fromkeys(t for t, _ in values):
        for a, b in pairs:
            acc_a, acc_b = accuracies(name, a), accuracies(name, b)
            if acc_a and acc_b:
                ci, se = difference_ci(acc_a, acc_b)
                contrasts.append({"task": name, "a": a, "b": b, "n_a": len(acc_a), "n_b": len(acc_b),
                                  "diff": ci.mean, "ci_lo": ci.lo, "ci_hi": ci.hi, "se": se,
                                  "diff_over_se": ci.mean / se if se and se == se else float("nan")})
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) and v == v else ("—" if isinstance(v, float) else str(v))
    md = ["| task | series | n | mean | 95 % CI |", "|---|---|---:|---:|---|"]
    md += [f"| {c['task']} | {c['series']} | {c['n']} | {fmt(c['mean'])} | {fmt(c['ci_lo'])} – {fmt(c['ci_hi'])} |"
           for c in conditions]
    if any(c["time_step"] > 0 for c in readouts):  # some series has early readouts
        md += ["", "| task | series | readout | effective depth | MFLOPs | n | mean | 95 % CI |",
               "|---|---|---:|---:|---:|---:|---:|---|"]
        md += [f"| {c['task']} | {c['series']} | {c['time_step'] + 1} | {c['depth']} | "
               f"{fmt(c['mflops']) if c['mflops'] is not None else '—'} | {c['n']} | {fmt(c['mean'])} | "
               f"{fmt(c['ci_lo'])} – {fmt(c['ci_hi'])} |" for c in readouts]
    if contrasts:
        md += ["", "| task | a − b | n | difference | 95 % CI (Welch) | difference / SE |",
               "|---|---|---|---:|---|---:|"]
        md += [f"| {c['task']} | {c['a']} − {c['b']} | {c['n_a']}, {c['n_b']} | {c['diff']:+.3f} | "
               f"{fmt(c['ci_lo'])} – {fmt(c['ci_hi'])} | {fmt(c['diff_over_se'])} |" for c in contrasts]
    (out / "tables.md").write_text("\n".join(md) + "\n")
    written = [write_csv(conditions, out / "conditions.csv", list(conditions[0]) if conditions else ["task"]),
               write_csv(readouts, out / "readouts.csv", list(readouts[0]) if readouts else ["task"])]
    if contrasts:
        written.append(write_csv(contrasts, out / "contrasts.csv", list(contrasts[0])))
    return [*written, out / "tables.md"]


Render = Callable[[list[dict], list[Path], Path, Options], list[Path]]
EXPERIMENTS: dict[str, Render] = {
    "spoerer2017": spoerer2017,
    "liao_poggio2016": liao_poggio2016,
    "kar2019": kar2019,
    "zamir2017": zamir2017,
    "linsley2018": linsley2018,
    "schwarzschild2021": schwarzschild2021,
}
RENDERS: dict[str, Render] = {**EXPERIMENTS, "pilot": pilot}  # an experiment's figures, or its budget pilot's


def make_figures(experiment: str, runs: list[str | Path], out: str | Path, opts: Options | None = None) -> list[Path]:
    """Collect the runs below ``runs``, write the tables and the experiment's figures into ``out``."""
    if experiment not in RENDERS:
        raise ConfigError(f"unknown experiment {experiment!r}; choose one of: {', '.join(RENDERS)}")
    table = collect(runs)
    if not table:
        raise ConfigError(f"no runs (summary.json) below {', '.join(map(str, runs))}")
    out = check_folder("--out", out, create=True)
    curves = learning_curves(table, out) if experiment != "pilot" else []  # the pilot draws its own
    return (write_tables(table, out) + condition_tables(table, out, CONTRASTS.get(experiment, ())) + curves
            + RENDERS[experiment](table, [Path(r["run_dir"]) for r in table], out, opts or Options()))


def parse_roles(text: str) -> dict[str, str]:
    roles = {}
    for item in filter(None, text.split(",")):
        role, sep, value = item.partition("=")
        if not sep or not value:
            raise ConfigError(f"--roles takes ROLE=MODEL_OR_DIR,... (e.g. baseline=resnet20,recurrent=blt), got "
                              f"{item!r}")
        roles[role.strip()] = value.strip()
    return roles


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="recbench-figures", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help=f"one of: {', '.join(RENDERS)}")
    parser.add_argument("runs", nargs="*", type=Path, help="run or sweep directories (default: OUTPUT_ROOT/EXPERIMENT)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: results/EXPERIMENT)")
    parser.add_argument("--output-root", type=Path, default=Path("outputs"), help="paths.output_root of the runs")
    parser.add_argument("--roles", default="", help="kar2019: baseline=MODEL_OR_DIR,recurrent=...,reference=...")
    parser.add_argument("--seed", type=int, default=0, help="kar2019: seed of control matching and bootstrap")
    parser.add_argument("--n-boot", type=int, default=10_000, help="kar2019: bootstrap resamples")
    parser.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                        help="schwarzschild2021: only read saved evaluations (default: run the missing ones)")
    parser.add_argument("--eval-factor", type=int, default=8, help="schwarzschild2021: T' = factor x trained steps")
    parser.add_argument("--eval-dataset", action="append", default=None, metavar="KEY=VALUE",
                        help="schwarzschild2021: the harder test variant (default contour_length=14; repeatable)")
    parser.add_argument("--data-dir", default=None, help="tfds data dir for --evaluate")
    args = parser.parse_intermixed_args(argv)  # flags may come between or after the run folders
    try:
        check_int("--seed", args.seed, 0)
        check_int("--n-boot", args.n_boot)
        check_int("--eval-factor", args.eval_factor)
        if args.data_dir is not None:
            check_folder("--data-dir", args.data_dir)
        opts = Options(roles=parse_roles(args.roles), seed=args.seed, n_boot=args.n_boot, evaluate=args.evaluate,
                       eval_factor=args.eval_factor, eval_dataset=args.eval_dataset or ["contour_length=14"],
                       data_dir=args.data_dir)
        runs = args.runs or [args.output_root / args.experiment]
        written = make_figures(args.experiment, runs, args.out or Path("results") / args.experiment, opts)
    except (ConfigError, ValueError) as e:
        print(f"recbench: error: {e}", file=sys.stderr)
        sys.exit(2)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
