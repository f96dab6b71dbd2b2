"""An in-memory backend that keeps the `cai.engine.backends.Backend` interface, for the tests of stage
lifecycle, resume, labeling and fault logic: its answers are a pure function of the token ids and
the request's settings, so reruns are byte-identical as with vLLM, and no engine starts."""

from __future__ import annotations

import hashlib
import math
import random

WORDS = "the a safe kind answer help cannot privacy harm please rather instead consider law".split()


def _rng(*parts) -> random.Random:
    return random.Random(hashlib.sha256(repr(parts).encode()).digest())


class FakeBackend:
    def __init__(self, tokenizer, context_length: int = 2048, identity: str = "fake"):
        self.tokenizer, self.context_length, self.identity = tokenizer, context_length, identity
        self.calls: list[int] = []  # the size of each batch it was handed
        self.resets = 0

    def generate(self, prompts: list[list[int]], settings: list[dict]) -> list[dict | Exception]:
        self.calls.append(len(prompts))
        answers = []
        for ids, s in zip(prompts, settings):
            rng = _rng(tuple(ids), s["seed"], s["temperature"], s["top_p"])
            n = min(s["max_tokens"], rng.randint(1, 12))
            answers.append({"text": " ".join(rng.choice(WORDS) for _ in range(n)), "prompt_tokens": len(ids),
                            "completion_tokens": n, "finish_reason": "length" if n == s["max_tokens"] else "stop"})
        return answers

    def option_logprobs(self, prompts: list[list[int]], option_ids: list[int]) -> list[list[float] | Exception]:
        self.calls.append(len(prompts))
        return [[math.log(_rng(tuple(ids), t).uniform(0.05, 0.9)) for t in option_ids] for ids in prompts]

    def check_logprobs(self, option_ids: list[int]) -> None:
        pass

    def reset_prefix_cache(self) -> None:
        self.resets += 1

    def close(self) -> None:
        pass
