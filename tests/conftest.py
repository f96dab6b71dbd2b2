"""Shared fixtures: a tiny random model built here (no hub), and one vLLM engine over it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cai.data import CONSTITUTIONS, DEFAULT_CONSTITUTION, PROMPTS

ROOT = Path(__file__).resolve().parent.parent
# The tiny model needs little KV cache; every engine the tests start (in-process, CLI subprocesses,
# servers, Ray actors) reads this, so several fit in memory at once.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB, an integer for vLLM
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(folder: Path) -> Path:
    """A 2-layer Llama with a BPE tokenizer trained on the project's own texts (head size 32)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [p.read_text() for p in CONSTITUTIONS.glob("*.yaml")]
    corpus += [p.read_text() for p in PROMPTS.glob("*")]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny(tiny_model):
    """The engine settings of the tiny model, as the CLI would build them."""
    from cai.engine.config import EngineConfig

    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    from cai.engine.backends.vllm_local import VllmSettings

    return EngineConfig(str(tiny_model), vllm=VllmSettings(kv_cache_gib=1.0))


@pytest.fixture(scope="session")
def engine(tiny, tmp_path_factory):
    """The one in-process vLLM engine of the session (starting one takes seconds): the same object
    the local executor uses for `tiny`, so a test process never holds two engines."""
    from cai.executors.local import shared_engine

    return shared_engine(tiny, tmp_path_factory.mktemp("engine") / "cache.sqlite")


@pytest.fixture
def fake(tiny_model, tmp_path):
    """The engine config of an in-memory backend (tests/fakes.py) over the tiny model's tokenizer:
    stages run on it through the local executor as on vLLM, with no engine started."""
    from dataclasses import asdict

    from fakes import FakeBackend
    from transformers import AutoTokenizer

    from cai.engine.config import EngineConfig
    from cai.engine.engine import Engine
    from cai.executors import local

    config = EngineConfig(f"fake-{tmp_path.name}")
    key = json.dumps(asdict(config), sort_keys=True, default=str)
    local._engines[key] = Engine(FakeBackend(AutoTokenizer.from_pretrained(tiny_model)))
    yield config
    del local._engines[key]


@pytest.fixture
def default_constitution():
    from cai.constitution.schema import load_constitution

    return load_constitution(DEFAULT_CONSTITUTION)


@pytest.fixture
def prefill_calls(engine, monkeypatch):
    """The sizes of the judge's batched prefill calls (engine.option_logprobs), in order."""
    calls = []
    original = engine.option_logprobs

    def option_logprobs(prompts, option_ids):
        calls.append(len(prompts))
        return original(prompts, option_ids)

    monkeypatch.setattr(engine, "option_logprobs", option_logprobs)
    return calls


@pytest.fixture
def problems_of(tmp_path):
    """The problems `load_constitution` reports for a constitution's YAML text."""
    from cai.constitution.schema import load_constitution
    from cai.io.yaml_errors import InvalidFile

    def problems(text: str) -> list[str]:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        with pytest.raises(InvalidFile) as info:
            load_constitution(path)
        return [str(p) for p in info.value.problems]

    return problems
