"""How much does `cai` add to vLLM? The critique loop against raw vLLM on the same requests.

The critique job runs as users run it (a fresh run folder, so nothing comes from the request
cache), while every batch it hands to vLLM is recorded. The same batches — the same token ids and
the same seeded sampling parameters — are then sent to vLLM directly. vLLM's prefix cache is
emptied before each chunk in both, so both start cold and both reuse prefixes across steps alike.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from cai import jobs
from cai.constitution import LoadedConstitution
from cai.engine_config import EngineConfig
from cai.executors.local import LocalExecutor, shared_engine
from cai.run import RunDir
from cai.stages.critique import CritiqueConfig


def critique_overhead(
    responses: Path, engine_config: EngineConfig, constitution: LoadedConstitution, config: CritiqueConfig, chunk_size: int
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        run.path.mkdir()
        shutil.copy(responses, run.file("responses.jsonl"))
        llm = shared_engine(engine_config, run.file("cache.sqlite")).backend.llm
        batches, original = [], llm.generate

        def recording(prompts, params, **kwargs):
            batches.append((prompts, params))
            return original(prompts, params, **kwargs)

        llm.generate = recording
        try:
            start = time.perf_counter()
            jobs.execute(run, jobs.critique_stage(run, constitution, config, engine_config), LocalExecutor(), chunk_size)
            cai_seconds = time.perf_counter() - start
        finally:
            llm.generate = original

    per_chunk = -(-len(batches) // max(1, -(-len(responses.read_text().splitlines()) // chunk_size)))
    start = time.perf_counter()
    for n, (prompts, params) in enumerate(batches):
        if n % per_chunk == 0:
            llm.reset_prefix_cache()
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
