"""The one engine layer: every model call in `cai` goes through an `Engine`.

It is the single place for batching, caching and retries. It renders chat prompts with the
model's template (data stays plain text: special-token strings inside messages are not special),
tokenizes once, answers what the request cache already holds, leaves out prompts that do not fit
the context, and sends the rest to vLLM as ONE batched call, retried on failure. The engine is
created once per job and reused by every step, so vLLM's prefix cache carries over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cai.cache import RequestCache, request_key
from cai.errors import CaiError
from cai.records import Message

log = logging.getLogger("cai")


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


@dataclass(frozen=True)
class Failed:
    """A request that could not be answered, and why: the row goes to errors.jsonl."""

    reason: str


TOO_LONG = Failed("prompt too long for the context")


@dataclass
class EngineStats:
    requests: int = 0
    cached: int = 0
    failed: int = 0
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


def _model_identity(model: str) -> str:
    """The model's name plus a fingerprint of its local files, so the cache notices new weights."""
    path = Path(model)
    if not path.is_dir():
        return model
    digest = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file():
            stat = f.stat()
            digest.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{model}@{digest.hexdigest()[:16]}"


@dataclass
class Engine:
    """vLLM's offline engine, with the settings that make it start fast and run on CPU too."""

    model: str
    max_model_len: int | None = None
    kv_cache_gib: float = 4.0  # on CPU only: vLLM would otherwise reserve most of the RAM
    show_progress: bool = True
    retries: int = 2
    cache: RequestCache | None = None
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
        self.identity = _model_identity(self.model)
        # Plain-text prompts start with BOS where the tokenizer would add one.
        bos = self.tokenizer.bos_token_id
        self._bos = [bos] if bos is not None and self.tokenizer("a").input_ids[:1] == [bos] else []

    # -- prompts -----------------------------------------------------------------------------

    def _ids(self, text: str, plain: bool) -> list[int]:
        """Token ids of text; `plain` reads special-token strings (e.g. "<|im_end|>") as text."""
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=plain).input_ids

    def token_ids(self, prompt: list[Message] | str) -> list[int]:
        """Token ids of a prompt. Chat prompts that end with an assistant message continue it
        (the judge's answer prefix); others get the template's generation prompt.

        Message contents are tokenized as plain text, apart from the template around them, so
        that data can never close a turn or open a system message.
        """
        if isinstance(prompt, str):
            return self._bos + self._ids(prompt, plain=True)
        marks = [f"\x00cai{i}\x00" for i in range(len(prompt))]
        messages = [{"role": m.role, "content": mark} for m, mark in zip(prompt, marks)]
        go_on = prompt[-1].role == "assistant"
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=not go_on, continue_final_message=go_on, tokenize=False
        )
        ids = []
        for mark, message in zip(marks, prompt):
            head, text = text.split(mark, 1)
            ids += self._ids(head, plain=False) + self._ids(message.content, plain=True)
        return ids + self._ids(text, plain=False)

    def option_token_ids(self, prefix: str, options: list[str]) -> list[int]:
        """The single token each option (e.g. "A") is, right after `prefix` (e.g. "answer is: (")."""
        base = self._ids(prefix, plain=True)
        ids = []
        for option in options:
            full = self._ids(prefix + option, plain=True)
            if full[: len(base)] != base or len(full) != len(base) + 1:
                raise CaiError(
                    f"the judge's tokenizer does not read option '{option}' after '{prefix}' as one "
                    "token of its own; this judge model cannot be used"
                )
            ids.append(full[-1])
        return ids

    # -- calls -------------------------------------------------------------------------------

    def generate(self, requests: list[Request], sampling: SamplingConfig) -> list[Generation | Failed]:
        """One batched call. A prompt that, with max_tokens, would not fit the context is not sent."""
        from vllm import SamplingParams

        from cai.principles import derived_seed

        jobs = []
        for request in requests:
            ids = self.token_ids(request.prompt)
            if len(ids) + sampling.max_tokens > self.context_length:
                jobs.append(None)
                continue
            settings = dict(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=derived_seed(sampling.seed, request.key),
                stop=list(request.stop) or None,
            )
            jobs.append((ids, SamplingParams(**settings), request_key("generate", self.identity, ids, settings)))

        def read(out) -> dict:
            completion = out.outputs[0]
            return {
                "text": completion.text.strip(),
                "prompt_tokens": len(out.prompt_token_ids),
                "completion_tokens": len(completion.token_ids),
                "finish_reason": completion.finish_reason,
            }

        answers = self._answer(jobs, read)
        for a in answers:
            if isinstance(a, dict):
                self.stats.prompt_tokens += a["prompt_tokens"]
                self.stats.completion_tokens += a["completion_tokens"]
        return [Generation(**a) if isinstance(a, dict) else a for a in answers]

    def option_logprobs(
        self, prompts: list[list[Message] | str], option_ids: list[int]
    ) -> list[list[float] | Failed]:
        """The next-token log-probabilities of `option_ids` after each prompt: one prefill each."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(option_ids))
        jobs = []
        for prompt in prompts:
            ids = self.token_ids(prompt)
            fits = len(ids) + 1 <= self.context_length
            jobs.append((ids, params, request_key("options", self.identity, ids, option_ids)) if fits else None)

        def read(out) -> list[float]:
            scores = out.outputs[0].logprobs[0]
            self.stats.prompt_tokens += len(out.prompt_token_ids)
            return [scores[t].logprob for t in option_ids]

        return self._answer(jobs, read)

    def _answer(self, jobs: list, read) -> list:
        """Answers for (ids, params, cache key) jobs (None: too long): cache first, then vLLM."""
        from vllm.inputs import TokensPrompt

        results: list = [TOO_LONG if job is None else None for job in jobs]
        keys = [job[2] for job in jobs if job is not None]
        cached = self.cache.get_many(keys) if self.cache and keys else {}
        pending = []
        for i, job in enumerate(jobs):
            if job is not None and job[2] in cached:
                results[i] = cached[job[2]]
                self.stats.cached += 1
            elif job is not None:
                pending.append(i)
        start = time.perf_counter()
        outputs = self._call([TokensPrompt(prompt_token_ids=jobs[i][0]) for i in pending], [jobs[i][1] for i in pending])
        self.stats.seconds += time.perf_counter() - start
        fresh = {}
        for i, out in zip(pending, outputs):
            if isinstance(out, Exception):
                results[i] = Failed(f"engine error: {type(out).__name__}: {out}")
            else:
                results[i] = fresh[jobs[i][2]] = read(out)
        if self.cache and fresh:
            self.cache.put_many(fresh)
        self.stats.requests += len(pending)
        self.stats.failed += sum(isinstance(r, Failed) for r in results)
        return results

    def _call(self, prompts: list, params: list) -> list:
        """vLLM's batched generate, retried; if the batch keeps failing, each request alone,
        so that one bad request fails by itself instead of taking the batch with it."""
        if not prompts:
            return []
        for attempt in range(self.retries + 1):
            try:
                return self.llm.generate(prompts, params, use_tqdm=self.show_progress)
            except Exception as e:  # noqa: BLE001 - any engine failure is retried, then isolated
                log.warning("engine call failed (attempt %d of %d): %s", attempt + 1, self.retries + 1, e)
        if len(prompts) == 1:
            try:
                return self.llm.generate(prompts, params, use_tqdm=False)
            except Exception as e:  # noqa: BLE001
                return [e]
        return [out for p, q in zip(prompts, params) for out in self._call([p], [q])]
