"""How much does `cai` add to vLLM? The critique loop against raw vLLM on the same requests, and
the same generate requests in-process and through OpenAI-compatible servers.

The critique job runs as users run it (a fresh run folder, so nothing comes from the request
cache), while every batch it hands to vLLM is recorded. The same batches — the same token ids and
the same seeded sampling parameters — are then sent to vLLM directly. vLLM's prefix cache is
emptied before each chunk in both, so both start cold and both reuse prefixes across steps alike.

`cai bench http` runs one generate job twice, in fresh run folders: once on the in-process engine
(opened before the clock starts), once through the servers. The servers should run the engine
settings the in-process engine runs (on CPU: eager, no chunked prefill), or the comparison
measures those settings rather than HTTP.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from cai.constitution.schema import LoadedConstitution
from cai.core.run import RunDir
from cai.engine.config import EngineConfig
from cai.engine.engine import SamplingConfig
from cai.executors.local import LocalExecutor, shared_engine
from cai.stages.critique import CritiqueConfig
from cai.stages.generate import GenerateConfig
from cai.workflows import jobs


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


def timed_generate(prompts: Path, engine_config: EngineConfig, sampling: SamplingConfig, limit: int | None,
                   chunk_size: int, executor=None) -> dict:
    """One `generate` job as users run it, in a fresh run folder (nothing from the request cache);
    on the local executor its engine is opened before the clock starts, so start-up is not counted."""
    executor = executor or LocalExecutor()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        stage = jobs.generate_stage(prompts, GenerateConfig(engine_config.model, sampling=sampling), engine_config, limit=limit)
        if isinstance(executor, LocalExecutor):
            shared_engine(engine_config, run.file("cache.sqlite"))
        start = time.perf_counter()
        report = jobs.execute(run, stage, executor, chunk_size)
        seconds = time.perf_counter() - start
        with report.output.open(encoding="utf-8") as f:
            texts = [json.loads(line)["response"] for line in f]
    return {
        "seconds": round(seconds, 2),
        "requests": report.stats.requests,
        "errors": len(report.skipped),
        "completion_tokens": report.stats.completion_tokens,
        "requests_per_s": round(report.stats.requests / seconds, 2),
        "tokens_per_s": round(report.stats.completion_tokens / seconds, 1),
        "texts": texts,
    }


def http_overhead(prompts: Path, local: EngineConfig, served: EngineConfig, sampling: SamplingConfig,
                  limit: int | None, chunk_size: int) -> dict:
    """The same generate requests (same prompts, same seeds) through the in-process engine and
    through the servers: both throughputs, the HTTP backend's overhead, and whether the texts agree."""
    runs = {"in_process": timed_generate(prompts, local, sampling, limit, chunk_size),
            "http": timed_generate(prompts, served, sampling, limit, chunk_size)}
    texts = [r.pop("texts") for r in runs.values()]
    return {
        "prompts": len(texts[0]),
        "max_tokens": sampling.max_tokens,
        "servers": len(served.servers),
        "concurrency": served.concurrency,
        **runs,
        "overhead": round(runs["http"]["seconds"] / runs["in_process"]["seconds"] - 1, 4),
        "same_texts": sum(a == b for a, b in zip(*texts)) / max(len(texts[0]), 1),
    }
