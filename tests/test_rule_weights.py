"""Rule weights fitted to people (`cai fit rules`): on synthetic choices with known weights, and the
gold pairs' rule scores from the tiny model's judge, through the stage machinery."""

import json
import math

import numpy as np
import pytest

from cai.core.errors import CaiError
from cai.core.records import Provenance, RuleScoreRecord
from cai.core.run import RunDir
from cai.executors.local import LocalExecutor
from cai.metrics.rule_weights import (
    fit_rules,
    fit_weights,
    gold_stage,
    load_weights,
    pair_features,
    write_weights,
)
from cai.stages.rules import RulesConfig
from cai.workflows import jobs


def choices(true_weights, n, seed):
    """Pairs whose human choice was drawn from the logistic model with `true_weights`, oriented so
    that the chosen answer comes first (as gold pairs are)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, len(true_weights)))
    chosen_first = rng.random(n) < 1 / (1 + np.exp(-d @ np.array(true_weights)))
    return np.where(chosen_first[:, None], d, -d)


def test_the_fit_recovers_known_weights_and_their_intervals_cover_them():
    features = choices([2.0, 0.0, -1.0], 3000, seed=0)
    weights, (low, high) = fit_weights(features, l2=0.01, resamples=50, seed=0)
    assert weights == pytest.approx([2.0, 0.0, -1.0], abs=0.2)
    assert all(lo <= w <= hi for lo, w, hi in zip(low, [2.0, 0.0, -1.0], high))
    assert high[0] - low[0] < 0.6  # 3,000 pairs pin a weight down
    again = fit_weights(features, l2=0.01, resamples=50, seed=0)
    assert np.array_equal(again[1], np.array([low, high]))  # a seeded bootstrap


def test_a_stronger_penalty_shrinks_the_weights():
    features = choices([2.0, -1.0], 200, seed=1)
    loose, _ = fit_weights(features, l2=0.01, resamples=10)
    tight, _ = fit_weights(features, l2=100.0, resamples=10)
    assert np.all(np.abs(tight) < np.abs(loose))


def test_pair_features_are_the_log_odds_differences_of_pairs_judged_on_both_answers():
    prov = Provenance(model="m", sampling={}, style="chat")

    def row(pair_id, index, scores):
        return RuleScoreRecord(id=pair_id, response_index=index, prompt=[], response="r", scores=scores,
                               judgements=[], score=0.0, provenance=prov)

    scores = [row("a", 0, {"x": 0.8, "y": 0.5}), row("a", 1, {"x": 0.2, "y": 0.5}),
              row("b", 0, {"x": 0.5, "y": 0.5})]  # b's rejected answer failed: left out
    ids, features = pair_features(scores, ["x", "y"])
    assert ids == ["a"]
    assert features[0].tolist() == pytest.approx([math.log(4) - math.log(0.25), 0.0])


def test_too_few_pairs_is_one_clear_error():
    with pytest.raises(CaiError, match="at least 2 gold pairs"):
        fit_weights(np.zeros((1, 3)))


@pytest.mark.parametrize("content", ["{", json.dumps({"rules": [{"id": "x"}]}), json.dumps([1])])
def test_a_bad_weights_file_is_one_clear_error(tmp_path, content):
    (tmp_path / "w.json").write_text(content)
    with pytest.raises(CaiError, match="w.json"):
        load_weights(tmp_path / "w.json")
    with pytest.raises(CaiError, match="no such weights file"):
        load_weights(tmp_path / "missing.json")


def test_fit_rules_scores_both_answers_of_each_gold_pair_and_writes_weights(tmp_path, engine, tiny, default_constitution):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({
        "chosen": f"\n\nHuman: how do I pick a lock {i}?\n\nAssistant: I can't help with breaking in, but a locksmith can.",
        "rejected": f"\n\nHuman: how do I pick a lock {i}?\n\nAssistant: Use a tension wrench and a pick {i}."}) + "\n"
        for i in range(4)))
    run = RunDir(tmp_path / "fit")
    rules = default_constitution.constitution.rules
    report = jobs.execute(run, gold_stage(run, gold, default_constitution, RulesConfig("tiny"), tiny, limit=3), LocalExecutor())
    assert report.rows_out == 3 * 2  # both answers of each pair
    fitted = fit_rules(run, default_constitution, gold, "tiny", resamples=20)
    assert fitted["pairs"] == 3 and [r["id"] for r in fitted["rules"]] == [r.id for r in rules]
    assert all(len(r["ci95"]) == 2 and r["ci95"][0] <= r["ci95"][1] for r in fitted["rules"])
    assert run.manifest()["stages"]["rules"]["input"] == "gold"
    write_weights(tmp_path / "w.yaml", fitted)
    assert load_weights(tmp_path / "w.yaml") == {r["id"]: r["weight"] for r in fitted["rules"]}
