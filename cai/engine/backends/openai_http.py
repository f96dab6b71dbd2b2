"""Any OpenAI-compatible server (vLLM's, SGLang's, a hosted API) as a backend.

Prompts go as token ids to `/v1/completions`, each with its own seed, so the server sees exactly the
prompt the in-process engine would. Requests are spread over the servers, `concurrency` at a time;
a request that meets a 429, a 5xx, a timeout or a refused connection is retried on the next server
with exponential backoff and jitter, then fails alone. A refused API key stops the job in one line.

The judge needs the option tokens' log-probabilities. A vLLM server returns exactly those
(`logprob_token_ids`, keyed by token id); other servers return up to 20 top tokens, read by their
text. A server that returns no log-probabilities at all is refused before the job starts.

The API key comes from CAI_API_KEY or OPENAI_API_KEY only, and is sent in a header, never stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from cai.core.errors import CaiError

log = logging.getLogger("cai")

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
TOP_LOGPROBS = 20  # what OpenAI-style servers return at most


def api_key() -> str | None:
    return os.environ.get("CAI_API_KEY") or os.environ.get("OPENAI_API_KEY")


TOKENIZER_FILES = ("token", "vocab", "merges", "chat_template")  # what decides the token ids


def tokenizer_identity(path: str) -> str:
    """A fingerprint of the tokenizer's files (their bytes, so a copy on another node hashes the
    same): the cache and the settings notice a new tokenizer or chat template, not new URLs."""
    digest = hashlib.sha256()
    folder = Path(path)
    files = sorted(f for f in folder.iterdir() if f.is_file() and any(k in f.name for k in TOKENIZER_FILES)) if folder.is_dir() else []
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16] if files else path


class Retryable(Exception):
    """A failure worth another try on another server."""


class Unanswered(Exception):
    """Every try on every server failed: the request fails alone, with the last reason."""


def public(url: str) -> str:
    """A URL as messages show it: without user:password@ (httpx would send those as credentials)."""
    return re.sub(r"//[^/@]*@", "//", url)


class HttpBackend:
    def __init__(self, servers: list[str], model: str, tokenizer: str, max_model_len: int | None = None,
                 concurrency: int = 64, timeout: float = 600.0, retries: int = 4, backoff: float = 0.5):
        from transformers import AutoTokenizer

        if not servers:
            raise CaiError("the openai backend needs at least one --server URL")
        self.servers = [s.rstrip("/") for s in servers]
        self.model = model
        self.retries, self.backoff = retries, backoff
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.identity = f"{model}@tokenizer:{tokenizer_identity(tokenizer)}"
        key = api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(headers=headers, timeout=timeout,
                                   limits=httpx.Limits(max_connections=concurrency))
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cai-http")
        self._next = 0
        self._lock = threading.Lock()
        served = self._served_context_length()  # also checks the key, the model's name, the fleet
        self.context_length = max_model_len or served
        self.logprob_mode: str | None = None  # "ids" (vLLM) or "text", found by check_logprobs

    # -- plumbing ------------------------------------------------------------------------

    def _servers_from_next(self) -> list[str]:
        with self._lock:
            start, self._next = self._next, self._next + 1
        return [self.servers[(start + k) % len(self.servers)] for k in range(len(self.servers))]

    def _post(self, path: str, body: dict) -> dict:
        """POST to one server after another until one answers, backing off between rounds."""
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random()))
            for server in self._servers_from_next() if attempt == 0 else self.servers:
                try:
                    return self._post_once(server + path, body)
                except Retryable as e:
                    error = e
        raise Unanswered(f"{error} ({self.retries + 1} rounds of tries)")

    def _post_once(self, url: str, body: dict) -> dict:
        try:
            response = self.client.post(url, json=body)
        except httpx.TransportError as e:  # refused, reset, timed out
            raise Retryable(f"{public(url)}: {type(e).__name__}: {e}") from None
        if response.status_code in (401, 403):
            raise CaiError(f"{public(url)} refused the API key (HTTP {response.status_code}): set CAI_API_KEY "
                           "or OPENAI_API_KEY to a key this server accepts")
        if response.status_code in RETRY_STATUS:
            raise Retryable(f"{public(url)}: HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise ValueError(f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def _served_context_length(self) -> int:
        """The model's context from the first server that lists its models; a server that lists
        models but not this one is refused here, before any request could fail for it; so is a
        fleet of which no server answers at all."""
        unreachable = []
        for server in self.servers:
            try:
                response = self.client.get(server + "/models")
            except httpx.TransportError as e:
                unreachable.append(f"{public(server)} ({type(e).__name__})")
                continue
            if response.status_code in (401, 403):
                raise CaiError(f"{public(server)} refused the API key (HTTP {response.status_code}): set "
                               "CAI_API_KEY or OPENAI_API_KEY to a key this server accepts")
            if response.status_code != 200:
                continue
            served = {entry.get("id"): entry for entry in response.json().get("data", [])}
            if served and self.model not in served:
                raise CaiError(f"{public(server)} does not serve a model named '{self.model}' (it serves: "
                               f"{', '.join(sorted(map(str, served)))}): give --model the served name")
            if served.get(self.model, {}).get("max_model_len"):
                return int(served[self.model]["max_model_len"])
        if len(unreachable) == len(self.servers):
            raise CaiError(f"no server answered: {', '.join(unreachable)}")
        return min(getattr(self.tokenizer, "model_max_length", 0) or 8192, 1 << 20)

    def _map(self, fn, items: list) -> list:
        """fn over items, `concurrency` at a time; a request's exception is its result."""
        def safe(item):
            try:
                return fn(item)
            except CaiError:
                raise
            except Exception as e:  # noqa: BLE001 - the request fails alone, with its reason
                return e
        return list(self.pool.map(safe, items))

    # -- the backend interface -------------------------------------------------------------

    def generate(self, prompts: list[list[int]], settings: list[dict]) -> list[dict | Exception]:
        def one(job):
            ids, s = job
            body = {"model": self.model, "prompt": ids, "max_tokens": s["max_tokens"],
                    "temperature": s["temperature"], "top_p": s["top_p"], "seed": s["seed"]}
            if s.get("stop"):
                body["stop"] = list(s["stop"])
            response = self._post("/completions", body)
            choice, usage = response["choices"][0], response.get("usage") or {}
            completion = usage.get("completion_tokens")
            if completion is None:
                completion = len(self.tokenizer(choice["text"], add_special_tokens=False).input_ids)
            return {"text": choice["text"].strip(), "prompt_tokens": len(ids),
                    "completion_tokens": completion, "finish_reason": choice.get("finish_reason")}
        return self._map(one, list(zip(prompts, settings)))

    def _logprob_body(self, ids: list[int], option_ids: list[int], mode: str) -> dict:
        body = {"model": self.model, "prompt": ids, "max_tokens": 1, "temperature": 0.0}
        if mode == "ids":
            return body | {"logprobs": 1, "logprob_token_ids": list(option_ids), "return_tokens_as_token_ids": True}
        return body | {"logprobs": TOP_LOGPROBS}

    def _read_logprobs(self, response: dict, option_ids: list[int], mode: str) -> list[float]:
        logprobs = (response.get("choices") or [{}])[0].get("logprobs") or {}
        top = (logprobs.get("top_logprobs") or [None])[0]
        if not top:
            raise ValueError("the server returned no log-probabilities")
        found = []
        for t in option_ids:
            key = f"token_id:{t}" if mode == "ids" else self.tokenizer.decode([t])
            if key not in top:
                raise ValueError(f"the server gave no log-probability for option token {self.tokenizer.decode([t])!r}")
            found.append(float(top[key]))
        return found

    def check_logprobs(self, option_ids: list[int]) -> None:
        """Before a judge job: find how this server gives option log-probabilities, or refuse.
        A server that ignores vLLM's `logprob_token_ids` answers with top tokens by text instead."""
        if self.logprob_mode is not None:
            return
        probe = self.tokenizer("Is this a probe? (", add_special_tokens=False).input_ids
        for mode in ("ids", "text"):
            try:
                response = self._post("/completions", self._logprob_body(probe, option_ids, mode))
            except ValueError:  # e.g. a server that refuses vLLM's extra fields
                continue
            except Unanswered as e:
                raise CaiError(f"no server answered for model '{self.model}': {e}") from None
            top = ((response.get("choices") or [{}])[0].get("logprobs") or {}).get("top_logprobs") or [None]
            if top[0] and (mode == "text" or all(f"token_id:{t}" in top[0] for t in option_ids)):
                self.logprob_mode = mode
                return
        raise CaiError(f"model '{self.model}' returns no log-probabilities, which the judge needs: "
                       "use a model (or server) that gives logprobs")

    def option_logprobs(self, prompts: list[list[int]], option_ids: list[int]) -> list[list[float] | Exception]:
        if self.logprob_mode is None:
            self.check_logprobs(option_ids)
        mode = self.logprob_mode

        def one(ids):
            return self._read_logprobs(self._post("/completions", self._logprob_body(ids, option_ids, mode)), option_ids, mode)
        return self._map(one, prompts)

    def reset_prefix_cache(self) -> None:
        """A server's prefix cache is the server's: results are identical where it is deterministic."""

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
