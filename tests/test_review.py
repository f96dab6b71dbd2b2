"""`cai review` without a server: the export's seeded draw and recorded answer order, the pull's
mapping of people's A / B / tie / skip back to chosen and rejected, and how the readers of pairs
and of rule labels treat a gold set's rows without a human choice."""

import json
from pathlib import Path

import pytest
from cli_run import ENV, cai

from cai.constitution.schema import load_constitution
from cai.core.errors import CaiError
from cai.core.records import (
    Message,
    PreferenceRecord,
    Provenance,
    RuleScoreRecord,
    SampleRecord,
)
from cai.core.run import RunDir, write_jsonl
from cai.data import DEFAULT_CONSTITUTION
from cai.io.inputs import load_pairs
from cai.review.gold import gold_rows
from cai.review.label_studio import LabelStudio
from cai.review.tasks import export_review, read_review

PROVENANCE = Provenance(model="judge", sampling={}, style="chat")


def preference(i: int) -> PreferenceRecord:
    return PreferenceRecord(
        id=f"q{i}:0-1", prompt=[Message(role="user", content=f"Question {i}?")],
        chosen=[Message(role="assistant", content=f"chosen {i}")],
        rejected=[Message(role="assistant", content=f"rejected {i}")],
        p_chosen=0.7, margin=0.85, judgements=[], pair=(0, 1), provenance=PROVENANCE)


def pairs_run(path: Path, n: int = 20, reverse: bool = False) -> RunDir:
    rows = [preference(i) for i in range(n)]
    write_jsonl(path / "preferences.jsonl", rows[::-1] if reverse else rows)
    return RunDir(path)


def exported(run: RunDir, folder: Path, n: int = 8, seed: int = 0, what: str = "pairs", constitution=None) -> list[dict]:
    export_review(run, what, n, seed, folder, constitution)
    return read_review(folder)[1]


def test_export_draws_the_same_tasks_for_the_same_run_and_seed(tmp_path):
    first = exported(pairs_run(tmp_path / "a"), tmp_path / "x", seed=3)
    again = exported(pairs_run(tmp_path / "b", reverse=True), tmp_path / "y", seed=3)  # the file's order does not matter
    other = exported(pairs_run(tmp_path / "a"), tmp_path / "z", seed=4)
    assert len(first) == 8 and first == again
    assert [t["data"]["key"] for t in first] != [t["data"]["key"] for t in other]
    assert len({t["data"]["key"] for t in first}) == 8
    assert len(exported(pairs_run(tmp_path / "a"), tmp_path / "all", n=100)) == 20  # fewer than asked: all
    info = json.loads((tmp_path / "x" / "review.json").read_text())
    assert info["available"] == 20 and info["sample"] == 8 and info["seed"] == 3
    assert info["source"].endswith("preferences.jsonl")
    assert '<Choice value="tie"/>' in (tmp_path / "x" / "label_config.xml").read_text()


def test_export_shows_the_answers_in_a_seeded_order_and_records_it(tmp_path):
    tasks = exported(pairs_run(tmp_path / "run"), tmp_path / "out", n=20)
    orders = [t["data"]["order"] for t in tasks]
    assert set(orders) == {"AB", "BA"}  # both orders occur over 20 pairs
    for task in tasks:
        data, i = task["data"], task["data"]["id"][1:]
        assert data["key"] == f"q{i}:0-1"
        a_is_chosen = data["answer_a"] == f"chosen {i}"
        assert a_is_chosen == (data["order"] == "AB")
        assert {data["answer_a"], data["answer_b"]} == {f"chosen {i}", f"rejected {i}"}
        assert data["conversation"] == f"Human: Question {i}?"
        assert data["prompt"] == [{"role": "user", "content": f"Question {i}?"}]


def test_export_takes_every_pair_of_different_answers_from_samples_without_preferences(tmp_path):
    sample = SampleRecord(id="s", prompt=[Message(role="user", content="Hi?")],
                          responses=["one", "two", "one ", "three"], provenance=PROVENANCE)
    write_jsonl(tmp_path / "run" / "samples.jsonl", [sample])
    tasks = exported(RunDir(tmp_path / "run"), tmp_path / "out", n=10)
    assert sorted(t["data"]["key"] for t in tasks) == ["s:0-1", "s:0-3", "s:1-2", "s:1-3", "s:2-3"]  # 0-2: the same answer


def test_export_rules_shows_each_answer_with_the_constitutions_rule_text(tmp_path):
    constitution = load_constitution(DEFAULT_CONSTITUTION)
    rules = constitution.constitution.rules
    provenance = PROVENANCE.model_copy(update={"constitution_sha256": constitution.sha256})
    record = RuleScoreRecord(id="r", response_index=1, prompt=[Message(role="user", content="Hi?")], response="Hello.",
                             scores={r.id: 0.5 for r in rules}, judgements=[], score=0.5, provenance=provenance)
    write_jsonl(tmp_path / "run" / "rule_scores.jsonl", [record])
    tasks = exported(RunDir(tmp_path / "run"), tmp_path / "out", n=4, what="rules", constitution=constitution)
    texts = {r.id: r.rule for r in rules}
    assert len(tasks) == 4
    for task in tasks:
        data = task["data"]
        assert data["rule"] == texts[data["rule_id"]] and data["answer"] == "Hello." and data["response_index"] == 1
    assert '<Choice value="follows"/>' in (tmp_path / "out" / "label_config.xml").read_text()


def test_export_refuses_unknown_kinds_and_empty_runs(tmp_path):
    with pytest.raises(CaiError, match="--what must be one of pairs, rules"):
        export_review(pairs_run(tmp_path / "run"), "pair", 5, 0, tmp_path / "out")
    with pytest.raises(CaiError, match="no preferences.jsonl or samples.jsonl"):
        export_review(RunDir(tmp_path / "empty"), "pairs", 5, 0, tmp_path / "out")
    with pytest.raises(CaiError, match="no label_config.xml, tasks.json, review.json"):
        read_review(tmp_path / "nothing")


def annotation(id_: int, choice: str | None) -> dict:
    """An annotation as Label Studio's JSON export holds it; None: skipped."""
    if choice is None:
        return {"id": id_, "result": [], "was_cancelled": True}
    return {"id": id_, "was_cancelled": False, "result": [
        {"from_name": "choice", "to_name": "conversation", "type": "choices", "value": {"choices": [choice]}}]}


def exported_tasks(tmp_path: Path, n: int) -> list[dict]:
    """The export's tasks as Label Studio returns them: with ids and annotations."""
    tasks = exported(pairs_run(tmp_path / "run"), tmp_path / "out", n=n)
    return [{"id": k + 1, "data": t["data"], "annotations": []} for k, t in enumerate(tasks)]


def test_pull_maps_a_and_b_back_to_chosen_and_rejected_through_the_recorded_order(tmp_path):
    tasks = exported_tasks(tmp_path, 20)
    for task in tasks:  # people pick the judge's rejected answer every time, wherever it was shown
        task["annotations"] = [annotation(1, "B" if task["data"]["order"] == "AB" else "A")]
    rows, counts = gold_rows(tasks)
    assert len(rows) == 20 and counts["picked_first"] == 0
    for row in rows:
        i = row["id"].split(":")[0][1:]
        assert (row["chosen"], row["rejected"], row["label"], row["picked"]) == (f"rejected {i}", f"chosen {i}", "chosen", "second")
    assert {row["answer"] for row in rows} == {"A", "B"}


def test_pull_keeps_ties_and_skipped_tasks_counts_them_and_leaves_out_unannotated_ones(tmp_path):
    tasks = exported_tasks(tmp_path, 5)
    tasks[0]["annotations"] = [annotation(1, "tie")]
    tasks[1]["annotations"] = [annotation(2, None)]
    tasks[2]["annotations"] = [annotation(3, "A"), annotation(7, None), annotation(5, "B")]  # the latest not skipped
    tasks[3]["annotations"] = [annotation(4, "A")]
    rows, counts = gold_rows(tasks)
    assert [r["label"] for r in rows] == ["tie", "skipped", "chosen", "chosen"]
    assert [r["answer"] for r in rows] == ["tie", None, "B", "A"]
    assert counts["not_annotated"] == 1 and counts["pairs"] == 5 and counts["several_annotations"] == 1
    assert (counts["answer: tie"], counts["answer: skipped"], counts["answer: A"], counts["answer: B"]) == (1, 1, 1, 1)
    tie = rows[0]
    first = tie["chosen"]
    assert first.startswith("chosen ") and tie["picked"] is None  # undecided: the pair as the run had it


def test_pull_refuses_tasks_that_cai_did_not_write():
    with pytest.raises(CaiError, match="task 9 was not written by `cai review export`"):
        gold_rows([{"id": 9, "data": {"text": "x"}, "annotations": []}])


def test_eval_judge_reads_the_gold_pairs_and_leaves_out_those_without_a_human_choice(tmp_path):
    tasks = exported_tasks(tmp_path, 4)
    for task, choice in zip(tasks, ["A", "tie", None, "B"]):
        task["annotations"] = [annotation(task["id"], choice)]
    rows, _ = gold_rows(tasks)
    write_jsonl(tmp_path / "gold.jsonl", rows)
    pairs, problems = load_pairs(tmp_path / "gold.jsonl")
    assert [(p[0].id, p[1], p[2]) for p in pairs] == [(r["id"], r["chosen"], r["rejected"]) for r in rows if r["label"] == "chosen"]
    assert [p.reason for p in problems] == ["no human choice (label 'tie')", "no human choice (label 'skipped')"]
    assert [p.line for p in problems] == [2, 3]


def test_pull_of_rules_gives_eval_rules_its_labels_and_counts_skipped_items(tmp_path, engine):
    from cai.stages.dialogue import Style
    from cai.train.rules import eval_judge_rules

    constitution = load_constitution(DEFAULT_CONSTITUTION)
    provenance = PROVENANCE.model_copy(update={"constitution_sha256": constitution.sha256})
    record = RuleScoreRecord(id="r", response_index=0, prompt=[Message(role="user", content="Hi?")], response="Hello.",
                             scores={r.id: 0.5 for r in constitution.constitution.rules}, judgements=[], score=0.5,
                             provenance=provenance)
    write_jsonl(tmp_path / "run" / "rule_scores.jsonl", [record])
    tasks = exported(RunDir(tmp_path / "run"), tmp_path / "out", n=3, what="rules", constitution=constitution)
    tasks = [{"id": k + 1, "data": t["data"], "annotations": [annotation(k + 1, c)]}
             for k, (t, c) in enumerate(zip(tasks, ["follows", "breaks", None]))]
    rows, counts = gold_rows(tasks)
    assert [r["label"] for r in rows] == [1.0, 0.0, None] and counts["rules"] == 3
    assert rows[0]["completion"] == [{"role": "assistant", "content": "Hello."}]
    write_jsonl(tmp_path / "gold.jsonl", rows)
    summary = eval_judge_rules(tmp_path / "gold.jsonl", engine, Style.chat)
    assert (summary["n"], summary["unlabelled"], summary["errors"], summary["label_positive_rate"]) == (2, 1, 0, 0.5)


def test_the_key_comes_from_label_studio_api_key_only(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(CaiError, match="^set LABEL_STUDIO_API_KEY to your Label Studio API token"):
        LabelStudio("http://127.0.0.1:9")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret")
    assert LabelStudio("http://127.0.0.1:9/").client.headers["Authorization"] == "Token secret"


@pytest.mark.slow
def test_push_without_a_key_is_one_line_and_exit_1(tmp_path):
    export_review(pairs_run(tmp_path / "run"), "pairs", 3, 0, tmp_path / "out")
    env = {k: v for k, v in ENV.items() if k != "LABEL_STUDIO_API_KEY"}
    done = cai("review", "push", tmp_path / "out", "--url", "http://127.0.0.1:9", env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: set LABEL_STUDIO_API_KEY to your Label Studio API token (Account & Settings → Legacy Token)"]
