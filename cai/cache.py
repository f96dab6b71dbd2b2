"""A persistent request cache: a rerun finds every finished model request here.

Keys hash everything that decides an answer (model, prompt tokens, sampling settings, seed), so a
cache can never hand one run's answer to a request that differs in any of them. Several processes
(a Ray executor's actors, two jobs on one run folder's stages) may write to it at once: SQLite in WAL
mode serialises the writers, and a writer waits for the others rather than failing.

It is only a cache: a file that is not a database is moved aside with one warning, and a new one
is started.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path

log = logging.getLogger("cai")


def request_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as e:
            if "full" in str(e) or "locked" in str(e):
                raise
            aside = self.path.with_name(f"{self.path.name}.broken-{int(time.time())}")
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            log.warning("%s was not a usable cache (%s): moved it to %s and started a new one", self.path, e, aside.name)
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=120, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("SELECT count(*) FROM requests WHERE key = ''").fetchone()
        return db

    def get_many(self, keys: list[str]) -> dict[str, object]:
        found = {}
        for start in range(0, len(keys), 500):  # SQLite's limit on query parameters
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows = self.db.execute(f"SELECT key, value FROM requests WHERE key IN ({marks})", batch)
            found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, items: dict[str, object]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO requests VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in items.items()],
            )

    def close(self) -> None:
        self.db.close()
