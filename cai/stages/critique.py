"""Stage 2 of SL-CAI: rounds of critique and revision against principles drawn at random.

Each round draws one principle per example, asks every example for a critique in ONE engine call,
then for a revision in ONE more. The revision becomes the answer the next round critiques; the
dialogue grows round by round, as in the paper, so the prefix cache serves each step's prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cai.constitution.principles import draw
from cai.constitution.schema import LoadedConstitution
from cai.core.batch import BatchResult
from cai.core.records import Provenance, ResponseRecord, RevisionRecord, Skipped, Step
from cai.engine.engine import Engine, Failed, Request, SamplingConfig
from cai.stages.dialogue import (
    Style,
    conversation_turns,
    example_turns,
    render,
    step_turns,
)
from cai.stages.generate import stop_strings
from cai.stages.quality import QualityConfig, text_flags


@dataclass
class CritiqueConfig:
    model: str
    style: Style = Style.chat
    rounds: int = 4
    seed: int = 0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)


@dataclass
class _Example:
    record: ResponseRecord
    steps: list[Step] = field(default_factory=list)
    stopped: str | None = None


def critique_batch(
    records: list[ResponseRecord],
    engine: Engine,
    constitution: LoadedConstitution,
    config: CritiqueConfig,
) -> BatchResult:
    """Revised records, and the examples that finished no round (nothing to learn from)."""
    principles = constitution.constitution.critique_revision
    texts = {p.id: (p.critique, p.revision) for p in principles}
    few_shot = example_turns(constitution.constitution.critique_examples)
    stops = stop_strings(config.style)
    examples = [_Example(r) for r in records]

    for round_index in range(config.rounds):
        active = [e for e in examples if e.stopped is None]
        if not active:
            break
        drawn = [draw(principles, config.seed, e.record.id, round_index) for e in active]
        base = [
            few_shot
            + conversation_turns(e.record.prompt)
            + [("Assistant", e.record.response)]
            + step_turns(e.steps, texts)
            for e in active
        ]

        engine.step(f"round {round_index + 1}/{config.rounds}: critiques")
        critique_turns = [turns + [("CritiqueRequest", p.critique)] for turns, p in zip(base, drawn)]
        critiques = engine.generate(
            [
                Request(render(turns, config.style, "Critique"), f"critique:{e.record.id}:{round_index}", stops)
                for e, turns in zip(active, critique_turns)
            ],
            config.sampling,
        )

        asked = []  # (example, principle, critique, turns up to the revision request)
        for e, p, turns, c in zip(active, drawn, critique_turns, critiques):
            if isinstance(c, Failed):
                e.stopped = c.reason
            else:
                asked.append((e, p, c, turns + [("Critique", c.text), ("RevisionRequest", p.revision)]))
        engine.step(f"round {round_index + 1}/{config.rounds}: revisions")
        revisions = engine.generate(
            [
                Request(render(turns, config.style, "Revision"), f"revision:{e.record.id}:{round_index}", stops)
                for e, _, _, turns in asked
            ],
            config.sampling,
        )
        for (e, p, c, _), r in zip(asked, revisions):
            if isinstance(r, Failed):
                e.stopped = r.reason
            elif not r.text:
                e.stopped = "empty_revision"
            else:
                e.steps.append(Step(
                    principle_id=p.id, critique=c.text, revision=r.text,
                    critique_finish_reason=c.finish_reason, revision_finish_reason=r.finish_reason,
                    critique_flags=text_flags(c.text, c.finish_reason, config.quality, "critique"),
                    revision_flags=text_flags(r.text, r.finish_reason, config.quality, "revision", critique=c.text,
                                              revised=e.steps[-1].revision if e.steps else e.record.response),
                ))

    provenance = Provenance(
        model=config.model,
        sampling=config.sampling.to_dict(),
        style=config.style.value,
        constitution_sha256=constitution.sha256,
        seed=config.seed,
    )
    result = BatchResult()
    for e in examples:
        if not e.steps:
            result.errors.append(Skipped(id=e.record.id, stage="critique", reason=f"no round finished: {e.stopped}"))
            continue
        if e.stopped:
            result.counters[f"stopped early: {e.stopped}"] += 1
        result.counters.update(e.steps[-1].revision_flags)
        result.records.append(RevisionRecord(
            id=e.record.id,
            prompt=e.record.prompt,
            initial_response=e.record.response,
            steps=e.steps,
            final_response=e.steps[-1].revision,
            stopped=e.stopped,
            flags=e.steps[-1].revision_flags,
            provenance=provenance,
        ))
    return result
