"""Answers to prompts: one each for SL-CAI (`generate`), K each for RL-CAI (`sample`).

Both are ONE batched engine call. Each answer's sampling seed comes from its own key (prompt id
and answer number), so the same answer comes out the same however the batch is laid out. Every
answer keeps why it stopped (`finish_reason`) and its quality flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cai.core.batch import BatchResult
from cai.core.records import (
    PromptRow,
    Provenance,
    ResponseRecord,
    SampleRecord,
    Skipped,
)
from cai.engine.engine import Engine, Failed, Request, SamplingConfig
from cai.stages.dialogue import TRANSCRIPT_STOPS, Style, conversation_turns, render
from cai.stages.quality import QualityConfig, text_flags, union


@dataclass
class GenerateConfig:
    model: str
    style: Style = Style.chat
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    n: int = 1  # answers per prompt
    quality: QualityConfig = field(default_factory=QualityConfig)


def stop_strings(style: Style) -> tuple[str, ...]:
    return tuple(TRANSCRIPT_STOPS) if style is Style.transcript else ()


def sample_batch(rows: list[PromptRow], engine: Engine, config: GenerateConfig, stage: str = "sample") -> BatchResult:
    requests = [
        Request(
            prompt=render(conversation_turns(row.prompt), config.style, "Assistant"),
            key=f"{stage}:{row.id}" + (f":{k}" if config.n > 1 else ""),
            stop=stop_strings(config.style),
        )
        for row in rows
        for k in range(config.n)
    ]
    engine.step(f"{len(requests)} answers")
    outputs = engine.generate(requests, config.sampling)
    provenance = Provenance(model=config.model, sampling=config.sampling.to_dict(), style=config.style.value)
    result = BatchResult()
    for i, row in enumerate(rows):
        answers = outputs[i * config.n : (i + 1) * config.n]
        failed = [a for a in answers if isinstance(a, Failed)]
        if failed:
            result.errors.append(Skipped(id=row.id, stage=stage, reason=failed[0].reason, line=row.line))
            continue
        flags = [text_flags(a.text, a.finish_reason, config.quality, "response") for a in answers]
        result.counters.update(f for answer_flags in flags for f in answer_flags)
        result.records.append(SampleRecord(
            id=row.id, prompt=row.prompt, responses=[a.text for a in answers], provenance=provenance,
            finish_reasons=[a.finish_reason for a in answers], response_flags=flags, flags=union(flags),
        ))
    return result


def generate_batch(rows: list[PromptRow], engine: Engine, config: GenerateConfig) -> BatchResult:
    result = sample_batch(rows, engine, config, stage="generate")
    result.records = [
        ResponseRecord(id=s.id, prompt=s.prompt, response=s.responses[0], provenance=s.provenance,
                       finish_reason=s.finish_reasons[0], flags=s.response_flags[0])
        for s in result.records
    ]
    return result
