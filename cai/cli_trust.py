"""`cai fit`: models fitted to people's choices; today the rules' weights (`cai fit rules`).

`register` adds the commands to the main app; it is handed the option groups of `cai.cli` that it
shares (the judge's engine, the executor) and the stage runner, so this module imports no CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cai.cli_options import with_options
from cai.data import DEFAULT_CONSTITUTION
from cai.dialogue import Style
from cai.engine_config import EngineConfig
from cai.executors import ExecutorConfig
from cai.models import DEFAULT_MODEL
from cai.stage import CHUNK_SIZE

fit_app = typer.Typer(help="Fit models of people's choices: the rules' weights.", no_args_is_help=True)


def register(app: typer.Typer, judge_engine_options, executor_options, run_stage, report, out) -> None:
    """Add `cai fit rules` to `app`; `run_stage(run, stage, executor, chunk_size, force)` and
    `report(reports, max_error_rate)` are the CLI's own, `out` its console."""

    @fit_app.command("rules")
    @with_options(judge_engine_options, executor_options)
    def fit_rules(
        gold: Annotated[Path, typer.Option(help="Pairs people labelled (hh-rlhf chosen/rejected, or cai review pull's gold.jsonl).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="The weights file to write (JSON, or YAML for .yaml), for cai train ppo --rule-weights.")],
        judge_engine: EngineConfig,
        executor: ExecutorConfig,
        run: Annotated[Path, typer.Option("--run", help="Folder for the judge's rule scores of the gold pairs (rule_scores.jsonl).")] = Path("runs/fit-rules"),
        constitution: Annotated[Path, typer.Option(help="Constitution YAML (its rules are the ones weighed).")] = DEFAULT_CONSTITUTION,
        chosen_field: Annotated[str, typer.Option(help="The field of the answer people preferred.")] = "chosen",
        rejected_field: Annotated[str, typer.Option(help="The field of the other answer.")] = "rejected",
        limit: Annotated[Optional[int], typer.Option(min=1, help="Use the first N pairs.")] = None,
        style: Annotated[Style, typer.Option(help="chat: the judge's chat template; transcript: Human:/Assistant: text.")] = Style.chat,
        l2: Annotated[float, typer.Option(min=1e-6, help="L2 penalty on the weights (1/C of scikit-learn's LogisticRegression).")] = 1.0,
        bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap resamples of the pairs for each weight's 95% interval.")] = 200,
        seed: Annotated[int, typer.Option(help="Seeds the bootstrap.")] = 0,
        chunk_size: Annotated[int, typer.Option(min=1, help="Pairs per chunk: the unit of work and of resume.")] = CHUNK_SIZE,
        force: Annotated[bool, typer.Option("--force", help="Redo the rule scores even if RUN holds some of other settings.")] = False,
        max_error_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Exit non-zero when a larger share of answers fails.")] = 0.1,
    ):
        """Fit the rules' weights to people: a logistic model of the human's choice on the difference
        of the judge's per-rule log-odds for the two answers, with bootstrap 95% intervals."""
        from cai import jobs_rules
        from cai.constitution import load_constitution
        from cai.rule_weights import fit_rules as fit, gold_stage, write_weights
        from cai.run import RunDir
        from cai.stages.rules import RulesConfig

        loaded = load_constitution(constitution)
        judge_engine.model = judge_engine.model or DEFAULT_MODEL
        run_dir = RunDir(run)
        with run_dir.locked():
            stage = gold_stage(run_dir, gold, loaded, RulesConfig(judge_engine.model, style), judge_engine, limit,
                               chosen_field, rejected_field)
            scored = jobs_rules.in_responses(run_stage(run_dir, stage, executor, chunk_size, force))
            fitted = fit(run_dir, loaded, gold, judge_engine.model, l2, bootstrap, seed)
            write_weights(output, fitted)
        report([scored], max_error_rate)
        out.print(f"fit rules: {fitted['pairs']} pairs; agreement with people on them {fitted['accuracy']} "
                  f"(in sample; the constitution's weights: {fitted['accuracy_constitution_weights']})")
        for r in fitted["rules"]:
            out.print(f"  {r['id']}: {r['weight']:+.3f}  [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]", highlight=False)
        out.print(f"fit rules: {output}")

    app.add_typer(fit_app, name="fit")
