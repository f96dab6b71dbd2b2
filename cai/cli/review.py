"""`cai review`: human gold sets through Label Studio (export a sample, push it, pull the answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from cai.cli.common import app, err, out
from cai.constitution.schema import load_constitution
from cai.core.run import RunDir, write_jsonl
from cai.data import DEFAULT_CONSTITUTION
from cai.review.gold import gold_rows
from cai.review.label_studio import LabelStudio
from cai.review.tasks import export_review, read_review

review_app = typer.Typer(help="Human gold sets through Label Studio: export, push, pull.", no_args_is_help=True)

app.add_typer(review_app, name="review")

Url = Annotated[str, typer.Option(help="The Label Studio server.")]


@review_app.command("export")
def review_export(
    run: Annotated[Path, typer.Option("--run", help="Run folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The Label Studio project folder to write.")],
    what: Annotated[Literal["pairs", "rules"], typer.Option(help="pairs: which of two answers is better (A / B / tie); rules: does an answer follow a rule.")] = "pairs",
    sample: Annotated[int, typer.Option(min=1, help="Tasks to draw (all, when the run holds fewer).")] = 50,
    seed: Annotated[int, typer.Option(help="Seeds the draw and the order the answers are shown in.")] = 0,
    constitution: Annotated[Path, typer.Option(help="rules: the constitution `cai rules` used (for the rule texts).")] = DEFAULT_CONSTITUTION,
):
    """Write a Label Studio project (label_config.xml, tasks.json, review.json) of a seeded sample of
    the run's pairs (RUN/preferences.jsonl, else samples.jsonl) or rule items (RUN/rule_scores.jsonl)."""
    loaded = load_constitution(constitution) if what == "rules" else None
    info = export_review(RunDir(run), what, sample, seed, output, loaded)
    out.print(f"review export: {info['sample']} of {info['available']} {what} from {info['source']} (seed {seed}) "
              f"→ {output}", highlight=False)
    out.print(f"next: LABEL_STUDIO_API_KEY=… cai review push {output} --url URL", highlight=False)


@review_app.command("push")
def review_push(
    folder: Annotated[Path, typer.Argument(help="A folder `cai review export` wrote.")],
    url: Url = "http://127.0.0.1:8080",
):
    """Create the project on a running Label Studio and import its tasks; prints the project id."""
    config, tasks, info = read_review(folder)
    studio = LabelStudio(url)
    project = studio.create_project(info["title"], config, f"{info['sample']} {info['what']} from {info['source']}, seed {info['seed']}")
    count = studio.import_tasks(project, tasks)
    err.print(f"review push: project {project} holds {count} tasks: {studio.url}/projects/{project}", highlight=False)
    print(project)


@review_app.command("pull")
def review_pull(
    project: Annotated[int, typer.Option(help="The project id `cai review push` printed.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The gold set to write (JSONL).")],
    url: Url = "http://127.0.0.1:8080",
):
    """Fetch the project's annotations into a gold set: pairs for `cai eval judge --pairs`, rule
    items for `cai eval rules --data`. Ties and skipped tasks are kept (and counted); tasks nobody
    annotated yet are left out (and counted)."""
    rows, counts = gold_rows(LabelStudio(url).tasks(project))
    write_jsonl(output, rows)
    kind = "pairs" if counts["pairs"] else "rules"
    answers = ", ".join(f"{k.split(': ')[1]} {v}" for k, v in sorted(counts.items()) if k.startswith("answer: "))
    out.print(f"review pull: {counts[kind]} {kind[:-1]} tasks: {len(rows)} annotated ({answers or 'none'}), "
              f"{counts['not_annotated']} not annotated yet (left out) → {output}", highlight=False)
    if kind == "pairs" and (picked := len(rows) - counts["answer: tie"] - counts["answer: skipped"]):
        out.print(f"review pull: people picked the pair's first answer (the judge's chosen, for pairs from "
                  f"preferences.jsonl) in {counts['picked_first']} of {picked}", highlight=False)
    if counts["several_annotations"]:
        out.print(f"review pull: {counts['several_annotations']} tasks have several annotations: the latest counts",
                  highlight=False)
