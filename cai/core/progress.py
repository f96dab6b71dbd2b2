"""One progress display per job, on stderr: stage, step, rows done of total, tokens/s, elapsed, ETA.

Results go to stdout; `--quiet` turns this off for scripts. On a terminal it is a live bar; when
stderr is a file or a pipe (a log, a batch job), a bar would show only at the end, so each finished
chunk prints one plain line instead.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, soft_wrap=True)
settings = {"enabled": True}


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


class Tracker:
    """What executors report to: a chunk finished (rows, tokens), or the step a stage is at."""

    def __init__(self, stage: str, total_rows: int):
        self.stage, self.total, self.start = stage, total_rows, time.perf_counter()
        self.rows = self.computed = 0  # rows done (with those of earlier runs), rows done by this run
        self.tokens = {"completion": 0, "prompt": 0}
        self.progress = None
        self.lines = settings["enabled"] and not console.is_terminal
        if settings["enabled"] and console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]{task.fields[stage]}[/bold] {task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("rows · {task.fields[rate]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
            )
            self.task = self.progress.add_task("", total=total_rows, stage=stage, rate="- tok/s")
            self.progress.start()

    def step(self, text: str) -> None:
        if self.progress:
            self.progress.update(self.task, description=text)

    def skipped(self, rows: int) -> None:
        """Rows of a chunk finished by an earlier run."""
        self.rows += rows
        if self.progress:
            self.progress.update(self.task, advance=rows)

    def rate(self) -> str:
        """Tokens written per second; for a stage that writes none (a judge), prompt tokens read."""
        seconds = max(time.perf_counter() - self.start, 1e-9)
        if self.tokens["completion"] or not self.tokens["prompt"]:
            return f"{self.tokens['completion'] / seconds:.0f} tok/s"
        return f"{self.tokens['prompt'] / seconds:.0f} prompt tok/s"

    def chunk_done(self, marker: dict) -> None:
        rows = marker["rows_in"]
        self.rows, self.computed = self.rows + rows, self.computed + rows
        for kind in self.tokens:
            self.tokens[kind] += marker["engine"].get(f"{kind}_tokens", 0)
        if self.progress:
            self.progress.update(self.task, advance=rows, rate=self.rate())
        elif self.lines:
            elapsed = time.perf_counter() - self.start
            left = self.total - self.rows
            eta = _clock(elapsed / self.computed * left) if left else "0:00:00"
            console.print(f"{self.stage}: {self.rows}/{self.total} rows · {self.rate()} · {_clock(elapsed)} elapsed · "
                          f"ETA {eta}", highlight=False)

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
