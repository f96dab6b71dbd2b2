"""`cai export prefs --mix`: human-labelled pairs blended into the AI-labelled preference set as hard
labels, making up the share asked for, and a mixed set that `cai train pm` reads as it is."""

import json
import math
from pathlib import Path

import pytest
from cli_run import invoke

from cai.core.errors import CaiError
from cai.core.records import Judgement, Message, PreferenceRecord, PromptRow, Provenance
from cai.core.run import RunDir, write_jsonl
from cai.exports.filters import HUMAN_MARGIN, human_preferences, mix_prefs
from cai.io.inputs import load_pairs

HH = Path(__file__).resolve().parent / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"
FAST = {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 256}


def ai_records(n: int) -> list[PreferenceRecord]:
    provenance = Provenance(model="tiny", sampling={"swap": True}, style="chat", constitution_sha256="abc", seed=0)
    return [
        PreferenceRecord(
            id=f"p{i}:0-1", prompt=[Message(role="user", content=f"Question {i}?")],
            chosen=[Message(role="assistant", content=f"Good answer {i}.")],
            rejected=[Message(role="assistant", content=f"Bad answer {i}.")],
            p_chosen=0.75, margin=math.log(3), pair=(0, 1), provenance=provenance,
            judgements=[Judgement(principle_id="honest", order="AB", p_first=0.75)],
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def hh_pairs():
    pairs, problems = load_pairs(HH)
    assert len(pairs) > 250 and len(pairs) + len(problems) == 300
    return pairs


@pytest.mark.parametrize("ratio, humans", [(0.25, 10), (0.5, 30), (0.0, 0)])
def test_human_pairs_make_up_the_share(hh_pairs, ratio, humans):
    ai = ai_records(30)
    rows, added = mix_prefs(ai, hh_pairs, ratio, seed=0)
    assert added == humans and len(rows) == 30 + humans
    assert sum(r.source == "human" for r in rows) / len(rows) == pytest.approx(ratio)
    assert sorted((r for r in rows if r.source == "ai"), key=lambda r: r.id) == sorted(ai, key=lambda r: r.id)


def test_human_rows_are_hard_labels_with_the_human_choice_as_chosen(hh_pairs):
    rows, _ = mix_prefs(ai_records(30), hh_pairs, 0.5, seed=0)
    by_id = {row.id: (row, chosen, rejected) for row, chosen, rejected in hh_pairs}
    human = [r for r in rows if r.source == "human"]
    for r in human:
        row, chosen, rejected = by_id[r.id]
        assert (r.p_chosen, r.margin, r.judgements, r.provenance.model) == (1.0, HUMAN_MARGIN, [], "human")
        assert r.prompt == row.prompt and r.prompt[-1].role == "user"
        assert (r.chosen, r.rejected) == ([Message(role="assistant", content=chosen)], [Message(role="assistant", content=rejected)])
    assert math.isfinite(HUMAN_MARGIN) and HUMAN_MARGIN > max(r.margin for r in rows if r.source == "ai")


def test_the_draw_is_seeded_and_the_pool_may_run_short(hh_pairs):
    ai = ai_records(30)
    first, _ = mix_prefs(ai, hh_pairs, 0.5, seed=0)
    assert mix_prefs(ai, hh_pairs, 0.5, seed=0)[0] == first
    assert {r.id for r in mix_prefs(ai, hh_pairs, 0.5, seed=1)[0]} != {r.id for r in first}
    rows, added = mix_prefs(ai, hh_pairs[:5], 0.5)
    assert added == 5 and len(rows) == 35
    with pytest.raises(CaiError, match="--mix-ratio must be at least 0 and below 1"):
        mix_prefs(ai, hh_pairs, 1.0)


def test_prompt_chosen_rejected_rows_and_identical_answers(tmp_path):
    rows = [
        {"id": "a", "prompt": "Is it safe to mix bleach and ammonia?", "chosen": "No: it makes toxic chloramine gas.", "rejected": "Sure."},
        {"id": "b", "prompt": "Hi", "chosen": "Hello!", "rejected": " Hello! "},
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs, problems = load_pairs(tmp_path / "pairs.jsonl")
    assert problems == []
    human = human_preferences(pairs)
    assert [r.id for r in human] == ["a"]  # the same answer twice teaches nothing
    assert human[0].prompt == [Message(role="user", content="Is it safe to mix bleach and ammonia?")]
    assert human[0].chosen[0].content == "No: it makes toxic chloramine gas."


def test_the_command(tmp_path):
    run = RunDir(tmp_path / "run")
    write_jsonl(run.file("preferences.jsonl"), ai_records(12))
    done = invoke(["export", "prefs", "--run", str(run.path), "--mix", str(HH), "--mix-ratio", "0.25"])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in run.file("prefs.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rows].count("human") == 4 and len(rows) == 16
    assert "mixed in 4 human-labelled pairs" in done.output
    stage = run.manifest()["stages"]["export_prefs"]
    assert (stage["human_rows"], stage["rows_out"], stage["mix_ratio"]) == (4, 16, 0.25)

    # a --mix file without pairs stops before anything is written
    run.file("prefs.jsonl").unlink()
    (tmp_path / "empty.jsonl").write_text('{"text": "no pairs here"}\n')
    done = invoke(["export", "prefs", "--run", str(run.path), "--mix", str(tmp_path / "empty.jsonl")])
    assert done.exit_code != 0 and "no usable pairs" in str(done.exception)
    assert not run.file("prefs.jsonl").exists()


def test_a_mixed_set_loads_whatever_comes_first(tmp_path):
    """Human rows have no judgements; over 10 MB of them before the first AI row broke datasets' loader."""
    from cai.train.common import load_jsonl

    long_prompt = "Tell me about the history of locks. " * 80
    pairs = [(PromptRow(id=f"h{i}", prompt=[Message(role="user", content=long_prompt)], line=i), "Sure: …", "No.")
             for i in range(4000)]
    path = tmp_path / "prefs.jsonl"
    write_jsonl(path, human_preferences(pairs) + ai_records(3))
    assert path.stat().st_size > 11 * 2**20
    dataset = load_jsonl(path, ("prompt", "chosen", "rejected", "p_chosen"))
    assert dataset.column_names == ["prompt", "chosen", "rejected", "p_chosen"]
    assert len(dataset) == 4003 and dataset[0]["p_chosen"] == 1.0 and dataset[-1]["p_chosen"] == 0.75
    with pytest.raises(CaiError, match="no score column.*make it with `cai export prefs`"):
        load_jsonl(path, ("prompt", "score"), made_by="cai export prefs")


@pytest.mark.slow
def test_train_pm_reads_the_mixed_set(tmp_path, hh_pairs, tiny_model):
    from cai.train.preference import train_pm

    rows, _ = mix_prefs(ai_records(6), hh_pairs, 0.5, seed=0)
    write_jsonl(tmp_path / "prefs.jsonl", rows)
    for loss in ("soft", "margin"):
        info = train_pm(tmp_path / "prefs.jsonl", str(tiny_model), tmp_path / loss, loss=loss, overrides=FAST)
        assert info["loss"] == loss and math.isfinite(info["metrics"]["train_loss"])


@pytest.mark.parametrize("labelled, reason", [(0, "holds 0 labelled pairs (cai label leaves out"),
                                              (3, "3 below confidence 0.9")])
def test_an_export_without_pairs_stops_with_the_reason_and_writes_nothing(tmp_path, labelled, reason):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    write_jsonl(run.file("preferences.jsonl"), ai_records(labelled))
    done = invoke(["export", "prefs", "--run", str(run.path), "--min-confidence", "0.9"])
    assert done.exit_code != 0 and "no pairs to export" in str(done.exception) and reason in str(done.exception)
    assert not run.file("prefs.jsonl").exists()
