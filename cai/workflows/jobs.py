"""Jobs: each stage described as data (`cai.core.stage.Stage`), then run by the one `execute`.

This module only says, for each job, where its records come from, which batch function makes its
rows, and which settings decide them; `cai.core.stage.execute` does the locking, chunks, resume, errors
and manifest for all of them alike, on the local or the Ray executor. The exports, which call no
model, read a stage's output and write the files trainers read.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from functools import partial
from pathlib import Path

from cai.constitution.schema import LoadedConstitution
from cai.core.batch import BatchResult
from cai.core.errors import CaiError
from cai.core.records import (
    Judgement,
    PreferenceRecord,
    ResponseRecord,
    RevisionRecord,
    SampleRecord,
)
from cai.core.run import RunDir, atomic_write, now, read_jsonl, write_jsonl
from cai.core.sources import PairSource, PromptSource, RecordSource
from cai.core.stage import CHUNK_SIZE, JobReport, Stage, config_settings, execute
from cai.engine.config import EngineConfig
from cai.engine.engine import Engine
from cai.exports.filters import filter_prefs, mix_in, mix_prefs, sft_rows
from cai.io.inputs import NO_CHOICE_REASON, load_conversations, load_pairs, sha256_of
from cai.metrics.judge import summarize
from cai.metrics.judge_stats import analyse, cost
from cai.stages.critique import CritiqueConfig, critique_batch
from cai.stages.generate import GenerateConfig, generate_batch, sample_batch
from cai.stages.judge import p_x_better
from cai.stages.label import LabelConfig, label_batch
from cai.stages.quality import DEFAULT_DROP, FLAGS

log = logging.getLogger("cai")

__all__ = ["CHUNK_SIZE", "JobReport", "execute"]


def constitution_settings(constitution: LoadedConstitution) -> dict:
    """What a stage records of its constitution: path, hashes (its own and its few-shot files'), name."""
    return {"path": constitution.path, "sha256": constitution.sha256,
            "few_shot_sha256": constitution.few_shot_sha256, "name": constitution.constitution.name}


def _flag_notes(counters: Counter) -> list[str]:
    flags = {k: v for k, v in counters.items() if k in FLAGS}
    return [f"flagged texts: {', '.join(f'{k} {v}' for k, v in sorted(flags.items()))}"] if flags else []


def generate_stage(prompts: Path, config: GenerateConfig, engine: EngineConfig, prompt_field: str = "prompt",
                   limit: int | None = None, stage: str = "generate") -> Stage:
    """`generate` (one answer per prompt, responses.jsonl) or `sample` (config.n, samples.jsonl)."""
    batch, output = (generate_batch, "responses.jsonl") if stage == "generate" else (sample_batch, "samples.jsonl")
    settings = {**config_settings(config), "prompts": str(prompts), "prompt_field": prompt_field}
    return Stage(stage, output, PromptSource(Path(prompts), stage, limit, prompt_field),
                 partial(batch, config=config), settings, engine, _flag_notes)


def critique_stage(run: RunDir, constitution: LoadedConstitution, config: CritiqueConfig, engine: EngineConfig) -> Stage:
    source = run.require("responses.jsonl", "cai generate")
    settings = {**config_settings(config), "constitution": constitution_settings(constitution)}

    def notes(counters: Counter) -> list[str]:
        stopped = [f"{n} examples {k}" for k, n in counters.items() if k.startswith("stopped early")]
        return stopped + _flag_notes(counters)

    return Stage("critique", "revisions.jsonl", RecordSource(source, "critique", record_type=ResponseRecord),
                 partial(critique_batch, constitution=constitution, config=config), settings, engine, notes)


def _check_judge_settings(constitution: LoadedConstitution, config: LabelConfig) -> None:
    available = len(constitution.constitution.preference)
    if not available:
        raise CaiError(f"{constitution.path} has no preference principles for the judge to ask")
    if not 1 <= config.principles_per_pair <= available:
        raise CaiError(f"--principles-per-pair must be between 1 and {available} (the preference principles)")
    lo, hi = config.cot_bounds
    if not 0 <= lo <= 0.5 <= hi <= 1:
        raise CaiError("the chain-of-thought clamp must satisfy 0 <= low <= 0.5 <= high <= 1")


def _judge_settings(constitution: LoadedConstitution, config: LabelConfig) -> dict:
    return {**config_settings(config, "judge_model"), "constitution": constitution_settings(constitution)}


def _dropped_notes(counters: Counter) -> list[str]:
    notes = [f"{counters['identical_pairs_dropped']} pairs of identical answers dropped"] if counters["identical_pairs_dropped"] else []
    if counters["flagged_pairs_dropped"]:
        flags = ", ".join(f"{k.split(': ')[1]} {v}" for k, v in sorted(counters.items()) if k.startswith("flagged_pairs_dropped: "))
        notes.append(f"{counters['flagged_pairs_dropped']} pairs with a flagged answer dropped ({flags}; --keep-flagged keeps them)")
    return notes


def label_stage(run: RunDir, constitution: LoadedConstitution, config: LabelConfig, engine: EngineConfig) -> Stage:
    _check_judge_settings(constitution, config)
    source = run.require("samples.jsonl", "cai sample")
    return Stage("label", "preferences.jsonl", RecordSource(source, "label", record_type=SampleRecord),
                 partial(label_batch, constitution=constitution, config=config),
                 _judge_settings(constitution, config), engine, _dropped_notes)


def judge_eval_batch(samples: list[SampleRecord], engine: Engine, constitution: LoadedConstitution,
                     config: LabelConfig) -> BatchResult:
    """Label human-judged pairs; x, the first answer of each pair, is the human's choice."""
    result = label_batch(samples, engine, constitution, config)
    bounds = config.cot_bounds if config.cot else None
    answers = {s.id: s.responses for s in samples}
    result.records = [{"id": r.id, "p_human_choice": p_x_better(r.judgements, bounds),
                       "chars": [len(a) for a in answers[r.id.rsplit(":", 1)[0]]],  # chosen, rejected
                       "judgements": [j.model_dump() for j in r.judgements]} for r in result.records]
    return result


def eval_judge_stage(pairs: Path, constitution: LoadedConstitution, config: LabelConfig, engine: EngineConfig,
                     chosen_field: str = "chosen", rejected_field: str = "rejected", limit: int | None = None) -> Stage:
    _check_judge_settings(constitution, config)
    settings = {**_judge_settings(constitution, config), "pairs": str(pairs), "chosen_field": chosen_field,
                "rejected_field": rejected_field}
    return Stage("eval_judge", "judgements.jsonl",
                 PairSource(Path(pairs), "eval_judge", limit, chosen_field, rejected_field),
                 partial(judge_eval_batch, constitution=constitution, config=config), settings, engine, _dropped_notes)


def _judged(report: JobReport) -> tuple[list[dict], list[list[Judgement]]]:
    """eval judge's per-pair rows, and each one's judgements."""
    with report.output.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return rows, [[Judgement(**j) for j in r["judgements"]] for r in rows]


def eval_judge_calibration(report: JobReport, config: LabelConfig, method: str, folds: int, path: Path) -> dict:
    """Fit a calibration of the judge to the human choices (`cai.metrics.calibration`), write it to `path`."""
    from cai.metrics.calibration import fit_calibration, write_calibration

    _, judged = _judged(report)
    fitted = {**fit_calibration(judged, method, folds, config.seed, config.cot_bounds if config.cot else None),
              "judge_model": config.model, "swap": config.swap, "cot": config.cot}
    write_calibration(path, fitted)
    return {**fitted, "file": str(path)}


def eval_judge_summary(run: RunDir, report: JobReport, config: LabelConfig, calibration: dict | None = None) -> dict:
    """Accuracy (with its interval and kappa), position and length bias, calibration, each principle
    and the cost of the judge, from the per-pair results; with `calibration` (what
    `cai.metrics.calibration.fit_calibration` wrote), that too."""
    bounds = config.cot_bounds if config.cot else None
    rows, judged = _judged(report)
    no_choice = sum(s.reason.startswith(NO_CHOICE_REASON) for s in report.skipped)
    summary = {
        **summarize(judged, bounds),
        **analyse(rows, judged, config.seed, bounds),
        "cost": cost(len(rows), sum(map(len, judged)), report.stats, report.counters["chunk_seconds"]),
        **({"calibration": calibration} if calibration else {}),
        "identical_pairs_dropped": report.counters["identical_pairs_dropped"],
        "no_human_choice": no_choice,  # a gold set's ties and skipped pairs (cai review pull), left out
        "errors": len(report.skipped) - no_choice,
        "judge_model": config.model,
        "swap": config.swap,
        "cot": config.cot,
        "principles_per_pair": config.principles_per_pair,
    }
    atomic_write(run.file("summary.json"), lambda f: json.dump(summary, f, indent=2))
    return summary


def export_sft(
    run: RunDir,
    output: Path | None = None,
    all_rounds: bool = False,
    mix: Path | None = None,
    mix_ratio: float = 0.0,
    seed: int = 0,
    drop_flags: tuple[str, ...] = DEFAULT_DROP,
    keep_flagged: bool = False,
) -> JobReport:
    source = run.require("revisions.jsonl", "cai critique")  # before the lock: a mistyped --run is not created
    with run.locked():
        records = read_jsonl(source, RevisionRecord)
        filtered = sft_rows(records, all_rounds, drop_flags, keep_flagged)
        rows, notes = filtered.rows, [n for n in [filtered.note()] if n]
        if mix is not None:
            conversations, problems = load_conversations(mix, "export_sft")
            for p in problems:
                log.warning("%s:%s: %s", mix, p.line, p.reason)
            rows, added = mix_in(rows, conversations, mix_ratio, seed)
            notes.append(f"mixed in {added} helpful conversations from {mix}")
        output = output or run.file("sft.jsonl")
        write_jsonl(output, rows)
        run.record_stage("export_sft", {
            "output": str(output), "all_rounds": all_rounds, "mix": str(mix) if mix else None, "mix_ratio": mix_ratio,
            "drop_flags": list(drop_flags), "keep_flagged": keep_flagged, "flagged": dict(filtered.flagged),
            "left_out": filtered.left_out, "rows_in": len(records), "rows_out": len(rows), "finished": now()})
    return JobReport("export sft", len(records), len(rows), output, notes=notes)


def export_prefs(run: RunDir, output: Path | None = None, min_confidence: float = 0.5,
                 drop_flags: tuple[str, ...] = DEFAULT_DROP, keep_flagged: bool = False,
                 mix: Path | None = None, mix_ratio: float = 0.0, seed: int = 0, include: tuple[Path, ...] = ()) -> JobReport:
    """The AI-labelled pairs kept (confident enough, no flagged answer), then those of earlier
    preference sets (`include`: the pairs of earlier iterations of iterated RL-CAI), and with `mix`
    human-labelled pairs blended in as hard labels, as the paper's preference model learned helpfulness."""
    if not 0.5 <= min_confidence <= 1:
        raise CaiError("--min-confidence must be between 0.5 and 1")
    human = _human_pairs(mix) if mix else []  # read first: a bad --mix file stops before any writing
    earlier = {path: read_jsonl(path, PreferenceRecord) for path in include}
    source = run.require("preferences.jsonl", "cai label")  # before the lock: a mistyped --run is not created
    with run.locked():
        records = read_jsonl(source, PreferenceRecord)
        confident = [r for r in records if r.p_chosen >= min_confidence]
        filtered = filter_prefs(confident, drop_flags, keep_flagged)
        ai_rows = filtered.rows + [row for rows in earlier.values() for row in rows]
        rows, added = mix_prefs(ai_rows, human, mix_ratio, seed) if mix else (ai_rows, 0)
        if not rows:  # a trainer would stop on it later, further from the cause
            why = [f"; {len(records) - len(confident)} below confidence {min_confidence}"] if len(confident) < len(records) else []
            why += [f"; {filtered.note()}"] if filtered.left_out else []
            why += [" (cai label leaves out pairs with a flagged answer unless --keep-flagged)"] if not records else []
            raise CaiError(f"no pairs to export: {source} holds {len(records)} labelled pairs{''.join(why)}")
        output = output or run.file("prefs.jsonl")
        write_jsonl(output, rows)
        run.record_stage("export_prefs", {
            "output": str(output), "min_confidence": min_confidence, "drop_flags": list(drop_flags),
            "keep_flagged": keep_flagged, "flagged": dict(filtered.flagged), "mix": str(mix) if mix else None,
            "mix_sha256": sha256_of(mix) if mix else None, "mix_ratio": mix_ratio, "seed": seed, "human_rows": added,
            "included": {str(path): len(rows) for path, rows in earlier.items()},
            "rows_in": len(records), "rows_out": len(rows), "finished": now()})
    notes = [f"{len(records) - len(confident)} pairs below confidence {min_confidence} left out"]
    notes += [n for n in [filtered.note()] if n]
    notes += [f"included {len(included)} pairs of {path}" for path, included in earlier.items()]
    if mix:
        notes.append(f"mixed in {added} human-labelled pairs from {mix} ({added / max(len(rows), 1):.0%} of the rows)")
    return JobReport("export prefs", len(records), len(rows), output, notes=notes)


def _human_pairs(mix: Path) -> list:
    pairs, problems = load_pairs(mix, stage="export_prefs")
    for p in problems:
        log.warning("%s:%s: %s", mix, p.line, p.reason)
    if not pairs:
        raise CaiError(f"{mix}: no usable pairs to mix in")
    return pairs
