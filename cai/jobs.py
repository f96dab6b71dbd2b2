"""Jobs: read a stage's input, run the stage over it chunk by chunk, write its output and manifest.

The stages themselves (cai.stages) only map records to records; this module is the executor that
moves data, so the CLI, the demo and the tests all go through the same few functions.

Every job is safe to kill and rerun:
- Inputs are cut into fixed chunks (`chunk_size` examples). Each chunk's rows are appended to
  `NAME.partial` and fsync'ed; the finished file is renamed to `NAME` at the end, so a reader never
  sees half a file.
- Every model request goes through the run's request cache (`cache.sqlite`). A rerun replays the
  chunks from the start: what finished comes from the cache, and what did not is sent in exactly
  the batches an uninterrupted run would have sent, so the output is the same, byte for byte.
- The manifest holds a fingerprint of each stage's settings and inputs; a rerun with other
  settings into the same run folder is refused, or with `force` starts that stage afresh.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cai.cache import RequestCache
from cai.constitution import LoadedConstitution
from cai.engine import Engine, EngineStats
from cai.errors import CaiError
from cai.export import mix_in, sft_rows
from cai.inputs import load_conversations, load_pairs, load_prompts, sha256_of
from cai.judge import p_x_better
from cai.judge_eval import summarize
from cai.models import resolve_model
from cai.records import Judgement, PreferenceRecord, Provenance, ResponseRecord, RevisionRecord, SampleRecord, Skipped
from cai.run import RunDir, atomic_write, json_line, now, read_jsonl, write_jsonl
from cai.stages.critique import CritiqueConfig, critique_batch
from cai.stages.generate import GenerateConfig, generate_batch, sample_batch
from cai.stages.label import LabelConfig, label_batch

log = logging.getLogger("cai")

CHUNK_SIZE = 512


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

    @property
    def error_rate(self) -> float:
        return len(self.skipped) / self.rows_in if self.rows_in else 0.0


def open_engine(model: str, **settings) -> Engine:
    log.info("loading model %s", model)
    path = resolve_model(model)
    try:
        return Engine(path, **settings)
    except Exception as e:  # noqa: BLE001 - vLLM raises many kinds; the user needs one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CaiError(f"could not load model '{model}': {reason}") from e


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _begin(run: RunDir, stage: str, outputs: Sequence[str], settings: dict, force: bool) -> float:
    """Refuse to mix results of other settings; record the stage as running. Returns a clock."""
    settings = json.loads(json.dumps(settings, default=str))  # compare as the manifest stores it
    previous = run.manifest()["stages"].get(stage)
    files = [run.file(name + suffix) for name in outputs for suffix in ("", ".partial")]
    if previous and previous.get("fingerprint") != fingerprint(settings) and any(f.exists() for f in files):
        if not force:
            changed = sorted(k for k in settings if previous.get(k) != settings[k]) or ["inputs"]
            raise CaiError(
                f"{run.path} already holds '{stage}' output made with other settings "
                f"({', '.join(changed)}): use another --run folder, or --force to redo '{stage}'"
            )
        log.warning("--force: starting '%s' afresh in %s", stage, run.path)
        for f in files:
            f.unlink(missing_ok=True)
    run.record_stage(stage, {**settings, "fingerprint": fingerprint(settings), "status": "running", "started": now()})
    return time.perf_counter()


def _finish(run: RunDir, stage: str, clock: float, info: dict) -> None:
    entry = run.manifest()["stages"][stage]
    run.record_stage(
        stage,
        {**entry, **info, "status": "done", "finished": now(), "seconds": round(time.perf_counter() - clock, 2)},
    )


def _use_cache(run: RunDir, engine: Engine) -> EngineStats:
    """Point the engine at this run's request cache; returns its stats so far (for the delta)."""
    path = run.file("cache.sqlite").resolve()
    if engine.cache is None or engine.cache.path != path:
        engine.cache = RequestCache(path)
    return copy.copy(engine.stats)


def _write_chunks(
    run: RunDir, stage: str, name: str, inputs: list, process: Callable, chunk_size: int
) -> tuple[int, list[Skipped]]:
    """Run `process` over fixed chunks, appending each chunk's rows; rename when all are done."""
    if chunk_size < 1:
        raise CaiError("--chunk-size must be at least 1")
    final, partial = run.file(name), run.file(name + ".partial")
    written, skipped = 0, []
    starts = range(0, len(inputs), chunk_size)
    with partial.open("w", encoding="utf-8") as f:
        for n, start in enumerate(starts, 1):
            records, errors = process(inputs[start : start + chunk_size])
            f.writelines(json_line(r) for r in records)
            f.flush()
            os.fsync(f.fileno())
            written += len(records)
            skipped += errors
            log.info("%s: chunk %d/%d, %d rows written, %d errors", stage, n, len(starts), written, len(skipped))
    os.replace(partial, final)
    return written, skipped


def _record_errors(run: RunDir, stage: str, skipped: list[Skipped]) -> None:
    """Keep `errors.jsonl` holding this stage's latest problems next to the other stages'."""
    path = run.file("errors.jsonl")
    kept = [e for e in read_jsonl(path, Skipped) if e.stage != stage] if path.is_file() else []
    if kept or skipped:
        write_jsonl(path, kept + skipped)


def _with_lines(skipped: list[Skipped], lines: dict[str, int]) -> list[Skipped]:
    return [s if s.line is not None else s.model_copy(update={"line": lines.get(s.id)}) for s in skipped]


def generate(
    run: RunDir,
    prompts: Path,
    engine: Engine,
    config: GenerateConfig,
    prompt_field: str = "prompt",
    limit: int | None = None,
    stage: str = "generate",
    chunk_size: int = CHUNK_SIZE,
    force: bool = False,
) -> JobReport:
    """`generate` (one answer per prompt, responses.jsonl) or `sample` (config.n, samples.jsonl)."""
    batch, name = (generate_batch, "responses.jsonl") if stage == "generate" else (sample_batch, "samples.jsonl")
    settings = {
        "model": config.model,
        "style": config.style.value,
        "sampling": config.sampling.to_dict(),
        "n": config.n,
        "prompts_sha256": sha256_of(prompts) if Path(prompts).is_file() else None,
        "prompt_field": prompt_field,
        "limit": limit,
        "chunk_size": chunk_size,
    }
    rows, problems = load_prompts(prompts, prompt_field, limit, stage)
    if not rows:
        raise CaiError(f"{prompts}: no usable prompts" + (f" (line {problems[0].line}: {problems[0].reason} …)" if problems else ""))
    for p in problems:
        log.warning("%s:%s: %s", prompts, p.line, p.reason)
    clock = _begin(run, stage, [name], settings, force)
    before = _use_cache(run, engine)
    written, skipped = _write_chunks(run, stage, name, rows, lambda chunk: batch(chunk, engine, config), chunk_size)
    skipped = _with_lines(skipped, {r.id: r.line for r in rows}) + problems
    _record_errors(run, stage, skipped)
    stats = engine.stats.since(before)
    rows_in = len(rows) + len(problems)
    _finish(run, stage, clock, {"prompts": str(prompts), "rows_in": rows_in, "rows_out": written,
                                "errors": len(skipped), "engine": stats.to_dict()})
    return JobReport(stage, rows_in, written, run.file(name), skipped, stats)


def critique(
    run: RunDir,
    engine: Engine,
    constitution: LoadedConstitution,
    config: CritiqueConfig,
    chunk_size: int = CHUNK_SIZE,
    force: bool = False,
) -> JobReport:
    source = run.require("responses.jsonl", "cai generate")
    settings = {
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
        "responses_sha256": sha256_of(source),
        "chunk_size": chunk_size,
    }
    records = read_jsonl(source, ResponseRecord)
    clock = _begin(run, "critique", ["revisions.jsonl"], settings, force)
    before = _use_cache(run, engine)
    stopped = Counter()  # why examples ended before their last round, counted as chunks finish

    def process(chunk):
        revised, skipped = critique_batch(chunk, engine, constitution, config)
        stopped.update(r.stopped for r in revised if r.stopped)
        return revised, skipped

    written, skipped = _write_chunks(run, "critique", "revisions.jsonl", records, process, chunk_size)
    _record_errors(run, "critique", skipped)
    stats = engine.stats.since(before)
    _finish(run, "critique", clock, {"rows_in": len(records), "rows_out": written, "errors": len(skipped),
                                     "stopped_early": dict(stopped), "engine": stats.to_dict()})
    notes = [f"{n} examples stopped early: {reason}" for reason, n in stopped.items()]
    return JobReport("critique", len(records), written, run.file("revisions.jsonl"), skipped, stats, notes)


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
    if mix is not None:
        conversations, problems = load_conversations(mix, "export_sft")
        for p in problems:
            log.warning("%s:%s: %s", mix, p.line, p.reason)
        rows, added = mix_in(rows, conversations, mix_ratio, seed)
        notes.append(f"mixed in {added} helpful conversations from {mix}")
    output = output or run.file("sft.jsonl")
    write_jsonl(output, rows)
    run.record_stage(
        "export_sft",
        {"output": str(output), "all_rounds": all_rounds, "mix": str(mix) if mix else None,
         "mix_ratio": mix_ratio, "rows_in": len(records), "rows_out": len(rows), "finished": now()},
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


def _judge_settings(constitution: LoadedConstitution, config: LabelConfig, chunk_size: int) -> dict:
    return {
        "judge_model": config.model,
        "style": config.style.value,
        **config.settings(),
        "seed": config.seed,
        "constitution": {"path": constitution.path, "sha256": constitution.sha256,
                         "few_shot_sha256": constitution.few_shot_sha256},
        "chunk_size": chunk_size,
    }


def label(
    run: RunDir,
    engine: Engine,
    constitution: LoadedConstitution,
    config: LabelConfig,
    chunk_size: int = CHUNK_SIZE,
    force: bool = False,
) -> JobReport:
    _check_judge_settings(constitution, config)
    source = run.require("samples.jsonl", "cai sample")
    settings = {**_judge_settings(constitution, config, chunk_size), "samples_sha256": sha256_of(source)}
    samples = read_jsonl(source, SampleRecord)
    clock = _begin(run, "label", ["preferences.jsonl"], settings, force)
    before = _use_cache(run, engine)
    identical, used = 0, Counter()  # counted as chunks finish, not by reading the output back

    def process(chunk):
        nonlocal identical
        result = label_batch(chunk, engine, constitution, config)
        identical += result.identical
        used.update(j.principle_id for r in result.records for j in r.judgements)
        return result.records, result.skipped

    written, skipped = _write_chunks(run, "label", "preferences.jsonl", samples, process, chunk_size)
    _record_errors(run, "label", skipped)
    stats = engine.stats.since(before)
    pairs = written + len(skipped) + identical
    _finish(run, "label", clock, {
        "rows_in": len(samples), "pairs": pairs, "identical_pairs_dropped": identical,
        "errors": len(skipped), "rows_out": written, "principles_used": dict(sorted(used.items())),
        "judgements": sum(used.values()), "engine": stats.to_dict(),
    })
    notes = [f"{identical} pairs of identical answers dropped"] if identical else []
    return JobReport("label", pairs - identical, written, run.file("preferences.jsonl"), skipped, stats, notes)


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
    chunk_size: int = CHUNK_SIZE,
    force: bool = False,
) -> dict:
    """Label human-judged pairs (the human's choice as x) and measure the judge against them."""
    _check_judge_settings(constitution, config)
    pairs, problems = load_pairs(pairs_file, chosen_field, rejected_field, limit, "eval_judge")
    for p in problems:
        log.warning("%s:%s: %s", pairs_file, p.line, p.reason)
    if not pairs:
        raise CaiError(f"{pairs_file}: no usable pairs" + (f" (line {problems[0].line}: {problems[0].reason} …)" if problems else ""))
    run = RunDir(out_dir)
    settings = {
        **_judge_settings(constitution, config, chunk_size),
        "pairs_sha256": sha256_of(pairs_file), "chosen_field": chosen_field,
        "rejected_field": rejected_field, "limit": limit,
    }
    clock = _begin(run, "eval_judge", ["judgements.jsonl"], settings, force)
    before = _use_cache(run, engine)
    human = Provenance(model="human", sampling={}, style="")
    samples = [SampleRecord(id=row.id, prompt=row.prompt, responses=[c, r], provenance=human) for row, c, r in pairs]
    bounds = config.cot_bounds if config.cot else None
    identical = 0

    def process(chunk):
        nonlocal identical
        result = label_batch(chunk, engine, constitution, config)
        identical += result.identical
        # x, the first answer of each pair, is the human's choice
        rows = [{"id": r.id, "p_human_choice": p_x_better(r.judgements, bounds),
                 "judgements": [j.model_dump() for j in r.judgements]} for r in result.records]
        return rows, result.skipped

    _, skipped = _write_chunks(run, "eval_judge", "judgements.jsonl", samples, process, chunk_size)
    _record_errors(run, "eval_judge", skipped + problems)
    judged = [json.loads(line) for line in run.file("judgements.jsonl").read_text().splitlines()]
    summary = {
        **summarize([[Judgement(**j) for j in row["judgements"]] for row in judged], bounds),
        "identical_pairs_dropped": identical,
        "errors": len(skipped) + len(problems),
        "judge_model": config.model,
        "swap": config.swap,
        "cot": config.cot,
        "principles_per_pair": config.principles_per_pair,
    }
    atomic_write(run.file("summary.json"), lambda f: json.dump(summary, f, indent=2))
    _finish(run, "eval_judge", clock, {"pairs_file": str(pairs_file), "summary": summary,
                                       "engine": engine.stats.since(before).to_dict()})
    return summary
