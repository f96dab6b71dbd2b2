"""How good is a judge? Its soft labels against pairs whose better answer humans chose.

Every pair is labelled with the human's choice as x (shown first in order AB), so p_x_better is
the judge's debiased probability for the human's choice. `summarize_binary` does the same for
yes/no probabilities (rule models, or the judge on rules) against labelled rows.
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

    return {
        "n": len(pairs),
        "accuracy": _share(correct),
        "position_consistency": _share(both_orders),
        "first_position_rate": _share([j.p_first > 0.5 for j in all_judgements]),
        "mean_confidence": _share(confidence),
        "ece": _ece(correct, confidence, bins),
        "judgements": len(all_judgements),
    }


def summarize_binary(p: list[float], labels: list[float], groups: list[str] | None = None, bins: int = 10) -> dict:
    """Probabilities `p` (a rule model's or a judge's) against labels (soft or hard): agreement
    on which side of 0.5 each falls, and calibration; with `groups` (e.g. rule ids), per group too."""
    correct = [1.0 if (a > 0.5) == (b > 0.5) else 0.0 for a, b in zip(p, labels)]
    confidence = [max(a, 1 - a) for a in p]
    summary = {"n": len(p), "accuracy": _share(correct), "mean_confidence": _share(confidence),
               "ece": _ece(correct, confidence, bins), "positive_rate": _share([a > 0.5 for a in p]),
               "label_positive_rate": _share([b > 0.5 for b in labels])}
    if groups is not None:
        members = defaultdict(list)
        for i, g in enumerate(groups):
            members[g].append(i)
        summary["by_group"] = {g: {"n": len(ix), "accuracy": _share([correct[i] for i in ix])}
                               for g, ix in sorted(members.items())}
    return summary


def _share(values) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _ece(correct: list[float], confidence: list[float], bins: int) -> float | None:
    """Expected calibration error: |accuracy - confidence| over confidence bins in [0.5, 1]."""
    n = len(correct)
    if not n:
        return None
    ece = 0.0
    for b in range(bins):
        lo, hi = 0.5 + b * 0.5 / bins, 0.5 + (b + 1) * 0.5 / bins
        members = [i for i, c in enumerate(confidence) if lo <= c < hi or (b == bins - 1 and c == hi)]
        if members:
            accuracy = sum(correct[i] for i in members) / len(members)
            mean_conf = sum(confidence[i] for i in members) / len(members)
            ece += len(members) / n * abs(accuracy - mean_conf)
    return round(ece, 4)
