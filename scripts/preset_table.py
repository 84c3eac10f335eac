"""Accounting for every model preset: parameters, FLOPs and effective depth at the default unroll depth.

Usage: python scripts/preset_table.py [--readme README.md]
Prints a markdown table; with --readme, replaces the block between <!-- presets:start --> and
<!-- presets:end --> in that file. Each preset is measured at its natural input, the images and classes its
paper trained on (the config's ``natural_input`` / ``natural_classes``, what ``recbench.build_model(name)``
builds), so that parameter counts compare with the published ones.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from flax import nnx

import recbench  # noqa: F401  (XLA flags)
from recbench.config import group_choices
from recbench.models.accounting import describe
from recbench.models.registry import model_from_config, natural_input, preset


def row(name: str) -> str:
    cfg = preset(name)
    shape, classes = natural_input(cfg)
    model = nnx.eval_shape(lambda: model_from_config(cfg, num_classes=classes, input_shape=shape))
    acc = describe(model, shape)
    t = len(acc["effective_depth"])
    return (f"| `{name}` | {cfg.family} | {shape[0]}x{shape[1]}x{shape[2]} / {classes} | {acc['params']:,} | {t} | "
            f"{_giga(acc['flops_per_image'][-1])} | {acc['effective_depth'][-1]} |")


def _giga(flops: float | None) -> str:
    return "n/a" if flops is None else f"{flops / 1e9:.3f}"


def table(names: list[str]) -> str:
    head = ("| preset | family | input / classes | params | time steps | GFLOPs/image to last step | "
            "effective depth at last step |\n|---|---|---|---:|---:|---:|---:|")
    lines = [head]
    for name in names:
        lines.append(row(name))
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=None)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    text = table(args.names or group_choices("model"))
    if args.readme:
        readme = args.readme.read_text()
        block = f"<!-- presets:start -->\n{text}\n<!-- presets:end -->"
        args.readme.write_text(re.sub(r"<!-- presets:start -->.*<!-- presets:end -->", block, readme, flags=re.S))
    print(text)


if __name__ == "__main__":
    main()
