"""Win rates, Bradley–Terry Elo and bootstrap intervals, checked against hand computations."""

import json
import math

import numpy as np
import pytest
from rich.console import Console

from cai.core.errors import CaiError
from cai.core.records import ComparisonRecord, Provenance
from cai.metrics.elo import bradley_terry, policy_stats, print_tables, self_preference, write_results

PROVENANCE = Provenance(model="judge", sampling={}, style="chat")


def comparison(prompt: str, x: str, y: str, p_x: float, tag: str = "harmless") -> list[ComparisonRecord]:
    """A comparison whose two orders both say x is better with probability p_x (tie: p_x = 0.5)."""
    return [
        ComparisonRecord(
            id=prompt, policies=(x, y), tag=tag, principle_id="q", order=order,
            p_first=p_x if order == "AB" else 1 - p_x, tie=False, provenance=PROVENANCE,
        )
        for order in ("AB", "BA")
    ]


def test_two_policies_match_the_closed_form():
    # x's mean score against y is 0.75 (soft: half the prompts 1.0, half 0.5), so the strength
    # ratio is 0.75 / 0.25 = 3 and y sits 400·log10(3) Elo below x.
    rows = [r for n in range(100) for r in comparison(f"p{n}", "x", "y", 1.0 if n % 2 else 0.5)]
    s = policy_stats(rows, ["x", "y"], ["harmless"])["tags"]["harmless"]
    assert s["elo"]["x"] == 0.0
    assert s["elo"]["y"] == pytest.approx(-400 * math.log10(3), abs=0.05)
    assert s["win_rate"] == {"x": {"y": pytest.approx(0.75)}, "y": {"x": pytest.approx(0.25)}}
    assert s["comparisons"] == 100


def test_three_policies_recover_the_strengths_that_made_the_data():
    # Strengths 1, 2, 4: P(i beats j) = s_i / (s_i + s_j). Data that match these exactly satisfy the
    # likelihood equations, so the fit is log-strength itself: Elo 0, 400·log10 2, 400·log10 4.
    strength = {"a": 1, "b": 2, "c": 4}
    rows = [
        r
        for n in range(30)
        for x, y in (("a", "b"), ("a", "c"), ("b", "c"))
        for r in comparison(f"p{n}", x, y, strength[x] / (strength[x] + strength[y]))
    ]
    s = policy_stats(rows, ["a", "b", "c"], ["harmless"])["tags"]["harmless"]
    assert s["elo"] == pytest.approx({"a": 0, "b": 400 * math.log10(2), "c": 400 * math.log10(4)}, abs=0.1)
    assert s["win_rate"]["c"]["a"] == pytest.approx(0.8)
    assert s["comparisons"] == 90
    assert s["ci95"]["a"] == [0.0, 0.0]  # the anchor
    for p in "bc":
        lo, hi = s["ci95"][p]
        assert lo <= s["elo"][p] <= hi


def test_bradley_terry_fits_many_matrices_at_once():
    wins = np.array([[[0, 3.0], [1, 0]], [[0, 1.0], [3, 0]]])
    elo = bradley_terry(wins)
    assert elo[:, 0] == pytest.approx([0, 0])
    assert elo[:, 1] == pytest.approx([-400 * math.log10(3), 400 * math.log10(3)], abs=1)


def test_a_policy_that_always_wins_is_highest_and_its_interval_excludes_the_others():
    rng = np.random.default_rng(0)
    rows = []
    for n in range(40):
        rows += comparison(f"p{n}", "a", "best", 0.0) + comparison(f"p{n}", "best", "c", 1.0)
        rows += comparison(f"p{n}", "a", "c", float(rng.uniform()))
    s = policy_stats(rows, ["a", "best", "c"], ["harmless"], seed=3)["tags"]["harmless"]
    assert s["elo"]["best"] > max(s["elo"]["a"], s["elo"]["c"])
    assert s["ci95"]["best"][0] > max(s["ci95"]["a"][1], s["ci95"]["c"][1])
    assert s["win_rate"]["best"] == {"a": 1.0, "c": 1.0}


def test_ties_give_equal_scores():
    rows = [r for n in range(20) for x, y in (("a", "b"), ("a", "c"), ("b", "c")) for r in comparison(f"p{n}", x, y, 0.5)]
    s = policy_stats(rows, ["a", "b", "c"], ["harmless"])["tags"]["harmless"]
    assert s["elo"] == pytest.approx({"a": 0, "b": 0, "c": 0}, abs=1e-6)
    assert all(rate == 0.5 for row in s["win_rate"].values() for rate in row.values())
    assert s["comparisons"] == 60


def test_each_tag_is_scored_from_its_own_rows_and_the_bootstrap_is_seeded():
    p = np.random.default_rng(0).uniform(0.3, 1.0, size=30)  # x mostly better at harmless, worse at helpful
    rows = [r for n in range(30) for r in comparison(f"p{n}", "x", "y", float(p[n]), "harmless")]
    rows += [r for n in range(30) for r in comparison(f"p{n}", "x", "y", float(1 - p[n]), "helpful")]
    stats = policy_stats(rows, ["x", "y"], ["harmless", "helpful"], seed=1)
    assert list(stats) == ["tags"] and list(stats["tags"]) == ["harmless", "helpful"]
    assert set(stats["tags"]["harmless"]) == {"elo", "ci95", "win_rate", "comparisons"}
    assert stats["tags"]["harmless"]["elo"]["y"] < 0 < stats["tags"]["helpful"]["elo"]["y"]
    assert policy_stats(rows, ["x", "y"], ["harmless", "helpful"], seed=1) == stats
    other = policy_stats(rows, ["x", "y"], ["harmless", "helpful"], seed=2)
    assert other["tags"]["harmless"]["ci95"] != stats["tags"]["harmless"]["ci95"]
    assert other["tags"]["harmless"]["elo"] == stats["tags"]["harmless"]["elo"]  # the fit itself is not random


def test_unknown_policy_and_a_single_policy_are_errors():
    rows = comparison("p", "x", "z", 0.6)
    with pytest.raises(CaiError, match="z"):
        policy_stats(rows, ["x", "y"], ["harmless"])
    with pytest.raises(CaiError, match="two or more"):
        policy_stats(rows, ["x"], ["harmless"])


def test_results_are_written_drawn_and_printed(tmp_path):
    rows = [r for n in range(10) for tag in ("harmless", "helpful") for r in comparison(f"p{n}", "x", "y", 0.7, tag)]
    stats = policy_stats(rows, ["x", "y"], ["harmless", "helpful"], resamples=50)
    written = write_results(stats, tmp_path / "eval")
    assert [p.name for p in written] == ["eval.json", "elo.png", "harmless-vs-helpful.png"]
    assert json.loads((tmp_path / "eval" / "eval.json").read_text()) == stats
    for png in written[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    console = Console(record=True, width=120)
    print_tables(stats, console)
    text = console.export_text()
    assert "harmless: 10 comparisons" in text and "helpful: 10 comparisons" in text
    lo, hi = stats["tags"]["helpful"]["ci95"]["y"]
    assert f"[{lo:.0f}, {hi:.0f}]" in text and "0.70" in text and "0.30" in text


def test_self_preference_counts_the_judges_own_policy_on_either_side_and_skips_ties():
    rows = (comparison("p1", "own", "x", 0.8) + comparison("p2", "x", "own", 0.7)  # own loses p2 (0.3)
            + comparison("p3", "own", "x", 0.6, tag="helpful") + comparison("p4", "x", "y", 0.1))
    rows += [r.model_copy(update={"id": "p5", "tie": True, "p_first": 0.5}) for r in comparison("p5", "own", "x", 0.5)]
    assert self_preference(rows, ["own"]) == {"own": {"share": pytest.approx(2 / 3), "mean_p": pytest.approx(1.7 / 3), "n": 3}}
    assert self_preference(rows, ["nobody"]) == {}
