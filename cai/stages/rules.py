"""Rule scores: the AI judge asks, for every response and every rule, "does it follow the rule?".

Each question is multiple choice with Yes and No as the options, read from the judge's next-token
probabilities of the letters (one prefill each, nothing to parse), and asked with Yes as (A) and
again with Yes as (B); the mean of the two cancels the judge's bias toward one position. All
questions of a batch go to the engine as ONE call of prefills.

Input rows are responses (`responses.jsonl`), samples (`samples.jsonl`: K responses each) or
revisions (`revisions.jsonl`: the final revision); each response becomes one output row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from cai.constitution.schema import LoadedConstitution, Rule
from cai.core.batch import BatchResult
from cai.core.errors import CaiError
from cai.core.records import (
    Message,
    Provenance,
    ResponseRecord,
    RevisionRecord,
    RuleJudgement,
    RuleScoreRecord,
    SampleRecord,
    Skipped,
)
from cai.engine.engine import Engine, Failed
from cai.stages.dialogue import Style
from cai.stages.judge import (
    ANSWER_PREFIX,
    OPTIONS,
    judge_prompt,
    p_first,
    p_x_better,
    rule_question_text,
)

log = logging.getLogger("cai")

# `--input` of `cai rules`: the file read, its row type, and the command that writes it.
RULES_INPUTS = {
    "samples": ("samples.jsonl", SampleRecord, "cai sample"),
    "responses": ("responses.jsonl", ResponseRecord, "cai generate"),
    "revisions": ("revisions.jsonl", RevisionRecord, "cai critique"),
}
ORDERS = ("AB", "BA")


@dataclass
class RulesConfig:
    model: str  # the judge
    style: Style = Style.chat


def responses_of(record: ResponseRecord | SampleRecord | RevisionRecord) -> list[str]:
    """The responses a row holds, in order: `response_index` counts them."""
    if isinstance(record, SampleRecord):
        return record.responses
    if isinstance(record, RevisionRecord):
        return [record.final_response]
    return [record.response]


def judge_rules(
    items: list[tuple[list[Message], str, Rule]], engine: Engine, style: Style
) -> list[list[RuleJudgement] | Failed]:
    """For each (conversation, response, rule): its judgements in both orders, or why it failed."""
    prompts = [
        judge_prompt([("Human", rule_question_text(conversation, response, rule.rule, order))], style, ANSWER_PREFIX)
        for conversation, response, rule in items
        for order in ORDERS
    ]
    log.info("judge: %d rule judgements", len(prompts))
    answers = engine.option_logprobs(prompts, engine.option_token_ids(ANSWER_PREFIX, OPTIONS))
    results = []
    for n, (_, _, rule) in enumerate(items):
        pair = answers[2 * n : 2 * n + 2]
        failed = [a for a in pair if isinstance(a, Failed)]
        results.append(failed[0] if failed else [
            RuleJudgement(rule_id=rule.id, order=order, p_first=p_first(logprobs))
            for order, logprobs in zip(ORDERS, pair)
        ])
    return results


def weighted_score(scores: dict[str, float], rules: list[Rule]) -> float:
    total = sum(r.weight for r in rules)
    return sum(r.weight * scores[r.id] for r in rules) / total


def rules_batch(
    records: list[ResponseRecord | SampleRecord | RevisionRecord],
    engine: Engine,
    constitution: LoadedConstitution,
    config: RulesConfig,
) -> BatchResult:
    """One RuleScoreRecord per response (or a Skipped with the judge's reason): rows out + errors
    = the responses of `records`."""
    rules = constitution.constitution.rules
    if not rules:
        raise CaiError(f"{constitution.path} has no rules for the judge to check")
    responses = [(record, k, text) for record in records for k, text in enumerate(responses_of(record))]
    items = [(record.prompt, text, rule) for record, _, text in responses for rule in rules]
    by_response = defaultdict(list)
    for n, result in enumerate(judge_rules(items, engine, config.style)):
        by_response[n // len(rules)].append(result)

    provenance = Provenance(
        model=config.model, sampling={}, style=config.style.value, constitution_sha256=constitution.sha256
    )
    batch = BatchResult()
    for n, (record, k, text) in enumerate(responses):
        results = by_response[n]
        failed = [r for r in results if isinstance(r, Failed)]
        if failed:
            reason = f"response {k}: judge: {failed[0].reason}"
            batch.errors.append(Skipped(id=record.id, stage="rules", reason=reason))
            continue
        scores = {rule.id: p_x_better(js) for rule, js in zip(rules, results)}
        batch.records.append(RuleScoreRecord(
            id=record.id,
            response_index=k,
            prompt=record.prompt,
            response=text,
            scores=scores,
            judgements=[j for js in results for j in js],
            score=weighted_score(scores, rules),
            provenance=provenance,
        ))
    batch.counters.update(responses=len(responses), responses_failed=len(batch.errors), questions=2 * len(items))
    return batch
