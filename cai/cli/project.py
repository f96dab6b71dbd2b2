"""A project as a whole: `cai init`, `cai run` (a pipeline file), `cai demo`, `cai report`, `cai model prepare`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from cai.cli.common import (
    RunOpt,
    app,
    child_flags,
    exit_with_problems,
    out,
)
from cai.engine.models import prepare_default_model
from cai.io.yaml_errors import InvalidFile

model_app = typer.Typer(help="Prepare models.", no_args_is_help=True)

app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare():
    """Convert the default model into the cache ($CAI_HOME), if it is not there yet."""
    out.print(str(prepare_default_model()))


@app.command()
def demo(
    run: RunOpt = Path("runs/demo"),
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use the first N bundled prompts.", show_default="the starter's")] = None,
    rounds: Annotated[Optional[int], typer.Option(min=1, help="Critique/revision rounds.", show_default="the starter's")] = None,
    model: Annotated[Optional[str], typer.Option(help="The model.", show_default="the starter's: the default model")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(min=1, help="Most tokens per answer, critique or revision.", show_default="the starter's")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo the stages whose settings changed since RUN last ran.")] = False,
):
    """The starter pipeline's SL-CAI stages (generate, critique, export_sft) on the bundled red-team
    prompts, as `cai run` runs them: RUN/pipeline.yaml, then its stages; a rerun skips what is done."""
    from cai.runner import runner
    from cai.runner.starter import demo_pipeline

    path = demo_pipeline(run, limit, rounds, model, max_tokens)
    loaded = _read(path)
    steps = runner.plan(loaded)
    if force:
        steps = runner.plan(loaded, force=tuple(s.stage.name for s in steps if s.state == "changed"))
    _run(loaded, steps)
    out.print(f"the SL-CAI set: {os.path.relpath(loaded.run / 'sft.jsonl')}; the pipeline: {os.path.relpath(path)}")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="The run folder.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: RUN/report.html.")] = None,
    include: Annotated[Optional[list[Path]], typer.Option(
        "--include", help="Another folder to show: cai eval judge / eval policies output, trained models (repeatable).")] = None,
    examples: Annotated[int, typer.Option(min=0, help="SL-CAI examples shown in full.")] = 50,
):
    """Write a self-contained HTML page of a run: manifest, SL-CAI and RL-CAI data, evals, training curves."""
    from cai.report import write_report  # matplotlib loads only for this command

    out.print(f"report: {write_report(run, output, include or [], examples)}")


@app.command()
def init(folder: Annotated[Path, typer.Argument(help="The project folder (new, or without the starter's files).")]):
    """Write a starter project: a commented pipeline.yaml for the whole path on the default model,
    the default constitution with its few-shot files, and demo prompts. Overwrites nothing."""
    from cai.runner.starter import init_project

    for path in init_project(folder):
        out.print(f"wrote {path}")
    out.print(f"next: cd {folder} && cai run pipeline.yaml")


@app.command("run")
def run_pipeline(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline file (`cai init` writes one).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (each stage done / to do / changed, and its output); run nothing.")] = False,
    start: Annotated[Optional[str], typer.Option("--from", help="Begin at this stage; the earlier ones are left as they are.")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="End after this stage.")] = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", help="Redo this stage, done or changed (repeatable); the stages that read its output follow.")] = None,
):
    """Run a pipeline file's stages in order, each as its cai command: done ones are skipped, an
    interrupted one resumes, one whose settings changed is refused unless --force STAGE."""
    from cai.runner import runner
    loaded = _read(pipeline)
    steps = runner.plan(loaded, start, until, tuple(force or ()))
    if dry_run:
        runner.show(steps, loaded, out)
        return
    _run(loaded, steps)
    run = os.path.relpath(loaded.run)
    out.print(f"manifest: {os.path.join(run, 'manifest.json')}; the page of it all: cai report {run}")


def _read(path: Path):
    from cai.runner.pipeline_file import read_pipeline

    try:
        return read_pipeline(path, typer.main.get_command(app))
    except InvalidFile as e:
        exit_with_problems(e, path)


def _run(loaded, steps) -> None:
    """Run the planned steps of a pipeline and print what happened to each stage."""
    from cai.runner import runner
    summary = runner.run(loaded, steps, child_flags())
    table = Table(title="cai run")
    table.add_column("stage")
    table.add_column("what happened")
    for name, what in summary:
        table.add_row(name, what)
    out.print(table)
