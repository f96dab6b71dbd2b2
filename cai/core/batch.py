"""What every batch function returns: the records it made, the rows it could not make, counters.

A batch function takes a list of input records and an engine (plus its stage's config) and returns
one `BatchResult`, whatever the stage; the executors only move these around.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cai.core.records import Skipped


@dataclass
class BatchResult:
    records: list = field(default_factory=list)
    errors: list[Skipped] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)

    def add(self, other: BatchResult) -> None:
        self.records += other.records
        self.errors += other.errors
        self.counters.update(other.counters)
