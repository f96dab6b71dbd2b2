"""The one layer above every backend: the request cache, retries and stats.

Stages call `Engine.generate` and `Engine.option_logprobs` with chat or text prompts; the shared
`PromptEncoder` turns them into token ids, prompts that do not fit the context are left out, the
request cache answers what it holds, and the rest goes to the backend as ONE batch. A batch that
fails is retried, then its requests are sent one by one, so one bad request fails alone.

A chunk is the unit of work: `begin_chunk` starts it on a cold prefix cache and `commit` stores its
requests in the cache once its rows are safe, so a chunk's result depends on the chunk alone, never
on what a killed run left half done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from cai.constitution.principles import derived_seed
from cai.core.errors import CaiError
from cai.core.records import Message
from cai.engine.backends import Backend
from cai.engine.cache import RequestCache, request_key
from cai.engine.encoder import PromptEncoder

log = logging.getLogger("cai")


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature.", "min": 0.0})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling.", "min": 0.0, "max": 1.0})
    max_tokens: int = field(default=256, metadata={"help": "Most tokens generated per request.", "min": 1})
    seed: int = field(default=0, metadata={"help": "Seeds sampling: each request gets its own seed from it and the request."})

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

    def add(self, other: dict) -> None:
        for k, v in other.items():
            if k in self.__dataclass_fields__:
                setattr(self, k, getattr(self, k) + v)

    def since(self, earlier: EngineStats) -> EngineStats:
        """The work done after `earlier` was copied (one chunk's share)."""
        return EngineStats(**{k: v - getattr(earlier, k) for k, v in asdict(self).items()})

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 3), "tokens_per_second": round(self.tokens_per_second, 1)}


class Engine:
    def __init__(self, backend: Backend, cache: RequestCache | None = None, retries: int = 2):
        self.backend = backend
        self.encoder = PromptEncoder(backend.tokenizer, backend.context_length)
        self.identity = backend.identity
        self.cache = cache
        self.retries = retries
        self.stats = EngineStats()
        self.on_step: Callable[[str], None] | None = None  # progress: what the stage is doing
        self._pending: dict[str, object] = {}  # this chunk's answers, cached once it is safe

    @property
    def tokenizer(self):
        return self.encoder.tokenizer

    @property
    def context_length(self) -> int:
        return self.encoder.context_length

    def token_ids(self, prompt: list[Message] | str) -> list[int]:
        return self.encoder.token_ids(prompt)

    def option_token_ids(self, prefix: str, options: list[str]) -> list[int]:
        ids = self.encoder.option_token_ids(prefix, options)
        self.backend.check_logprobs(ids)  # a server without log-probabilities is refused before any judgement
        return ids

    def step(self, label: str) -> None:
        log.debug(label)
        if self.on_step:
            self.on_step(label)

    # -- chunks ------------------------------------------------------------------------------

    def begin_chunk(self) -> None:
        self._pending.clear()
        self.backend.reset_prefix_cache()

    def commit(self) -> None:
        """Store the chunk's answers in the request cache (after its rows are on disk)."""
        if self.cache and self._pending:
            self.cache.put_many(self._pending)
        self._pending.clear()

    # -- calls -------------------------------------------------------------------------------

    def generate(self, requests: list[Request], sampling: SamplingConfig) -> list[Generation | Failed]:
        """One batched call. A prompt that, with max_tokens, would not fit the context is not sent."""
        jobs = []
        for request in requests:
            ids = self.token_ids(request.prompt)
            settings = dict(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=derived_seed(sampling.seed, request.key),
                stop=list(request.stop) or None,
            )
            fits = self.encoder.fits(ids, sampling.max_tokens)
            jobs.append((ids, settings, request_key("generate", self.identity, ids, settings)) if fits else None)
        answers = self._answer(jobs, self.backend.generate)
        for a in answers:
            if isinstance(a, dict):
                self.stats.prompt_tokens += a["prompt_tokens"]
                self.stats.completion_tokens += a["completion_tokens"]
        return [Generation(**a) if isinstance(a, dict) else a for a in answers]

    def option_logprobs(self, prompts: list[list[Message] | str], option_ids: list[int]) -> list[list[float] | Failed]:
        """The next-token log-probabilities of `option_ids` after each prompt: one prefill each."""
        jobs = []
        for prompt in prompts:
            ids = self.token_ids(prompt)
            fits = self.encoder.fits(ids, 1)
            jobs.append((ids, None, request_key("options", self.identity, ids, option_ids)) if fits else None)
            if fits:
                self.stats.prompt_tokens += len(ids)
        return self._answer(jobs, lambda prompts, _: self.backend.option_logprobs(prompts, option_ids))

    def _answer(self, jobs: list, call) -> list:
        """Answers for (ids, settings, cache key) jobs (None: too long): cache first, then the backend."""
        results: list = [TOO_LONG if job is None else None for job in jobs]
        keys = [job[2] for job in jobs if job is not None]
        cached = self.cache.get_many(keys) if self.cache and keys else {}
        pending = []
        for i, job in enumerate(jobs):
            if job is None:
                continue
            hit = self._pending.get(job[2], cached.get(job[2]))
            if hit is not None:
                results[i] = hit
                self.stats.cached += 1
            else:
                pending.append(i)
        start = time.perf_counter()
        outputs = self._call(call, [jobs[i][0] for i in pending], [jobs[i][1] for i in pending])
        self.stats.seconds += time.perf_counter() - start
        for i, out in zip(pending, outputs):
            if isinstance(out, Exception):
                results[i] = Failed(f"engine error: {type(out).__name__}: {out}")
            else:
                results[i] = out
                if self.cache is not None:
                    self._pending[jobs[i][2]] = out
        self.stats.requests += len(pending)
        self.stats.failed += sum(isinstance(r, Failed) for r in results)
        return results

    def _call(self, call, prompts: list, settings: list) -> list:
        """The backend's batched call, retried; if the batch keeps failing, each request alone,
        so that one bad request fails by itself instead of taking the batch with it."""
        if not prompts:
            return []
        for attempt in range(self.retries + 1):
            try:
                return call(prompts, settings)
            except CaiError:
                raise
            except Exception as e:  # noqa: BLE001 - any backend failure is retried, then isolated
                log.warning("engine call failed (attempt %d of %d): %s", attempt + 1, self.retries + 1, e)
        if len(prompts) == 1:
            try:
                return call(prompts, settings)
            except CaiError:
                raise
            except Exception as e:  # noqa: BLE001
                return [e]
        return [out for p, s in zip(prompts, settings) for out in self._call(call, [p], [s])]

    def close(self) -> None:
        self.backend.close()
        if self.cache:
            self.cache.close()
