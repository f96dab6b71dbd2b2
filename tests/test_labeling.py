"""sample → label → export prefs on vLLM with the tiny model; TRL's trainers take a step on it."""

import gzip
import json
import math
from pathlib import Path

import pytest
import stage_runs

from cai.core.errors import CaiError
from cai.core.records import PreferenceRecord, SampleRecord
from cai.core.run import RunDir, read_jsonl
from cai.data import DEMO_PROMPTS
from cai.engine.engine import SamplingConfig
from cai.stages.dialogue import Style
from cai.stages.generate import GenerateConfig
from cai.stages.judge import ANSWER_PREFIX, OPTIONS, judge_prompt, p_first
from cai.stages.label import LabelConfig, _asks, pairs_of
from cai.workflows import jobs

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = DEMO_PROMPTS


def sampled_run(tmp_path, tiny, n=3, limit=4):
    run = RunDir(tmp_path / "run")
    config = GenerateConfig("tiny", sampling=SamplingConfig(temperature=1.0, max_tokens=10), n=n)
    stage_runs.generate(run, PROMPTS, tiny, config, limit=limit, stage="sample")
    return run


def test_sample_writes_k_different_answers(tmp_path, engine, tiny):
    run = sampled_run(tmp_path, tiny, n=3)
    samples = read_jsonl(run.file("samples.jsonl"), SampleRecord)
    assert len(samples) == 4 and all(len(s.responses) == 3 for s in samples)
    assert all(len(set(s.responses)) == 3 for s in samples)  # temperature 1: different answers
    again = sampled_run(tmp_path / "again", tiny, n=3)
    assert read_jsonl(again.file("samples.jsonl"), SampleRecord) == samples  # seeded


def test_label_bookkeeping_is_exact(tmp_path, engine, default_constitution, prefill_calls, tiny):
    run = sampled_run(tmp_path, tiny, n=3, limit=4)
    report = stage_runs.label(run, tiny, default_constitution, LabelConfig("tiny", keep_flagged=True, principles_per_pair=2, seed=1))
    assert prefill_calls == [4 * 3 * 2 * 2]  # prompts × pairs × principles × orders, ONE call
    records = read_jsonl(run.file("preferences.jsonl"), PreferenceRecord)
    assert report.rows_out == len(records) == 12
    samples = {s.id: s for s in read_jsonl(run.file("samples.jsonl"), SampleRecord)}
    for r in records:
        assert r.p_chosen >= 0.5
        assert len({j.principle_id for j in r.judgements}) == 2
        x_first = [j.p_first if j.order == "AB" else 1 - j.p_first for j in r.judgements]
        p_x = sum(x_first) / len(x_first)
        i, k = r.pair
        x_index = min(i, k)
        assert r.p_chosen == pytest.approx(p_x if x_index == i else 1 - p_x)
        sample = samples[r.id.rsplit(":", 1)[0]]
        assert r.chosen[0].content == sample.responses[i] and r.rejected[0].content == sample.responses[k]
        assert r.margin == pytest.approx(math.log(r.p_chosen / (1 - r.p_chosen)), abs=1e-6)

    # Recompute one judgement by hand: the judge's own option log-probabilities, normalised.
    pairs, _ = pairs_of(list(samples.values()), LabelConfig("tiny", keep_flagged=True))
    ask = _asks(pairs, default_constitution, LabelConfig("tiny", keep_flagged=True, principles_per_pair=2, seed=1))[0]
    ids = engine.option_token_ids(ANSWER_PREFIX, OPTIONS)
    (scores,) = engine.option_logprobs([judge_prompt(ask.turns, Style.chat, ANSWER_PREFIX)], ids)
    record = next(r for r in records if r.id == pairs[0].id)
    assert record.judgements[0].p_first == pytest.approx(p_first(scores), abs=1e-6)

    manifest = json.loads(run.manifest_path.read_text())["stages"]["label"]
    assert manifest["swap"] is True and manifest["principles_per_pair"] == 2
    used = {k: v for k, v in manifest["counters"].items() if k.startswith("principle: ")}
    assert sum(used.values()) == 48 and len(used) > 2


def test_no_swap_and_cot(tmp_path, engine, default_constitution, prefill_calls, tiny):
    run = sampled_run(tmp_path, tiny, n=2, limit=3)
    stage_runs.label(run, tiny, default_constitution, LabelConfig("tiny", keep_flagged=True, swap=False))
    records = read_jsonl(run.file("preferences.jsonl"), PreferenceRecord)
    assert all(len(r.judgements) == 1 for r in records)
    assert {r.judgements[0].order for r in records} <= {"AB", "BA"}

    config = LabelConfig("tiny", keep_flagged=True, cot=True, cot_max_tokens=8)
    with pytest.raises(CaiError, match=r"other settings \(cot, cot_max_tokens, swap\).*--force"):
        stage_runs.label(run, tiny, default_constitution, config)
    stage_runs.label(run, tiny, default_constitution, config, force=True)
    records = read_jsonl(run.file("preferences.jsonl"), PreferenceRecord)
    assert all(0.5 <= r.p_chosen <= 0.6 for r in records)  # clamped to [0.4, 0.6]
    assert all(j.reasoning is not None for r in records for j in r.judgements)


def test_identical_answers_are_dropped_and_counted(tmp_path, engine, default_constitution, tiny):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    row = {"id": "s", "prompt": [{"role": "user", "content": "hi"}], "responses": ["same", "same", "other"],
           "provenance": {"model": "tiny", "sampling": {}, "style": "chat"}}
    run.file("samples.jsonl").write_text(json.dumps(row) + "\n")
    report = stage_runs.label(run, tiny, default_constitution, LabelConfig("tiny", keep_flagged=True))
    assert report.rows_out == 2 and "1 pairs of identical answers dropped" in report.notes
    assert json.loads(run.manifest_path.read_text())["stages"]["label"]["counters"]["identical_pairs_dropped"] == 1


def test_export_prefs_trains_reward_and_dpo(tmp_path, engine, default_constitution, tiny_model, tiny):
    run = sampled_run(tmp_path, tiny, n=2, limit=4)
    stage_runs.label(run, tiny, default_constitution, LabelConfig("tiny", keep_flagged=True))
    report = jobs.export_prefs(run, min_confidence=0.5, keep_flagged=True)
    assert report.rows_out == 4
    confident = [r for r in read_jsonl(run.file("preferences.jsonl"), PreferenceRecord) if r.p_chosen >= 0.99]
    if confident:
        assert jobs.export_prefs(run, tmp_path / "strict.jsonl", min_confidence=0.99, keep_flagged=True).rows_out == len(confident)
    else:  # the tiny judge is never that sure: nothing to export is an error, not an empty file
        with pytest.raises(CaiError, match="4 below confidence 0.99"):
            jobs.export_prefs(run, tmp_path / "strict.jsonl", min_confidence=0.99, keep_flagged=True)
        assert not (tmp_path / "strict.jsonl").exists()

    from datasets import load_dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    data = load_dataset("json", data_files=str(report.output), split="train")
    assert data[0]["chosen"][0]["role"] == "assistant" and data[0]["p_chosen"] >= 0.5
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    common = dict(max_steps=1, per_device_train_batch_size=2, report_to=[], use_cpu=True, save_strategy="no")

    reward_model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    reward_model.config.pad_token_id = tokenizer.pad_token_id
    reward = RewardTrainer(model=reward_model, processing_class=tokenizer, train_dataset=data,
                           args=RewardConfig(output_dir=str(tmp_path / "rm"), max_length=256, **common))
    assert reward.train().global_step == 1

    dpo = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), processing_class=tokenizer,
                     train_dataset=data, args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_length=256, **common))
    assert dpo.train().global_step == 1


def test_eval_judge_on_hh_pairs(tmp_path, engine, default_constitution, tiny):
    pairs = tmp_path / "pairs.jsonl.gz"
    rows = [
        {"chosen": f"\n\nHuman: question {i}?\n\nAssistant: a kind answer {i}",
         "rejected": f"\n\nHuman: question {i}?\n\nAssistant: a rude answer {i}"}
        for i in range(5)
    ]
    pairs.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    summary = stage_runs.eval_judge(pairs, tmp_path / "out", tiny, default_constitution, LabelConfig("tiny", keep_flagged=True), limit=4)
    assert summary["n"] == 4 and summary["judgements"] == 8
    for key in ("accuracy", "position_consistency", "first_position_rate", "mean_confidence", "ece"):
        assert 0 <= summary[key] <= 1
    lines = (tmp_path / "out" / "judgements.jsonl").read_text().splitlines()
    assert len(lines) == 4 and "p_human_choice" in json.loads(lines[0])
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary

    one_order = stage_runs.eval_judge(pairs, tmp_path / "out1", tiny, default_constitution, LabelConfig("tiny", keep_flagged=True, swap=False))
    assert one_order["position_consistency"] is None and one_order["judgements"] == 5
