"""Jobs: read a stage's input from the run folder, run the stage, write its output and manifest.

The stages themselves (cai.stages) only map records to records; this module is the executor
that moves data, so the CLI, the demo and the tests all go through the same few functions.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cai.constitution import LoadedConstitution
from cai.engine import Engine, EngineStats
from cai.errors import CaiError
from cai.export import mix_in, sft_rows
from cai.inputs import load_conversations, load_pairs, load_prompts, sha256_of
from cai.models import resolve_model
from cai.judge_eval import summarize
from cai.records import PreferenceRecord, Provenance, ResponseRecord, RevisionRecord, SampleRecord, Skipped
from cai.judge import p_x_better
from cai.run import RunDir, atomic_write, now, read_jsonl, write_jsonl
from cai.stages.critique import CritiqueConfig, critique_batch
from cai.stages.generate import GenerateConfig, generate_batch, sample_batch
from cai.stages.label import LabelConfig, label_batch

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


def _manifest_times(started: str, clock: float) -> dict:
    return {"started": started, "finished": now(), "seconds": round(time.perf_counter() - clock, 2)}


def generate(
    run: RunDir,
    prompts: Path,
    engine: Engine,
    config: GenerateConfig,
    prompt_field: str = "prompt",
    limit: int | None = None,
    stage: str = "generate",
) -> JobReport:
    """`generate` (one answer per prompt, responses.jsonl) or `sample` (config.n, samples.jsonl)."""
    batch, name = (generate_batch, "responses.jsonl") if stage == "generate" else (sample_batch, "samples.jsonl")
    started, clock, before = now(), time.perf_counter(), copy.copy(engine.stats)
    rows, warnings = load_prompts(prompts, prompt_field, limit)
    if not rows:
        raise CaiError(f"{prompts}: no usable prompts" + (f" ({warnings[0]} …)" if warnings else ""))
    for warning in warnings:
        log.warning(warning)
    records, skipped = batch(rows, engine, config)
    skipped += [Skipped(id=None, stage=stage, reason=w) for w in warnings]
    output = run.file(name)
    write_jsonl(output, records)
    _record_errors(run, stage, skipped)
    stats = engine.stats.since(before)
    run.record_stage(
        stage,
        {
            "model": config.model,
            "style": config.style.value,
            "sampling": config.sampling.to_dict(),
            "n": config.n,
            "prompts": str(prompts),
            "prompts_sha256": sha256_of(prompts),
            "prompt_field": prompt_field,
            "limit": limit,
            "rows_in": len(rows) + len(warnings),
            "rows_out": len(records),
            "skipped": [s.model_dump() for s in skipped],
            "engine": stats.to_dict(),
            **_manifest_times(started, clock),
        },
    )
    return JobReport(stage, len(rows) + len(warnings), len(records), output, skipped, stats)


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
            **_manifest_times(started, clock),
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


def _check_judge_settings(constitution: LoadedConstitution, config: LabelConfig) -> None:
    available = len(constitution.constitution.preference)
    if not available:
        raise CaiError(f"{constitution.path} has no preference principles for the judge to ask")
    if not 1 <= config.principles_per_pair <= available:
        raise CaiError(f"--principles-per-pair must be between 1 and {available} (the preference principles)")
    lo, hi = config.cot_bounds
    if not 0 <= lo <= 0.5 <= hi <= 1:
        raise CaiError("the chain-of-thought clamp must satisfy 0 <= low <= 0.5 <= high <= 1")


def _label_manifest(constitution: LoadedConstitution, config: LabelConfig, records: list[PreferenceRecord]) -> dict:
    used = Counter(j.principle_id for r in records for j in r.judgements)
    return {
        "judge_model": config.model,
        "style": config.style.value,
        **config.settings(),
        "seed": config.seed,
        "constitution": {"path": constitution.path, "sha256": constitution.sha256,
                         "few_shot_sha256": constitution.few_shot_sha256},
        "principles_used": dict(sorted(used.items())),
    }


def label(run: RunDir, engine: Engine, constitution: LoadedConstitution, config: LabelConfig) -> JobReport:
    _check_judge_settings(constitution, config)
    started, clock, before = now(), time.perf_counter(), copy.copy(engine.stats)
    samples = read_jsonl(run.require("samples.jsonl", "cai sample"), SampleRecord)
    result = label_batch(samples, engine, constitution, config)
    output = run.file("preferences.jsonl")
    write_jsonl(output, result.records)
    _record_errors(run, "label", result.skipped)
    stats = engine.stats.since(before)
    pairs = len(result.records) + len(result.skipped)
    run.record_stage(
        "label",
        {
            **_label_manifest(constitution, config, result.records),
            "rows_in": len(samples),
            "pairs": pairs + result.identical,
            "identical_pairs_dropped": result.identical,
            "pairs_too_long": len(result.skipped),
            "rows_out": len(result.records),
            "judgements": sum(len(r.judgements) for r in result.records),
            "engine": stats.to_dict(),
            **_manifest_times(started, clock),
        },
    )
    notes = [f"{result.identical} pairs of identical answers dropped"] if result.identical else []
    return JobReport("label", pairs + result.identical, len(result.records), output, result.skipped, stats, notes)


def export_prefs(run: RunDir, output: Path | None = None, min_confidence: float = 0.5) -> JobReport:
    if not 0.5 <= min_confidence <= 1:
        raise CaiError("--min-confidence must be between 0.5 and 1")
    records = read_jsonl(run.require("preferences.jsonl", "cai label"), PreferenceRecord)
    kept = [r for r in records if r.p_chosen >= min_confidence]
    output = output or run.file("prefs.jsonl")
    write_jsonl(output, kept)
    run.record_stage(
        "export_prefs",
        {"output": str(output), "min_confidence": min_confidence, "rows_in": len(records),
         "rows_out": len(kept), "finished": now()},
    )
    notes = [f"{len(records) - len(kept)} pairs below confidence {min_confidence} left out"]
    return JobReport("export prefs", len(records), len(kept), output, notes=notes)


def eval_judge(
    pairs_file: Path,
    out_dir: Path,
    engine: Engine,
    constitution: LoadedConstitution,
    config: LabelConfig,
    chosen_field: str = "chosen",
    rejected_field: str = "rejected",
    limit: int | None = None,
) -> dict:
    """Label human-judged pairs (the human's choice as x) and measure the judge against them."""
    _check_judge_settings(constitution, config)
    started, clock, before = now(), time.perf_counter(), copy.copy(engine.stats)
    pairs, warnings = load_pairs(pairs_file, chosen_field, rejected_field, limit)
    for warning in warnings:
        log.warning(warning)
    if not pairs:
        raise CaiError(f"{pairs_file}: no usable pairs" + (f" ({warnings[0]} …)" if warnings else ""))
    human = Provenance(model="human", sampling={}, style="")
    samples = [SampleRecord(id=row.id, prompt=row.prompt, responses=[c, r], provenance=human) for row, c, r in pairs]
    result = label_batch(samples, engine, constitution, config)
    bounds = config.cot_bounds if config.cot else None
    judged = result.records  # x, the first answer of each pair, is the human's choice
    summary = {
        **summarize([r.judgements for r in judged], bounds),
        "identical_pairs_dropped": result.identical,
        "pairs_too_long": len(result.skipped),
        "judge_model": config.model,
        "swap": config.swap,
        "cot": config.cot,
        "principles_per_pair": config.principles_per_pair,
    }
    run = RunDir(out_dir)
    write_jsonl(run.file("judgements.jsonl"), [
        {"id": r.id, "p_human_choice": p_x_better(r.judgements, bounds), "judgements": [j.model_dump() for j in r.judgements]}
        for r in judged
    ])
    _record_errors(run, "eval_judge", result.skipped + [Skipped(id=None, stage="eval_judge", reason=w) for w in warnings])
    atomic_write(run.file("summary.json"), lambda f: json.dump(summary, f, indent=2))
    run.record_stage(
        "eval_judge",
        {
            **_label_manifest(constitution, config, judged),
            "pairs_file": str(pairs_file),
            "pairs_sha256": sha256_of(pairs_file),
            "limit": limit,
            "summary": summary,
            "engine": engine.stats.since(before).to_dict(),
            **_manifest_times(started, clock),
        },
    )
    return summary
