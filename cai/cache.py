"""A persistent request cache: a rerun finds every finished model request here.

Keys hash everything that decides an answer (model, prompt tokens, sampling settings, seed), so a
cache can never hand one run's answer to a request that differs in any of them. Each engine call
is stored in one transaction after it returns: a killed job loses at most the call in flight.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path


def request_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

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
