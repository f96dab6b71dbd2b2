"""compare_batch on the tiny vLLM model: every pair of policies, per tag, both orders, one prefill call."""

from collections import defaultdict
from itertools import combinations

import pytest

from cai.core.records import PolicyAnswers
from cai.data import DEMO_PROMPTS
from cai.io.inputs import load_prompts
from cai.metrics.elo import policy_stats
from cai.stages.compare import CompareConfig, compare_batch
from cai.stages.dialogue import Style
from cai.stages.judge import (
    ANSWER_PREFIX,
    OPTIONS,
    few_shot_turns,
    judge_prompt,
    p_first,
    question_text,
)

POLICIES = ["base", "sl", "rl"]
TAGS = ["harmless", "helpful"]


def policy_answers(n: int = 3) -> list[PolicyAnswers]:
    """n demo prompts answered by three policies; on the first prompt base and sl answer alike."""
    rows, _ = load_prompts(DEMO_PROMPTS, limit=n)
    records = []
    for k, row in enumerate(rows):
        answers = {p: f"{p} answer {k}: I would rather not help with that, but here is why." for p in POLICIES}
        if k == 0:
            answers["sl"] = answers["base"] + "  "  # the same answer up to whitespace: a tie
        records.append(PolicyAnswers(id=row.id, prompt=row.prompt, answers=answers))
    return records


def test_every_pair_tag_principle_and_order_is_a_row(engine, default_constitution, prefill_calls):
    records = policy_answers(3)
    config = CompareConfig("tiny", tags=TAGS, principles_per_comparison=2, seed=4)
    result = compare_batch(records, engine, default_constitution, config)
    rows = result.records
    assert not result.errors
    assert len(rows) == 3 * 3 * len(TAGS) * 2 * 2  # prompts × pairs × tags × principles × orders
    ties = [r for r in rows if r.tie]
    assert len(ties) == len(TAGS) * 2 * 2 and all(r.p_first == 0.5 for r in ties)
    assert {(r.id, r.policies) for r in ties} == {(records[0].id, ("base", "sl"))}
    assert prefill_calls == [len(rows) - len(ties)]  # ONE call, ties not asked
    assert result.counters == {"comparisons": 3 * 3 * len(TAGS), "ties": len(TAGS), "judgements": len(rows) - len(ties)}
    assert all(0 <= r.p_first <= 1 for r in rows)
    assert {r.policies for r in rows} == set(combinations(sorted(POLICIES), 2))

    by_tag = default_constitution.constitution.principles_by_tag(TAGS)
    drawn = defaultdict(set)  # (prompt, tag) -> principles, for every pair and order
    orders = defaultdict(list)
    for r in rows:
        assert r.principle_id in {p.id for p in by_tag[r.tag]}
        drawn[(r.id, r.tag)].add(r.principle_id)
        orders[(r.id, r.policies, r.tag, r.principle_id)].append(r.order)
        assert r.provenance.model == "tiny" and r.provenance.seed == 4
        assert r.provenance.constitution_sha256 == default_constitution.sha256
    assert all(len(ids) == 2 for ids in drawn.values())  # every pair of a prompt faces the same two questions
    assert all(sorted(o) == ["AB", "BA"] for o in orders.values())

    # One judgement by hand: policies[0]'s answer is (A) in order AB, (B) in order BA.
    record = records[1]
    row = next(r for r in rows if r.id == record.id and r.policies == ("base", "rl") and r.order == "BA")
    question = next(p.question for p in by_tag[row.tag] if p.id == row.principle_id)
    examples = default_constitution.constitution.preference_examples
    turns = few_shot_turns(examples, question) + [
        ("Human", question_text(record.prompt, question, record.answers["rl"], record.answers["base"]))
    ]
    ids = engine.option_token_ids(ANSWER_PREFIX, OPTIONS)
    (scores,) = engine.option_logprobs([judge_prompt(turns, Style.chat, ANSWER_PREFIX)], ids)
    assert row.p_first == pytest.approx(p_first(scores), abs=1e-6)

    assert compare_batch(records, engine, default_constitution, config).records == rows  # seeded
    stats = policy_stats(rows, POLICIES, TAGS, resamples=100)
    assert all(stats["tags"][tag]["comparisons"] == 9 for tag in TAGS)


def test_failed_judgements_drop_their_whole_comparison(engine, default_constitution):
    records = policy_answers(2)
    records[1].answers["rl"] = "word " * (engine.context_length + 100)  # too long for the judge's context
    records.append(PolicyAnswers(id="alone", prompt=records[0].prompt, answers={"base": "only one"}))
    result = compare_batch(records, engine, default_constitution, CompareConfig("tiny", tags=["helpful"]))
    failed = sorted(e.id for e in result.errors)
    prompt = records[1].id
    assert failed == ["alone", f"{prompt}:base vs rl:helpful", f"{prompt}:rl vs sl:helpful"]
    assert all("too long" in e.reason for e in result.errors if e.id != "alone")
    assert {(r.id, r.policies) for r in result.records if r.id == prompt} == {(prompt, ("base", "sl"))}
    assert len(result.records) == (3 + 1) * 2  # 3 pairs of the first prompt, 1 of the second, both orders
    assert result.counters["comparisons"] == 4


def test_unknown_tag_is_an_error_before_any_judging(engine, default_constitution, prefill_calls):
    from cai.core.errors import CaiError

    with pytest.raises(CaiError, match="no preference principle is tagged 'kind'"):
        compare_batch(policy_answers(1), engine, default_constitution, CompareConfig("tiny", tags=["kind"]))
    assert prefill_calls == []
