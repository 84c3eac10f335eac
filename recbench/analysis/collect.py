"""Gather run directories into one tidy CSV and a figure of accuracy against time step and compute.

``recbench-collect OUT_DIR RUN_DIR_OR_SWEEP_DIR ...`` finds every ``summary.json`` below the given folders and
writes ``OUT_DIR/summary.csv`` (one row per run and time step) and ``OUT_DIR/accuracy_per_step.png``. It reads
only the run directories (the source of truth), never wandb, so it works offline.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

COLUMNS = ("model", "dataset", "time_step", "accuracy", "effective_depth", "flops_per_image", "params",
           "train_steps", "wall_time_s", "images_per_s", "device", "run_dir")


def rows(run_dirs: list[Path]) -> list[dict]:
    out = []
    for summary in sorted(p for d in run_dirs for p in Path(d).rglob("summary.json")):
        s = json.loads(summary.read_text())
        for t, acc in enumerate(s["accuracy_per_step"]):
            out.append({"model": s["model"], "dataset": s["dataset"], "time_step": t, "accuracy": acc,
                        "effective_depth": s["effective_depth"][t], "flops_per_image": s["flops_per_image"][t],
                        "params": s["params"], "train_steps": s["train_steps"], "wall_time_s": s["wall_time_s"],
                        "images_per_s": s["images_per_s"], "device": s["device"], "run_dir": str(summary.parent)})
    return out


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(10, 4))
    for model in dict.fromkeys(r["model"] for r in table):
        mine = [r for r in table if r["model"] == model]
        label = f"{model} ({mine[0]['params']:,} params)"
        ax_t.plot([r["time_step"] for r in mine], [r["accuracy"] for r in mine], marker="o", label=label)
        counted = [r for r in mine if r["flops_per_image"] is not None]  # None: no backend could count (n/a)
        ax_f.plot([r["flops_per_image"] / 1e6 for r in counted], [r["accuracy"] for r in counted], marker="o",
                  label=label)
    ax_t.set(xlabel="time step (readout)", ylabel="test accuracy", title="accuracy at every time step")
    ax_f.set(xlabel="MFLOPs per image to reach the readout", ylabel="test accuracy", title="accuracy vs compute")
    ax_t.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_t.legend(fontsize=8)
    for ax in (ax_t, ax_f):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{table[0]['dataset']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(prog="recbench-collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    table = rows(args.runs)
    if not table:
        print(f"recbench: error: no summary.json below {', '.join(map(str, args.runs))}", file=sys.stderr)
        sys.exit(2)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open(args.out_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    plot(table, args.out_dir / "accuracy_per_step.png")
    print(f"{len(table)} rows from {len({r['run_dir'] for r in table})} runs -> {args.out_dir}")


if __name__ == "__main__":
    main()
