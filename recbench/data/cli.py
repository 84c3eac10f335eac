"""``recbench-data``: prepare, look at and locate datasets, with the same ``key=value`` overrides as training.

    recbench-data build cifar10 paths.data_dir=/data/tfds     # prepare once (progress bar), e.g. before a sweep
    recbench-data show digit_debris dataset.level=heavy --out debris.png   # a labelled grid of samples
    recbench-data info imagenet2012                            # splits, sizes, classes, where it lives

Why a separate tool: preparing data is slow, may need files fetched by hand, and is best done once before many
training jobs start; looking at stimuli is how one checks a generator. A mistake is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

import recbench  # noqa: F401  (sets XLA flags before JAX starts)
from recbench.config import ArgumentParser, ConfigError, check_folder, compose_checked, group_choices

COMMANDS = {
    "build": "prepare a dataset (generate or download and convert it) into paths.data_dir",
    "show": "write a PNG grid of labelled samples",
    "info": "print splits, sizes, classes and where the dataset lives, as JSON",
}


def fail(message: str, code: int = 2) -> None:
    print(f"recbench-data: error: {message}", file=sys.stderr)
    sys.exit(code)


def compose(dataset: str, overrides: list[str]):
    """The training config for ``dataset=<name> <overrides>``, checked; one-line :class:`ConfigError` otherwise."""
    from recbench.data.sources import dataset_meta

    choices = group_choices("dataset")
    if dataset not in choices:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of: {', '.join(choices)}")
    cfg = compose_checked([f"dataset={dataset}", *overrides])
    dataset_meta(cfg.dataset)
    check_folder("paths.data_dir", cfg.paths.data_dir)
    return cfg


def caption(label: np.ndarray, names: tuple[str, ...] | None) -> str:
    label = np.asarray(label)
    if label.ndim:  # multi-hot: every class present
        return " ".join(names[i] if names else str(i) for i in np.flatnonzero(label))
    return names[int(label)] if names else str(int(label))


def render_grid(images: np.ndarray, captions: list[str], title: str, out: str | Path, cols: int = 8) -> Path:
    """Save a grid of uint8 HWC images with a caption above each (matplotlib, no display needed)."""
    from matplotlib.figure import Figure

    n = len(images)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(1.35 * cols, 1.5 * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest")
            ax.set_title(captions[i], fontsize=8, pad=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def _load(cfg, progress: bool):
    from recbench.data.sources import load_dataset

    return load_dataset(cfg.dataset, data_dir=cfg.paths.data_dir, progress=progress)


def build(args: argparse.Namespace) -> None:
    from recbench.data.sources import describe_dataset

    cfg = compose(args.dataset, args.overrides)
    _load(cfg, progress=True)
    print(json.dumps(describe_dataset(cfg.dataset, data_dir=cfg.paths.data_dir), indent=2))


def show(args: argparse.Namespace) -> None:
    cfg = compose(args.dataset, args.overrides)
    if args.n < 1:
        raise ConfigError(f"--n must be a positive integer, got {args.n}")
    out = Path(args.out or f"{args.dataset}.png")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a PNG file path")
    check_folder("--out", out.parent, create=True)  # before the data is prepared, which may take minutes
    ds = _load(cfg, progress=True)
    images, labels = ds.samples(args.split, args.n)
    names = getattr(ds, "label_names", None)
    shown = [o for o in args.overrides if not o.lstrip("+~").startswith("paths.")]  # where, not what
    title = " ".join([args.dataset, *shown]) + f"  ({args.split} split, first {len(images)})"
    print(render_grid(images, [caption(y, names) for y in labels], title, out))


def info(args: argparse.Namespace) -> None:
    from recbench.data.sources import describe_dataset

    cfg = compose(args.dataset, args.overrides)
    out = describe_dataset(cfg.dataset, data_dir=cfg.paths.data_dir)
    names = out.get("label_names")
    if names and len(names) > 20:
        out["label_names"] = names[:20] + [f"... ({len(names)} in all)"]
    print(json.dumps(out, indent=2))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: recbench-data {build,show,info} DATASET [KEY=VALUE ...] [--out FILE] [--n N] [--split S]\n")
        for name, text in COMMANDS.items():
            print(f"  {name:6s} {text}")
        print(f"\ndatasets: {', '.join(group_choices('dataset'))}\noverrides: as for training, e.g. "
              "dataset.level=heavy paths.data_dir=/data/tfds")
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)}")
    if not rest or rest[0].startswith("-"):
        fail(f"missing DATASET: recbench-data {command} DATASET [KEY=VALUE ...]; datasets: "
             f"{', '.join(group_choices('dataset'))}")
    parser = ArgumentParser(prog=f"recbench-data {command}", description=COMMANDS[command])
    parser.add_argument("dataset")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    if command == "show":
        parser.add_argument("--out", help="PNG path (default: DATASET.png)")
        parser.add_argument("--n", type=int, default=32, help="number of samples (default 32)")
        parser.add_argument("--split", choices=("train", "test"), default="train")
    args = parser.parse_intermixed_args(rest)
    try:
        {"build": build, "show": show, "info": info}[command](args)
    except ConfigError as e:
        fail(str(e))


if __name__ == "__main__":
    main()
