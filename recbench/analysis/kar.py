"""The kar2019 figure: recurrent solution times on challenge vs control images, from a collected table of runs.

Runs get one of three roles (:func:`assign_roles`): ``baseline`` (the feedforward net whose errors define challenge
images), ``recurrent`` (whose solution times are compared) and optionally ``reference`` (the stand-in for primates
that control images are matched on; :mod:`recbench.analysis.challenge`). ``--roles baseline=X,recurrent=Y,
reference=Z`` names them, each X a model name of the collected runs or a folder holding runs; without it the only
model with one readout (T = 1) is the baseline and the only model with several the recurrent run, and anything
else is a one-line error asking for roles. Without a reference the recurrent run(s) are their own reference
(``configs/experiment/kar2019.yaml``: control matched so that the recurrent net's final accuracy is the same on
both sets, which also equalises the share of never-solved images); ``reference=none`` turns matching off
(control = every image the baseline gets right).

Seeds: a baseline or reference with several runs counts an image right when at least half of its runs get it right
(one split for all). Each recurrent run is compared on its own; with one recurrent run the title's interval is the
bootstrap 95 % CI of the difference of mean solution times (challenge - control, over images it solves); with
several it is the t 95 % CI over runs of their per-run differences. Writes ``solution_times.png`` (histogram with a
"never" bin, and ECDF over solved images, pooled over recurrent runs), ``solution_times.csv`` (one row per
recurrent run and challenge/control image) and ``challenge_control.csv`` (one row of :meth:`ChallengeResult.stats`
per recurrent run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recbench.analysis import plots
from recbench.analysis.challenge import ChallengeResult, check_same_test_set, compare
from recbench.analysis.collect import write_csv
from recbench.analysis.solution_time import load_predictions
from recbench.analysis.stats import mean_ci

ROLES = ("baseline", "recurrent", "reference")
STATS_COLUMNS = ("model", "seed", "run_dir", "n_challenge", "solved_challenge", "never_challenge",
                 "mean_time_challenge", "n_control", "solved_control", "never_control", "mean_time_control",
                 "reference_accuracy_challenge", "reference_accuracy_control", "difference", "difference_lo",
                 "difference_hi")
IMAGE_COLUMNS = ("model", "seed", "run_dir", "image", "label", "set", "solution_time", "baseline_correct",
                 "reference_correct")


def _runs_for(table: list[dict], spec: str) -> list[dict]:
    path = Path(spec)
    if path.exists():
        root = path.resolve()
        return [r for r in table if root in (d := Path(r["run_dir"]).resolve(), *d.parents)]
    return [r for r in table if r["model"] == spec]


def assign_roles(table: list[dict], roles: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """Role -> the runs that play it (see the module docstring); one-line ConfigError when it cannot tell."""
    from recbench.config import ConfigError

    if roles:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ConfigError(f"--roles: unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")
        out = {role: [] if (role, spec) == ("reference", "none") else _runs_for(table, spec)
               for role, spec in roles.items()}
        for role, runs in out.items():
            if not runs and roles[role] != "none":
                raise ConfigError(f"--roles {role}={roles[role]}: no collected run has that model or lies there; "
                                  f"models: {', '.join(sorted({r['model'] for r in table}))}")
        missing = [r for r in ("baseline", "recurrent") if r not in out]
        if missing:
            raise ConfigError(f"--roles needs {' and '.join(missing)} (and optionally reference)")
        return out
    feedforward = sorted({r["model"] for r in table if r["time_steps"] == 1})
    recurrent = sorted({r["model"] for r in table if r["time_steps"] > 1})
    if len(feedforward) != 1 or len(recurrent) != 1:
        raise ConfigError(f"cannot tell the kar2019 roles from models {', '.join(feedforward + recurrent)} "
                          f"(feedforward: {', '.join(feedforward) or 'none'}); pass --roles "
                          "baseline=MODEL_OR_DIR,recurrent=MODEL_OR_DIR[,reference=MODEL_OR_DIR]")
    return {"baseline": [r for r in table if r["model"] == feedforward[0]],
            "recurrent": [r for r in table if r["model"] == recurrent[0]]}


def _majority(preds: list[dict]) -> np.ndarray:
    return np.mean([p["correct"][-1] for p in preds], axis=0) >= 0.5


def compare_roles(runs: dict[str, list[dict]], *, seed: int = 0,
                  n_boot: int = 10_000) -> list[tuple[dict, ChallengeResult]]:
    """Every recurrent run compared on the one challenge/control split (matched on the reference runs; on the
    recurrent runs when there is no ``reference`` role; unmatched when it is empty); runs must share a test set."""
    preds = {role: [load_predictions(r["run_dir"]) for r in rows] for role, rows in runs.items()}
    labels = check_same_test_set({r["run_dir"]: p["labels"] for role in runs
                                  for r, p in zip(runs[role], preds[role], strict=True)})
    matched_on = preds.get("reference", preds["recurrent"])
    reference = _majority(matched_on) if matched_on else None
    baseline = _majority(preds["baseline"])
    return [(row, compare(baseline, p["correct"], labels, reference, seed=seed, n_boot=n_boot))
            for row, p in zip(runs["recurrent"], preds["recurrent"], strict=True)]


def difference_title(results: list[ChallengeResult]) -> str:
    if len(results) == 1:
        d, how = results[0].difference, "bootstrap 95% CI"
    else:
        d, how = mean_ci([r.difference.mean for r in results]), f"t 95% CI over n={len(results)} runs"
    return f"mean solution time, challenge - control: {d.mean:+.2f} steps [{d.lo:+.2f}, {d.hi:+.2f}] ({how})"


def render_kar(table: list[dict], out: Path, *, roles: dict[str, str] | None = None, seed: int = 0,
               n_boot: int = 10_000) -> list[Path]:
    runs = assign_roles(table, roles)
    compared = compare_roles(runs, seed=seed, n_boot=n_boot)
    results = [res for _, res in compared]
    steps = max(int(row["time_steps"]) for row, _ in compared)
    fig, (ax_h, ax_e) = plots.panels(2, difference_title(results), width=6)
    bins = np.arange(steps + 2) - 0.5  # one bin per step and one for "never"
    for i, which in enumerate(("challenge", "control")):
        times = np.concatenate([r.times[getattr(r, which)] for r in results])
        binned = np.where(np.isfinite(times), times, steps)
        never = int(np.isinf(times).sum())
        label = f"{which} ({len(times)} images x runs, {never} never solved, n={len(results)} runs)"
        ax_h.hist(binned, bins=bins, weights=np.full(len(times), 1 / max(len(times), 1)), alpha=0.5,
                  color=f"C{i}", label=label)
        solved = np.sort(times[np.isfinite(times)])
        if solved.size:
            ax_e.step(solved, np.arange(1, solved.size + 1) / solved.size, where="post", color=f"C{i}",
                      label=f"{which} (solved: {solved.size})")
    ax_h.set_xticks(range(steps + 1), [*map(str, range(steps)), "never"])
    plots.style(ax_h, "solution time (time step)", "fraction of images", "solution-time distribution")
    plots.style(ax_e, "solution time (time step)", "cumulative fraction of solved images", "ECDF", integer_x=True)
    per_run = [{"model": row["model"], "seed": row["seed"], "run_dir": row["run_dir"], **res.stats()}
               for row, res in compared]
    per_image = [{"model": row["model"], "seed": row["seed"], "run_dir": row["run_dir"], **img}
                 for row, res in compared for img in res.per_image()]
    return [plots.save(fig, out / "solution_times.png"),
            write_csv(per_image, out / "solution_times.csv", list(IMAGE_COLUMNS)),
            write_csv(per_run, out / "challenge_control.csv", list(STATS_COLUMNS))]
