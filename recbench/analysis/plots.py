"""Plotting helpers shared by every recbench figure: series over seeds drawn as mean with a 95 % CI.

Every point, bar or band a figure draws is :func:`recbench.analysis.stats.summarise` of the rows behind it (the
seeds of one condition): the mean, a Student-t 95 % interval as an error bar or band (none when ``n=1``) and the
number of runs in the legend (``n=3``, or ``n=1-3`` when conditions differ). Figures are written with matplotlib's
Agg backend, so nothing needs a display.

A *series* is a model plus whatever else tells its runs apart in the rows drawn: :func:`series_label` adds every
key column (override) whose value varies among the runs of one model, except the ones the figure puts on an axis
or averages over (``seed``), so two learning rates of one model are never averaged into one line by accident.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from recbench.analysis.collect import RUN_COLUMNS, STEP_COLUMNS
from recbench.analysis.stats import summarise

NOT_SERIES = ("seed", "config", "test_config", "iterations", "accuracy", "eval_dataset", "steps", "trained_steps",
              "ablate", *RUN_COLUMNS, *STEP_COLUMNS)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panels(n: int, title: str = "", width: float = 5.0, height: float = 4.0) -> tuple:
    """A figure with ``n`` panels side by side (wrapping after 3); returns ``(fig, [axes])``."""
    plt = pyplot()
    cols = min(max(n, 1), 3)
    rows = math.ceil(max(n, 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig, list(axes.flat[:max(n, 1)])


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def style(ax, xlabel: str, ylabel: str, title: str = "", logx: bool = False, integer_x: bool = False) -> None:
    import matplotlib.ticker

    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if "accuracy" in ylabel:  # a t interval of few seeds can pass 0 or 1: show the range accuracy can take
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, -0.02), min(hi, 1.02))
    if logx:
        ax.set_xscale("log")
    else:  # 100,000 images seen reads as "100k": six-digit ticks run into each other
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(compact))
    if integer_x:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def compact(value: float, _pos=None) -> str:
    """A tick label: ``96k`` for 96,000, ``1.5M`` for 1,500,000, plain below 10,000."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def series_label(row: dict, rows: Sequence[dict], skip: Sequence[str] = ()) -> str:
    """The row's model, plus each key column whose value varies among ``rows`` of the same model (``skip`` and
    the averaged-over columns left out)."""
    same = [r for r in rows if r["model"] == row["model"]]
    keys = [k for k in row if k not in NOT_SERIES and k not in skip and k not in ("model", "dataset")]
    extra = [f"{k}={row[k]}" for k in keys if len({str(r.get(k)) for r in same}) > 1]
    return " ".join([str(row["model"]), *extra])


def with_series(rows: Sequence[dict], skip: Sequence[str] = (),
                order: Sequence[str] = ()) -> list[tuple[str, list[dict]]]:
    """Rows grouped into series (:func:`series_label`), models in ``order`` first, then as they come."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(series_label(r, rows, skip), []).append(r)
    rank = {m: i for i, m in enumerate(order)}
    return sorted(groups.items(), key=lambda kv: rank.get(kv[1][0]["model"], len(rank)))


def _n(points: list[dict]) -> str:
    ns = sorted({p["n"] for p in points})
    return f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"


def line_ci(ax, rows: Sequence[dict], x: str | Callable, y: str, label: str, annotate: str | None = None,
            scale: float = 1.0, **kw) -> list[dict]:
    """Mean of ``y`` at each value of ``x`` (a column or a function of a row) over ``rows``, as a line with a 95 %
    CI band (error bars for a single point); ``annotate`` writes that column of each point beside it (the points
    are then distinct conditions, e.g. models, so they get error bars and no band between them). Returns the
    points."""
    get = x if callable(x) else (lambda r: r.get(x))
    rows = [r | {"_x": get(r) * scale if get(r) is not None else None} for r in rows]
    rows = [r for r in rows if r["_x"] is not None and r.get(y) is not None]
    if not rows:
        return []
    points = sorted(summarise(rows, ["_x", *([annotate] if annotate else [])], y), key=lambda p: p["_x"])
    xs, ms = [p["_x"] for p in points], [p["mean"] for p in points]
    (line,) = ax.plot(xs, ms, marker=kw.pop("marker", "o"), label=f"{label} ({_n(points)})", **kw)
    lo = [p["lo"] if not math.isnan(p["lo"]) else p["mean"] for p in points]
    hi = [p["hi"] if not math.isnan(p["hi"]) else p["mean"] for p in points]
    if any(p["n"] > 1 for p in points):
        if len(points) > 1 and not annotate:  # a curve: a band
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        else:  # separate conditions, or a single point: error bars
            ax.errorbar(xs, ms, yerr=[[m - a for m, a in zip(ms, lo, strict=True)],
                                      [b - m for m, b in zip(ms, hi, strict=True)]],
                        fmt="none", ecolor=line.get_color(), capsize=3, linewidth=1)
    for p in points if annotate else ():
        ax.annotate(str(p[annotate]), (p["_x"], p["mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    return points


def bars_ci(ax, rows: Sequence[dict], group: Callable, series: Callable, y: str,
            series_order: Sequence[str] = ()) -> None:
    """Grouped bars: one group per ``group(row)`` on the x axis, one bar per ``series(row)`` in it, height the mean
    of ``y`` with its 95 % CI as an error bar and ``n`` written above."""
    rows = [r | {"_g": group(r), "_s": series(r)} for r in rows if r.get(y) is not None]
    groups = list(dict.fromkeys(r["_g"] for r in rows))
    names = list(dict.fromkeys(r["_s"] for r in rows))
    rank = {s: i for i, s in enumerate(series_order)}
    names.sort(key=lambda s: rank.get(s, len(rank)))
    width = 0.8 / max(len(names), 1)
    stats = {(p["_g"], p["_s"]): p for p in summarise(rows, ["_g", "_s"], y)}
    for i, name in enumerate(names):
        labelled = False
        for j, g in enumerate(groups):
            p = stats.get((g, name))
            if p is None:
                continue  # a partial sweep: this series has no run in this group
            err = None if math.isnan(p["lo"]) else [[p["mean"] - p["lo"]], [p["hi"] - p["mean"]]]
            xpos = j - 0.4 + width * (i + 0.5)
            ax.bar(xpos, p["mean"], width, yerr=err, capsize=3, color=f"C{i % 10}",
                   label=None if labelled else name)
            ax.annotate(f"n={p['n']}", (xpos, p["hi"] if err else p["mean"]), ha="center", fontsize=6,
                        xytext=(0, 2), textcoords="offset points")
            labelled = True
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])


def accuracy_per_step_figure(per_step: Sequence[dict], path: Path, title: str = "") -> Path:
    """Accuracy at every time step and against cumulative MFLOPs per image, one line per series (seeds averaged):
    ``recbench-collect``'s figure, and the spoerer2017 one."""
    fig, (ax_t, ax_f) = panels(2, title or ", ".join(dict.fromkeys(str(r["dataset"]) for r in per_step)))
    for label, rows in with_series(per_step):
        line_ci(ax_t, rows, "time_step", "accuracy", label)
        line_ci(ax_f, rows, "flops", "accuracy", label, scale=1e-6)
    style(ax_t, "time step (readout)", "test accuracy", "accuracy at every time step", integer_x=True)
    style(ax_f, "MFLOPs per image to reach the readout", "test accuracy", "accuracy vs compute", logx=True)
    return save(fig, path)
