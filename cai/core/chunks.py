"""Chunk files: the unit of work and of resume.

A stage's output `NAME` is made of chunks in `NAME.chunks/`: chunk i's rows in `00000i.jsonl`, then a
marker `00000i.done.json` with its ids, errors, counters and engine stats. Both are written
atomically, rows first, so a chunk is finished exactly when its marker exists, and a killed job
leaves at most one unfinished chunk, which the rerun does again from its start. The final file is
the chunks' rows in input order.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from cai.core.records import Skipped
from cai.core.run import atomic_write, json_line


def batched(items: Iterable, size: int) -> Iterator[tuple]:
    """Consecutive tuples of `size` items (itertools.batched, which Python 3.11 lacks)."""
    iterator = iter(items)
    while chunk := tuple(islice(iterator, size)):
        yield chunk


@dataclass
class ChunkWork:
    """One chunk's input: the records to do, and the rows already known to fail (bad lines, dupes)."""

    index: int
    size: int  # input rows in the chunk, good or bad
    records: list
    errors: list[Skipped] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # record id -> input line


class ChunkStore:
    def __init__(self, output: Path):
        self.output = Path(output)
        self.folder = self.output.with_name(self.output.name + ".chunks")

    def rows_path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.jsonl"

    def marker_path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.done.json"

    def is_done(self, index: int) -> bool:
        return self.marker_path(index).is_file()

    def marker(self, index: int) -> dict:
        return json.loads(self.marker_path(index).read_text())

    def write(self, work: ChunkWork, records: list, errors: list[Skipped], counters: Counter, engine: dict) -> dict:
        index = work.index
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.rows_path(index), lambda f: f.writelines(json_line(r) for r in records))
        marker = {"index": index, "rows_in": work.size, "rows": len(records), "ids": list(work.lines),
                  "errors": [e.model_dump() for e in errors], "counters": dict(counters), "engine": engine}
        atomic_write(self.marker_path(index), lambda f: json.dump(marker, f))
        return marker

    def markers(self, count: int) -> list[dict]:
        return [self.marker(i) for i in range(count)]

    def assemble(self, count: int) -> None:
        """The final file: every chunk's rows, in input order."""
        def copy(out):
            for i in range(count):
                with self.rows_path(i).open(encoding="utf-8") as f:
                    shutil.copyfileobj(f, out)
        atomic_write(self.output, copy)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.output.unlink(missing_ok=True)
