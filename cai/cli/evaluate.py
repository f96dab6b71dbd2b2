"""`cai eval judge|pm|rules|policies`: measure judges, preference models, rule models and policies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from cai.cli.common import (
    COT_HIGH,
    COT_LOW,
    MAX_ERROR_RATE,
    ChunkSize,
    ConstitutionOpt,
    Cot,
    CotMax,
    CotMin,
    Force,
    Limit,
    MaxErrorRate,
    NoSwap,
    PrinciplesPerPair,
    PromptField,
    Seed,
    StyleOpt,
    app,
    child_flags,
    err,
    label_config,
    out,
    run_stage,
    summarize,
)
from cai.constitution.schema import load_constitution
from cai.core.errors import CaiError
from cai.core.options import (
    EXECUTOR,
    JUDGE_ENGINE,
    POLICIES_ENGINE,
    QUALITY,
    SAMPLING,
    SAMPLING_DRAWS,
    with_options,
)
from cai.core.run import RunDir
from cai.data import DEFAULT_CONSTITUTION
from cai.engine.config import EngineConfig
from cai.engine.engine import SamplingConfig
from cai.engine.models import DEFAULT_MODEL
from cai.executors import ExecutorConfig
from cai.stages.dialogue import Style
from cai.stages.quality import QualityConfig
from cai.workflows import jobs

eval_app = typer.Typer(help="Measure judges and preference models against labels.", no_args_is_help=True)

app.add_typer(eval_app, name="eval")


@eval_app.command("judge")
@with_options(JUDGE_ENGINE, EXECUTOR)
def eval_judge(
    pairs: Annotated[Path, typer.Option(help="Pairs humans judged (hh-rlhf chosen/rejected by default).")],
    judge_engine: EngineConfig,
    executor: ExecutorConfig,
    chosen_field: Annotated[str, typer.Option(help="The field of the answer humans preferred.")] = "chosen",
    rejected_field: Annotated[str, typer.Option(help="The field of the other answer.")] = "rejected",
    limit: Limit = None,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    principles_per_pair: PrinciplesPerPair = 1,
    cot: Cot = False,
    no_swap: NoSwap = False,
    cot_min: CotMin = COT_LOW,
    cot_max: CotMax = COT_HIGH,
    style: StyleOpt = Style.chat,
    seed: Seed = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for per-pair results.")] = Path("runs/eval-judge"),
    fit_calibration: Annotated[Optional[Path], typer.Option(help="Fit a calibration of the judge's labels to the human choices and write it here (JSON, or YAML for .yaml), for cai label --calibration.")] = None,
    calibration_method: Annotated[Literal["temperature", "platt"], typer.Option(
        help="temperature: p' = sigmoid(logit(p)/T); platt: sigmoid(a·logit(p)+b), b also corrects position bias.")] = "temperature",
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds for the calibration's held-out ECE.")] = 5,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
):
    """Run the judge on human-labelled pairs and print accuracy (with its interval and kappa),
    position and length bias, calibration, each principle's accuracy and the cost, as JSON."""
    loaded = load_constitution(constitution)
    judge_engine.model = judge_engine.model or DEFAULT_MODEL
    config = label_config(judge_engine.model, style, principles_per_pair, cot, no_swap, cot_min, cot_max, seed)
    stage = jobs.eval_judge_stage(pairs, loaded, config, judge_engine, chosen_field, rejected_field, limit)
    run_dir = RunDir(out_dir)
    with run_dir.locked():  # the summary too: the whole job holds the folder
        report = run_stage(run_dir, stage, executor, chunk_size, force)
        fitted = jobs.eval_judge_calibration(report, config, calibration_method, folds, fit_calibration) if fit_calibration else None
        summary = jobs.eval_judge_summary(run_dir, report, config, fitted)
    print(json.dumps(summary, indent=2))
    if fit_calibration:
        err.print(f"calibration ({calibration_method}): {fit_calibration}")
    err.print(f"per-pair results: {report.output}")


@eval_app.command("pm")
def eval_pm(
    model: Annotated[str, typer.Option(help="The preference model.")],
    pairs: Annotated[Path, typer.Option(help="Labelled pairs (hh-rlhf chosen/rejected by default).")],
    chosen_field: Annotated[str, typer.Option(help="The field of the preferred answer.")] = "chosen",
    rejected_field: Annotated[str, typer.Option(help="The field of the other answer.")] = "rejected",
    limit: Limit = None,
):
    """Accuracy of a preference model on labelled pairs, as JSON."""
    from cai.train.preference import eval_pm as run

    print(json.dumps(run(model, pairs, chosen_field, rejected_field, limit), indent=2))


@eval_app.command("rules")
@with_options(JUDGE_ENGINE)
def eval_rules(
    data: Annotated[Path, typer.Option(help="Labelled rows: prompt, completion, rule, label (e.g. cai export rules --heldout).")],
    judge_engine: EngineConfig,
    model: Annotated[Optional[str], typer.Option(help="The rule model to measure (or --judge-model, to measure the judge).")] = None,
    style: StyleOpt = Style.chat,
    limit: Limit = None,
):
    """Agreement (p > 0.5 on the label's side) and calibration (ECE) of a rule model or the judge, as JSON."""
    from cai.train.rules import eval_judge_rules
    from cai.train.rules import eval_rules as run_eval

    if (model is None) == (judge_engine.model is None):
        raise CaiError("give one of --model (a rule model) or --judge-model (the judge)")
    if model is not None:
        summary = run_eval(model, data, limit)
    else:
        summary = eval_judge_rules(data, judge_engine.open(), style, limit)
    print(json.dumps(summary, indent=2))


def _answer_in_subprocess(policy, run_dir: RunDir, options: list[str]) -> None:
    """`cai generate OPTIONS` for one policy in a fresh process, as a user would run it: a process
    holds one in-process vLLM engine at most (two break each other), and this one may hold the judge's."""
    import subprocess

    from cai.core.children import cai_env

    argv = [sys.executable, "-m", "cai", *child_flags(), "generate", "--run", str(run_dir.path),
            "--model", policy.model, *SAMPLING.argv(policy.sampling), *options]
    err.print(f"policy {policy.name}: {' '.join(argv[1:])}", highlight=False, markup=False)
    code = subprocess.run(argv, env=cai_env()).returncode
    if code:
        raise CaiError(f"policy {policy.name}'s answers failed (cai generate exited {code}); {run_dir.path} keeps "
                       "every finished chunk: run the same command again to resume")


@eval_app.command("policies")
@with_options(POLICIES_ENGINE, JUDGE_ENGINE, SAMPLING_DRAWS, QUALITY, EXECUTOR)
def eval_policies(
    prompts: Annotated[Path, typer.Option(help="Held-out prompts, in any format cai generate reads.")],
    policy: Annotated[list[str], typer.Option("--policy", help="NAME=MODEL[,KEY=VALUE…] (repeatable, two or more); KEY a sampling setting of this policy's own, e.g. temperature=1.0. The first policy anchors Elo at 0.")],
    engine: EngineConfig,
    judge_engine: EngineConfig,
    sampling: SamplingConfig,
    quality: QualityConfig,
    executor: ExecutorConfig,
    tags: Annotated[str, typer.Option(help="Comma-separated principle tags: one score per tag.")] = "harmless,helpful",
    principles_per_comparison: Annotated[int, typer.Option(min=1, help="Principles of a tag drawn per prompt and averaged.")] = 1,
    limit: Limit = None,
    prompt_field: PromptField = "prompt",
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    style: StyleOpt = Style.chat,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the answers, comparisons, eval.json and plots.")] = Path("runs/eval-policies"),
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = MAX_ERROR_RATE,
):
    """Every policy answers every prompt, the judge compares every pair of answers in both orders:
    win rates and Elo with 95% intervals per tag, in OUT/eval.json, printed and plotted.

    A policy whose engine is the judge's answers in this process (one engine serves both); any other
    answers in a `cai generate` subprocess of its own. The judge is --judge-model (default: the default model)."""
    from dataclasses import replace

    from cai.core.stage import stage_status
    from cai.metrics.elo import print_tables
    from cai.stages.compare import CompareConfig
    from cai.workflows import policies as jobs_policies

    loaded = load_constitution(constitution)
    judge_engine.model = judge_engine.model or DEFAULT_MODEL
    config = CompareConfig(judge_engine.model, [t.strip() for t in tags.split(",") if t.strip()], style,
                           principles_per_comparison, sampling.seed)
    jobs_policies.check_tags(loaded, config)
    policies = jobs_policies.parse_policies(policy, sampling)
    out_run = RunDir(out_dir)
    reports = []
    with out_run.locked():
        stages = {p.name: jobs_policies.answer_stage(p, prompts, engine, style, quality, prompt_field, limit) for p in policies}
        options = ["--prompts", str(prompts), "--prompt-field", prompt_field, "--style", style.value,
                   "--chunk-size", str(chunk_size), "--max-error-rate", str(max_error_rate),
                   *(["--limit", str(limit)] if limit else []), *(["--force"] if force else []),
                   *POLICIES_ENGINE.argv(engine), *QUALITY.argv(quality), *EXECUTOR.argv(executor)]
        # other engines first: on a GPU, this process's engine would leave no memory for theirs
        for p in sorted(policies, key=lambda p: stages[p.name].engine == judge_engine):
            run_dir, stage = jobs_policies.policy_run(out_run, p), stages[p.name]
            if stage.engine == judge_engine:
                reports.append(replace(run_stage(run_dir, stage, executor, chunk_size, force), stage=f"generate {p.name}"))
            elif stage_status(run_dir, stage, chunk_size) != "done":
                _answer_in_subprocess(p, run_dir, options)
            else:
                err.print(f"policy {p.name}: answered before, in {run_dir.file('responses.jsonl')}", highlight=False)
        answers, notes = jobs_policies.join_answers(out_run, policies)
        for note in notes:
            err.print(f"[yellow]{note}[/yellow]", highlight=False)
        report = run_stage(out_run, jobs_policies.compare_stage(out_run, answers, policies, loaded, config, judge_engine),
                            executor, chunk_size, force)
        stats = jobs_policies.finish(out_run, report, policies, config, prompts, limit)
    summarize(reports + [report], max_error_rate)
    print_tables(stats, out)
    out.print(f"eval policies: {out_run.file('eval.json')}, plots in {out_run.path}")
