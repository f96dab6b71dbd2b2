"""A stage described once, as data, and the one function that runs every stage.

A `Stage` names its output file, its source of input records, its batch function (records and an
engine in, one `BatchResult` out), its settings and its engine. `execute` does the rest for every
stage alike: it locks the run folder, refuses to mix results of other settings, cuts the input into
chunks, skips the chunks that are done, hands the others to an executor (`local` or `ray`: two
implementations of one `map`), then joins the chunk files, writes `errors.jsonl` and the manifest.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from cai.core.chunks import ChunkStore, ChunkWork, batched
from cai.core.errors import CaiError
from cai.core.progress import Tracker
from cai.core.records import Skipped
from cai.core.run import RunDir, now, read_jsonl, write_jsonl
from cai.core.sources import Source
from cai.engine.config import EngineConfig
from cai.engine.engine import EngineStats
from cai.io.inputs import duplicate

log = logging.getLogger("cai")

CHUNK_SIZE = 512


@dataclass
class Stage:
    name: str  # its key in the manifest and errors.jsonl
    output: str  # the file it writes in the run folder
    source: Source
    batch: Callable  # batch(records, engine) -> BatchResult; a functools.partial binding its config
    settings: dict  # what decides its output: fingerprinted, recorded in the manifest
    engine: EngineConfig
    notes: Callable[[Counter], list[str]] = lambda counters: []  # summary lines from the counters


@dataclass
class JobReport:
    """What a job did, for the summary the CLI prints."""

    stage: str
    rows_in: int
    rows_out: int
    output: Path
    skipped: list[Skipped] = field(default_factory=list)
    stats: EngineStats | None = None  # of the chunks computed by this job, not of finished ones it passed over
    notes: list[str] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    resumed_rows: int = 0  # rows of chunks an earlier job had finished

    @property
    def error_rate(self) -> float:
        return len(self.skipped) / self.rows_in if self.rows_in else 0.0


def config_settings(config, model_key: str = "model") -> dict:
    """A stage's config as its settings: every field that is set (nested configs too), never a
    hand-picked list that could leave one out; enums by their value, as the manifest stores them.
    An optional setting left unset is not recorded, so that adding one to a config keeps earlier
    stages' fingerprints. A judge's stage names its model `judge_model`."""
    fields = json.loads(json.dumps(asdict(config), default=lambda v: v.value if isinstance(v, Enum) else str(v)))
    return {model_key if k == "model" else k: v for k, v in fields.items() if v is not None}


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def stage_status(run: RunDir, stage: Stage, chunk_size: int) -> str:
    """done, partial (resumable), changed (other settings) or todo: what a rerun would do."""
    previous = run.manifest()["stages"].get(stage.name)
    store = ChunkStore(run.file(stage.output))
    if _changed(previous, _settings(stage, chunk_size), store):
        return "changed"
    if previous and previous.get("status") == "done" and store.output.exists():
        return "done"
    return "partial" if store.folder.exists() else "todo"


def _settings(stage: Stage, chunk_size: int) -> dict:
    settings = {**stage.settings, **stage.engine.identity(), "input_sha256": stage.source.sha256(), "limit": stage.source.limit, "chunk_size": chunk_size}
    return json.loads(json.dumps(settings, default=str))  # compare as the manifest stores it


def _changed(previous: dict | None, settings: dict, store: ChunkStore) -> str:
    """How the settings that made the stage's files on disk differ from these ("" when they do not,
    or there are no such files). Files that the manifest does not account for are of unknown settings."""
    if not (store.folder.exists() or store.output.exists()):
        return ""
    if previous is None:
        return "settings the manifest does not record"
    if previous.get("fingerprint") == fingerprint(settings):
        return ""
    changed = sorted(k for k in settings if previous.get(k) != settings[k])
    return f"other settings ({', '.join(changed or ['inputs'])})"


def _begin(run: RunDir, stage: Stage, settings: dict, store: ChunkStore, force: bool) -> None:
    """Refuse to mix results of other settings; record the stage as running."""
    if changed := _changed(run.manifest()["stages"].get(stage.name), settings, store):
        if not force:
            raise CaiError(f"{run.path} already holds '{stage.name}' output made with {changed}: "
                           f"use another --run folder, or --force to redo '{stage.name}'")
        log.warning("--force: starting '%s' afresh in %s", stage.name, run.path)
        store.clear()
    run.record_stage(stage.name, {**settings, "fingerprint": fingerprint(settings), "engine_config": stage.engine.record(),
                                  "status": "running", "started": now()})


def plan(stage: Stage, store: ChunkStore, chunk_size: int, counts: Counter, tracker: Tracker) -> Iterator[ChunkWork]:
    """The chunks still to do, parsed; finished chunks are passed over (their ids come from
    their markers, so that duplicate ids are still found across chunks)."""
    seen: set[str] = set()
    for index, raw in enumerate(batched(stage.source.raw(), chunk_size)):
        counts["chunks"] += 1
        counts["rows_in"] += len(raw)
        if store.is_done(index):
            seen.update(store.marker(index)["ids"])
            counts["done_rows"] += len(raw)
            tracker.skipped(len(raw))
            continue
        work = ChunkWork(index, len(raw), [])
        for line, item in raw:
            parsed = stage.source.parse(line, item)
            record_id = getattr(parsed, "id", None)
            if not isinstance(parsed, Skipped) and record_id in seen:
                parsed = duplicate(record_id, line, stage.name)
            if isinstance(parsed, Skipped):
                work.errors.append(parsed)
                continue
            seen.add(record_id)
            work.records.append(parsed)
            work.lines[record_id] = line
        yield work


def compute_chunk(batch: Callable, engine, work: ChunkWork, store: ChunkStore) -> dict:
    """One chunk, from a cold prefix cache, committed whole: the same bytes in any process."""
    start = time.perf_counter()
    engine.begin_chunk()
    before = EngineStats(**{k: getattr(engine.stats, k) for k in EngineStats.__dataclass_fields__})
    result = batch(work.records, engine)
    result.counters["chunk_seconds"] += round(time.perf_counter() - start, 3)
    errors = work.errors + [
        e if e.line is not None else e.model_copy(update={"line": work.lines.get(str(e.id).split(":")[0])})
        for e in result.errors
    ]
    marker = store.write(work, result.records, errors, result.counters, engine.stats.since(before).to_dict())
    engine.commit()
    return marker


def execute(run: RunDir, stage: Stage, executor, chunk_size: int = CHUNK_SIZE, force: bool = False) -> JobReport:
    if chunk_size < 1:
        raise CaiError("--chunk-size must be at least 1")
    store = ChunkStore(run.file(stage.output))
    cache = run.file("cache.sqlite")
    with _disk_full_is_one_line(run, stage, cache), run.locked():
        settings = _settings(stage, chunk_size)
        _begin(run, stage, settings, store, force)
        counts = Counter()
        tracker = Tracker(stage.name, stage.source.count())
        computed = EngineStats()
        try:
            for marker in executor.map(stage, store, plan(stage, store, chunk_size, counts, tracker), cache, tracker):
                tracker.chunk_done(marker)
                computed.add(marker["engine"])
            markers = store.markers(counts["chunks"])
            store.assemble(counts["chunks"])
        finally:
            tracker.close()
        report = _finish(run, stage, store, markers, counts)
        report.stats = computed
        return report


@contextmanager
def _disk_full_is_one_line(run: RunDir, stage: Stage, cache: Path):
    """A full disk, wherever the job was writing (chunk files, the cache, the manifest, errors.jsonl,
    the output): one line. Every write is atomic, so what was finished is still there to resume."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as e:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            what, why = e.filename or f"to {run.path}", e.strerror
        elif isinstance(e, sqlite3.OperationalError) and "full" in str(e):
            what, why = f"the request cache {cache}", str(e)
        else:
            raise
        raise CaiError(f"no space left: '{stage.name}' could not write {what} ({why}); nothing finished is lost "
                       "(every finished chunk is kept): free some space and run the same command again to resume") from None


def _finish(run: RunDir, stage: Stage, store: ChunkStore, markers: list[dict], counts: Counter) -> JobReport:
    skipped = [Skipped(**e) for m in markers for e in m["errors"]]
    counters, stats = Counter(), EngineStats()
    for m in markers:
        counters.update(m["counters"])
        stats.add(m["engine"])
    _record_errors(run, stage.name, skipped)
    rows_out = sum(m["rows"] for m in markers)
    entry = run.manifest()["stages"][stage.name]
    run.record_stage(stage.name, {**entry, "status": "done", "finished": now(), "rows_in": counts["rows_in"],
                                  "rows_out": rows_out, "errors": len(skipped), "counters": dict(sorted(counters.items())),
                                  "resumed_rows": counts["done_rows"], "engine": stats.to_dict()})
    notes = stage.notes(counters)
    if counts["done_rows"]:
        everything = counts["done_rows"] == counts["rows_in"]
        notes.insert(0, "already done: nothing computed, every chunk was finished before" if everything
                     else f"resumed: {counts['done_rows']} rows from chunks finished before")
    return JobReport(stage.name, counts["rows_in"], rows_out, store.output, skipped, stats, notes, counters,
                     counts["done_rows"])


def _record_errors(run: RunDir, stage: str, skipped: list[Skipped]) -> None:
    """Keep `errors.jsonl` holding this stage's latest problems next to the other stages'."""
    path = run.file("errors.jsonl")
    kept = [e for e in read_jsonl(path, Skipped) if e.stage != stage] if path.is_file() else []
    if kept or skipped:
        write_jsonl(path, kept + skipped)
