"""`cai fit`: models fitted to people's choices; today the rules' weights (`cai fit rules`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cai.cli.common import (
    MAX_ERROR_RATE,
    ChunkSize,
    ConstitutionOpt,
    Force,
    Limit,
    MaxErrorRate,
    StyleOpt,
    app,
    out,
    run_stage,
    summarize,
)
from cai.core.options import EXECUTOR, JUDGE_ENGINE, with_options
from cai.data import DEFAULT_CONSTITUTION
from cai.engine.config import EngineConfig
from cai.engine.models import DEFAULT_MODEL
from cai.executors import ExecutorConfig
from cai.stages.dialogue import Style
from cai.workflows import jobs

fit_app = typer.Typer(help="Fit models of people's choices: the rules' weights.", no_args_is_help=True)
app.add_typer(fit_app, name="fit")


@fit_app.command("rules")
@with_options(JUDGE_ENGINE, EXECUTOR)
def fit_rules(
    gold: Annotated[Path, typer.Option(help="Pairs people labelled (hh-rlhf chosen/rejected, or cai review pull's gold.jsonl).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The weights file to write (JSON, or YAML for .yaml), for cai train ppo --rule-weights.")],
    judge_engine: EngineConfig,
    executor: ExecutorConfig,
    run: Annotated[Path, typer.Option("--run", help="Folder for the judge's rule scores of the gold pairs (rule_scores.jsonl).")] = Path("runs/fit-rules"),
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    chosen_field: Annotated[str, typer.Option(help="The field of the answer people preferred.")] = "chosen",
    rejected_field: Annotated[str, typer.Option(help="The field of the other answer.")] = "rejected",
    limit: Limit = None,
    style: StyleOpt = Style.chat,
    l2: Annotated[float, typer.Option(min=1e-6, help="L2 penalty on the weights (1/C of scikit-learn's LogisticRegression).")] = 1.0,
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap resamples of the pairs for each weight's 95% interval.")] = 200,
    seed: Annotated[int, typer.Option(help="Seeds the bootstrap.")] = 0,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    force: Force = False,
    max_error_rate: MaxErrorRate = MAX_ERROR_RATE,
):
    """Fit the rules' weights to people: a logistic model of the human's choice on the difference
    of the judge's per-rule log-odds for the two answers, with bootstrap 95% intervals."""
    from cai.constitution.schema import load_constitution
    from cai.core.run import RunDir
    from cai.metrics.rule_weights import fit_rules as fit
    from cai.metrics.rule_weights import gold_stage, write_weights
    from cai.stages.rules import RulesConfig
    from cai.workflows import rules as jobs_rules

    loaded = load_constitution(constitution)
    judge_engine.model = judge_engine.model or DEFAULT_MODEL
    run_dir = RunDir(run)
    with run_dir.locked():
        stage = gold_stage(run_dir, gold, loaded, RulesConfig(judge_engine.model, style), judge_engine, limit,
                           chosen_field, rejected_field)
        scored = jobs_rules.in_responses(run_stage(run_dir, stage, executor, chunk_size, force))
        fitted = fit(run_dir, loaded, gold, judge_engine.model, l2, bootstrap, seed)
        write_weights(output, fitted)
    summarize([scored], max_error_rate)
    out.print(f"fit rules: {fitted['pairs']} pairs; agreement with people on them {fitted['accuracy']} "
              f"(in sample; the constitution's weights: {fitted['accuracy_constitution_weights']})")
    for r in fitted["rules"]:
        out.print(f"  {r['id']}: {r['weight']:+.3f}  [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]", highlight=False)
    out.print(f"fit rules: {output}")
