"""What the report reads: a run folder's files, and the eval and model folders in or beside it.

Everything is read leniently: a missing file is a section left out, an unreadable row is counted
and skipped, and missing keys show as blanks, so that a half-finished run still gets its page.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from cai.runner.registry import STAGES


def stage_files() -> dict[str, tuple[str, type[BaseModel]]]:
    """The registry's stages whose rows carry quality flags: stage -> (its file, its row model)."""
    return {s.name: (s.output, s.rows) for s in STAGES if s.rows is not None}


@dataclass
class Rows:
    """A JSONL file's valid rows, with the row-level `flags` they carry counted as they are read."""

    path: Path
    records: list = field(default_factory=list)
    flags: Counter = field(default_factory=Counter)
    flagged: int = 0  # rows with at least one flag
    unreadable: int = 0  # lines that are not JSON, or not rows of this file's schema


def read_rows(path: Path, model: type[BaseModel]) -> Rows:
    rows = Rows(path)
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                rows.records.append(model.model_validate(data))
            except (ValueError, ValidationError):
                rows.unreadable += 1
                continue
            flags = data.get("flags")
            if isinstance(flags, list) and flags:
                rows.flagged += 1
                rows.flags.update(str(f) for f in flags)
    return rows


def read_json(path: Path) -> dict | None:
    """A JSON object from a file, or None when the file is missing or holds something else."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_dicts(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file; other lines are skipped."""
    out = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(data)
    return out


@dataclass
class Sources:
    run: Path
    manifest: dict
    stages: dict[str, Rows]  # stage -> its rows, for the stage files the run folder holds
    errors: list[dict]  # errors.jsonl
    judge_evals: list[Path]  # folders written by `cai eval judge` (summary.json + judgements.jsonl)
    policy_evals: list[Path]  # folders written by `cai eval policies` (eval.json)
    trainings: list[Path]  # cai_train.json of each trained model
    iterations: list[dict]  # iterations.json of an iterated run (`cai run` with `iterations: N`)

    @property
    def empty(self) -> bool:
        return not (self.manifest.get("stages") or self.stages or self.errors or self.judge_evals
                    or self.policy_evals or self.trainings or self.iterations)


def _found(folders: list[Path], name: str) -> list[Path]:
    """Every file called `name` in or under the folders, each once, in a stable order."""
    seen: dict[Path, None] = {}
    for folder in folders:
        for path in sorted(folder.rglob(name)):
            seen.setdefault(path.resolve(), None)
    return list(seen)


def collect(run: Path, include: list[Path]) -> Sources:
    folders = [run, *include]
    manifest = read_json(run / "manifest.json") or {}
    entries = manifest.get("stages") if isinstance(manifest.get("stages"), dict) else {}
    manifest = {**manifest, "stages": {str(k): v for k, v in entries.items() if isinstance(v, dict)}}
    stages = {
        stage: read_rows(run / name, model)
        for stage, (name, model) in stage_files().items()
        if (run / name).is_file()
    }
    errors = read_dicts(run / "errors.jsonl") if (run / "errors.jsonl").is_file() else []
    judge = [p.parent for p in _found(folders, "summary.json") if (p.parent / "judgements.jsonl").is_file()]
    return Sources(
        run=run,
        manifest=manifest,
        stages=stages,
        errors=errors,
        judge_evals=judge,
        policy_evals=[p.parent for p in _found(folders, "eval.json")],
        trainings=_found(folders, "cai_train.json"),
        iterations=(read_json(run / "iterations.json") or {}).get("iterations") or [],
    )
