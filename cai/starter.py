"""`cai init DIR`: a starter project, copied from the package: a commented pipeline.yaml that runs
the whole path on the default model, a copy of the default constitution with its few-shot files,
and the demo red-team prompts. It writes into a new or empty-enough folder and overwrites nothing."""

from __future__ import annotations

from pathlib import Path

from cai.data import DEFAULT_CONSTITUTION, DEMO_PROMPTS, ROOT
from cai.errors import CaiError

# What goes where, in the same layout as the package's data (the constitution finds its few-shot
# files at ../prompts/).
FILES = {
    "pipeline.yaml": ROOT / "project" / "pipeline.yaml",
    "constitution/default.yaml": DEFAULT_CONSTITUTION,
    "prompts/critique_revision_examples.yaml": ROOT / "prompts" / "critique_revision_examples.yaml",
    "prompts/preference_examples.yaml": ROOT / "prompts" / "preference_examples.yaml",
    "prompts/red_team_demo.jsonl": DEMO_PROMPTS,
}


def init_project(folder: Path) -> list[Path]:
    """Copy the starter files into `folder`; refuses, writing nothing, if any of them exists."""
    targets = {folder / name: source for name, source in FILES.items()}
    existing = [str(t) for t in targets if t.exists() or t.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CaiError(f"{existing[0]} already exists{more}: cai init overwrites nothing; give it a new folder")
    for target, source in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as f:  # "x": never over a file that appeared meanwhile
            f.write(source.read_bytes())
    return list(targets)
