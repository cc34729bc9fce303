"""Terminal pieces shared by the benchmarks: the stderr console, progress bars, the failure they report."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


class BenchError(Exception):
    """A benchmark failure with a message meant for the terminal."""


def progress(*, transient: bool) -> Progress:
    """A bar with a description, ``done/total`` and the elapsed time, on :data:`console`; a transient
    one disappears when it is done."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )
