"""Which model, on which backend: the settings every model-calling command shares.

An `EngineConfig` is plain data, so an executor can hand it to another process (a Ray actor) that
opens its own engine from it. What it records in the manifest names the model and the backend's
settings but never a server's URL or an API key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from cai.cache import RequestCache
from cai.engine import Engine
from cai.errors import CaiError
from cai.models import DEFAULT_MODEL, resolve_model

log = logging.getLogger("cai")


def parse_engine_args(pairs: list[str]) -> dict:
    """`KEY=VALUE` strings into vLLM engine arguments, values read as YAML (2 → int, true → bool)."""
    import yaml

    args = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CaiError(f"--engine-arg takes KEY=VALUE, not '{pair}'")
        args[key.strip()] = yaml.safe_load(value)
    return args


@dataclass
class EngineConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Model: the default name, a local folder or a hub id; with --server, the served model's name."})
    servers: list[str] = field(default_factory=list, metadata={"help": "An OpenAI-compatible server's base URL, e.g. http://127.0.0.1:8000/v1 (repeatable: requests are spread over them)."})
    tokenizer: str | None = field(default=None, metadata={"help": "With --server: the model's tokenizer (a local folder), for token-id prompts."})
    max_model_len: int | None = field(default=None, metadata={"help": "Context length (default: the model's).", "min": 16})
    engine_args: dict = field(default_factory=dict, metadata={"help": "Any vLLM engine argument, KEY=VALUE (repeatable), e.g. tensor_parallel_size=2."})
    concurrency: int = field(default=64, metadata={"help": "With --server: requests in flight.", "min": 1})
    timeout: float = field(default=600.0, metadata={"help": "With --server: seconds before a request is retried elsewhere.", "min": 1.0})
    threads: int | None = field(default=None, metadata={"help": "On CPU: the threads vLLM computes with (default: as many as torch uses here). The sampled tokens depend on it, so Ray replicas use this process's count.", "min": 1})
    kv_cache_gib: float = 4.0  # on CPU only: vLLM would otherwise reserve most of the RAM
    show_progress: bool = False  # vLLM's own progress bars (with --debug)

    @property
    def backend(self) -> str:
        return "openai" if self.servers else "vllm"

    def tokenizer_path(self) -> str:
        return self.tokenizer or resolve_model(self.model)

    def identity(self) -> dict:
        """What, besides the model's name, decides a stage's output (part of its settings
        fingerprint): in-process, the model's files, dtype, engine arguments and CPU thread count;
        with --server, the tokenizer's fingerprint; never a URL."""
        if not self.servers:
            from cai.backends.vllm_local import local_identity

            return local_identity(resolve_model(self.model), self.engine_args, self.threads)
        from cai.backends.openai_http import tokenizer_identity

        return {"tokenizer_fingerprint": tokenizer_identity(self.tokenizer_path())}

    def record(self) -> dict:
        """What the manifest keeps: no URLs, no secrets."""
        return {"model": self.model, "backend": self.backend, "engine_args": self.engine_args,
                "servers": len(self.servers), "tokenizer": self.tokenizer, "threads": self.threads, **self.identity()}

    def for_replicas(self) -> EngineConfig:
        """This config as another process must open it to compute what this one would: on CPU the
        numbers, and so the sampled tokens, depend on the thread count, and a Ray actor would
        otherwise compute with as many threads as it has CPUs."""
        if self.servers or self.threads:
            return self
        import torch

        return replace(self, threads=torch.get_num_threads())

    def open(self, cache: Path | None = None) -> Engine:
        log.info("opening %s on %s", self.model, f"{len(self.servers)} server(s)" if self.servers else "in-process vLLM")
        try:
            backend = self._backend()
        except CaiError:
            raise
        except Exception as e:  # noqa: BLE001 - vLLM raises many kinds; the user needs one line
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CaiError(f"could not load model '{self.model}': {reason}") from e
        return Engine(backend, RequestCache(cache) if cache else None)

    def _backend(self):
        if self.servers:
            from cai.backends.openai_http import HttpBackend

            tokenizer = self.tokenizer_path()
            if not Path(tokenizer).is_dir() and self.tokenizer is None:
                log.warning("no --tokenizer given: loading '%s' as the tokenizer", tokenizer)
            return HttpBackend(self.servers, self.model, tokenizer, self.max_model_len, self.concurrency, self.timeout)
        from cai.backends.vllm_local import VllmBackend

        return VllmBackend(resolve_model(self.model), self.max_model_len, self.kv_cache_gib,
                           self.engine_args, self.show_progress, self.threads)
