"""How good is a judge? Its soft labels against pairs whose better answer humans chose.

Every pair is labelled with the human's choice as x (shown first in order AB), so p_x_better is
the judge's debiased probability for the human's choice. `summarize_binary` does the same for
yes/no probabilities (rule models, or the judge on rules) against labelled rows.
"""

from __future__ import annotations

from collections import defaultdict

from cai.core.records import Judgement
from cai.stages.judge import p_x_better


def correct(p_human: float) -> float:
    """1 when the judge sides with the human, 0 when not, 0.5 for a coin flip."""
    return 1.0 if p_human > 0.5 else 0.5 if p_human == 0.5 else 0.0


def calibration(p_human: list[float], bins: int = 10) -> tuple[list[dict], float | None]:
    """The reliability diagram's bins over the judge's confidence max(p, 1 - p) in [0.5, 1]:
    each non-empty bin's range, count, mean confidence and accuracy; and the expected calibration
    error (ECE), the count-weighted mean gap between a bin's accuracy and its confidence."""
    confidence = [max(p, 1 - p) for p in p_human]
    rows = []
    for b in range(bins):
        lo, hi = 0.5 + b * 0.5 / bins, 0.5 + (b + 1) * 0.5 / bins
        members = [i for i, c in enumerate(confidence) if lo <= c < hi or (b == bins - 1 and c == hi)]
        if members:
            rows.append({
                "low": lo, "high": hi, "n": len(members),
                "confidence": sum(confidence[i] for i in members) / len(members),
                "accuracy": sum(correct(p_human[i]) for i in members) / len(members),
            })
    n = len(p_human)
    ece = sum(r["n"] / n * abs(r["accuracy"] - r["confidence"]) for r in rows) if n else None
    return rows, ece


def summarize(pairs: list[list[Judgement]], bounds: tuple[float, float] | None = None, bins: int = 10) -> dict:
    """`pairs` holds each pair's judgements; x is always the human's choice."""
    p_human = [p_x_better(js, bounds) for js in pairs]
    all_judgements = [j for js in pairs for j in js]

    both_orders = []
    for js in pairs:
        by_principle = defaultdict(dict)
        for j in js:
            by_principle[j.principle_id][j.order] = j.p_first
        for orders in by_principle.values():
            if {"AB", "BA"} <= orders.keys():  # agree: both orders pick the same answer
                both_orders.append((orders["AB"] > 0.5) == (orders["BA"] < 0.5))

    _, ece = calibration(p_human, bins)

    def share(values):
        return round(sum(values) / len(values), 4) if values else None

    return {
        "n": len(pairs),
        "accuracy": share([correct(p) for p in p_human]),
        "position_consistency": share(both_orders),
        "first_position_rate": share([j.p_first > 0.5 for j in all_judgements]),
        "mean_confidence": share([max(p, 1 - p) for p in p_human]),
        "ece": round(ece, 4) if ece is not None else None,
        "judgements": len(all_judgements),
    }


def summarize_binary(p: list[float], labels: list[float], groups: list[str] | None = None, bins: int = 10) -> dict:
    """Probabilities `p` (a rule model's or a judge's) against labels (soft or hard): agreement
    on which side of 0.5 each falls, and calibration; with `groups` (e.g. rule ids), per group too."""
    agree = [a if b > 0.5 else 1 - a for a, b in zip(p, labels)]  # p of the label's side
    hits = [1.0 if (a > 0.5) == (b > 0.5) else 0.0 for a, b in zip(p, labels)]
    _, ece = calibration(agree, bins)

    def share(values):
        return round(sum(values) / len(values), 4) if values else None

    summary = {"n": len(p), "accuracy": share(hits), "mean_confidence": share([max(a, 1 - a) for a in p]),
               "ece": round(ece, 4) if ece is not None else None, "positive_rate": share([a > 0.5 for a in p]),
               "label_positive_rate": share([b > 0.5 for b in labels])}
    if groups is not None:
        members = defaultdict(list)
        for i, g in enumerate(groups):
            members[g].append(i)
        summary["by_group"] = {g: {"n": len(ix), "accuracy": share([hits[i] for i in ix])}
                               for g, ix in sorted(members.items())}
    return summary
