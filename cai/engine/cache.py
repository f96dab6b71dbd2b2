"""A persistent request cache: a rerun finds every finished model request here.

Keys hash everything that decides an answer (model, prompt tokens, sampling settings, seed), so a
cache can never hand one run's answer to a request that differs in any of them. Several processes
(a Ray executor's actors) may write to it at once: SQLite in WAL mode serialises the writers, and a
writer waits for the others rather than failing.

It is only a cache: a file that is not a database, or one found damaged while in use, is moved
aside with one warning, and a new one is started. A full disk is no damage: that error goes up.
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


# How SQLite says a file is damaged (SQLITE_NOTADB, SQLITE_CORRUPT, text that is no longer UTF-8)
BROKEN = ("file is not a database", "database disk image is malformed", "Could not decode to UTF-8")


def _value(key: str, text) -> object:
    try:
        return json.loads(text)
    except (TypeError, ValueError):  # damage that SQLite's page checks let through
        raise sqlite3.DatabaseError(f"{BROKEN[1]}: the value of {key[:16]}… is not JSON") from None


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db: sqlite3.Connection | None = None
        self._guarded(self._connection)

    def _connection(self) -> sqlite3.Connection:
        if self.db is None:
            self.db = self._open()
        return self.db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=120, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("SELECT count(*) FROM requests WHERE key = ''").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _guarded(self, action):
        """Run `action`; if the file proves broken (on opening, or a damaged page met later), move
        it aside with one warning and run `action` again on a new cache. A full disk is no damage."""
        try:
            return action()
        except sqlite3.DatabaseError as e:
            if not any(sign in str(e) for sign in BROKEN):
                raise
            self._set_aside(e)
            return action()

    def _set_aside(self, error: sqlite3.DatabaseError) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        aside = self.path.with_name(f"{self.path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
        while aside.exists():
            aside = aside.with_name(aside.name + "+")
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        log.warning("%s was not a usable cache (%s): moved it to %s and started a new one", self.path, error, aside.name)

    def get_many(self, keys: list[str]) -> dict[str, object]:
        return self._guarded(lambda: self._get_many(keys))

    def _get_many(self, keys: list[str]) -> dict[str, object]:
        found = {}
        for start in range(0, len(keys), 500):  # SQLite's limit on query parameters
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows = self._connection().execute(f"SELECT key, value FROM requests WHERE key IN ({marks})", batch)
            found.update((k, _value(k, v)) for k, v in rows)
        return found

    def put_many(self, items: dict[str, object]) -> None:
        self._guarded(lambda: self._put_many(items))

    def _put_many(self, items: dict[str, object]) -> None:
        db = self._connection()
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO requests VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in items.items()],
            )

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
