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

from cai.errors import CaiError
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


def _context_length(model: str) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    return getattr(config.get_text_config(), "max_position_embeddings", None) or 8192


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

        cpu = {}
        if current_platform.is_cpu():
            # Chunked prefill rewinds a seeded request's generator when it discards a token, which
            # CPU generators cannot do ("CPU Generator does not use offset"): prefill prompts whole.
            context = self.max_model_len or _context_length(self.model)
            cpu = {
                "kv_cache_memory_bytes": int(self.kv_cache_gib * 2**30),
                "enable_chunked_prefill": False,
                "max_num_batched_tokens": max(context, 8192),
            }
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
        """Token ids of a prompt. Chat prompts that end with an assistant message continue it
        (the judge's answer prefix); others get the template's generation prompt."""
        if isinstance(prompt, str):
            return self.tokenizer(prompt).input_ids
        messages = [m.model_dump() for m in prompt]
        go_on = messages[-1]["role"] == "assistant"
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=not go_on, continue_final_message=go_on, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def option_token_ids(self, prefix: str, options: list[str]) -> list[int]:
        """The single token each option (e.g. "A") is, right after `prefix` (e.g. "answer is: (")."""
        base = self.tokenizer(prefix, add_special_tokens=False).input_ids
        ids = []
        for option in options:
            full = self.tokenizer(prefix + option, add_special_tokens=False).input_ids
            if full[: len(base)] != base or len(full) != len(base) + 1:
                raise CaiError(
                    f"the judge's tokenizer does not read option '{option}' after '{prefix}' as one "
                    "token of its own; this judge model cannot be used"
                )
            ids.append(full[-1])
        return ids

    def option_logprobs(
        self, prompts: list[list[Message] | str], option_ids: list[int]
    ) -> list[list[float] | None]:
        """The next-token log-probabilities of `option_ids` after each prompt: one prefill each.

        None marks a prompt too long for the context.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(option_ids))
        token_lists = [self.token_ids(p) for p in prompts]
        fits = [i for i, ids in enumerate(token_lists) if len(ids) + 1 <= self.context_length]
        self.stats.too_long += len(prompts) - len(fits)
        start = time.perf_counter()
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=token_lists[i]) for i in fits], params, use_tqdm=self.show_progress
        ) if fits else []
        self.stats.seconds += time.perf_counter() - start
        self.stats.requests += len(fits)
        results: list[list[float] | None] = [None] * len(prompts)
        for i, out in zip(fits, outputs):
            scores = out.outputs[0].logprobs[0]
            results[i] = [scores[t].logprob for t in option_ids]
            self.stats.prompt_tokens += len(out.prompt_token_ids)
        return results

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
