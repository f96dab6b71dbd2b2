"""The chunked jobs that call a model: generate, critique, sample, label, rules and redteam expand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from cai.cli.common import (
    COT_HIGH,
    COT_LOW,
    DROP_FLAGS,
    MAX_ERROR_RATE,
    ROUNDS,
    ChunkSize,
    ConstitutionOpt,
    Cot,
    CotMax,
    CotMin,
    DropFlags,
    Force,
    KeepFlagged,
    Limit,
    MaxErrorRate,
    NoSwap,
    PrinciplesPerPair,
    PromptField,
    RunOpt,
    Seed,
    StyleOpt,
    app,
    err,
    from_first_row,
    label_config,
    run_stage,
    summarize,
)
from cai.constitution.schema import load_constitution
from cai.core.options import (
    ENGINE,
    EXECUTOR,
    JUDGE_ENGINE,
    POLICY_ENGINE,
    QUALITY,
    SAMPLING,
    SAMPLING_DRAWS,
    SAMPLING_HOT,
    SAMPLING_REDTEAM,
    default_of,
    with_options,
)
from cai.core.records import ResponseRecord, SampleRecord
from cai.core.run import RunDir
from cai.data import DEFAULT_CONSTITUTION
from cai.engine.config import EngineConfig
from cai.engine.engine import SamplingConfig
from cai.executors import ExecutorConfig
from cai.stages.critique import CritiqueConfig
from cai.stages.dialogue import Style
from cai.stages.generate import GenerateConfig
from cai.stages.quality import QualityConfig
from cai.stages.redteam import RedTeamConfig
from cai.workflows import jobs
from cai.workflows.dedup import FilterConfig


@app.command()
@with_options(ENGINE, SAMPLING, QUALITY, EXECUTOR)
def generate(
    prompts: Annotated[Path, typer.Option(help="JSONL(.gz), JSON, CSV or Parquet prompts.")],
    run: RunOpt,
    engine: EngineConfig,
    sampling: SamplingConfig,
    quality: QualityConfig,
    executor: ExecutorConfig,
    limit: Limit = None,
    prompt_field: PromptField = "prompt",
    style: StyleOpt = Style.chat,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = MAX_ERROR_RATE,
):
    """Write the model's first answer to each prompt into RUN/responses.jsonl."""
    config = GenerateConfig(engine.model, style, sampling, quality=quality)
    stage = jobs.generate_stage(prompts, config, engine, prompt_field, limit)
    summarize([run_stage(RunDir(run), stage, executor, chunk_size, force)], max_error_rate)


@app.command()
@with_options(POLICY_ENGINE, SAMPLING_DRAWS, QUALITY, EXECUTOR)
def critique(
    run: RunOpt,
    engine: EngineConfig,
    sampling: SamplingConfig,
    quality: QualityConfig,
    executor: ExecutorConfig,
    rounds: Annotated[int, typer.Option(min=1, help="Critique/revision rounds.")] = ROUNDS,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    style: Annotated[Optional[Style], typer.Option(help="Default: the style of the responses.")] = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = MAX_ERROR_RATE,
):
    """Critique and revise RUN/responses.jsonl, round after round, into RUN/revisions.jsonl.

    The model (default: the one that wrote the responses) is --model."""
    run_dir = RunDir(run)
    loaded = load_constitution(constitution)
    engine, style = from_first_row(run_dir.require("responses.jsonl", "cai generate"), ResponseRecord, engine, style)
    config = CritiqueConfig(engine.model, style, rounds, sampling.seed, sampling, quality)
    stage = jobs.critique_stage(run_dir, loaded, config, engine)
    summarize([run_stage(run_dir, stage, executor, chunk_size, force)], max_error_rate)


@app.command()
@with_options(ENGINE, SAMPLING_HOT, QUALITY, EXECUTOR)
def sample(
    prompts: Annotated[Path, typer.Option(help="JSONL(.gz), JSON, CSV or Parquet prompts.")],
    run: RunOpt,
    engine: EngineConfig,
    sampling: SamplingConfig,
    quality: QualityConfig,
    executor: ExecutorConfig,
    n: Annotated[int, typer.Option("-n", min=2, help="Answers per prompt.")] = 2,
    limit: Limit = None,
    prompt_field: PromptField = "prompt",
    style: StyleOpt = Style.chat,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = MAX_ERROR_RATE,
):
    """Write N answers per prompt into RUN/samples.jsonl, for the AI judge to compare."""
    config = GenerateConfig(engine.model, style, sampling, n, quality)
    stage = jobs.generate_stage(prompts, config, engine, prompt_field, limit, "sample")
    summarize([run_stage(RunDir(run), stage, executor, chunk_size, force)], max_error_rate)


@app.command()
@with_options(JUDGE_ENGINE, EXECUTOR)
def label(
    run: RunOpt,
    judge_engine: EngineConfig,
    executor: ExecutorConfig,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    principles_per_pair: PrinciplesPerPair = 1,
    cot: Cot = False,
    no_swap: NoSwap = False,
    cot_min: CotMin = COT_LOW,
    cot_max: CotMax = COT_HIGH,
    style: Annotated[Optional[Style], typer.Option(help="Default: the style of the samples.")] = None,
    seed: Seed = 0,
    drop_flags: DropFlags = DROP_FLAGS,
    keep_flagged: KeepFlagged = False,
    calibration: Annotated[Optional[Path], typer.Option(help="A calibration of the judge (cai eval judge --fit-calibration) applied to its labels; the raw ones are kept as p_chosen_raw, margin_raw.")] = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = MAX_ERROR_RATE,
):
    """Label every pair of answers in RUN/samples.jsonl with the AI judge: RUN/preferences.jsonl.

    The judge (default: the model that wrote the samples) is --judge-model; pairs with a flagged
    answer are skipped unless --keep-flagged."""
    run_dir = RunDir(run)
    loaded = load_constitution(constitution)
    judge, style = from_first_row(run_dir.require("samples.jsonl", "cai sample"), SampleRecord, judge_engine, style)
    config = label_config(judge.model, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed, drop_flags, keep_flagged)
    if calibration is not None:
        from cai.metrics.calibration import load_calibration

        config.calibration, config.calibration_sha256, fitted = load_calibration(calibration)
        if fitted.get("judge_model") not in (None, judge.model):
            err.print(f"[yellow]note: {calibration} was fitted for the judge {fitted['judge_model']}, not {judge.model}[/yellow]")
    stage = jobs.label_stage(run_dir, loaded, config, judge)
    summarize([run_stage(run_dir, stage, executor, chunk_size, force)], max_error_rate)


@app.command()
@with_options(JUDGE_ENGINE, EXECUTOR)
def rules(
    run: RunOpt,
    judge_engine: EngineConfig,
    executor: ExecutorConfig,
    input_: Annotated[Optional[Literal["samples", "responses", "revisions"]], typer.Option("--input", help="Which rows to judge (default: the one in RUN; samples first).")] = None,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    style: Annotated[Optional[Style], typer.Option(help="Default: the style of the input rows.")] = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = MAX_ERROR_RATE,
):
    """Judge every response in RUN against every rule of the constitution: RUN/rule_scores.jsonl.

    The judge (default: the model that wrote the responses) is --judge-model. Rows in and out are
    responses (a sample row holds several)."""
    from cai.stages.rules import RULES_INPUTS, RulesConfig
    from cai.workflows import rules as jobs_rules

    run_dir = RunDir(run)
    loaded = load_constitution(constitution)
    kind, path = jobs_rules.rules_input(run_dir, input_)
    judge, style = from_first_row(path, RULES_INPUTS[kind][1], judge_engine, style)
    stage = jobs_rules.rules_stage(run_dir, kind, path, loaded, RulesConfig(judge.model, style), judge)
    err.print(f"rules: judging the responses of {path}", highlight=False)
    summarize([jobs_rules.in_responses(run_stage(run_dir, stage, executor, chunk_size, force))], max_error_rate)

redteam_app = typer.Typer(help="Write new red-team prompts with a model.", no_args_is_help=True)

app.add_typer(redteam_app, name="redteam")


@redteam_app.command("expand")
@with_options(ENGINE, SAMPLING_REDTEAM, EXECUTOR)
def redteam_expand(
    seeds: Annotated[Path, typer.Option(help="Seed red-team prompts, in any format cai generate reads.")],
    n: Annotated[int, typer.Option("-n", min=1, help="New prompts to write (kept after the filter).")],
    run: RunOpt,
    engine: EngineConfig,
    sampling: SamplingConfig,
    executor: ExecutorConfig,
    shots: Annotated[int, typer.Option(min=1, help="Seed prompts shown per new prompt (drawn by --seed and slot).")] = default_of(RedTeamConfig, "shots"),
    style: StyleOpt = Style.chat,
    min_chars: Annotated[int, typer.Option(min=0, help="Drop shorter prompts.")] = default_of(FilterConfig, "min_chars"),
    max_chars: Annotated[int, typer.Option(min=1, help="Drop longer prompts.")] = default_of(FilterConfig, "max_chars"),
    near_duplicate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drop prompts this similar (Jaccard of 5-character shingles) to a seed or an earlier prompt.")] = default_of(FilterConfig, "threshold"),
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = MAX_ERROR_RATE,
):
    """Write N new red-team prompts from few-shot prompts of seed prompts: RUN/prompts.jsonl.

    Exact and near duplicates (of each other and of the seeds) and prompts too short or too long
    are dropped and counted; more rounds are written until N are kept or a round keeps none."""
    from cai.workflows.redteam import expand

    config = RedTeamConfig(engine.model, style, shots, sampling.seed, sampling)
    filter_config = FilterConfig(min_chars=min_chars, max_chars=max_chars, threshold=near_duplicate)
    reports = expand(RunDir(run), seeds, n, config, engine, filter_config,
                     lambda run_dir, stage: run_stage(run_dir, stage, executor, chunk_size, force))
    summarize(reports, max_error_rate)
