"""Exports: the files trainers read, in TRL's conversational format, without flagged rows."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cai.core.errors import CaiError
from cai.core.records import (
    Message,
    PreferenceRecord,
    PromptRow,
    Provenance,
    RevisionRecord,
    SftRow,
)
from cai.stages.judge import margin
from cai.stages.quality import DEFAULT_DROP, union

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


def blend(rows: list[R], pool: list[R], ratio: float, seed: int = 0) -> tuple[list[R], int]:
    """`rows` plus rows drawn from `pool` so that those make up `ratio` of the result, shuffled.

    Seeded, so the same inputs give the same file. Returns the rows and how many were drawn from
    `pool` (fewer than the ratio asks if the pool runs short).
    """
    if not 0 <= ratio < 1:
        raise CaiError("--mix-ratio must be at least 0 and below 1")
    rng = random.Random(seed)
    wanted = round(len(rows) * ratio / (1 - ratio))
    picked = rng.sample(pool, min(wanted, len(pool)))
    mixed = rows + picked
    rng.shuffle(mixed)
    return mixed, len(picked)


def mix_in(
    rows: list[SftRow], conversations: list[list[Message]], ratio: float, seed: int = 0
) -> tuple[list[SftRow], int]:
    """Blend helpful conversations in so that they make up `ratio` of the SFT set."""
    return blend(rows, [SftRow(messages=conversation, source="mix") for conversation in conversations], ratio, seed)


# A human label is certain (p_chosen 1.0), whose logit is infinite; its margin is the largest an AI
# label can have (`judge.margin` clamps p to 1 - 1e-6: about 13.8), so that a human pair weighs as
# much as the AI judge's most confident one in TRL's margin loss.
HUMAN_MARGIN = margin(1.0)
HUMAN = Provenance(model="human", sampling={}, style="")


def human_preferences(pairs: list[tuple[PromptRow, str, str]]) -> list[PreferenceRecord]:
    """Pairs people labelled (`load_pairs`) as hard-labelled preference rows; identical answers left out."""
    return [
        PreferenceRecord(
            id=row.id,
            prompt=row.prompt,
            chosen=[Message(role="assistant", content=chosen)],
            rejected=[Message(role="assistant", content=rejected)],
            p_chosen=1.0,
            margin=HUMAN_MARGIN,
            judgements=[],
            pair=(0, 1),
            provenance=HUMAN,
            source="human",
        )
        for row, chosen, rejected in pairs
        if chosen.strip() != rejected.strip()
    ]


def mix_prefs(
    records: list[PreferenceRecord], pairs: list[tuple[PromptRow, str, str]], ratio: float, seed: int = 0
) -> tuple[list[PreferenceRecord], int]:
    """Blend human-labelled pairs in so that they make up `ratio` of the preference set, as the paper
    trained its preference model: harmlessness from AI labels, helpfulness from human ones."""
    return blend(records, human_preferences(pairs), ratio, seed)
