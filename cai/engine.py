"""The one engine layer: every model call in `cai` goes through `Engine.generate`.

It renders chat prompts with the model's template, tokenizes once, leaves out prompts that do not
fit the context (returning None for them, never crashing the batch), and sends everything else
to vLLM as ONE batched call. The engine is created once per job and reused by every step, so
vLLM's prefix cache carries over from one round to the next.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from cai.records import Message


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """A prompt (chat messages or plain text) and the key that seeds its sampling."""

    prompt: list[Message] | str
    key: str
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


@dataclass
class EngineStats:
    requests: int = 0
    too_long: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def since(self, earlier: EngineStats) -> EngineStats:
        """The work done after `earlier` was copied (one stage's share of a shared engine)."""
        return EngineStats(**{k: v - getattr(earlier, k) for k, v in asdict(self).items()})

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_second": round(self.tokens_per_second, 1)}


@dataclass
class Engine:
    """vLLM's offline engine, with the settings that make it start fast and run on CPU too."""

    model: str
    max_model_len: int | None = None
    kv_cache_gib: float = 4.0  # on CPU only: vLLM would otherwise reserve most of the RAM
    show_progress: bool = True
    stats: EngineStats = field(default_factory=EngineStats)

    def __post_init__(self):
        # In-process engine: starts in seconds, and needs no __main__ guard in callers' tests.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from vllm import LLM
        from vllm.platforms import current_platform

        cpu = {"kv_cache_memory_bytes": int(self.kv_cache_gib * 2**30)} if current_platform.is_cpu() else {}
        self.llm = LLM(
            model=self.model,
            max_model_len=self.max_model_len,
            distributed_executor_backend="uni",
            enforce_eager=True,
            enable_prefix_caching=True,
            **cpu,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.context_length = self.llm.llm_engine.model_config.max_model_len

    def token_ids(self, prompt: list[Message] | str) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer(prompt).input_ids
        messages = [m.model_dump() for m in prompt]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def generate(self, requests: list[Request], sampling: SamplingConfig) -> list[Generation | None]:
        """One batched call; None marks a prompt that, with max_tokens, would not fit the context."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from cai.principles import derived_seed

        results: list[Generation | None] = [None] * len(requests)
        prompts, params, index = [], [], []
        for i, request in enumerate(requests):
            ids = self.token_ids(request.prompt)
            if len(ids) + sampling.max_tokens > self.context_length:
                self.stats.too_long += 1
                continue
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(
                SamplingParams(
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_tokens=sampling.max_tokens,
                    seed=derived_seed(sampling.seed, request.key),
                    stop=list(request.stop) or None,
                )
            )
            index.append(i)
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=self.show_progress) if prompts else []
        self.stats.seconds += time.perf_counter() - start
        for i, out in zip(index, outputs):
            completion = out.outputs[0]
            results[i] = Generation(
                text=completion.text.strip(),
                prompt_tokens=len(out.prompt_token_ids),
                completion_tokens=len(completion.token_ids),
                finish_reason=completion.finish_reason,
            )
            self.stats.prompt_tokens += len(out.prompt_token_ids)
            self.stats.completion_tokens += len(completion.token_ids)
        self.stats.requests += len(prompts)
        return results
