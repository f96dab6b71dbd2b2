"""Stage 1 of SL-CAI: the model's first answer to each prompt."""

from __future__ import annotations

from dataclasses import dataclass, field

from cai.dialogue import TRANSCRIPT_STOPS, Style, conversation_turns, render
from cai.engine import Engine, Request, SamplingConfig
from cai.records import PromptRow, Provenance, ResponseRecord, Skipped


@dataclass
class GenerateConfig:
    model: str
    style: Style = Style.chat
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


def stop_strings(style: Style) -> tuple[str, ...]:
    return tuple(TRANSCRIPT_STOPS) if style is Style.transcript else ()


def generate_batch(
    rows: list[PromptRow], engine: Engine, config: GenerateConfig
) -> tuple[list[ResponseRecord], list[Skipped]]:
    requests = [
        Request(
            prompt=render(conversation_turns(row.prompt), config.style, "Assistant"),
            key=f"generate:{row.id}",
            stop=stop_strings(config.style),
        )
        for row in rows
    ]
    provenance = Provenance(
        model=config.model, sampling=config.sampling.to_dict(), style=config.style.value
    )
    records, skipped = [], []
    for row, out in zip(rows, engine.generate(requests, config.sampling)):
        if out is None:
            skipped.append(Skipped(id=row.id, stage="generate", reason="prompt too long for the context"))
        else:
            records.append(
                ResponseRecord(id=row.id, prompt=row.prompt, response=out.text, provenance=provenance)
            )
    return records, skipped
