"""One progress display per job, on stderr: stage, step, rows done of total, tokens/s, elapsed, ETA.

Results go to stdout; `--quiet` turns this off for scripts (and it is off when stderr is no
terminal, unless forced, so logs stay readable).
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


class Tracker:
    """What executors report to: a chunk finished (rows, tokens), or the step a stage is at."""

    def __init__(self, stage: str, total_rows: int):
        self.stage, self.tokens, self.start = stage, 0, time.perf_counter()
        self.progress = None
        if settings["enabled"]:
            self.progress = Progress(
                TextColumn("[bold]{task.fields[stage]}[/bold] {task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("rows · {task.fields[rate]} tok/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
            )
            self.task = self.progress.add_task("", total=total_rows, stage=stage, rate="-")
            self.progress.start()

    def step(self, text: str) -> None:
        if self.progress:
            self.progress.update(self.task, description=text)

    def skipped(self, rows: int) -> None:
        """Rows of a chunk finished by an earlier run."""
        if self.progress:
            self.progress.update(self.task, advance=rows)

    def chunk_done(self, marker: dict) -> None:
        rows = marker["rows_in"]
        self.tokens += marker["engine"].get("completion_tokens", 0)
        if self.progress:
            rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
            self.progress.update(self.task, advance=rows, rate=f"{rate:.0f}")

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
