"""People's answers from Label Studio as a gold set (`cai review pull`).

Label Studio's JSON export holds each task with its data (as `cai review export` wrote it) and its
annotations. A task's answer is its latest annotation that was not skipped; a task whose every
annotation was skipped is `skipped`; a task nobody annotated yet is left out and counted.

Pairs become rows that `cai eval judge --pairs` reads (`prompt`, `chosen` = the answer people
picked, `rejected`), mapped back through the order recorded in the task: A is the pair's first
answer where `order` is AB, its second where BA. A tie or a skipped pair is kept, with
`label` "tie" or "skipped" (the pair's first answer as `chosen`); readers of pairs leave such rows
out as having no human choice. Rule items become rows that `cai eval rules` reads (`prompt`,
`completion`, `rule`, `label`: 1.0 follows, 0.0 breaks, null skipped).
"""

from __future__ import annotations

from collections import Counter

from cai.core.errors import CaiError
from cai.io.inputs import NO_CHOICE

CHOSEN = "chosen"
TIE, SKIPPED = NO_CHOICE  # pair labels without a human choice, which readers of pairs leave out


def answer_of(task: dict) -> tuple[str | None, int]:
    """(the answer of the task's latest annotation that was not skipped, or None when every one
    was; the number of annotations)."""
    annotations = task.get("annotations") or []
    done = [a for a in annotations if not a.get("was_cancelled")]
    if not done:
        return None, len(annotations)
    latest = max(done, key=lambda a: a["id"])
    choices = [c for item in latest.get("result", []) if item.get("type") == "choices"
               for c in item.get("value", {}).get("choices", [])]
    if len(choices) != 1:
        raise CaiError(f"task {task['id']}: annotation {latest['id']} holds {len(choices)} choices, not one")
    return choices[0], len(annotations)


def pair_gold(task: dict, answer: str | None) -> dict:
    data = task["data"]
    if data["order"] not in ("AB", "BA") or answer not in ("A", "B", TIE, None):
        raise CaiError(f"task {task['id']}: order {data['order']!r}, answer {answer!r}: not a cai pair task")
    a_first = data["order"] == "AB"
    first, second = (data["answer_a"], data["answer_b"]) if a_first else (data["answer_b"], data["answer_a"])
    picked = None if answer in (TIE, None) else "first" if (answer == "A") == a_first else "second"
    chosen, rejected = (second, first) if picked == "second" else (first, second)
    label = CHOSEN if picked else TIE if answer == TIE else SKIPPED
    return {"id": data["key"], "prompt": data["prompt"], "chosen": chosen, "rejected": rejected, "label": label,
            "answer": answer, "order": data["order"], "picked": picked, "task_id": task["id"], "source": "human"}


def rule_gold(task: dict, answer: str | None) -> dict:
    data = task["data"]
    labels = {"follows": 1.0, "breaks": 0.0, None: None}
    if answer not in labels:
        raise CaiError(f"task {task['id']}: answer {answer!r}: not follows or breaks")
    return {"id": data["id"], "response_index": data["response_index"], "prompt": data["prompt"],
            "completion": [{"role": "assistant", "content": data["answer"]}], "rule_id": data["rule_id"],
            "rule": data["rule"], "weight": data["weight"], "label": labels[answer], "answer": answer,
            "key": data["key"], "task_id": task["id"], "source": "human"}


def gold_rows(tasks: list[dict]) -> tuple[list[dict], Counter]:
    """The gold rows of an export's tasks, in task order, and what was counted."""
    rows, counts = [], Counter()
    for task in sorted(tasks, key=lambda t: t["id"]):
        kind = task.get("data", {}).get("kind")
        if kind not in ("pairs", "rules"):
            raise CaiError(f"task {task.get('id')} was not written by `cai review export` (no pairs or rules 'kind')")
        counts[kind] += 1
        if not task.get("annotations"):
            counts["not_annotated"] += 1
            continue
        answer, n = answer_of(task)
        counts["several_annotations"] += n > 1
        row = pair_gold(task, answer) if kind == "pairs" else rule_gold(task, answer)
        counts[f"answer: {answer or SKIPPED}"] += 1
        counts["picked_first"] += row.get("picked") == "first"
        rows.append(row)
    if counts["pairs"] and counts["rules"]:
        raise CaiError("the project mixes pair and rule tasks; pull one kind per gold file")
    return rows, counts
