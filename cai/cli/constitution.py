"""`cai constitution check` and `cai constitution import`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import typer

from cai.cli.common import app, exit_with_problems, out
from cai.constitution.importers import from_anthropic, from_hf, write_constitution
from cai.constitution.schema import load_constitution
from cai.core.errors import CaiError
from cai.io.yaml_errors import InvalidFile

constitution_app = typer.Typer(help="Check and import constitutions.", no_args_is_help=True)

app.add_typer(constitution_app, name="constitution")


@constitution_app.command("check")
def constitution_check(path: Path):
    """Validate a constitution and print a summary, or every problem with its line."""
    try:
        loaded = load_constitution(path)
    except InvalidFile as e:
        exit_with_problems(e, path)
    c = loaded.constitution
    out.print(f"[green]ok[/green] {path}: {c.name} (version {c.version})")
    out.print(f"  critique_revision: {len(c.critique_revision)} principles: {', '.join(p.id for p in c.critique_revision)}")
    out.print(f"  preference:        {len(c.preference)} principles: {', '.join(p.id for p in c.preference)}")
    tags = Counter(tag for p in c.preference for tag in p.tags)
    out.print(f"  tags:              {', '.join(f'{t} {n}' for t, n in tags.items()) or 'none'}")
    out.print(f"  rules:             {len(c.rules)} rules: {', '.join(r.id for r in c.rules)}")
    out.print(f"  few-shot examples: {len(c.critique_examples)} critique/revision, {len(c.preference_examples)} preference")
    out.print(f"  sha256: {loaded.sha256}")
    if not c.preference:
        out.print("[yellow]note: no preference principles, so the AI judge has nothing to ask[/yellow]")


@constitution_app.command("import")
def constitution_import(
    source: Annotated[Path, typer.Argument(help="anthropic: the paper's prompts/ folder; hf: the recipe's JSON file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The YAML file to write.")],
    fmt: Annotated[Literal["anthropic", "hf"], typer.Option("--from", help="anthropic: the paper's prompts/ folder; hf: the open recipe's JSON.")] = "anthropic",
):
    """Convert a published constitution into cai's YAML."""
    converters = {"anthropic": from_anthropic, "hf": from_hf}
    if fmt not in converters:
        raise CaiError(f"--from must be one of {', '.join(converters)}, not '{fmt}'")
    if not source.exists():
        raise CaiError(f"{source}: no such file or folder")
    write_constitution(converters[fmt](source), output)
    constitution_check(output)
