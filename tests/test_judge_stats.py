"""The judge analysis and its calibration on synthetic numbers whose answers are known."""

import json
import math
import random

import pytest

from cai.core.errors import CaiError
from cai.core.records import Judgement
from cai.engine.engine import EngineStats
from cai.metrics.calibration import (
    Calibration,
    fit,
    fit_calibration,
    load_calibration,
    write_calibration,
)
from cai.metrics.judge_stats import (
    analyse,
    bootstrap_ci,
    cost,
    kappa,
    length_bias,
    per_principle,
)
from cai.stages.judge import p_x_better


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def logit(p):
    return math.log(p / (1 - p))


def j(p_first, order="AB", principle="harmless"):
    return Judgement(principle_id=principle, order=order, p_first=p_first)


def test_bootstrap_interval_surrounds_the_mean_as_wide_as_the_binomial_and_is_seeded():
    values = [1.0] * 80 + [0.0] * 20
    lo, hi = bootstrap_ci(values, seed=0)
    half_width = 1.96 * math.sqrt(0.8 * 0.2 / 100)  # 0.078
    assert lo == pytest.approx(0.8 - half_width, abs=0.02) and hi == pytest.approx(0.8 + half_width, abs=0.02)
    assert bootstrap_ci(values, seed=0) == [lo, hi]
    assert bootstrap_ci([1.0] * 10, seed=0) == [1.0, 1.0]
    assert bootstrap_ci([1.0], seed=0) is None


def test_kappa_is_one_for_full_agreement_minus_one_for_none_and_near_zero_for_chance():
    ids = [f"pair-{i}" for i in range(400)]
    assert kappa([0.9] * 400, ids, seed=0) == 1.0  # the judge always sides with the human
    assert kappa([0.1] * 400, ids, seed=0) == pytest.approx(-1.0, abs=0.01)  # -1 exactly for 50/50 labels
    rng = random.Random(1)
    assert abs(kappa([rng.choice([0.2, 0.8]) for _ in ids], ids, seed=0)) < 0.12
    # A judge right 3 times in 4 on balanced labels: kappa = (0.75 - 0.5) / (1 - 0.5)
    assert kappa([0.9, 0.9, 0.9, 0.1] * 100, ids, seed=0) == pytest.approx(0.5, abs=0.06)


def test_per_principle_accuracy_counts_each_principles_own_verdict():
    judged = [[j(0.8, principle="a"), j(0.3, principle="b")],
              [j(0.7, principle="a"), j(0.6, principle="b")],
              [j(0.4, principle="a")]]
    table = per_principle(judged, seed=0)
    assert table["a"]["n"] == 3 and table["a"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert table["b"]["n"] == 2 and table["b"]["accuracy"] == 0.5
    lo, hi = table["a"]["ci95"]
    assert 0 <= lo <= 2 / 3 <= hi <= 1


def test_length_bias_shares_and_the_slope_per_hundred_characters():
    # p for x rises 0.1 per 100 characters x is longer; the human's choice is the longer in 3 of 4
    lengths = [(300, 100), (100, 200), (250, 150), (400, 100)]
    p_human = [0.5 + 0.001 * (x - y) for x, y in lengths]  # 0.7, 0.4, 0.6, 0.8
    bias = length_bias(p_human, lengths)
    assert bias["slope"] == pytest.approx(0.1)
    assert bias["humans_prefer_longer"] == 0.75
    assert bias["judge_prefers_longer"] == 1.0  # the judge picked the longer answer every time
    assert bias["n"] == 4
    unknown = length_bias([0.7], [None])
    assert unknown["slope"] is None and unknown["judge_prefers_longer"] is None and unknown["n"] == 0


def test_cost_per_thousand_pairs():
    stats = EngineStats(requests=400, cached=0, prompt_tokens=200_000, seconds=90.0)
    c = cost(400, 400, stats, 100.0)
    assert c["per_1000_pairs"] == {"judgements": 1000.0, "prompt_tokens": 500_000.0, "seconds": 250.0}
    assert c["prompt_tokens"] == 200_000 and c["pairs"] == 400


def test_analyse_gives_the_summary_fields_the_issue_names():
    rows = [{"id": f"p{i}:0-1", "chars": [100 + i, 100]} for i in range(20)]
    judged = [[j(0.9 if i % 4 else 0.2)] for i in range(20)]
    summary = analyse(rows, judged, seed=0)
    assert set(summary) == {"accuracy_ci95", "kappa", "per_principle", "length_bias"}
    assert set(summary["per_principle"]["harmless"]) == {"accuracy", "ci95", "n"}
    assert set(summary["length_bias"]) >= {"judge_prefers_longer", "humans_prefer_longer", "slope"}


# -- calibration -------------------------------------------------------------------------------


def simulated(n, seed, judge, swap=False):
    """Pairs whose human choice x was drawn with the true probability q; the judge reports
    judge(q_first) for the answer it sees first. x always goes first in AB, as eval judge labels it."""
    rng = random.Random(seed)
    pairs = []
    while len(pairs) < n:
        q = rng.uniform(0.05, 0.95)  # the true probability that answer u is better than v
        u_chosen = rng.random() < q
        q_x = q if u_chosen else 1 - q
        orders = ["AB", "BA"] if swap else [rng.choice(["AB", "BA"])]
        pairs.append([j(judge(q_x) if o == "AB" else judge(1 - q_x), o) for o in orders])
    return pairs


def test_a_calibration_maps_p_first_through_the_logit():
    assert Calibration("temperature", {"temperature": 2.0})(sigmoid(2.0)) == pytest.approx(sigmoid(1.0))
    assert Calibration("platt", {"a": 0.5, "b": -1.0})(sigmoid(2.0)) == pytest.approx(sigmoid(0.0))
    assert p_x_better([j(sigmoid(2.0), "BA")], None, Calibration("temperature", {"temperature": 2.0})) == pytest.approx(1 - sigmoid(1.0))


def test_temperature_scaling_recovers_an_over_confident_judges_temperature():
    judged = simulated(3000, seed=0, judge=lambda q: sigmoid(3 * logit(q)))
    assert fit(judged, "temperature").parameters["temperature"] == pytest.approx(3.0, rel=0.15)


def test_platt_scaling_recovers_a_bias_toward_the_first_answer():
    judged = simulated(3000, seed=1, judge=lambda q: sigmoid(logit(q) + 1.0))
    params = fit(judged, "platt").parameters
    assert params["a"] == pytest.approx(1.0, abs=0.15) and params["b"] == pytest.approx(-1.0, abs=0.2)


def test_cross_validated_calibration_lowers_held_out_ece(tmp_path):
    judged = simulated(600, seed=2, judge=lambda q: sigmoid(4 * logit(q)), swap=True)
    fitted = fit_calibration(judged, "temperature", folds=5, seed=0)
    assert fitted["folds"] == 5 and fitted["n"] == 600 and fitted["method"] == "temperature"
    assert fitted["ece_before"] > 0.15 and fitted["ece_after"] < fitted["ece_before"] / 2
    assert fitted["log_loss_after"] < fitted["log_loss_before"]
    lo, hi = fitted["p_range_after"]  # softened, but still spread: this judge carries signal
    assert 0 < lo < 0.2 and 0.8 < hi < 1
    assert fit_calibration(judged, "temperature", folds=5, seed=0) == fitted  # seeded folds
    for name in ("cal.json", "cal.yaml"):
        write_calibration(tmp_path / name, fitted)
        calibration, sha, content = load_calibration(tmp_path / name)
        assert calibration.parameters == fitted["parameters"] and content["ece_after"] == fitted["ece_after"]
        assert len(sha) == 64


def test_too_few_pairs_or_folds_are_refused():
    with pytest.raises(CaiError, match="folds"):
        fit_calibration([[j(0.7)]] * 3, "temperature", folds=5)
    with pytest.raises(CaiError, match="at least 2"):
        fit_calibration([[j(0.7)]] * 3, "temperature", folds=1)
    with pytest.raises(CaiError, match="calibration-method"):
        fit([[j(0.7)]], "isotonic")


@pytest.mark.parametrize("content", ["[1, 2", json.dumps({"method": "platt", "parameters": {"a": 1}}),
                                     json.dumps({"method": "temperature", "parameters": {"temperature": 0}}),
                                     json.dumps(["temperature"])])
def test_a_bad_calibration_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(CaiError, match="cal.json"):
        load_calibration(path)
    with pytest.raises(CaiError, match="no such"):
        load_calibration(tmp_path / "missing.json")
