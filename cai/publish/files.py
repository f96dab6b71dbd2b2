"""The files copied beside the data: the constitution(s) the run used, with their few-shot files,
and the pipeline file that produced it.

A constitution is found by the sha256 the manifest recorded, never by its path alone: at its
recorded path, beside the pipeline file, among the files given with `--constitution`, or as one of
the constitutions shipped with cai. Its bytes are copied as they are (the sha256 in every row still
names them), its few-shot files where its relative references point, so that the copy checks and
loads (`cai constitution check FOLDER/constitution/default.yaml`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from cai.constitution.schema import LoadedConstitution, load_constitution
from cai.core.errors import CaiError
from cai.core.run import atomic_write
from cai.data import DEFAULT_CONSTITUTION, GENERAL_CONSTITUTION
from cai.io.inputs import sha256_of
from cai.publish.clean import scrub

FOLDER = "constitution"


@dataclass
class Copied:
    """A constitution as published: where it lies in the folder, and what it holds."""

    file: str  # relative to the published folder
    loaded: LoadedConstitution
    few_shot: dict[str, str]  # relative path in the folder -> sha256


def used_constitutions(manifest: dict) -> dict[str, str]:
    """sha256 -> the path it was recorded with, for every constitution a stage of the run read."""
    found = {}
    for entry in manifest.get("stages", {}).values():
        record = entry.get("constitution")
        if isinstance(record, dict) and record.get("sha256"):
            found.setdefault(record["sha256"], str(record.get("path") or "constitution.yaml"))
    return found


def find(sha256: str, recorded: str, given: list[Path], base: Path | None) -> Path:
    candidates = [*given, Path(recorded), *([base / recorded] if base else []), DEFAULT_CONSTITUTION, GENERAL_CONSTITUTION]
    for candidate in candidates:
        if candidate.is_file() and sha256_of(candidate) == sha256:
            return candidate
    raise CaiError(f"the constitution the run used ({Path(recorded).name}, sha256 {sha256[:12]}…) is not at its recorded "
                   "path any more, or was edited: pass the file it used with --constitution FILE")


def copy_constitutions(manifest: dict, given: list[Path], base: Path | None, out: Path) -> list[Copied]:
    copied, names = [], set()
    for sha256, recorded in used_constitutions(manifest).items():
        source = find(sha256, recorded, given, base)
        name = source.name if source.name not in names else f"{source.stem}-{sha256[:8]}{source.suffix}"
        names.add(name)
        target = out / FOLDER / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        few_shot = {}
        refs = (yaml.safe_load(source.read_text(encoding="utf-8")) or {}).get("few_shot") or {}
        for ref in [r for r in refs.values() if isinstance(r, str)]:
            place = Path(os.path.normpath(Path(FOLDER) / ref))
            if place.is_absolute() or place.parts[0] == "..":  # it pointed outside: keep it beside the constitution
                place = Path(FOLDER) / Path(ref).name
            (out / place).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.parent / ref, out / place)
            few_shot[place.as_posix()] = sha256_of(out / place)
        copied.append(Copied(f"{FOLDER}/{name}", load_constitution(source), few_shot))
    return copied


def copy_pipeline(pipeline: Path, out: Path) -> str:
    """The pipeline file, without URLs, absolute paths or keys (see cai.publish.clean)."""
    if not pipeline.is_file():
        raise CaiError(f"{pipeline}: no such pipeline file")
    atomic_write(out / "pipeline.yaml", lambda f: f.write(scrub(pipeline.read_text(encoding="utf-8"))))
    return "pipeline.yaml"
