"""Which model, on which backend: the settings every model-calling command shares.

An `EngineConfig` is plain data, so an executor can hand it to another process (a Ray actor) that
opens its own engine from it. What it records in the manifest names the model and the backend's
settings but never a server's URL or an API key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from cai.core.errors import CaiError
from cai.engine.backends.vllm_local import VllmSettings, local_identity
from cai.engine.cache import RequestCache
from cai.engine.engine import Engine
from cai.engine.models import DEFAULT_MODEL, resolve_model

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
    backend: str | None = field(default=None, metadata={"help": "vllm: in-process; openai: the --server URLs (default: openai where --server is given, else vllm).", "choices": ["vllm", "openai"]})
    servers: list[str] = field(default_factory=list, metadata={"help": "An OpenAI-compatible server's base URL, e.g. http://127.0.0.1:8000/v1 (repeatable: requests are spread over them)."})
    tokenizer: str | None = field(default=None, metadata={"help": "With --server: the model's tokenizer (a local folder), for token-id prompts."})
    max_model_len: int | None = field(default=None, metadata={"help": "Context length (default: the model's).", "min": 16})
    concurrency: int = field(default=64, metadata={"help": "With --server: requests in flight.", "min": 1})
    timeout: float = field(default=600.0, metadata={"help": "With --server: seconds before a request is retried elsewhere.", "min": 1.0})
    vllm: VllmSettings = field(default_factory=VllmSettings, metadata={"options": True})

    @property
    def kind(self) -> str:
        """The backend: the one chosen, else openai where servers are given, else vllm."""
        kind = self.backend or ("openai" if self.servers else "vllm")
        if (kind == "openai") != bool(self.servers):
            raise CaiError("the openai backend needs --server URLs" if kind == "openai"
                           else "--server URLs are for the openai backend, not --backend vllm")
        return kind

    def tokenizer_path(self) -> str:
        return self.tokenizer or resolve_model(self.model)

    def identity(self) -> dict:
        """What, besides the model's name, decides a stage's output (part of its settings
        fingerprint): in-process, the model's files, dtype, engine arguments and CPU thread count;
        with --server, the tokenizer's fingerprint; never a URL."""
        if self.kind == "vllm":
            return local_identity(resolve_model(self.model), self.vllm.engine_args, self.vllm.threads)
        from cai.engine.backends.openai_http import tokenizer_identity

        return {"tokenizer_fingerprint": tokenizer_identity(self.tokenizer_path())}

    def record(self) -> dict:
        """What the manifest keeps: no URLs, no secrets."""
        return {"model": self.model, "backend": self.kind, "engine_args": self.vllm.engine_args,
                "servers": len(self.servers), "tokenizer": self.tokenizer, "threads": self.vllm.threads, **self.identity()}

    def for_replicas(self) -> EngineConfig:
        """This config as another process must open it to compute what this one would: on CPU the
        numbers, and so the sampled tokens, depend on the thread count, and a Ray actor would
        otherwise compute with as many threads as it has CPUs."""
        if self.kind == "openai" or self.vllm.threads:
            return self
        import torch

        return replace(self, vllm=replace(self.vllm, threads=torch.get_num_threads()))

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
        if self.kind == "openai":
            from cai.engine.backends.openai_http import HttpBackend

            tokenizer = self.tokenizer_path()
            if not Path(tokenizer).is_dir() and self.tokenizer is None:
                log.warning("no --tokenizer given: loading '%s' as the tokenizer", tokenizer)
            return HttpBackend(self.servers, self.model, tokenizer, self.max_model_len, self.concurrency, self.timeout)
        from cai.engine.backends.vllm_local import VllmBackend

        return VllmBackend(resolve_model(self.model), self.max_model_len, self.vllm)
