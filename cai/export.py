"""Exports: the files trainers read, in TRL's conversational format."""

from __future__ import annotations

import random

from cai.errors import CaiError
from cai.records import Message, RevisionRecord, SftRow


def sft_rows(records: list[RevisionRecord], all_rounds: bool = False) -> list[SftRow]:
    """One row per example (its final revision), or one per round's revision with `all_rounds`.

    Examples whose rounds never produced a revision carry nothing to learn and are left out.
    """
    rows = []
    for record in records:
        first = 1 if all_rounds else len(record.steps)
        for round_number in range(max(first, 1), len(record.steps) + 1):
            step = record.steps[round_number - 1]
            rows.append(
                SftRow(
                    messages=record.prompt + [Message(role="assistant", content=step.revision)],
                    id=record.id,
                    round=round_number,
                    principle_ids=[s.principle_id for s in record.steps[:round_number]],
                    constitution_sha256=record.provenance.constitution_sha256,
                    model=record.provenance.model,
                )
            )
    return rows


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
