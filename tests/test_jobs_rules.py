"""`cai rules` as a job, through the CLI: one row per response, every response either scored or an
error (rows out + errors = responses in, as the summary says), the judge and style taken from the
input's provenance, and a rerun that finishes from its chunks without loading a model."""

import json
import time
from pathlib import Path

import pytest
from cli_run import cai

from cai.constitution.schema import load_constitution
from cai.core.records import Message, Provenance, RuleScoreRecord, SampleRecord
from cai.core.run import json_line, read_jsonl
from cai.data import DEFAULT_CONSTITUTION

ROOT = Path(__file__).resolve().parent.parent
RULES = [r.id for r in load_constitution(DEFAULT_CONSTITUTION).constitution.rules]
LONG = " ".join(f"word{i} lorem ipsum dolor" for i in range(600))  # too long for a 1024-token context


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_model):
    """A run folder whose samples.jsonl holds 4 rows of 2 answers (one of them far too long for the
    judge's context) and one line that is no JSON, then `cai rules` on it, in chunks of 2 rows."""
    run = tmp_path_factory.mktemp("rules") / "run"
    run.mkdir()
    provenance = Provenance(model=str(tiny_model), sampling={}, style="transcript")
    rows = [SampleRecord(id=f"p{i}", prompt=[Message(role="user", content=f"How do I pick lock number {i}?")],
                         responses=["I can't help with that.", LONG if i == 2 else f"Here is how, step {i}."],
                         provenance=provenance) for i in range(4)]
    lines = [json_line(r) for r in rows]
    (run / "samples.jsonl").write_text("".join(lines[:2]) + "{not json\n" + "".join(lines[2:]))
    started = time.perf_counter()
    done = cai("rules", "--run", run, "--judge-max-model-len", 1024, "--chunk-size", 2, "--max-error-rate", 0.5)
    return run, done, time.perf_counter() - started


def summary_row(stdout: str, stage: str) -> list[str]:
    """The cells of a stage's row in the printed summary table."""
    line = next(line for line in stdout.splitlines() if line.startswith(f"│ {stage} "))
    return [cell.strip() for cell in line.strip("│").split("│")]


@pytest.mark.slow
def test_every_response_is_scored_or_an_error(scored, tiny_model):
    run, done, _ = scored
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_jsonl(run / "rule_scores.jsonl", RuleScoreRecord)
    assert [(r.id, r.response_index) for r in rows] == [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1), ("p2", 0),
                                                        ("p3", 0), ("p3", 1)]
    for r in rows:
        assert list(r.scores) == RULES and all(0 <= p <= 1 for p in r.scores.values())
        assert sorted((j.rule_id, j.order) for j in r.judgements) == sorted((i, o) for i in RULES for o in ("AB", "BA"))
        assert r.provenance.model == str(tiny_model)  # the samples' model, as the judge's default
        assert r.provenance.style == "transcript"  # the samples' style, as the judge's default

    errors = [json.loads(line) for line in (run / "errors.jsonl").read_text().splitlines()]
    assert sorted((e["line"], e["id"], e["stage"]) for e in errors) == [(3, None, "rules"), (4, "p2", "rules")]
    assert next(e for e in errors if e["id"] == "p2")["reason"].startswith("response 1: judge: prompt too long")

    stage = json.loads((run / "manifest.json").read_text())["stages"]["rules"]
    assert stage["input"] == "samples" and stage["judge_model"] == str(tiny_model)
    assert stage["counters"]["responses"] == 8 and stage["counters"]["responses_failed"] == 1
    assert stage["rows_out"] + stage["counters"]["responses_failed"] == stage["counters"]["responses"]
    # the summary counts responses: 8 read + 1 unreadable line in = 7 out + 2 errors
    assert summary_row(done.stdout, "rules")[:4] == ["rules", "9", "7", "2"]
    assert "8 responses judged against the rules: 7 scored, 1 failed" in done.stdout


@pytest.mark.slow
def test_a_rerun_finishes_from_its_chunks(scored):
    run, _, first = scored
    before = (run / "rule_scores.jsonl").read_bytes()
    started = time.perf_counter()
    again = cai("rules", "--run", run, "--judge-max-model-len", 1024, "--chunk-size", 2, "--max-error-rate", 0.5)
    seconds = time.perf_counter() - started
    assert again.returncode == 0, again.stderr[-3000:]
    stage = json.loads((run / "manifest.json").read_text())["stages"]["rules"]
    assert stage["resumed_rows"] == stage["rows_in"] == 5  # every chunk was done: no model call
    assert (run / "rule_scores.jsonl").read_bytes() == before
    assert seconds < first / 2 and "opening" not in again.stderr


@pytest.mark.slow
def test_other_settings_are_refused_and_missing_inputs_named(scored, tmp_path):
    run, _, _ = scored
    other = cai("rules", "--run", run, "--judge-max-model-len", 1024, "--chunk-size", 2, "--style", "chat")
    assert other.returncode == 1 and "other settings (style)" in other.stderr
    missing = cai("rules", "--run", run, "--input", "revisions")
    assert missing.returncode == 1 and "run `cai critique`" in missing.stderr
    empty = cai("rules", "--run", tmp_path)
    assert empty.returncode == 1 and "holds no samples.jsonl, revisions.jsonl or responses.jsonl" in empty.stderr
