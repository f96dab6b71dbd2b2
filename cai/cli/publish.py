"""`cai publish`: a run folder as a Hugging Face dataset folder (cai.publish), and its push."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cai.cli.common import app, out

Names = "Comma-separated configurations (repeatable): sft, prefs, preferences, revisions, rule_scores, rules, prompts, eval_policies."


@app.command("publish")
def publish(
    run: Annotated[Path, typer.Argument(help="The run folder.")],
    out_dir: Annotated[Path, typer.Option("--out", help="The dataset folder to write (replaced whole if an earlier cai publish wrote it).")],
    include: Annotated[Optional[list[str]], typer.Option(help=f"Only these. {Names}")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(help=f"All but these. {Names}")] = None,
    license: Annotated[str, typer.Option(help="The card's license: a Hub license id, e.g. apache-2.0, cc-by-4.0, other.")] = "unknown",
    constitution: Annotated[Optional[list[Path]], typer.Option(help="A constitution the run used, where it has moved (found by its sha256; repeatable).")] = None,
    pipeline: Annotated[Optional[Path], typer.Option(help="The pipeline file that produced the run, copied in (without URLs or absolute paths).")] = None,
    title: Annotated[Optional[str], typer.Option(help="The card's title (default: from the run folder's name).")] = None,
    push_to_hub: Annotated[Optional[str], typer.Option("--push-to-hub", help="Upload the folder to this dataset repository (OWNER/NAME); the token comes from HF_TOKEN.")] = None,
    private: Annotated[bool, typer.Option("--private", help="With --push-to-hub: create the repository private.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an --out folder that holds other files.")] = False,
):
    """Write a Hugging Face dataset folder from a run: one Parquet configuration per kind of data,
    a dataset card from the manifest, the constitution and the pipeline file; --push-to-hub uploads it."""
    from cai.publish import (
        publish as write,  # datasets and huggingface_hub load for this command only
    )

    result = write(run, out_dir, include, exclude, license, constitution or [], pipeline, push_to_hub, private, title, force)
    for name, splits in result.written.items():
        out.print(f"publish: {name}: " + ", ".join(f"{split} {rows} rows" for split, rows in splits.items()))
    for note in result.notes:
        out.print(f"publish: {note}")
    out.print(f"publish: {result.folder} (load_dataset(\"{result.folder}\", \"{next(iter(result.written))}\"))")
    if result.pushed:
        out.print(f"publish: pushed to {push_to_hub}: {result.pushed}")
