"""Backends turn token-id prompts into texts or option log-probabilities; nothing else.

Prompt encoding lives in `cai.engine.encoder`, the request cache, retries and stats in `cai.engine.engine`, so a
backend is one small file: `vllm_local` (an in-process vLLM engine) or `openai_http` (any
OpenAI-compatible server: vLLM's, SGLang's, a hosted API).

Every backend has:
- `identity`: the model's name and a fingerprint of its weights or tokenizer (part of cache keys;
  never a URL, so a fleet with new addresses still finds its cache);
- `tokenizer` and `context_length`;
- `generate(prompts, settings) -> list[dict | Exception]`: for each token-id prompt and its sampling
  settings (temperature, top_p, max_tokens, seed, stop), `{"text", "prompt_tokens",
  "completion_tokens", "finish_reason"}`, or the exception that request ended in; a backend may also
  raise, failing the whole batch (the engine then retries it and isolates requests);
- `option_logprobs(prompts, option_ids) -> list[list[float] | Exception]`: the next-token
  log-probabilities of the option tokens after each prompt (one prefill each);
- `check_logprobs(option_ids)`: before a judge job, refuse in one line a model that cannot give
  those log-probabilities (in-process vLLM always can);
- `reset_prefix_cache()`: start a chunk from a cold prefix cache where the backend can;
- `close()`.

`Backend` declares this; `tests/fakes.py` holds an in-memory backend that keeps it, for the tests
of lifecycle, resume and fault logic.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    identity: str
    tokenizer: Any
    context_length: int

    def generate(self, prompts: list[list[int]], settings: list[dict]) -> list[dict | Exception]: ...

    def option_logprobs(self, prompts: list[list[int]], option_ids: list[int]) -> list[list[float] | Exception]: ...

    def check_logprobs(self, option_ids: list[int]) -> None: ...

    def reset_prefix_cache(self) -> None: ...

    def close(self) -> None: ...
