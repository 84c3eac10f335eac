"""Does recbench's XLA:CPU flag (YNNPACK fusions off, recbench/env.py) speed up or slow down each family's train step?

    .venv/bin/python scripts/xla_flag_check.py [--cases blt,resnet20,hgru_small,...] [--rounds 2] [--json out.json]

Each case's train step is timed by ``recbench-bench``'s worker (recbench/bench/worker.py: a fresh process, the
step compiled ahead of time, the median of ``--steps`` timed steps) with the flag (``RECBENCH_XLA_CPU_FLAGS=1``,
the default) and without it (``=0``, XLA's defaults), the two alternating and their order reversed every round,
because this machine's speed swings by up to 2x between identical processes. It prints the median step time and
compile time of each, and the ratio without ÷ with (above 1: the flag helps). docs/performance.md §5 records what
it found.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from recbench.bench.cli import call_worker

# name: (preset, input H x W x C, classes, batch, model overrides) -- the sizes the CPU-scale experiments train at
CASES = {
    "blt": ("blt", (32, 32, 1), 10, 64, {}),
    "resnet20": ("resnet20", (32, 32, 3), 10, 128, {}),
    "liao_poggio_4state": ("liao_poggio_4state", (32, 32, 3), 10, 32, {}),
    "hgru_small": ("hgru_small", (32, 32, 1), 2, 32, {"width": 0.5, "steps": 8}),
    "feedback48": ("feedback48", (32, 32, 1), 10, 32, {"width": 0.25}),
    "dt_net_recall": ("dt_net_recall", (32, 32, 1), 2, 32, {"width": 0.5, "steps": 6}),
}
SETTINGS = {"flag": "1", "no flag": "0"}


def measure(case: str, setting: str, steps: int, timeout: float) -> dict:
    preset, shape, classes, batch, overrides = CASES[case]
    spec = {"mode": "train", "framework": "recbench", "preset": preset, "input_shape": list(shape),
            "num_classes": classes, "batch": batch, "overrides": overrides, "steps": steps, "warmup": 1,
            "eval_calls": 1}
    os.environ["RECBENCH_XLA_CPU_FLAGS"] = SETTINGS[setting]
    os.environ.pop("XLA_FLAGS", None)  # set by this process's own import of recbench: each worker decides anew
    return call_worker(spec, timeout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed train steps per measurement")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown or args.rounds < 1 or args.steps < 1:
        sys.exit(f"xla_flag_check: unknown case(s) {unknown} (choose from {', '.join(CASES)}), or --rounds/--steps "
                 "below 1")
    results: dict = {c: {s: [] for s in SETTINGS} for c in cases}
    for r in range(args.rounds):
        for case in cases:
            order = list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]
            for setting in order:
                res = measure(case, setting, args.steps, args.timeout)
                results[case][setting].append(res)
                step = statistics.median(res["train_step_s"]) if "train_step_s" in res else None
                print(f"round {r + 1} {case:20s} {setting:8s} "
                      + (f"step {step * 1e3:8.0f} ms  compile {res['compile_s']:6.1f} s" if step else res["error"]),
                      flush=True)
    print(f"\n{'case':20s} {'step, flag':>12s} {'step, none':>12s} {'none / flag':>12s} {'compile flag/none':>18s}")
    table = {}
    for case in cases:
        med = {}
        for s in SETTINGS:
            ok = [x for x in results[case][s] if "train_step_s" in x]
            med[s] = (statistics.median(statistics.median(x["train_step_s"]) for x in ok),
                      statistics.median(x["compile_s"] for x in ok)) if ok else (float("nan"), float("nan"))
        (sf, cf), (sn, cn) = med["flag"], med["no flag"]
        table[case] = {"step_s_flag": sf, "step_s_no_flag": sn, "ratio_no_flag_over_flag": sn / sf,
                       "compile_s_flag": cf, "compile_s_no_flag": cn}
        print(f"{case:20s} {sf * 1e3:10.0f}ms {sn * 1e3:10.0f}ms {sn / sf:12.2f} {cf:8.1f} / {cn:5.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": table, "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
