"""`cai init DIR`: a starter project, copied from the package: a commented pipeline.yaml that runs
the whole path on the default model, a copy of the default constitution with its few-shot files,
and the demo red-team prompts. It writes into a new or empty-enough folder and overwrites nothing."""

from __future__ import annotations

from pathlib import Path

from cai.core.errors import CaiError
from cai.data import DEFAULT_CONSTITUTION, DEMO_PROMPTS, PROMPTS, STARTER_PIPELINE

# What goes where, in the same layout as the package's data (the constitution finds its few-shot
# files at ../prompts/).
FILES = {
    "pipeline.yaml": STARTER_PIPELINE,
    "constitution/default.yaml": DEFAULT_CONSTITUTION,
    "prompts/critique_revision_examples.yaml": PROMPTS / "critique_revision_examples.yaml",
    "prompts/preference_examples.yaml": PROMPTS / "preference_examples.yaml",
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


SL_CAI = ("generate", "critique", "export_sft")


def demo_pipeline(run: Path, limit: int | None, rounds: int | None, model: str | None, max_tokens: int | None) -> Path:
    """The starter pipeline's SL-CAI stages, with the packaged prompts and constitution and the
    demo's options in place of the file's, written as RUN/pipeline.yaml for `cai run` to run: the
    demo is the starter's own path, not a copy of it."""
    import yaml

    starter = yaml.safe_load(STARTER_PIPELINE.read_text())
    stages = {name: dict(starter[name] or {}) for name in SL_CAI}
    stages["generate"]["prompts"] = str(DEMO_PROMPTS)
    for name, key, value in (("generate", "limit", limit), ("critique", "rounds", rounds),
                             ("generate", "max_tokens", max_tokens), ("critique", "max_tokens", max_tokens)):
        if value is not None:
            stages[name][key] = value
    pipeline = {"run": ".", "model": model or starter["model"], "constitution": str(DEFAULT_CONSTITUTION), **stages}
    run.mkdir(parents=True, exist_ok=True)
    path = run / "pipeline.yaml"
    path.write_text("# Written by `cai demo`: the SL-CAI stages of `cai init`'s pipeline.yaml. `cai run` reruns it.\n"
                    + yaml.safe_dump(pipeline, sort_keys=False))
    return path
