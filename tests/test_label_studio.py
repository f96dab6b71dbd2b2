"""The whole review round trip on a real Label Studio (from `.venv-label-studio`, which `make test`
builds): `cai review export` of a tiny run, `cai review push`, annotations made through Label
Studio's REST API as a person's submit or skip would make them, `cai review pull`, and `cai eval
judge` on the pulled gold set with the tiny model. Starting Label Studio takes 40 s to minutes."""

import json
from collections import Counter
from pathlib import Path

import pytest
from cli_run import ENV
from cli_run import cai as run_cai
from label_studio_server import TOKEN, label_studio

from cai.core.records import Message, PreferenceRecord, Provenance
from cai.core.run import write_jsonl
from cai.io.inputs import load_pairs
from cai.review.label_studio import LabelStudio

ROOT = Path(__file__).resolve().parent.parent
HH = ROOT / "tests" / "data" / "hh-rlhf-harmless-test-first300.jsonl.gz"


def cai(*args):
    return run_cai(*args, env={**ENV, "LABEL_STUDIO_API_KEY": TOKEN})


def tiny_run(folder: Path, n: int) -> None:
    """A run's preferences.jsonl of n hh-rlhf pairs (the judge's `chosen` = the human's there)."""
    pairs, _ = load_pairs(HH, limit=n)
    provenance = Provenance(model="judge", sampling={}, style="chat")
    write_jsonl(folder / "preferences.jsonl", [
        PreferenceRecord(id=row.id, prompt=row.prompt, chosen=[Message(role="assistant", content=chosen)],
                         rejected=[Message(role="assistant", content=rejected)], p_chosen=0.6, margin=0.4,
                         judgements=[], pair=(0, 1), provenance=provenance)
        for row, chosen, rejected in pairs])


def choice(value: str) -> list[dict]:
    return [{"from_name": "choice", "to_name": "conversation", "type": "choices", "value": {"choices": [value]}}]


@pytest.mark.slow
def test_review_round_trip_through_label_studio_and_the_judge_on_the_gold_set(tmp_path, tiny_model):
    tiny_run(tmp_path / "run", 8)
    folder, gold = tmp_path / "review", tmp_path / "gold.jsonl"
    done = cai("review", "export", "--run", tmp_path / "run", "--sample", 5, "--seed", 7, "-o", folder)
    assert done.returncode == 0, done.stderr
    exported = json.loads((folder / "tasks.json").read_text())
    (tmp_path / "ls").mkdir()
    with label_studio(tmp_path / "ls") as url:
        done = cai("review", "push", folder, "--url", url)
        assert done.returncode == 0, done.stderr
        project = int(done.stdout)  # the id alone on stdout; the rest on stderr
        assert f"project {project} holds 5 tasks" in done.stderr

        studio = LabelStudio(url, TOKEN)
        tasks = sorted(studio.tasks(project), key=lambda t: t["id"])
        assert [t["data"] for t in tasks] == [t["data"] for t in exported]
        # people pick the pair's first answer, then its second, call one a tie, skip one, leave one
        first, second, tie, skipped, _ = tasks
        picks = {"first": "A" if first["data"]["order"] == "AB" else "B",
                 "second": "A" if second["data"]["order"] == "BA" else "B"}
        for task, body in ((first, {"result": choice(picks["first"])}), (second, {"result": choice(picks["second"])}),
                           (tie, {"result": choice("tie")}), (skipped, {"result": [], "was_cancelled": True})):
            studio.request("POST", f"/api/tasks/{task['id']}/annotations/", json=body)

        done = cai("review", "pull", "--url", url, "--project", project, "-o", gold)
        assert done.returncode == 0, done.stderr
    answers = Counter([picks["first"], picks["second"], "tie", "skipped"])
    answers = ", ".join(f"{k} {v}" for k, v in sorted(answers.items()))
    assert f"5 pair tasks: 4 annotated ({answers}), 1 not annotated yet (left out)" in done.stdout
    assert "people picked the pair's first answer (the judge's chosen, for pairs from preferences.jsonl) in 1 of 2" in done.stdout

    rows = [json.loads(line) for line in gold.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["chosen", "chosen", "tie", "skipped"]
    assert [r["picked"] for r in rows] == ["first", "second", None, None]
    a_b = lambda t: (t["data"]["answer_a"], t["data"]["answer_b"])[:: 1 if t["data"]["order"] == "AB" else -1]
    assert (rows[0]["chosen"], rows[0]["rejected"]) == a_b(first)  # the run's (chosen, rejected)
    assert (rows[1]["rejected"], rows[1]["chosen"]) == a_b(second)  # people preferred the run's rejected
    assert all(TOKEN not in p.read_text() for p in [gold, *folder.iterdir()])

    done = cai("eval", "judge", "--pairs", gold, "--judge-model", tiny_model, "--out", tmp_path / "eval")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert (summary["n"], summary["no_human_choice"], summary["errors"]) == (2, 2, 0)
    assert summary["judgements"] == 4  # both orders of each decided pair
