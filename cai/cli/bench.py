"""`cai bench`: cai's overhead over raw vLLM, memory, resume, executors, HTTP and model load time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from cai.cli.common import ROUNDS, ChunkSize, ConstitutionOpt, Limit, Model, app, err
from cai.constitution.schema import load_constitution
from cai.core.errors import CaiError
from cai.core.options import (
    ENGINE,
    SAMPLING,
    default_of,
    option,
    with_options,
)
from cai.core.run import RunDir
from cai.data import DEFAULT_CONSTITUTION, DEMO_PROMPTS
from cai.engine.config import EngineConfig
from cai.engine.engine import SamplingConfig
from cai.engine.models import DEFAULT_MODEL, resolve_model
from cai.stages.critique import CritiqueConfig
from cai.workflows import jobs

bench_app = typer.Typer(help="Measure cai's overhead over raw vLLM.", no_args_is_help=True)

app.add_typer(bench_app, name="bench")


@bench_app.command("critique")
def bench_critique(
    run: Annotated[Path, typer.Option("--run", help="A run folder with responses.jsonl (left unchanged).")],
    rounds: Annotated[int, typer.Option(min=1, help="Critique/revision rounds.")] = ROUNDS,
    constitution: ConstitutionOpt = DEFAULT_CONSTITUTION,
    model: Annotated[str, option(EngineConfig, "model")] = DEFAULT_MODEL,
    max_tokens: Annotated[int, option(SamplingConfig, "max_tokens")] = default_of(SamplingConfig, "max_tokens"),
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
):
    """The whole critique loop through cai, then the same requests straight to vLLM; prints JSON."""
    from cai.bench.overhead import critique_overhead

    responses = RunDir(run).require("responses.jsonl", "cai generate")
    config = CritiqueConfig(model, rounds=rounds, sampling=SamplingConfig(max_tokens=max_tokens))
    result = critique_overhead(responses, EngineConfig(model), load_constitution(constitution), config, chunk_size)
    print(json.dumps(result, indent=2))


@bench_app.command("scale")
def bench_scale(
    model: Model = DEFAULT_MODEL,
    sizes: Annotated[str, typer.Option(help="Input sizes for the memory measurement, comma-separated.")] = "1000,100000",
    resume_prompts: Annotated[int, typer.Option(min=0, help="Prompts for the resume measurement (0: skip it).")] = 20000,
    max_tokens: Annotated[int, option(SamplingConfig, "max_tokens")] = 1,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
):
    """Peak RSS of `cai generate` against input size, and the cost of a rerun after a kill at 90%."""
    from cai.bench import scale as bench_scale
    result = {"memory": bench_scale.memory(model, [int(n) for n in sizes.split(",")], max_tokens, chunk_size)}
    if resume_prompts:
        result["resume"] = bench_scale.resume(model, resume_prompts, max_tokens, chunk_size)
    print(json.dumps(result, indent=2))


@bench_app.command("load")
def bench_load(
    model: Model = DEFAULT_MODEL,
    repeats: Annotated[int, typer.Option(min=1, help="Fresh processes per way of opening.")] = 3,
):
    """Seconds to open the model in cai against vLLM's own LLM(...), each in a fresh process."""
    from cai.bench.load import load_times

    print(json.dumps(load_times(resolve_model(model), repeats, progress=err.print), indent=2))


@bench_app.command("executors")
def bench_executors(
    model: Model = DEFAULT_MODEL,
    prompts: Annotated[int, typer.Option(min=1, help="Synthetic prompts.")] = 4096,
    max_tokens: Annotated[int, option(SamplingConfig, "max_tokens")] = 16,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
    ray_address: Annotated[Optional[str], typer.Option(help="A Ray cluster (default: one started here).")] = None,
    server: Annotated[Optional[list[str]], typer.Option(help="Also through these OpenAI-compatible servers of --model.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(help="With --server: the tokenizer folder (default: --model).")] = None,
    served_model: Annotated[Optional[str], typer.Option(help="With --server: the name the servers serve --model by (default: --model).")] = None,
):
    """The same requests on the in-process engine, the Ray executor (one replica) and, with --server,
    the HTTP backend: throughput while computing chunks, against the in-process engine."""
    from cai.bench import scale as bench_scale
    ray = ["--executor", "ray", "--replicas", "1"] + (["--ray-address", ray_address] if ray_address else [])
    executors = {"local": [], "ray": ray}
    if server:  # the last --model given is the one cai generate takes
        executors["http"] = ([a for url in server for a in ("--server", url)] + ["--tokenizer", tokenizer or model]
                             + ["--model", served_model or model])
    print(json.dumps(bench_scale.throughput(model, prompts, executors, max_tokens, chunk_size), indent=2))


@bench_app.command("http")
@with_options(ENGINE, SAMPLING)
def bench_http(
    engine: EngineConfig,
    sampling: SamplingConfig,
    prompts: Annotated[Path, typer.Option(help="JSONL(.gz), JSON, CSV or Parquet prompts.", show_default="the bundled demo prompts")] = DEMO_PROMPTS,
    local_model: Annotated[Optional[str], typer.Option(help="The model folder the servers serve, run in-process (default: --tokenizer, else --model).")] = None,
    limit: Limit = None,
    chunk_size: ChunkSize = jobs.CHUNK_SIZE,
):
    """The same generate requests in-process and through --server URLs: throughputs and overhead, as JSON."""
    from cai.bench.overhead import http_overhead

    if not engine.servers:
        raise CaiError("cai bench http needs at least one --server URL (and --model, the served name)")
    local = EngineConfig(local_model or engine.tokenizer_path(), max_model_len=engine.max_model_len,
                         vllm=engine.vllm)
    print(json.dumps(http_overhead(prompts, local, engine, sampling, limit, chunk_size), indent=2))
