"""Where a stage's records come from, read as a stream.

A source yields raw rows `(line, raw)` cheaply (a JSONL line stays bytes) and parses one on demand
into the stage's input record, or into a `Skipped` naming the line and the reason. The executor
cuts the raw rows into chunks and parses only the chunks it has still to do, so a resumed job
passes over finished rows without reading them as records, and memory does not grow with the input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from pydantic import BaseModel, ValidationError

from cai.core.records import PromptRow, Provenance, SampleRecord, Skipped
from cai.io.inputs import (
    InputError,
    pair_row,
    parse_raw,
    prompt_row,
    raw_rows,
    sha256_of,
)


@dataclass(frozen=True)
class Source(ABC):
    path: Path
    stage: str
    limit: int | None = None  # the first N rows of the file

    def raw(self) -> Iterator[tuple[int, object]]:
        return islice(raw_rows(self.path), self.limit)

    def count(self) -> int:
        return sum(1 for _ in self.raw())

    def sha256(self) -> str:
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        return sha256_of(self.path)

    @abstractmethod
    def parse(self, line: int, raw) -> BaseModel | Skipped:
        """One raw row as the stage's input record, or the reason it is not one."""


@dataclass(frozen=True)
class PromptSource(Source):
    """Prompts in any format `cai generate` reads."""

    prompt_field: str = "prompt"

    def parse(self, line: int, raw) -> PromptRow | Skipped:
        return prompt_row(parse_raw(raw, self.path, line), line, self.prompt_field, self.stage)


@dataclass(frozen=True)
class RecordSource(Source):
    """An earlier stage's output (e.g. responses.jsonl), one pydantic record per line. A line that
    is cut off or invalid is a data error like any other."""

    record_type: type[BaseModel] = BaseModel

    def parse(self, line: int, raw) -> BaseModel | Skipped:
        row = parse_raw(raw, self.path, line)
        if isinstance(row, InputError):
            return Skipped(id=None, stage=self.stage, reason=str(row).split(": ", 1)[-1], line=line)
        try:
            return self.record_type.model_validate(row)
        except ValidationError as e:
            first = e.errors()[0]
            reason = f"not a {self.record_type.__name__}: {'.'.join(map(str, first['loc']))}: {first['msg']}"
            return Skipped(id=row.get("id") if isinstance(row.get("id"), str) else None, stage=self.stage,
                           reason=reason, line=line)


HUMAN = Provenance(model="human", sampling={}, style="")


@dataclass(frozen=True)
class PairSource(Source):
    """Pairs humans judged, as samples whose first answer is the human's choice."""

    chosen_field: str = "chosen"
    rejected_field: str = "rejected"

    def parse(self, line: int, raw) -> SampleRecord | Skipped:
        parsed = pair_row(parse_raw(raw, self.path, line), line, self.chosen_field, self.rejected_field, self.stage)
        if isinstance(parsed, Skipped):
            return parsed
        row, chosen, rejected = parsed
        return SampleRecord(id=row.id, prompt=row.prompt, responses=[chosen, rejected], provenance=HUMAN)
