"""`cai rules` as a job: the rule judge (`cai.stages.rules.rules_batch`) described as a `Stage`,
so that `cai.core.stage.execute` runs it like every other job (chunked, resumable, cached, errors
counted) on the local or the Ray executor.

Its unit differs from its input's: a row of samples.jsonl holds K responses and gives K rows of
rule_scores.jsonl, each failing alone. So its summary counts responses: rows in = the responses
read (plus any input line that could not be read), rows out + errors = rows in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path

from cai.constitution.schema import LoadedConstitution
from cai.core.errors import CaiError
from cai.core.run import RunDir
from cai.core.sources import RecordSource
from cai.core.stage import JobReport, Stage, config_settings
from cai.engine.config import EngineConfig
from cai.stages.rules import RULES_INPUTS, RulesConfig, rules_batch
from cai.workflows.jobs import constitution_settings


def rules_input(run: RunDir, kind: str | None) -> tuple[str, Path]:
    """The input `--input` names, or, without it, the one file of the run folder there is (samples
    before revisions before responses when there are several)."""
    if kind is not None:
        if kind not in RULES_INPUTS:
            raise CaiError(f"--input must be one of {', '.join(RULES_INPUTS)}, not '{kind}'")
        name, _, made_by = RULES_INPUTS[kind]
        return kind, run.require(name, made_by)
    for kind in ("samples", "revisions", "responses"):
        if run.file(RULES_INPUTS[kind][0]).is_file():
            return kind, run.file(RULES_INPUTS[kind][0])
    raise CaiError(f"{run.path} holds no samples.jsonl, revisions.jsonl or responses.jsonl: "
                   "run `cai sample`, `cai critique` or `cai generate` into it first")


def _notes(counters: Counter) -> list[str]:
    scored = counters["responses"] - counters["responses_failed"]
    return [f"{counters['responses']} responses judged against the rules: {scored} scored, "
            f"{counters['responses_failed']} failed ({counters['questions']} questions to the judge)"]


def rules_stage(run: RunDir, kind: str, path: Path, constitution: LoadedConstitution, config: RulesConfig,
                engine: EngineConfig) -> Stage:
    if not constitution.constitution.rules:
        raise CaiError(f"{constitution.path} has no rules for the judge to check")
    settings = {**config_settings(config, "judge_model"), "input": kind,
                "constitution": constitution_settings(constitution)}
    return Stage("rules", "rule_scores.jsonl", RecordSource(path, "rules", record_type=RULES_INPUTS[kind][1]),
                 partial(rules_batch, constitution=constitution, config=config), settings, engine, _notes)


def in_responses(report: JobReport) -> JobReport:
    """The stage's report counted in responses: rows in = responses read + input lines that could
    not be read, so that rows out + errors = rows in (the manifest keeps both counts)."""
    unreadable = len(report.skipped) - report.counters["responses_failed"]
    return replace(report, rows_in=report.counters["responses"] + unreadable)
