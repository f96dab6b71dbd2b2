"""`cai train` under `accelerate launch` with two processes on CPU: data parallel, one model.

On a machine without GPUs, `accelerate launch --multi_gpu --num_processes 2` starts two processes
that train one model over torch.distributed's gloo backend (`--cpu` would start one). The judge is
a vLLM server both share; the main process judges every process's completions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from vllm_server import VllmServer

from cai.core.children import cai_env
from cai.data import DEMO_PROMPTS

pytestmark = pytest.mark.slow

ACCELERATE = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "cai", "-q"]


def launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *ACCELERATE, *args], cwd=cwd, env=cai_env(), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def record_of(out: Path) -> dict:
    assert [p.name for p in out.glob("cai_train*.json")] == ["cai_train.json"]
    return json.loads((out / "cai_train.json").read_text())


def test_sft_under_two_processes_trains_one_model(tmp_path, tiny_model):
    data = tmp_path / "sft.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
            for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = launch(["train", "sft", "--data", str(data), "--model", str(tiny_model), "--out", str(tmp_path / "sft"),
                   "--max-steps", "2", "--batch-size", "2", "--set", "max_length=128"], tmp_path)
    record = record_of(tmp_path / "sft")
    assert record["processes"] == 2 and done.stdout.count("sft: trained") == 1
    assert record["metrics"]["epoch"] == 1.0  # 2 steps × 2 rows × 2 processes: all 8 rows, once
    assert (tmp_path / "sft" / "model.safetensors").is_file()


@pytest.fixture
def judge_server(tiny_model, tmp_path):
    server = VllmServer(tiny_model, tmp_path / "vllm.log").wait_ready()
    yield server
    server.stop()


def test_grpo_with_the_judge_under_two_processes(tmp_path, tiny_model, judge_server):
    out = tmp_path / "grpo"
    done = launch(["train", "ppo", "--algo", "grpo", "--prompts", str(DEMO_PROMPTS), "--limit", "4",
                   "--policy", str(tiny_model), "--judge-reward", "pairwise", "--judge-server", judge_server.url,
                   "--judge-model", "tiny", "--judge-tokenizer", str(tiny_model), "--out", str(out),
                   "--max-steps", "1", "--batch-size", "2", "--set", "num_generations=2",
                   "--set", "max_completion_length=8"], tmp_path)
    record = record_of(out)
    assert record["processes"] == 2 and record["reward_model"] is None
    assert "rewards/judge/mean" in record["reward_history"][0]
    # the main process judged every process's groups: its requests are all the judge's
    requests = record["judge"]["requests"]["requests"]
    assert requests > 0 and done.stdout.count(f"judge: {requests} requests") == 1
