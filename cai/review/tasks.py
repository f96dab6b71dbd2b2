"""A human gold set's tasks, for Label Studio (`cai review export`).

A sample of a run's answer pairs (people pick A, B or tie) or of its (answer, rule) items (people
say whether the answer follows or breaks the rule) becomes a Label Studio project folder: the
labeling config, the tasks, and `review.json` saying what was drawn from where. The draw is seeded,
so the same run and seed give the same tasks; in each pair the two answers are shown in a seeded
random order, and that order is kept in the task's data (`order`), so that `cai review pull` maps
the person's A or B back to the run's answers whatever the order was.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from cai.constitution.principles import rng_for
from cai.constitution.schema import LoadedConstitution
from cai.core.errors import CaiError
from cai.core.records import Message, PreferenceRecord, RuleScoreRecord, SampleRecord
from cai.core.run import RunDir, atomic_write, read_jsonl
from cai.exports.rules import rule_rows
from cai.stages.transcript import messages_to_transcript

CONFIG, TASKS, INFO = "label_config.xml", "tasks.json", "review.json"
KINDS = ("pairs", "rules")

PAIRS_CONFIG = """<View>
  <Header value="The conversation"/>
  <Text name="conversation" value="$conversation"/>
  <Header value="Answer A"/>
  <Text name="answer_a" value="$answer_a"/>
  <Header value="Answer B"/>
  <Text name="answer_b" value="$answer_b"/>
  <Header value="Which answer is better: more helpful, honest and harmless?"/>
  <Choices name="choice" toName="conversation" choice="single" required="true" showInline="true">
    <Choice value="A"/>
    <Choice value="B"/>
    <Choice value="tie"/>
  </Choices>
</View>
"""

RULES_CONFIG = """<View>
  <Header value="The conversation"/>
  <Text name="conversation" value="$conversation"/>
  <Header value="The answer"/>
  <Text name="answer" value="$answer"/>
  <Header value="The rule"/>
  <Text name="rule" value="$rule"/>
  <Header value="Does the answer follow the rule?"/>
  <Choices name="verdict" toName="answer" choice="single" required="true" showInline="true">
    <Choice value="follows"/>
    <Choice value="breaks"/>
  </Choices>
</View>
"""


def conversation_text(prompt: list[Message]) -> str:
    """The conversation as people read it: Human: … / Assistant: … turns."""
    return messages_to_transcript(prompt).strip()


def pair_items(run: RunDir) -> tuple[str, list[dict]]:
    """(the file read, each pair as {key, id, prompt, first, second}): the pairs the judge labelled
    (preferences.jsonl; first = its `chosen`), else every pair of different answers of samples.jsonl.
    A pair's key is the id `cai label` gives it (the sample's id and the answers' indices), its id
    the sample's."""
    preferences, samples = run.file("preferences.jsonl"), run.file("samples.jsonl")
    if preferences.is_file():
        items = [{"key": r.id, "id": r.id.rsplit(":", 1)[0], "prompt": r.prompt,  # r.id: "SAMPLE_ID:i-j"
                  "first": r.chosen[-1].content, "second": r.rejected[-1].content}
                 for r in read_jsonl(preferences, PreferenceRecord)]
        return str(preferences), items
    if not samples.is_file():
        raise CaiError(f"{run.path} has no preferences.jsonl or samples.jsonl: run `cai sample` (and `cai label`) first")
    items = [{"key": f"{r.id}:{i}-{j}", "id": r.id, "prompt": r.prompt, "first": r.responses[i], "second": r.responses[j]}
             for r in read_jsonl(samples, SampleRecord)
             for i in range(len(r.responses)) for j in range(i + 1, len(r.responses))
             if r.responses[i].strip() != r.responses[j].strip()]
    return str(samples), items


def pair_task(item: dict, seed: int) -> dict:
    """One pair as a task: the answers as A and B in a seeded random order; `order` AB means A is
    the pair's first answer (the judge's `chosen`), BA that A is its second."""
    order = "BA" if rng_for(seed, item["key"], "order").random() < 0.5 else "AB"
    a, b = (item["first"], item["second"]) if order == "AB" else (item["second"], item["first"])
    return {"data": {"kind": "pairs", "key": item["key"], "id": item["id"], "order": order,
                     "prompt": [m.model_dump() for m in item["prompt"]],
                     "conversation": conversation_text(item["prompt"]), "answer_a": a, "answer_b": b}}


def rule_items(run: RunDir, constitution: LoadedConstitution) -> tuple[str, list[dict]]:
    """(the file read, one item per scored response and rule), with the constitution's rule texts."""
    path = run.require("rule_scores.jsonl", "cai rules")
    rows = rule_rows(read_jsonl(path, RuleScoreRecord), constitution)
    return str(path), [{"key": f"{r.id}:{r.response_index}:{r.rule_id}", "row": r} for r in rows]


def rule_task(item: dict) -> dict:
    r = item["row"]
    return {"data": {"kind": "rules", "key": item["key"], "id": r.id, "response_index": r.response_index,
                     "rule_id": r.rule_id, "rule": r.rule, "weight": r.weight,
                     "prompt": [m.model_dump() for m in r.prompt],
                     "conversation": conversation_text(r.prompt), "answer": r.completion[-1].content}}


def draw(items: list[dict], n: int, seed: int) -> list[dict]:
    """n items (all, when there are fewer), drawn by `seed` from the items sorted by key: the same
    run and seed draw the same items, in the same order, whatever order the file holds them in."""
    ordered = sorted(items, key=lambda item: item["key"])
    return random.Random(seed).sample(ordered, min(n, len(ordered)))


def export_review(run: RunDir, what: str, n: int, seed: int, folder: Path,
                  constitution: LoadedConstitution | None = None) -> dict:
    """Write FOLDER/label_config.xml, tasks.json and review.json; returns review.json's content.
    `constitution` (the one `cai rules` used) gives the rule texts; only rules need it."""
    if what not in KINDS:
        raise CaiError(f"--what must be one of {', '.join(KINDS)}, not '{what}'")
    if n < 1:
        raise CaiError("--sample must be at least 1")
    if what == "pairs":
        source, items = pair_items(run)
        tasks = [pair_task(item, seed) for item in draw(items, n, seed)]
        config = PAIRS_CONFIG
    else:
        source, items = rule_items(run, constitution)
        tasks = [rule_task(item) for item in draw(items, n, seed)]
        config = RULES_CONFIG
    if not tasks:
        raise CaiError(f"{source} holds no {what} to review")
    info = {"what": what, "run": str(run.path), "source": source, "available": len(items), "sample": len(tasks),
            "seed": seed, "title": f"cai review: {what} of {run.path.name} (seed {seed})"}
    if what == "rules":
        info["constitution_sha256"] = constitution.sha256
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / CONFIG, lambda f: f.write(config))
    atomic_write(folder / TASKS, lambda f: json.dump(tasks, f, ensure_ascii=False, indent=1))
    atomic_write(folder / INFO, lambda f: json.dump(info, f, indent=2))
    return info


def read_review(folder: Path) -> tuple[str, list[dict], dict]:
    """(labeling config, tasks, review.json) of a folder `export_review` wrote."""
    missing = [name for name in (CONFIG, TASKS, INFO) if not (folder / name).is_file()]
    if missing:
        raise CaiError(f"{folder}: no {', '.join(missing)}; write the folder with `cai review export`")
    try:
        tasks = json.loads((folder / TASKS).read_text(encoding="utf-8"))
        info = json.loads((folder / INFO).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CaiError(f"{folder}: invalid JSON ({e})") from None
    return (folder / CONFIG).read_text(encoding="utf-8"), tasks, info
