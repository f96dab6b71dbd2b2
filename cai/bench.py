"""How much does `cai` add to vLLM? The critique loop against raw vLLM on the same requests.

The critique job runs as users run it (a fresh run folder, so nothing comes from the request
cache), while every batch it hands to vLLM is recorded. The same batches — the same token ids and
the same seeded sampling parameters — are then sent to vLLM directly. vLLM's prefix cache is
emptied before each measurement, so both start cold and both reuse prefixes across steps alike.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from cai import jobs
from cai.constitution import LoadedConstitution
from cai.engine import Engine
from cai.run import RunDir
from cai.stages.critique import CritiqueConfig


def critique_overhead(
    responses: Path, engine: Engine, constitution: LoadedConstitution, config: CritiqueConfig, chunk_size: int
) -> dict:
    batches = []
    original = engine.llm.generate

    def recording(prompts, params, **kwargs):
        batches.append((prompts, params))
        return original(prompts, params, **kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        run.path.mkdir()
        shutil.copy(responses, run.file("responses.jsonl"))
        engine.llm.reset_prefix_cache()
        engine.llm.generate = recording
        try:
            start = time.perf_counter()
            jobs.critique(run, engine, constitution, config, chunk_size)
            cai_seconds = time.perf_counter() - start
        finally:
            engine.llm.generate = original
            engine.cache = None

    engine.llm.reset_prefix_cache()
    start = time.perf_counter()
    for prompts, params in batches:
        original(prompts, params, use_tqdm=False)
    vllm_seconds = time.perf_counter() - start
    return {
        "examples": len(responses.read_text().splitlines()),
        "rounds": config.rounds,
        "engine_calls": len(batches),
        "requests": sum(len(p) for p, _ in batches),
        "cai_seconds": round(cai_seconds, 2),
        "vllm_seconds": round(vllm_seconds, 2),
        "overhead": round(cai_seconds / vllm_seconds - 1, 4),
    }
