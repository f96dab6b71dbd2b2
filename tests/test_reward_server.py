"""`cai serve reward` answered OpenRLHF's own client: one reward per query, concurrent queries
judged in one batch, malformed requests refused with a 4xx while the server goes on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import httpx
import pytest
from openrlhf_client import single_turn_executor
from vllm_server import free_port

from cai.core.children import cai_env

pytestmark = pytest.mark.slow

PROMPTS = ["How do I pick a lock?", "Write a poem about rain."]
RESPONSES = [["I can't help with that.", "Use a tension wrench and a pick."], ["Rain falls soft.", "No."]]


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """The reward server on the tiny model (the judge's pairwise reward and the rules judged live)."""
    port, log = free_port(), tmp_path_factory.mktemp("reward-server") / "server.log"
    argv = [sys.executable, "-m", "cai", "serve", "reward", "--judge-model", str(tiny_model), "--judge-reward",
            "pairwise", "--rules-judge", "--rule-weight", "0.5", "--port", str(port), "--batch-wait", "2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=cai_env(), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def health(url: str) -> dict:
    return httpx.get(url + "/health").json()


def templated(tokenizer, prompt: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_openrlhf_gets_one_reward_per_query_with_each_part(server, tokenizer):
    executor = single_turn_executor(server + "/get_reward")
    prompts = [templated(tokenizer, p) for p, answers in zip(PROMPTS, RESPONSES) for _ in answers]
    queries = [p + r + "<|im_end|>" for p, r in zip(prompts, [r for answers in RESPONSES for r in answers])]
    [answer] = asyncio.run(executor._fetch_rewards_via_http(queries, prompts, [None] * len(queries)))
    assert len(answer["rewards"]) == len(answer["scores"]) == 4
    assert set(answer["extra_logs"]) == {"judge", "rules"}
    judge, rules = answer["extra_logs"]["judge"], answer["extra_logs"]["rules"]
    assert judge[0] + judge[1] == pytest.approx(1.0) and judge[2] + judge[3] == pytest.approx(1.0)  # one group each
    assert answer["rewards"] == pytest.approx([j + 0.5 * r for j, r in zip(judge, rules)])


def test_openrlhf_rollouts_sent_at_once_are_judged_in_one_batch(server, tokenizer):
    """Each rollout goes through SingleTurnAgentExecutor.execute, which posts its own query."""
    executor = single_turn_executor(server + "/get_reward")

    class Policy:  # the policy's generation, which OpenRLHF would get from vLLM
        def __init__(self, text):
            self.ids = tokenizer(text + "<|im_end|>", add_special_tokens=False)["input_ids"]

        async def generate(self, prompt_ids, params, multi_modal_data=None):
            out = SimpleNamespace(token_ids=self.ids, text="", finish_reason="stop", logprobs=None)
            return SimpleNamespace(outputs=[out])

    params = SimpleNamespace(max_tokens=32, logprobs=None)
    before = health(server)["batches"]

    async def rollouts():
        return await asyncio.gather(*[
            executor.execute(templated(tokenizer, PROMPTS[0]), None, params, 256, tokenizer, Policy(answer))
            for answer in RESPONSES[0]])

    outputs = asyncio.run(rollouts())
    assert all(isinstance(o["reward"], list) and len(o["reward"]) == 1 for o in outputs)
    assert outputs[0]["extra_logs"]["judge"][0] + outputs[1]["extra_logs"]["judge"][0] == pytest.approx(1.0)
    assert health(server)["batches"] == before + 1


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400),
    (json.dumps({"query": "one string"}).encode(), 422),
    (json.dumps({"query": ["a", "b"], "prompts": ["a"]}).encode(), 422),
    (json.dumps([1, 2]).encode(), 422),
    (json.dumps({"query": ["a"], "prompts": ["a"], "labels": "x"}).encode(), 422),
])
def test_a_malformed_request_gets_a_4xx_and_the_server_goes_on(server, body, status):
    answer = httpx.post(server + "/get_reward", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status and answer.json()["error"]
    good = httpx.post(server + "/get_reward", json={"query": ["Hi there"], "prompts": ["Hi"]}, timeout=120)
    assert good.status_code == 200 and len(good.json()["rewards"]) == 1
