"""Progress bars of long commands, on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress

StageTick = Callable[[str, int, int], None]


@contextmanager
def stage_bars(unit: str, width: int = 20) -> Iterator[tuple[StageTick, Progress]]:
    """One progress bar per stage on stderr; ``tick(stage, done, total)`` moves it."""
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn

    bars: dict[str, TaskID] = {}
    with Progress(
        TextColumn(f"{{task.description:<{width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        console=Console(stderr=True),
    ) as progress:

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=total)
            progress.update(bars[stage], completed=done)

        yield tick, progress
