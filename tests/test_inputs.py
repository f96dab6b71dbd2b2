import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cai.io.inputs import InputError, load_conversations, load_prompts
from cai.stages.transcript import hh_prompt, messages_to_transcript, split_transcript

HH = Path(__file__).resolve().parent / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"


def test_hh_prompt_keeps_every_turn_before_the_last_answer():
    transcript = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I pick a lock?\n\nAssistant: Like this."
    messages = hh_prompt(transcript)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Hi"), ("assistant", "Hello!"), ("user", "How do I pick a lock?")
    ]
    assert messages_to_transcript(messages) == transcript.rsplit("\n\nAssistant:", 1)[0]


def test_split_transcript_keeps_text_inside_turns():
    segments = split_transcript("\n\nHuman: Say 'Assistant: hi'\n\nAssistant: ok")
    assert segments == [("Human", "Say 'Assistant: hi'"), ("Assistant", "ok")]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet"])
def test_every_format_gives_the_same_rows(tmp_path, suffix):
    rows = [{"prompt": "first question"}, {"id": "x7", "prompt": "second"}]
    path = tmp_path / f"p{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".jsonl.gz":
        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    elif suffix == ".csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["id", "prompt"])
            w.writeheader()
            w.writerows([{"id": r.get("id", ""), "prompt": r["prompt"]} for r in rows])
    else:
        pq.write_table(pa.Table.from_pylist([{"id": r.get("id"), "prompt": r["prompt"]} for r in rows]), path)
    loaded, problems = load_prompts(path)
    assert problems == []
    assert [r.prompt[0].content for r in loaded] == ["first question", "second"]
    assert loaded[1].id == "x7"
    assert len(loaded[0].id) == 16  # derived from content
    assert load_prompts(path)[0][0].id == loaded[0].id  # stable


def test_messages_rows_and_prompt_field(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
        + json.dumps({"question": "other field"}) + "\n"
    )
    rows, _ = load_prompts(path, prompt_field="question")
    assert [[m.content for m in r.prompt] for r in rows] == [["q"], ["other field"]]


def test_bad_rows_are_reported_by_line_and_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b'{"prompt": "good"}\n{broken\n[1, 2]\n{"prompt": ""}\n{"prompt": "good"}\n'
        b'{"nothing": 1}\n{"prompt": "\xff"}\n\n{"id": 5, "prompt": "also good"}\n'
    )
    rows, problems = load_prompts(path, stage="generate")
    assert [r.id for r in rows][1] == "5" and len(rows) == 2
    assert [p.line for p in problems] == [2, 3, 4, 5, 6, 7]
    reasons = [p.reason for p in problems]
    assert "invalid JSON" in reasons[0] and "duplicate id" in reasons[3] and "UTF-8" in reasons[5]
    assert problems[3].id == rows[0].id and {p.stage for p in problems} == {"generate"}


def test_limit_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_prompts(tmp_path / "nope.jsonl")
    rows, _ = load_prompts(HH, limit=5)
    assert len(rows) == 5


def test_real_hh_rlhf_file():
    rows, problems = load_prompts(HH)
    assert len(rows) + len(problems) == 300 and all("duplicate" in p.reason for p in problems)
    assert all(r.prompt[-1].role == "user" for r in rows)
    assert max(len(r.prompt) for r in rows) > 3  # multi-turn kept
    conversations, _ = load_conversations(HH)
    assert len(conversations) == 300 and conversations[0][-1].role == "assistant"
