"""How good is a judge? Its soft labels against pairs whose better answer humans chose.

Every pair is labelled with the human's choice as x (shown first in order AB), so p_x_better is
the judge's debiased probability for the human's choice.
"""

from __future__ import annotations

from collections import defaultdict

from cai.judge import p_x_better
from cai.records import Judgement


def summarize(pairs: list[list[Judgement]], bounds: tuple[float, float] | None = None, bins: int = 10) -> dict:
    """`pairs` holds each pair's judgements; x is always the human's choice."""
    p_human = [p_x_better(js, bounds) for js in pairs]
    correct = [1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0 for p in p_human]
    confidence = [max(p, 1 - p) for p in p_human]
    all_judgements = [j for js in pairs for j in js]

    both_orders = []
    for js in pairs:
        by_principle = defaultdict(dict)
        for j in js:
            by_principle[j.principle_id][j.order] = j.p_first
        for orders in by_principle.values():
            if {"AB", "BA"} <= orders.keys():  # agree: both orders pick the same answer
                both_orders.append((orders["AB"] > 0.5) == (orders["BA"] < 0.5))

    n = len(pairs)
    ece = 0.0
    for b in range(bins):
        lo, hi = 0.5 + b * 0.5 / bins, 0.5 + (b + 1) * 0.5 / bins
        members = [i for i, c in enumerate(confidence) if lo <= c < hi or (b == bins - 1 and c == hi)]
        if members:
            accuracy = sum(correct[i] for i in members) / len(members)
            mean_conf = sum(confidence[i] for i in members) / len(members)
            ece += len(members) / n * abs(accuracy - mean_conf)

    def share(values):
        return round(sum(values) / len(values), 4) if values else None

    return {
        "n": n,
        "accuracy": share(correct),
        "position_consistency": share(both_orders),
        "first_position_rate": share([j.p_first > 0.5 for j in all_judgements]),
        "mean_confidence": share(confidence),
        "ece": round(ece, 4) if n else None,
        "judgements": len(all_judgements),
    }
