"""A project as a whole: `cai init`, `cai run` (a pipeline file), `cai demo`, `cai report`, `cai model prepare`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from cai import jobs
from cai.cli.common import (
    RunOpt,
    app,
    child_flags,
    exit_with_problems,
    out,
    run_stage,
    summarize,
)
from cai.constitution import load_constitution
from cai.data import DEFAULT_CONSTITUTION, DEMO_PROMPTS
from cai.engine import SamplingConfig
from cai.engine_config import EngineConfig
from cai.executors import ExecutorConfig
from cai.models import DEFAULT_MODEL, prepare_default_model
from cai.options import option
from cai.run import RunDir
from cai.stages.critique import CritiqueConfig
from cai.stages.generate import GenerateConfig
from cai.yaml_errors import InvalidFile

model_app = typer.Typer(help="Prepare models.", no_args_is_help=True)

app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare():
    """Convert the default model into the cache ($CAI_HOME), if it is not there yet."""
    out.print(str(prepare_default_model()))


@app.command()
def demo(
    run: RunOpt = Path("runs/demo"),
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use the first N bundled prompts.")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Critique/revision rounds.")] = 4,
    model: Annotated[str, option(EngineConfig, "model")] = DEFAULT_MODEL,
    max_tokens: Annotated[int, option(SamplingConfig, "max_tokens")] = 160,
):
    """The whole SL-CAI path on the bundled red-team prompts: generate, critique, export sft."""
    run_dir = RunDir(run)
    sampling = SamplingConfig(max_tokens=max_tokens)
    loaded = load_constitution(DEFAULT_CONSTITUTION)
    engine, local = EngineConfig(model), ExecutorConfig()  # one engine serves every step
    # force: a demo rerun with other options simply replaces the last one. One lock for all three steps.
    with run_dir.locked():
        reports = [run_stage(run_dir, jobs.generate_stage(DEMO_PROMPTS, GenerateConfig(model, sampling=sampling), engine, limit=limit), local, jobs.CHUNK_SIZE, True)]
        critique = jobs.critique_stage(run_dir, loaded, CritiqueConfig(model, rounds=rounds, sampling=sampling), engine)
        reports += [run_stage(run_dir, critique, local, jobs.CHUNK_SIZE, True), jobs.export_sft(run_dir)]
    summarize(reports)
    out.print(f"rounds: {rounds}; manifest: {run_dir.manifest_path}")


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
    from cai.starter import init_project

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
    from cai import pipeline as runner
    from cai.pipeline_file import read_pipeline

    try:
        loaded = read_pipeline(pipeline, typer.main.get_command(app))
    except InvalidFile as e:
        exit_with_problems(e, pipeline)
    steps = runner.plan(loaded, start, until, tuple(force or ()))
    if dry_run:
        runner.show(steps, loaded, out)
        return
    summary = runner.run(loaded, steps, child_flags())
    table = Table(title="cai run")
    table.add_column("stage")
    table.add_column("what happened")
    for name, what in summary:
        table.add_row(name, what)
    out.print(table)
    run = os.path.relpath(loaded.run)
    out.print(f"manifest: {os.path.join(run, 'manifest.json')}; the page of it all: cai report {run}")
