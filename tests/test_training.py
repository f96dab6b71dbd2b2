"""TRL training stages on the tiny model: a few steps each, and the whole chain on pipeline files."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import stage_runs
import torch
from cli_run import invoke

from cai.core.errors import CaiError
from cai.core.run import RunDir
from cai.data import DEFAULT_CONSTITUTION, DEMO_PROMPTS
from cai.engine.engine import SamplingConfig
from cai.stages.critique import CritiqueConfig
from cai.stages.generate import GenerateConfig
from cai.stages.label import LabelConfig
from cai.train.common import build_config
from cai.train.preference import eval_pm, soft_preference_loss, train_dpo, train_pm
from cai.train.rl import train_rl
from cai.train.sft import train_sft
from cai.workflows import jobs

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = DEMO_PROMPTS
HH = Path(__file__).resolve().parent / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"
FAST = {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 256}


def test_soft_loss_matches_a_hand_computation():
    delta = torch.tensor([2.0, -1.0, 0.0])
    p = torch.tensor([0.9, 0.3, 0.5])
    sig = [1 / (1 + math.exp(-d)) for d in (2.0, -1.0, 0.0)]
    by_hand = -sum(pi * math.log(s) + (1 - pi) * math.log(1 - s) for pi, s in zip((0.9, 0.3, 0.5), sig)) / 3
    assert soft_preference_loss(delta, p).item() == pytest.approx(by_hand, rel=1e-6)
    # with p = 1 it is TRL's hard loss, -log sigmoid(delta)
    assert soft_preference_loss(delta, torch.ones(3)).item() == pytest.approx(
        -sum(math.log(s) for s in sig) / 3, rel=1e-6)


def test_config_file_then_flags(tmp_path):
    from trl import SFTConfig

    config_file = tmp_path / "sft.yaml"
    config_file.write_text("learning_rate: 0.001\nmax_steps: 7\nwarmup_steps: 2\n")
    config = build_config(SFTConfig, tmp_path / "out", config_file, {"max_steps": 3, "num_train_epochs": None})
    assert (config.learning_rate, config.max_steps, config.warmup_steps) == (0.001, 3, 2)
    config_file.write_text("learning_rat: 0.1\n")
    with pytest.raises(CaiError, match="unknown SFTConfig field.*learning_rat"):
        build_config(SFTConfig, tmp_path / "out", config_file, {})


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, engine, tiny_model, tiny):
    """generate → critique → export sft, then sample → label → export prefs, on the tiny model."""
    from cai.constitution.schema import load_constitution

    constitution = load_constitution(DEFAULT_CONSTITUTION)
    run = RunDir(tmp_path_factory.mktemp("pipeline") / "run")
    sampling = SamplingConfig(max_tokens=12)
    stage_runs.generate(run, PROMPTS, tiny, GenerateConfig("tiny", sampling=sampling), limit=6)
    stage_runs.critique(run, tiny, constitution, CritiqueConfig("tiny", rounds=1, sampling=sampling))
    jobs.export_sft(run, keep_flagged=True)
    return run, constitution


@pytest.mark.slow
def test_the_whole_path_on_pipeline_files(tmp_path, pipeline, engine, tiny_model, tiny):
    run, constitution = pipeline
    sft = train_sft(run.file("sft.jsonl"), str(tiny_model), tmp_path / "sft", overrides=FAST)
    assert sft["metrics"]["train_loss"] > 0 and (tmp_path / "sft" / "cai_train.json").is_file()

    # the SL-CAI model samples on vLLM (in its own process, as a user runs it); the judge labels
    rl = RunDir(tmp_path / "rl")
    done = subprocess.run([sys.executable, "-m", "cai", "sample", "--prompts", str(PROMPTS), "--run", str(rl.path),
                           "--model", str(tmp_path / "sft"), "-n", "2", "--limit", "6", "--max-tokens", "12"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    stage_runs.label(rl, tiny, constitution, LabelConfig("tiny", keep_flagged=True))
    prefs = jobs.export_prefs(rl, keep_flagged=True)
    assert prefs.rows_out >= 4

    pm = train_pm(prefs.output, str(tiny_model), tmp_path / "pm", loss="soft", overrides=FAST)
    assert pm["loss"] == "soft" and math.isfinite(pm["metrics"]["train_loss"])

    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(tmp_path / "sft").state_dict()
    ppo = train_rl(PROMPTS, str(tmp_path / "sft"), str(tmp_path / "pm"), tmp_path / "ppo", "ppo", kl_coef=0.05, limit=4,
                   overrides={"total_episodes": 4, "per_device_train_batch_size": 2, "num_mini_batches": 1,
                              "response_length": 8, "num_ppo_epochs": 1})
    assert ppo["job"] == "ppo"
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "ppo").state_dict()
    assert any(not torch.equal(start[k], after[k]) for k in start)  # the policy moved


@pytest.mark.slow
def test_pm_losses_eval_and_dpo(tmp_path, pipeline, engine, tiny_model, tiny):
    run, constitution = pipeline
    rl = RunDir(tmp_path / "rl")
    stage_runs.generate(rl, PROMPTS, tiny, GenerateConfig("tiny", sampling=SamplingConfig(1.0, max_tokens=10), n=2),
                  limit=4, stage="sample")
    stage_runs.label(rl, tiny, constitution, LabelConfig("tiny", keep_flagged=True))
    prefs = jobs.export_prefs(rl, keep_flagged=True).output
    for loss in ("margin", "hard"):
        assert train_pm(prefs, str(tiny_model), tmp_path / loss, loss=loss, overrides=FAST)["loss"] == loss
    summary = eval_pm(str(tmp_path / "hard"), HH, limit=6)
    assert summary["n"] == 6 and 0 <= summary["accuracy"] <= 1
    dpo = train_dpo(prefs, str(tiny_model), tmp_path / "dpo", overrides=FAST, lora=True)
    assert dpo["lora"] and (tmp_path / "dpo" / "config.json").is_file()  # adapters merged: a plain model


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["rloo", "grpo"])
def test_rloo_and_grpo(tmp_path, tiny_model, algo):
    from cai.train.preference import _reward_model

    model, tokenizer = _reward_model(str(tiny_model))
    model.save_pretrained(tmp_path / "pm")
    tokenizer.save_pretrained(tmp_path / "pm")
    info = train_rl(PROMPTS, str(tiny_model), str(tmp_path / "pm"), tmp_path / algo, algo, limit=4,
                    overrides={"max_steps": 1, "per_device_train_batch_size": 2, "num_generations": 2,
                               "max_completion_length": 8})
    assert info["job"] == algo and (tmp_path / algo / "config.json").is_file()


@pytest.mark.slow
def test_ppo_refuses_a_reward_model_with_another_tokenizer(tmp_path, tiny_model):
    from transformers import AutoTokenizer

    other = tmp_path / "other-pm"
    from cai.train.preference import _reward_model

    model, tokenizer = _reward_model(str(tiny_model))
    model.save_pretrained(other)
    tokenizer.add_tokens(["<extra-token>"])
    tokenizer.save_pretrained(other)
    with pytest.raises(CaiError, match="share the policy's tokenizer"):
        train_rl(PROMPTS, str(tiny_model), str(other), tmp_path / "ppo", "ppo", limit=2)
    assert AutoTokenizer.from_pretrained(other).get_vocab() != AutoTokenizer.from_pretrained(tiny_model).get_vocab()


@pytest.mark.slow
def test_training_commands(tmp_path, pipeline, tiny_model):
    """The train and eval commands as typed, with a YAML config under the flags."""
    import json as json_

    run, _ = pipeline
    config = tmp_path / "sft.yaml"
    config.write_text("max_steps: 5\nper_device_train_batch_size: 2\nmax_length: 256\n")
    result = invoke(["train", "sft", "--data", str(run.file("sft.jsonl")), "--model", str(tiny_model),
                                 "--out", str(tmp_path / "sft"), "--config", str(config), "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    record = json_.loads((tmp_path / "sft" / "cai_train.json").read_text())
    assert record["config"]["max_steps"] == 1 and record["config"]["per_device_train_batch_size"] == 2
    assert record["data_sha256"] and record["versions"]["trl"].startswith("1.12")

    prefs = tmp_path / "prefs.jsonl"
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}], "chosen": [{"role": "assistant", "content": "kind"}],
             "rejected": [{"role": "assistant", "content": "rude"}], "p_chosen": 0.8, "margin": 1.386} for i in range(4)]
    prefs.write_text("".join(json_.dumps(r) + "\n" for r in rows))
    common = ["--max-steps", "1", "--batch-size", "2", "--set", "max_length=128"]
    result = invoke(["train", "pm", "--data", str(prefs), "--model", str(tiny_model),
                                 "--out", str(tmp_path / "pm"), *common])
    assert result.exit_code == 0, result.output
    result = invoke(["eval", "pm", "--model", str(tmp_path / "pm"), "--pairs", str(prefs)])
    assert result.exit_code == 0, result.output
    assert json_.loads(result.stdout[result.stdout.index("{"):])["n"] == 4, result.stdout
    result = invoke(["train", "dpo", "--data", str(prefs), "--model", str(tiny_model),
                                 "--out", str(tmp_path / "dpo"), "--lora", *common])
    assert result.exit_code == 0, result.output
    assert json_.loads((tmp_path / "dpo" / "cai_train.json").read_text())["lora"] is True
