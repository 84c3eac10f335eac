"""What a person watching the terminal sees: a header, a progress bar (loss, img/s, ETA), a final table."""

from __future__ import annotations

import contextlib
from pathlib import Path

from rich.console import Console as RichConsole
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from recbench.env import backend_line, backend_report


def _mflops(flops: float | None, digits: int) -> str:
    """MFLOP for display; "n/a" where no backend could count them (recbench.models.accounting)."""
    return "n/a" if flops is None else f"{flops / 1e6:.{digits}f}"


class _Bar:
    def __init__(self, progress: Progress | None, task, console: RichConsole | None):
        self._progress, self._task, self._console = progress, task, console

    def update(self, done: int, *, loss: float, img_s: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, info=f"loss {loss:.3f}  {img_s:6.1f} img/s")

    def note(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text)
        elif self._console is not None:
            self._console.print(text)


class Console:
    def __init__(self, *, enabled: bool = True, progress: bool = True):
        self.enabled = enabled
        self.show_progress = enabled and progress
        self.rich = RichConsole(highlight=False) if enabled else None

    @staticmethod
    def fmt(values: list[float]) -> str:
        return " ".join(f"{v:.3f}" for v in values)

    def say(self, text: str) -> None:
        """One line to the console (nothing when disabled)."""
        if self.rich is not None:
            self.rich.print(text)

    def status(self, text: str):
        if not self.show_progress:
            return contextlib.nullcontext()
        return self.rich.status(text)

    def header(self, info: dict, workdir: Path, start: int) -> None:
        """The model line, the backend line (platform, devices, versions) and, in bold, any backend warning: a
        run that fell back to the CPU or found a mismatched plugin says so before it starts training."""
        if not self.enabled:
            return
        self.rich.print(
            f"[bold]{info['model']}[/bold] on [bold]{info['dataset']}[/bold]  |  {info['params']:,} params  |  "
            f"{_mflops(info['flops_per_image'][-1], 1)} MFLOP/image to step {info['time_steps']}  |  effective depth "
            f"{info['effective_depth']}  |  {info['device']}")
        report = backend_report()
        self.rich.print(backend_line(report), markup=False, soft_wrap=True)
        for warning in report["warnings"]:  # one line each, even in a log file (the terminal wraps it)
            self.rich.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}", soft_wrap=True)
        self.rich.print(f"run dir: {workdir}" + (f"  (resuming from step {start})" if start else ""))

    @contextlib.contextmanager
    def progress(self, total: int, start: int):
        if not self.show_progress:
            yield _Bar(None, None, self.rich)
            return
        columns = (TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=self.rich) as progress:
            task = progress.add_task("train", total=total, completed=start, info="compiling…")
            yield _Bar(progress, task, self.rich)

    def final(self, summary: dict) -> None:
        if not self.enabled:
            return
        table = Table(title=f"{summary['model']} on {summary['dataset']}: test accuracy per time step")
        for col in ("time step", "accuracy", "effective depth", "MFLOP/image"):
            table.add_column(col, justify="right")
        rows = zip(summary["accuracy_per_step"], summary["effective_depth"], summary["flops_per_image"],
                   strict=True)
        for t, (acc, depth, flops) in enumerate(rows):
            table.add_row(str(t), f"{acc:.4f}", str(depth), _mflops(flops, 2))
        self.rich.print(table)
        self.rich.print(f"final accuracy {summary['final_accuracy']:.4f}  |  wall time {summary['wall_time_s']:.1f} s"
                        f"  |  {summary['images_per_s'] or 0:.1f} img/s  |  summary: "
                        f"{summary['workdir']}/summary.json")
