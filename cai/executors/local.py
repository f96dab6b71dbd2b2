"""The local executor: chunks one after another in this process, on one engine per model.

The engine is opened only when a chunk is left to do, so a rerun of a finished stage loads no
model; one engine serves every stage of a process that uses the same model (the demo's steps).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from cai.core.stage import compute_chunk
from cai.engine.config import EngineConfig
from cai.engine.engine import Engine

_engines: dict[str, Engine] = {}


def shared_engine(config: EngineConfig, cache: Path) -> Engine:
    from cai.engine.cache import RequestCache

    key = json.dumps(asdict(config), sort_keys=True, default=str)
    if key not in _engines:
        _engines[key] = config.open()
    engine = _engines[key]
    if engine.cache is None or engine.cache.path != Path(cache).resolve():
        engine.cache = RequestCache(cache)
    return engine


class LocalExecutor:
    def map(self, stage, store, works, cache: Path, tracker):
        engine = None
        for work in works:
            if engine is None:
                engine = shared_engine(stage.engine, cache)
                engine.on_step = tracker.step
            yield compute_chunk(stage.batch, engine, work, store)
