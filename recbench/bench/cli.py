"""``recbench-bench``: recbench's own train and eval steps against PyTorch references of the same networks.

One invocation runs, for every case (:mod:`recbench.bench.cases`), recbench and the PyTorch reference
(:mod:`recbench.bench.torch_refs`, NCHW and channels_last) in alternating fresh processes, ``--rounds`` times,
reversing the order every round, because the speed of a shared machine swings by up to 2x between identical
processes (docs/performance.md, *Noise*). It reports medians with their ranges, and the ratio recbench ÷ best
PyTorch layout taken within each round. Then, recbench only, the unroll-depth section: compile and step time of
the BLT train step for ``T`` in ``--depths`` with the unroll strategies ``loop`` and ``scan`` (on CPU a rolled
scan trains tens of times slower, docs/performance.md §4d, so it is timed over one step there), and the eval
forward at test-time depth ``--eval-depth`` of the T=4 BLT. ``--time-to-target X`` adds the default training job
run to test accuracy X. Output: a table, or JSON (``--json``; ``--json FILE`` writes it next to the table).

A bad argument is one line on stderr and exit status 2; a failed measurement is shown in the table and makes the
exit status 1.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from recbench.bench.cases import CASES, model_config
from recbench.config import ArgumentParser

PROG = "recbench-bench"
VARIANTS = ("recbench", "torch_nchw", "torch_channels_last")
LABELS = {"recbench": "recbench", "torch_nchw": "torch NCHW", "torch_channels_last": "torch channels_last",
          "torch_best": "torch best", "ratio": "recbench / torch best"}
METRICS = ("train_img_s", "eval_img_s", "init_s", "compile_s", "first_step_s", "eval_compile_s", "first_eval_s",
           "peak_rss_mib", "peak_device_mib")
DEPTHS = (4, 8, 16, 32)
DEPTH_CASE = "blt"
UNROLLS = ("loop", "scan")
#: A rolled-scan BLT step on two cores took about 4.5 s at T=8 and batch 16 (so about 20 s at T=32); at batch 64 it
#: is minutes per step at T=32 (docs/performance.md §4d).
CPU_DEPTH_BATCH = 16
WORKER = (sys.executable, "-m", "recbench.bench.worker")
#: The default training job, as the ``recbench`` console script runs it.
TRAINER = (sys.executable, "-c", "from recbench.cli import train_main; train_main()")
VERSIONS = ("jax", "jaxlib", "flax", "optax", "torch", "numpy")
TORCH_MISSING = "install the torch extra: pip install -e .[torch]"


class BenchError(Exception):
    """Something that stops the whole benchmark (the backend probe failed): one line, exit status 1."""


# ---- arguments ---------------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def _cases(text: str) -> list[str]:
    names = [] if text.strip() == "none" else [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CASES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown case {bad[0]!r}; choose from {', '.join(CASES)} (or none)")
    if not names and text.strip() != "none":
        raise argparse.ArgumentTypeError(f"no case given; choose from {', '.join(CASES)} (or none)")
    return list(dict.fromkeys(names))


def _depths(text: str) -> list[int]:
    if text.strip() == "none":
        return []
    problem = argparse.ArgumentTypeError(f"expected depths like 4,8,16,32 (or none), got {text!r}")
    try:
        depths = [_positive(t.strip()) for t in text.split(",") if t.strip()]
    except argparse.ArgumentTypeError:
        raise problem from None
    if not depths:
        raise problem
    return list(dict.fromkeys(depths))


def _accuracy(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected an accuracy in (0, 1], got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="recbench's own train and eval steps against PyTorch references of the "
                       "same networks, in alternating processes; see docs/performance.md for how to read the figures.")
    p.add_argument("--cases", type=_cases, default=list(CASES),
                   help=f"comma-separated cases, or none (default: all: {', '.join(CASES)})")
    p.add_argument("--rounds", type=_positive, default=3, help="alternating rounds (default 3)")
    p.add_argument("--steps", type=_positive, default=5, help="timed train steps per measurement (default 5)")
    p.add_argument("--eval-calls", type=_positive, default=None, help="timed eval calls (default: --steps)")
    p.add_argument("--warmup", type=_non_negative, default=1, help="untimed calls after the first (default 1)")
    p.add_argument("--batch", type=_positive, default=None, help="one batch size for every case (default: each "
                   "case's own)")
    p.add_argument("--depths", type=_depths, default=list(DEPTHS),
                   help="unroll depths T of the depth section, or none (default 4,8,16,32)")
    p.add_argument("--depth-batch", type=_positive, default=None,
                   help=f"batch of the depth section (default {CPU_DEPTH_BATCH} on CPU, the {DEPTH_CASE} case's "
                   f"{CASES[DEPTH_CASE].batch} on an accelerator)")
    p.add_argument("--depth-steps", type=_positive, default=2,
                   help="timed steps per depth (default 2; a rolled scan on CPU is timed over 1)")
    p.add_argument("--eval-depth", type=_non_negative, default=64,
                   help="test-time depth T' for the eval of the T=4 BLT, or 0 to skip (default 64)")
    p.add_argument("--time-to-target", type=_accuracy, default=None, metavar="ACCURACY",
                   help="also run the default training job to this test accuracy (recbench "
                   "trainer.target_accuracy=ACCURACY) and report the time to it")
    p.add_argument("--timeout", type=_positive, default=1800, help="seconds per measurement (default 1800)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="print JSON instead of the table, or with FILE write it there and print the table")
    return p


# ---- one measurement ---------------------------------------------------------------------------------------------


def worker_env() -> dict:
    """The workers' environment: no persistent compilation cache, so every compile time is a real one."""
    return {**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"}


def call_worker(spec: dict, timeout: float) -> dict:
    """Run one measurement in a fresh process; its JSON result, or ``{"error": <its last stderr line>}``."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([*WORKER, "--spec", json.dumps(spec)], capture_output=True, text=True,
                              env=worker_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s", "process_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode == 0 and lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = {"error": f"the worker printed no JSON result: {lines[-1][:200]}"}
    else:
        err = [line for line in proc.stderr.splitlines() if line.strip()]
        result = {"error": (err[-1] if err else f"exit status {proc.returncode}")[:300]}
    result.pop("spec", None)
    result["process_s"] = wall
    result["load_1m"] = _load()
    return result


def _load() -> float | None:
    """The 1-minute load average: on a shared machine, how much else ran alongside a measurement."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


# ---- the report --------------------------------------------------------------------------------------------------


def stats(values) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarise_case(entry: dict) -> None:
    """Medians and ranges per variant, the best PyTorch layout per round, and the per-round ratios."""
    runs = entry["runs"]
    entry["summary"] = {v: {m: stats(r.get(m) for r in runs[v]) for m in METRICS} for v in VARIANTS}
    best: dict = {}
    ratio: dict = {}
    for kind in ("train", "eval"):
        key = f"{kind}_img_s"
        per_round, layouts, ratios = [], [], []
        for rb, nchw, cl in zip(*(runs[v] for v in VARIANTS), strict=True):
            candidates = [(r.get(key), lay) for r, lay in ((nchw, "nchw"), (cl, "channels_last"))
                          if r.get(key) is not None]
            top = max(candidates) if candidates else (None, None)
            per_round.append(top[0])
            layouts.append(top[1])
            ratios.append(rb[key] / top[0] if rb.get(key) is not None and top[0] else None)
        best[key] = stats(per_round)
        best[f"{kind}_per_round"] = per_round
        best[f"{kind}_layout_per_round"] = layouts
        ratio[kind] = {"per_round": ratios, **(stats(ratios) or {})}
    entry["torch_best"] = best
    entry["ratio"] = ratio


def machine_info(probe: dict) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": affinity, "load_1m_at_start": _load(),
            "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions, **{k: v for k, v in probe.items() if k != "spec"}}


def run(args, log: Callable[[str], None] = lambda s: None) -> dict:
    """Every measurement the arguments ask for; the report that :func:`table` prints and ``--json`` writes."""
    probe = call_worker({"mode": "probe"}, args.timeout)
    if "error" in probe:
        raise BenchError(f"could not start JAX: {probe['error']}")
    cpu = probe["backend"] == "cpu"
    torch_device = "cuda" if probe["backend"] == "gpu" else "cpu"
    eval_calls = args.eval_calls or args.steps
    report = {"machine": machine_info(probe),
              "settings": {"rounds": args.rounds, "steps": args.steps, "eval_calls": eval_calls,
                           "warmup": args.warmup, "torch_device": torch_device, "optimizer": "adam(lr=1e-3)",
                           "loss": "mean cross-entropy over time steps", "precision": "fp32"},
              "cases": {}}
    common = {"steps": args.steps, "eval_calls": eval_calls, "warmup": args.warmup}
    for name in args.cases:
        case = CASES[name]
        cfg = model_config(case.preset)
        report["cases"][name] = {
            "preset": case.preset, "input_shape": list(case.input_shape), "num_classes": case.num_classes,
            "batch": args.batch or case.batch, "time_steps": cfg.get("steps", 1),
            "about": case.about, "runs": {v: [] for v in VARIANTS}, "_config": cfg}
    for r in range(args.rounds):
        for name, entry in report["cases"].items():
            for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                spec = {"mode": "train_eval", "preset": entry["preset"], "batch": entry["batch"],
                        "input_shape": entry["input_shape"], "num_classes": entry["num_classes"], **common}
                if variant == "recbench":
                    spec["framework"] = "recbench"
                else:
                    spec.update(framework="torch", layout=variant.removeprefix("torch_"), device=torch_device,
                                model_config=entry["_config"])
                result = call_worker(spec, args.timeout)
                entry["runs"][variant].append({"round": r + 1, **result})
                log(f"round {r + 1}/{args.rounds} {name} {LABELS[variant]}: " + _brief(result))
    for entry in report["cases"].values():
        entry.pop("_config")
        summarise_case(entry)
    report["depth"] = depth_section(args, cpu, log) if (args.depths or args.eval_depth) else None
    report["time_to_target"] = None
    if args.time_to_target is not None:
        log(f"training the default job to test accuracy {args.time_to_target}")
        report["time_to_target"] = time_to_target(args.time_to_target, timeout=args.timeout)
        log("time to target: " + _brief(report["time_to_target"]))
    return report


def _brief(result: dict) -> str:
    if "error" in result:
        return f"failed: {result['error']}"
    keys = ("train_img_s", "eval_img_s", "compile_s", "first_step_s", "time_to_target_s", "process_s")
    return ", ".join(f"{k} {result[k]:.3g}" for k in keys if isinstance(result.get(k), (int, float)))


def depth_section(args, cpu: bool, log: Callable[[str], None]) -> dict:
    """recbench only: the BLT train step at every depth and unroll strategy, and its eval at test-time depth."""
    case = CASES[DEPTH_CASE]
    batch = args.depth_batch or (CPU_DEPTH_BATCH if cpu else case.batch)
    base = {"preset": case.preset, "batch": batch, "input_shape": list(case.input_shape),
            "num_classes": case.num_classes, "framework": "recbench"}
    out = {"case": DEPTH_CASE, "batch": batch, "steps": {}, "train": [], "eval": None}
    for unroll in UNROLLS:
        slow = cpu and unroll == "scan"  # jax-ml/jax#12868, docs/performance.md §4d
        out["steps"][unroll] = 1 if slow else args.depth_steps
    for depth in args.depths:
        for unroll in UNROLLS:
            slow = cpu and unroll == "scan"
            spec = {**base, "mode": "train", "overrides": {"steps": depth, "unroll": unroll},
                    "steps": out["steps"][unroll], "warmup": 0 if slow else args.warmup, "eval_calls": 0}
            result = call_worker(spec, args.timeout)
            out["train"].append({"T": depth, "unroll": unroll, **result})
            log(f"depth T={depth} {unroll}: " + _brief(result))
    if args.eval_depth:
        trained = model_config(case.preset).get("steps")
        out["eval"] = {"T_trained": trained, "T_eval": args.eval_depth, "calls": args.depth_steps, "results": []}
        for unroll in UNROLLS:
            spec = {**base, "mode": "eval", "overrides": {"unroll": unroll}, "eval_steps_T": args.eval_depth,
                    "eval_calls": args.depth_steps, "warmup": args.warmup, "steps": 0}
            result = call_worker(spec, args.timeout)
            out["eval"]["results"].append({"unroll": unroll, **result})
            log(f"eval at T'={args.eval_depth} {unroll}: " + _brief(result))
    for row in out["train"]:
        if row.get("train_step_s"):
            row["step_s"] = statistics.median(row["train_step_s"])
    return out


def time_to_target(target: float, *, command=None, timeout: float | None = None) -> dict:
    """Run the default training job with ``trainer.target_accuracy=target`` in a fresh process (``command``,
    default :data:`TRAINER`, given the overrides as arguments), its outputs in a temporary folder, and read the
    time to the target from its ``summary.json``."""
    command = command or TRAINER
    with tempfile.TemporaryDirectory(prefix="recbench-bench-") as tmp:
        overrides = [f"trainer.target_accuracy={target}", f"paths.output_root={tmp}", "logger=disabled",
                     "trainer.progress=false"]
        out = {"target_accuracy": target, "command": "recbench " + " ".join(overrides).replace(tmp, "<tmp>")}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([*command, *overrides], capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "WANDB_MODE": "disabled"})
        except subprocess.TimeoutExpired:
            return {**out, "error": f"timed out after {timeout} s"}
        out["process_s"] = time.perf_counter() - t0
        if proc.returncode:
            err = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
            return {**out, "error": (err[-1] if err else f"exit status {proc.returncode}")[:300]}
        found = sorted(Path(tmp).rglob("summary.json"))
        if not found:
            return {**out, "error": "the training job wrote no summary.json"}
        summary = json.loads(found[0].read_text())
    for key in ("time_to_target_s", "steps_to_target", "images_to_target", "wall_time_s", "final_accuracy",
                "train_steps", "first_step_s", "images_per_s"):
        out[key] = summary.get(key)
    out["reached"] = summary.get("time_to_target_s") is not None
    if "time_to_target_s" not in summary:
        out["note"] = "the summary has no time_to_target_s: this recbench's trainer has no trainer.target_accuracy"
    return out


def failures(report: dict) -> list[str]:
    found = []
    for name, entry in report["cases"].items():
        for variant, runs in entry["runs"].items():
            found += [f"{name} {LABELS[variant]} round {r['round']}" for r in runs if "error" in r]
    depth = report.get("depth") or {}
    found += [f"depth T={r['T']} {r['unroll']}" for r in depth.get("train", []) if "error" in r]
    found += [f"eval depth {r['unroll']}" for r in (depth.get("eval") or {}).get("results", []) if "error" in r]
    if (report.get("time_to_target") or {}).get("error"):
        found.append("time to target")
    return found


# ---- the table ---------------------------------------------------------------------------------------------------


def _num(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if abs(v) >= 10 ** digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def _cell(s: dict | None, digits: int = 3) -> str:
    if not s:
        return "-"
    if s["n"] == 1 or s["min"] == s["max"]:
        return _num(s["median"], digits)
    return f"{_num(s['median'], digits)} ({_num(s['min'], digits)}-{_num(s['max'], digits)})"


COLUMNS = (("train img/s", "train_img_s"), ("eval img/s", "eval_img_s"), ("init s", "init_s"),
           ("compile s", "compile_s"), ("1st step s", "first_step_s"), ("peak RSS MiB", "peak_rss_mib"))


def table(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    v = m["versions"]
    lines = [
        f"{PROG}: JAX on {m['backend']} ({m['device_kind']} x{m['device_count']}), PyTorch on {s['torch_device']}",
        f"machine: {m['cpu']}, {m['cores']} cores; jax {v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, "
        f"optax {v['optax']}, torch {v['torch']}; XLA_FLAGS={m.get('xla_flags') or '(none)'}",
    ]
    loads = [r["load_1m"] for e in report["cases"].values() for runs in e["runs"].values() for r in runs
             if r.get("load_1m") is not None]
    if loads:
        lines.append(f"load average (1 min) after the measurements: {min(loads):.1f} to {max(loads):.1f} on "
                     f"{m['cores']} cores" + ("; above the core count other work shared the machine, so expect "
                                              "noise beyond the usual 2x" if max(loads) > m["cores"] else ""))
    if report["cases"]:
        lines += [
            f"{s['rounds']} round(s), one fresh process per measurement, recbench and PyTorch alternating; "
            f"{s['steps']} timed train steps and {s['eval_calls']} eval calls after {s['warmup']} warm-up; "
            f"{s['optimizer']}, {s['loss']}, {s['precision']}",
            "median (min-max) over rounds; torch best = the faster layout in each round; the ratio is taken "
            "within each round; compile s: recbench's ahead-of-time compile of the train step; 1st step s: "
            "compile + first step (PyTorch: its first eager step)",
            ""]
        widths = (25, 20, 20, 16, 16, 16, 16)
        head = ["", *(c for c, _ in COLUMNS)]
        lines.append("".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
        for name, e in report["cases"].items():
            lines.append(f"{name}: batch {e['batch']}, {'x'.join(map(str, e['input_shape']))}, "
                         f"{e['num_classes']} classes, T={e['time_steps']} - {e['about']}")
            for variant in (*VARIANTS, "torch_best", "ratio"):
                if variant == "ratio":
                    cells = [_cell(e["ratio"]["train"], 2), _cell(e["ratio"]["eval"], 2)]
                elif variant == "torch_best":
                    cells = [_cell(e["torch_best"]["train_img_s"]), _cell(e["torch_best"]["eval_img_s"])]
                else:
                    errors = [r["error"] for r in e["runs"][variant] if "error" in r]
                    sm = e["summary"][variant]
                    cells = [_cell(sm[k], 3 if k.endswith("img_s") else 2) if k != "peak_rss_mib"
                             else _cell(sm[k], 4) for _, k in COLUMNS]
                    if errors:
                        cells.append(f"failed {len(errors)}x: {errors[0]}")
                row = [f"  {LABELS[variant]}", *cells]
                lines.append("".join(c.ljust(w) for c, w in zip(row, widths + (0,), strict=False)).rstrip())
    d = report.get("depth")
    if d:
        lines += ["", f"unroll depth: recbench's {d['case']} train step at batch {d['batch']}, one process per cell, "
                  f"timed over {d['steps']['loop']} step(s) (loop) and {d['steps']['scan']} (scan); "
                  "compile s = ahead-of-time compile"]
        if d["train"]:
            widths = (6, 14, 13, 13, 14, 13, 13, 14)
            head = ("T", "loop compile", "loop step s", "loop img/s", "scan compile", "scan step s", "scan img/s",
                    "scan/loop step")
            lines.append("".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
            for depth in dict.fromkeys(r["T"] for r in d["train"]):
                by = {r["unroll"]: r for r in d["train"] if r["T"] == depth}
                cells = [str(depth)]
                for unroll in UNROLLS:
                    r = by.get(unroll, {})
                    if "error" in r:
                        cells += ["failed", r["error"][:40], ""]
                    else:
                        cells += [_num(r.get("compile_s")), _num(r.get("step_s")), _num(r.get("train_img_s"))]
                loop, scan = by.get("loop", {}).get("step_s"), by.get("scan", {}).get("step_s")
                cells.append(_num(scan / loop, 2) if loop and scan else "-")
                lines.append("".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if d.get("eval"):
            ev = d["eval"]
            parts = []
            for r in ev["results"]:
                if "error" in r:
                    parts.append(f"{r['unroll']} failed: {r['error']}")
                else:
                    parts.append(f"{r['unroll']}: compile {_num(r.get('eval_compile_s'))} s, "
                                 f"{_num(r.get('eval_img_s'))} img/s")
            lines.append(f"eval at test-time depth T'={ev['T_eval']} of the T={ev['T_trained']} {d['case']} "
                         f"(batch {d['batch']}): " + "; ".join(parts))
    t = report.get("time_to_target")
    if t:
        head = f"time to target: `{t['command']}`"
        if "error" in t:
            lines += ["", f"{head}: failed: {t['error']}"]
        elif not t.get("reached"):
            lines += ["", f"{head}: target not reached ({t.get('note') or 'within trainer.total_steps'}); "
                      f"final accuracy {_num(t.get('final_accuracy'))}, wall {_num(t.get('wall_time_s'))} s"]
        else:
            lines += ["", f"{head}: {_num(t['time_to_target_s'])} s to accuracy {t['target_accuracy']} "
                      f"({t['images_to_target']} images, step {t['steps_to_target']}); final accuracy "
                      f"{_num(t.get('final_accuracy'))}; run wall {_num(t.get('wall_time_s'))} s, process "
                      f"{_num(t.get('process_s'))} s"]
    return "\n".join(lines)


# ---- entry point -------------------------------------------------------------------------------------------------


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if not torch_available():
        _fail(TORCH_MISSING, 2)
    if args.json not in (None, "-") and not Path(args.json).resolve().parent.is_dir():
        _fail(f"--json {args.json}: no such folder", 2)
    try:
        report = run(args, log=lambda line: print(line, file=sys.stderr, flush=True))
    except BenchError as e:
        _fail(str(e), 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    if args.json == "-":
        print(json.dumps(report, indent=1))
    else:
        print(table(report))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    failed = failures(report)
    if failed:
        _fail(f"{len(failed)} measurement(s) failed: {', '.join(failed[:5])}", 1)
