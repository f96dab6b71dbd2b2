"""Exports: the files trainers read, in TRL's conversational format, without flagged rows."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cai.errors import CaiError
from cai.quality import DEFAULT_DROP, union
from cai.records import Message, PreferenceRecord, RevisionRecord, SftRow

R = TypeVar("R")


@dataclass
class Filtered(Generic[R]):
    """The rows kept by a flag filter, and what it saw: how many rows were flagged, per flag.

    A row is flagged when it carries a flag in `drop_flags`; it is left out unless `keep_flagged`.
    `flagged` counts a row once under each of its flags in `drop_flags`, so a row with two of them
    counts under both there but once in `flagged_rows`.
    """

    drop_flags: tuple[str, ...] = DEFAULT_DROP
    keep_flagged: bool = False
    rows: list[R] = field(default_factory=list)
    flagged: Counter = field(default_factory=Counter)
    flagged_rows: int = 0

    @property
    def left_out(self) -> int:
        return 0 if self.keep_flagged else self.flagged_rows

    def offer(self, row: R, flags: list[str]) -> None:
        dropping = [f for f in flags if f in self.drop_flags]
        if dropping:
            self.flagged.update(dropping)
            self.flagged_rows += 1
        if not dropping or self.keep_flagged:
            self.rows.append(row)

    def note(self) -> str | None:
        """One line for the summary, e.g. "3 flagged rows left out: truncated 2, meta 1"; None if none."""
        if not self.flagged_rows:
            return None
        counts = ", ".join(f"{f} {self.flagged[f]}" for f in union([self.flagged]))
        fate = "kept (--keep-flagged)" if self.keep_flagged else "left out"
        return f"{self.flagged_rows} flagged rows {fate}: {counts}"


def sft_rows(
    records: list[RevisionRecord],
    all_rounds: bool = False,
    drop_flags: Iterable[str] = DEFAULT_DROP,
    keep_flagged: bool = False,
) -> Filtered[SftRow]:
    """One row per example (its final revision), or one per round's revision with `all_rounds`.

    A revision that carries a flag in `drop_flags` is left out unless `keep_flagged` (kept rows
    carry their flags); with `all_rounds` each round's revision is judged on its own. Examples
    whose rounds never produced a revision carry nothing to learn and are left out, uncounted.
    """
    result: Filtered[SftRow] = Filtered(tuple(drop_flags), keep_flagged)
    for record in records:
        first = 1 if all_rounds else len(record.steps)
        for round_number in range(max(first, 1), len(record.steps) + 1):
            step = record.steps[round_number - 1]
            row = SftRow(
                messages=record.prompt + [Message(role="assistant", content=step.revision)],
                id=record.id,
                round=round_number,
                principle_ids=[s.principle_id for s in record.steps[:round_number]],
                constitution_sha256=record.provenance.constitution_sha256,
                model=record.provenance.model,
                flags=step.revision_flags,
            )
            result.offer(row, step.revision_flags)
    return result


def filter_prefs(
    records: list[PreferenceRecord], drop_flags: Iterable[str] = DEFAULT_DROP, keep_flagged: bool = False
) -> Filtered[PreferenceRecord]:
    """The preference rows whose answers carry no flag in `drop_flags` (all of them with `keep_flagged`)."""
    result: Filtered[PreferenceRecord] = Filtered(tuple(drop_flags), keep_flagged)
    for record in records:
        result.offer(record, record.flags)
    return result


def mix_in(
    rows: list[SftRow], conversations: list[list[Message]], ratio: float, seed: int = 0
) -> tuple[list[SftRow], int]:
    """Blend helpful conversations in so that they make up `ratio` of the result, then shuffle.

    Returns the rows and how many conversations were added (fewer if the file ran short).
    """
    if not 0 <= ratio < 1:
        raise CaiError("--mix-ratio must be at least 0 and below 1")
    rng = random.Random(seed)
    wanted = round(len(rows) * ratio / (1 - ratio))
    picked = rng.sample(conversations, min(wanted, len(conversations)))
    mixed = rows + [SftRow(messages=conversation, source="mix") for conversation in picked]
    rng.shuffle(mixed)
    return mixed, len(picked)
