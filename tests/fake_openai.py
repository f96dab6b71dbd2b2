"""A small OpenAI-style completions server, for what a real vLLM server never does.

It stands for the other servers the HTTP backend must cope with: one that ignores vLLM's extra
fields (`logprob_token_ids`) and gives top tokens by text, one whose model returns no
log-probabilities at all, one that leaves an option out of its top tokens, one that answers 429
and 5xx for a while. It runs in a thread of the test process on 127.0.0.1 and counts what it saw.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    model: str = "fake-model"
    logprobs: str = "top"  # top: "A" and "B" among the top tokens; none: no log-probabilities; lacks_b: no "B" for some prompts
    fail_first: int = 0  # answer the first N completions with 429 and 503 in turn
    seen: list = field(default_factory=list)  # every completion request's body
    failed: int = 0

    def lacks_b(self, prompt: list[int]) -> bool:
        return sum(prompt) % 2 == 1


class FakeOpenAI:
    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _completion(self, body: dict) -> tuple[int, dict]:
        b = self.behaviour
        with self.lock:
            b.seen.append(body)
            if b.failed < b.fail_first:
                b.failed += 1
                return (429 if b.failed % 2 else 503), {"error": "busy"}
        prompt = body["prompt"]
        if body.get("logprobs") is None:
            text = f"answer {body.get('seed', 0) % 997} to {len(prompt)} tokens"
            return 200, {"choices": [{"text": text, "finish_reason": "stop", "logprobs": None}],
                         "usage": {"prompt_tokens": len(prompt), "completion_tokens": 5}}
        top = {"A": -0.4, "B": -1.2, "C": -3.0}  # by text: this server knows nothing of token ids
        if b.logprobs == "none":
            logprobs = None
        else:
            if b.logprobs == "lacks_b" and b.lacks_b(prompt):
                top.pop("B")
            top = dict(list(top.items())[: max(1, int(body["logprobs"]))])
            logprobs = {"tokens": ["A"], "token_logprobs": [-0.4], "top_logprobs": [top]}
        return 200, {"choices": [{"text": "A", "finish_reason": "length", "logprobs": logprobs}],
                     "usage": {"prompt_tokens": len(prompt), "completion_tokens": 1}}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": fake.behaviour.model, "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/completions":
                    return self._send(404, {"error": "not found"})
                if body.get("model") != fake.behaviour.model:
                    return self._send(404, {"error": f"no model {body.get('model')}"})
                self._send(*fake._completion(body))

            def log_message(self, *args):  # quiet
                pass

        return Handler
