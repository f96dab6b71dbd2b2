"""`cai export sft|prefs|rules`: the files trainers read, from a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cai.cli.common import (
    DROP_FLAGS,
    DropFlags,
    KeepFlagged,
    RunOpt,
    app,
    out,
    summarize,
)
from cai.constitution.schema import load_constitution
from cai.core.run import RunDir
from cai.data import DEFAULT_CONSTITUTION
from cai.stages.quality import parse_flags
from cai.workflows import jobs

export_app = typer.Typer(help="Write the files trainers read.", no_args_is_help=True)

app.add_typer(export_app, name="export")


@export_app.command("prefs")
def export_prefs(
    run: RunOpt,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/prefs.jsonl.")] = None,
    min_confidence: Annotated[float, typer.Option(min=0.5, max=1.0, help="Keep pairs with p_chosen at least this.")] = 0.5,
    drop_flags: DropFlags = DROP_FLAGS,
    keep_flagged: KeepFlagged = False,
    mix: Annotated[Optional[Path], typer.Option(help="Human-labelled pairs to blend in (hh-rlhf chosen/rejected, or prompt/chosen/rejected).")] = None,
    mix_ratio: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of the result from --mix.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seeds which --mix rows are blended in, and their order.")] = 0,
    include_prefs: Annotated[Optional[list[Path]], typer.Option(
        help="An earlier preference set (prefs.jsonl) whose pairs are added as they are (repeatable): iterated RL-CAI's earlier iterations.")] = None,
):
    """Write the preference set for TRL's RewardTrainer and DPOTrainer (AI labels, plus human ones with --mix)."""
    report = jobs.export_prefs(RunDir(run), output, min_confidence, parse_flags(drop_flags), keep_flagged,
                               mix, mix_ratio if mix else 0.0, seed, tuple(include_prefs or ()))
    summarize([report])


@export_app.command("sft")
def export_sft(
    run: RunOpt,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/sft.jsonl.")] = None,
    all_rounds: Annotated[bool, typer.Option(help="One row per round's revision, as the paper trained.")] = False,
    mix: Annotated[Optional[Path], typer.Option(help="Helpful conversations to blend in.")] = None,
    mix_ratio: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of the result from --mix.")] = 0.5,
    drop_flags: DropFlags = DROP_FLAGS,
    keep_flagged: KeepFlagged = False,
    seed: Annotated[int, typer.Option(help="Seeds which --mix rows are blended in, and their order.")] = 0,
):
    """Write the SFT set in TRL's conversational format, leaving out flagged revisions."""
    report = jobs.export_sft(RunDir(run), output, all_rounds, mix, mix_ratio if mix else 0.0, seed,
                             parse_flags(drop_flags), keep_flagged)
    summarize([report])


@export_app.command("rules")
def export_rules(
    run: RunOpt,
    constitution: Annotated[Path, typer.Option(help="The constitution `cai rules` used (for the rule texts).", show_default="the packaged default.yaml")] = DEFAULT_CONSTITUTION,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/rules.jsonl.")] = None,
    heldout: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of prompts held back into *_heldout.jsonl.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seeds which prompts --heldout holds back.")] = 0,
):
    """Write the rule classifier's data set from RUN/rule_scores.jsonl: one row per response and rule."""
    from cai.exports.rules import export_rules as run_export

    info = run_export(RunDir(run), load_constitution(constitution), output, heldout, seed)
    out.print(f"export rules: {info['rows_in']} scored responses → {info['rows_out']} rows in {info['output']}")
    if heldout:
        out.print(f"export rules: {info['heldout_rows']} rows held back in {info['heldout_output']}")
