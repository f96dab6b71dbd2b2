"""`cai serve reward`: the reward as an HTTP service, in OpenRLHF's remote reward API.

`POST /get_reward` takes `{"query": [...], "prompts": [...], "labels": [...]}`, each query being
the templated prompt followed by the response, and answers `{"rewards": [...], "scores": [...],
"extra_logs": {part: [...]}}`: the weighted sum and each part of it, one value per query. OpenRLHF
sends one query per request, many at once: a batcher thread gathers the requests that arrive
within `wait` seconds (up to `max_batch` queries) and scores them in one call of every part (one
judge call), so that a pairwise judge also sees a prompt's completions together. The one thread
is also the only one that touches the models. A malformed request gets a 4xx with a message.

(No `from __future__ import annotations` here: FastAPI reads the handlers' annotations at run time.)
"""

import concurrent.futures
import logging
import os
import queue
import re
import threading
import time

from cai.rewards.combine import weighted_sum

log = logging.getLogger("cai")

# Chat templates whose turns can be read back from a templated prompt: ChatML (SmolLM2, Qwen, …)
# and Llama 3's. A prompt in neither is the user's turn as it is.
TURNS = (
    re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)<\|im_end\|>", re.S),
    re.compile(r"<\|start_header_id\|>(system|user|assistant)<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.S),
)
END_MARKS = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>", "</s>", "<|end|>")


class BadRequest(ValueError):
    """What is wrong with a request, for its 4xx answer."""


def conversation_of(prompt: str) -> list[dict]:
    for pattern in TURNS:
        turns = [{"role": role, "content": content.strip()} for role, content in pattern.findall(prompt)]
        if turns:
            return turns
    return [{"role": "user", "content": prompt.strip()}]


def response_of(query: str, prompt: str) -> str:
    """The response: the query after its prompt (after the longest common start, where decoding the
    prompt's tokens changed it), without the end-of-turn marks the policy's tokenizer left."""
    response = query[len(os.path.commonprefix([query, prompt])):].strip()
    while response.endswith(END_MARKS):
        response = next(response[: -len(m)] for m in END_MARKS if response.endswith(m)).rstrip()
    return response


def parse(body) -> tuple[list[list[dict]], list[list[dict]]]:
    """A request's conversations and completions, or BadRequest saying what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with 'query' and 'prompts' lists")
    queries, prompts = body.get("query"), body.get("prompts")
    if not isinstance(queries, list) or not queries or not all(isinstance(q, str) for q in queries):
        raise BadRequest("'query' must be a non-empty list of strings (each the templated prompt and its response)")
    if not isinstance(prompts, list) or len(prompts) != len(queries) or not all(isinstance(p, str) for p in prompts):
        raise BadRequest(f"'prompts' must be a list of {len(queries)} strings, one per query")
    labels = body.get("labels")
    if labels is not None and (not isinstance(labels, list) or len(labels) != len(queries)):
        raise BadRequest(f"'labels', when given, must be a list of {len(queries)} values, one per query")
    return ([conversation_of(p) for p in prompts],
            [[{"role": "assistant", "content": response_of(q, p)}] for q, p in zip(queries, prompts)])


class Batcher:
    """One thread scores every request: those that arrive together, in one call of the parts."""

    def __init__(self, parts: list[tuple[object, float]], wait: float = 0.05, max_batch: int = 256):
        self.parts, self.wait, self.max_batch = parts, wait, max_batch
        self.queue: queue.Queue = queue.Queue()
        self.batches = 0
        threading.Thread(target=self._loop, name="cai-reward-batcher", daemon=True).start()

    def submit(self, conversations: list, completions: list) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.queue.put((conversations, completions, future))
        return future

    def _gather(self) -> list:
        batch = [self.queue.get()]
        deadline = time.monotonic() + self.wait
        while sum(len(b[0]) for b in batch) < self.max_batch:
            try:
                batch.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._gather()
            conversations = [c for b in batch for c in b[0]]
            completions = [c for b in batch for c in b[1]]
            try:
                totals, parts = weighted_sum(self.parts, conversations, completions)
            except Exception as e:  # noqa: BLE001 - a failed batch fails its requests, not the server
                log.exception("reward batch of %d queries failed", len(conversations))
                for *_, future in batch:
                    future.set_exception(e)
                continue
            self.batches += 1
            start = 0
            for batch_conversations, _, future in batch:
                end = start + len(batch_conversations)
                future.set_result({
                    "rewards": totals[start:end],
                    "scores": totals[start:end],
                    "extra_logs": {name: [0.0 if v is None else v for v in values[start:end]]
                                   for name, values in parts.items()},
                })
                start = end


def make_app(batcher: Batcher, status=dict):
    """The FastAPI app: POST /get_reward, and GET /health (with `status()`: the judge's counts)."""
    import asyncio

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="cai reward server")

    @app.post("/get_reward")
    async def get_reward(request: Request):
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        try:
            conversations, completions = parse(body)
        except BadRequest as e:
            return JSONResponse({"error": str(e)}, status_code=422)
        try:
            return JSONResponse(await asyncio.wrap_future(batcher.submit(conversations, completions)))
        except Exception as e:  # noqa: BLE001 - the reason goes back to the client; the server goes on
            return JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=500)

    @app.get("/health")
    async def health():
        return {"status": "ok", "batches": batcher.batches, **status()}

    return app


def serve(parts: list[tuple[object, float]], host: str, port: int, wait: float, max_batch: int, status=dict) -> None:
    import uvicorn

    uvicorn.run(make_app(Batcher(parts, wait, max_batch), status), host=host, port=port, log_level="warning")
