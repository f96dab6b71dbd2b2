"""Jobs: read a stage's input from the run folder, run the stage, write its output and manifest.

The stages themselves (cai.stages) only map records to records; this module is the executor
that moves data, so the CLI, the demo and the tests all go through the same few functions.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from cai.constitution import LoadedConstitution
from cai.engine import Engine, EngineStats
from cai.errors import CaiError
from cai.export import mix_in, sft_rows
from cai.inputs import load_conversations, load_prompts, sha256_of
from cai.models import resolve_model
from cai.records import ResponseRecord, RevisionRecord, Skipped
from cai.run import RunDir, now, read_jsonl, write_jsonl
from cai.stages.critique import CritiqueConfig, critique_batch
from cai.stages.generate import GenerateConfig, generate_batch

log = logging.getLogger("cai")


@dataclass
class JobReport:
    """What a job did, for the summary the CLI prints."""

    stage: str
    rows_in: int
    rows_out: int
    output: Path
    skipped: list[Skipped] = field(default_factory=list)
    stats: EngineStats | None = None
    notes: list[str] = field(default_factory=list)


def open_engine(model: str, **settings) -> Engine:
    log.info("loading model %s", model)
    return Engine(resolve_model(model), **settings)


def _record_errors(run: RunDir, stage: str, skipped: list[Skipped]) -> None:
    """Keep `errors.jsonl` holding this stage's latest problems next to the other stages'."""
    path = run.file("errors.jsonl")
    kept = [e for e in read_jsonl(path, Skipped) if e.stage != stage] if path.is_file() else []
    if kept or skipped:
        write_jsonl(path, kept + skipped)


def generate(
    run: RunDir,
    prompts: Path,
    engine: Engine,
    config: GenerateConfig,
    prompt_field: str = "prompt",
    limit: int | None = None,
) -> JobReport:
    started, clock, before = now(), time.perf_counter(), copy.copy(engine.stats)
    rows, warnings = load_prompts(prompts, prompt_field, limit)
    if not rows:
        raise CaiError(f"{prompts}: no usable prompts" + (f" ({warnings[0]} …)" if warnings else ""))
    for warning in warnings:
        log.warning(warning)
    records, skipped = generate_batch(rows, engine, config)
    line_of = {row.id: row.line for row in rows}
    skipped = [s.model_copy(update={"line": line_of.get(s.id)}) for s in skipped]
    skipped += [Skipped(id=None, stage="generate", reason=w) for w in warnings]
    output = run.file("responses.jsonl")
    write_jsonl(output, records)
    _record_errors(run, "generate", skipped)
    stats = engine.stats.since(before)
    run.record_stage(
        "generate",
        {
            "model": config.model,
            "style": config.style.value,
            "sampling": config.sampling.to_dict(),
            "prompts": str(prompts),
            "prompts_sha256": sha256_of(prompts),
            "prompt_field": prompt_field,
            "limit": limit,
            "rows_in": len(rows) + len(warnings),
            "rows_out": len(records),
            "skipped": [s.model_dump() for s in skipped],
            "engine": stats.to_dict(),
            "started": started,
            "finished": now(),
            "seconds": round(time.perf_counter() - clock, 2),
        },
    )
    return JobReport("generate", len(rows) + len(warnings), len(records), output, skipped, stats)


def critique(
    run: RunDir, engine: Engine, constitution: LoadedConstitution, config: CritiqueConfig
) -> JobReport:
    started, clock, before = now(), time.perf_counter(), copy.copy(engine.stats)
    records = read_jsonl(run.require("responses.jsonl", "cai generate"), ResponseRecord)
    revised = critique_batch(records, engine, constitution, config)
    output = run.file("revisions.jsonl")
    write_jsonl(output, revised)
    stopped = [
        Skipped(id=r.id, stage="critique", reason=f"stopped after {len(r.steps)} rounds: {r.stopped}")
        for r in revised
        if r.stopped
    ]
    _record_errors(run, "critique", stopped)
    stats = engine.stats.since(before)
    run.record_stage(
        "critique",
        {
            "model": config.model,
            "style": config.style.value,
            "sampling": config.sampling.to_dict(),
            "rounds": config.rounds,
            "seed": config.seed,
            "constitution": {
                "path": constitution.path,
                "sha256": constitution.sha256,
                "few_shot_sha256": constitution.few_shot_sha256,
                "name": constitution.constitution.name,
            },
            "rows_in": len(records),
            "rows_out": len(revised),
            "stopped_early": [s.model_dump() for s in stopped],
            "engine": stats.to_dict(),
            "started": started,
            "finished": now(),
            "seconds": round(time.perf_counter() - clock, 2),
        },
    )
    return JobReport("critique", len(records), len(revised), output, stopped, stats)


def export_sft(
    run: RunDir,
    output: Path | None = None,
    all_rounds: bool = False,
    mix: Path | None = None,
    mix_ratio: float = 0.0,
    seed: int = 0,
) -> JobReport:
    records = read_jsonl(run.require("revisions.jsonl", "cai critique"), RevisionRecord)
    rows = sft_rows(records, all_rounds)
    notes = []
    no_revision = sum(1 for r in records if not r.steps)
    if no_revision:
        notes.append(f"{no_revision} examples had no revision and are left out")
    if mix is not None:
        conversations, warnings = load_conversations(mix)
        for warning in warnings:
            log.warning(warning)
        rows, added = mix_in(rows, conversations, mix_ratio, seed)
        notes.append(f"mixed in {added} helpful conversations from {mix}")
    output = output or run.file("sft.jsonl")
    write_jsonl(output, rows)
    run.record_stage(
        "export_sft",
        {
            "output": str(output),
            "all_rounds": all_rounds,
            "mix": str(mix) if mix else None,
            "mix_ratio": mix_ratio,
            "rows_in": len(records),
            "rows_out": len(rows),
            "finished": now(),
        },
    )
    return JobReport("export sft", len(records), len(rows), output, notes=notes)
