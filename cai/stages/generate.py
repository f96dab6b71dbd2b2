"""Answers to prompts: one each for SL-CAI (`generate`), K each for RL-CAI (`sample`).

Both are ONE batched engine call. Each answer's sampling seed comes from its own key (prompt id
and answer number), so the same answer comes out the same however the batch is laid out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cai.dialogue import TRANSCRIPT_STOPS, Style, conversation_turns, render
from cai.engine import Engine, Failed, Request, SamplingConfig
from cai.records import PromptRow, Provenance, ResponseRecord, SampleRecord, Skipped


@dataclass
class GenerateConfig:
    model: str
    style: Style = Style.chat
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    n: int = 1  # answers per prompt


def stop_strings(style: Style) -> tuple[str, ...]:
    return tuple(TRANSCRIPT_STOPS) if style is Style.transcript else ()


def sample_batch(
    rows: list[PromptRow], engine: Engine, config: GenerateConfig, stage: str = "sample"
) -> tuple[list[SampleRecord], list[Skipped]]:
    requests = [
        Request(
            prompt=render(conversation_turns(row.prompt), config.style, "Assistant"),
            key=f"{stage}:{row.id}" + (f":{k}" if config.n > 1 else ""),
            stop=stop_strings(config.style),
        )
        for row in rows
        for k in range(config.n)
    ]
    outputs = engine.generate(requests, config.sampling)
    provenance = Provenance(
        model=config.model, sampling=config.sampling.to_dict(), style=config.style.value
    )
    records, skipped = [], []
    for i, row in enumerate(rows):
        answers = outputs[i * config.n : (i + 1) * config.n]
        failed = [a for a in answers if isinstance(a, Failed)]
        if failed:
            skipped.append(Skipped(id=row.id, stage=stage, reason=failed[0].reason, line=row.line))
        else:
            responses = [a.text for a in answers]
            records.append(
                SampleRecord(id=row.id, prompt=row.prompt, responses=responses, provenance=provenance)
            )
    return records, skipped


def generate_batch(
    rows: list[PromptRow], engine: Engine, config: GenerateConfig
) -> tuple[list[ResponseRecord], list[Skipped]]:
    samples, skipped = sample_batch(rows, engine, config, stage="generate")
    records = [
        ResponseRecord(id=s.id, prompt=s.prompt, response=s.responses[0], provenance=s.provenance)
        for s in samples
    ]
    return records, skipped
